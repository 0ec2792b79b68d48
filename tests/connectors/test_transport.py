"""The direct transport (``connectors/transport.py``) against requests' own, over real loopback HTTP.

Every test that compares runs the same exchange through both (``OKRSYNC_HTTP_TRANSPORT=requests``
selects requests') and asserts the same bytes on the wire, the same answer, or the same failure:
the direct transport may only be faster, never different.
"""

from __future__ import annotations

import functools
import gzip
import json
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
import requests.adapters
import responses

from connectors.http import HttpClient, HttpPolicy
from connectors.transport import DirectTransport, Exchange, direct_allowed, prepare
from syncer.errors import TransientError
from tests.connectors.loopback import RawServer

SECRET = "s3cr3t-transport-token"
TRANSPORTS = ("direct", "requests")


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    port: int


Reply = Callable[[BaseHTTPRequestHandler, Seen], None]


@dataclass
class Server:
    """A keep-alive HTTP/1.1 loopback server: records every request, answers with ``reply``."""

    reply: Reply
    host: str = "127.0.0.1"
    seen: list[Seen] = field(default_factory=list)
    connections: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                owner.connections.append(self.client_address[1])

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                            self.client_address[1])
                owner.seen.append(seen)
                owner.reply(self, seen)

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _handle  # noqa: N815 - the http.server spelling

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer((self.host, 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://{self.host}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


def send_json(handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str] | None = None,
              ) -> None:
    handler.send_response(status)
    for name, value in (headers or {"Content-Type": "application/json"}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


def echo(handler: BaseHTTPRequestHandler, seen: Seen) -> None:
    send_json(handler, 200, json.dumps({"path": seen.path}).encode())


@pytest.fixture
def server() -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(reply: Reply, host: str = "127.0.0.1") -> Server:
        started.append(Server(reply, host))
        return started[-1]

    yield start
    for one in started:
        one.close()


@dataclass
class Sleeps:
    waits: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def client(url: str, transport: str, monkeypatch: pytest.MonkeyPatch, **policy: Any) -> HttpClient:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    if transport == "requests":
        monkeypatch.setenv("OKRSYNC_HTTP_TRANSPORT", "requests")
    else:
        monkeypatch.delenv("OKRSYNC_HTTP_TRANSPORT", raising=False)
    return HttpClient(source="jira", base_url=url, headers={"Authorization": f"Bearer {SECRET}"}, secrets=(SECRET,),
                      policy=HttpPolicy(jitter=0.0, backoff_base=0.01, **policy), sleep=Sleeps())


@pytest.fixture
def direct_calls(monkeypatch: pytest.MonkeyPatch) -> list[Exchange]:
    """Every exchange the direct transport carried (a wrapper, as an observer would add one)."""
    calls: list[Exchange] = []
    original = DirectTransport.send

    @functools.wraps(original)
    def send(self: DirectTransport, exchange: Exchange, **kw: Any) -> requests.Response:
        calls.append(exchange)
        return original(self, exchange, **kw)

    monkeypatch.setattr(DirectTransport, "send", send)
    return calls


# -- the same request on the wire ---------------------------------------------------------------

CASES: list[tuple[str, str, dict[str, Any] | None, Any, dict[str, Any] | None]] = [
    ("GET", "rest/api/3/search/jql",
     {"jql": 'project = "PLAT" AND labels in (a, "b c") ORDER BY key', "maxResults": 100,
      "fields": ["summary", "status"], "skip": None}, None, None),
    ("GET", "repos/acme/web/issues?state=all&per_page=100", {"since": "2026-11-02T10:15:30Z"}, None,
     {"If-None-Match": '"abc"'}),
    ("GET", "search?q=caf%C3%A9 x", {"é": "ü/&=+", "flag": True, "n": 1.5}, None, None),
    ("GET", "path with space/ünïcode", None, None, {"Accept": None}),
    ("POST", "rest/api/3/issue/bulkfetch", None, {"issueIdsOrKeys": ["10001", "10002"], "fields": ["summary"],
                                                  "note": "naïve ☃"}, None),
    ("PUT", "rest/api/3/issue/PLAT-1", None, {"fields": {"customfield_1": 0.5}}, {"Content-Type": "application/json"}),
    ("POST", "empty", None, None, {"X-Extra": "1"}),
    ("DELETE", "repos/acme/web/issues/1/labels/okr:growth", None, None, None),
    ("GET", "x", {"fields": ("summary",), "ids": [1, 2], "one": {"only"}}, None, None),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_both_transports_put_the_same_request_on_the_wire(
    case: int, server: Callable[..., Server], monkeypatch: pytest.MonkeyPatch, direct_calls: list[Exchange]
) -> None:
    method, path, params, body, headers = CASES[case]
    tracker = server(echo)
    for transport in TRANSPORTS:
        client(tracker.url, transport, monkeypatch).request(method, path, params=params, json_body=body,
                                                            headers=headers)
    direct, via_requests = tracker.seen
    assert len(direct_calls) == 1  # the first went direct, the second through requests
    assert (direct.method, direct.path, direct.body) == (via_requests.method, via_requests.path, via_requests.body)
    assert direct.headers == via_requests.headers
    assert direct.headers["authorization"] == f"Bearer {SECRET}"
    assert direct.headers["accept-encoding"] == "gzip, deflate"


def test_prepare_matches_requests_for_the_url_and_body() -> None:
    for method, path, params, body, headers in CASES:
        url = f"http://127.0.0.1:9/api/{path}"
        ours = prepare(method, url, params, body, headers or {})
        theirs = requests.Request(method, url, params=params, json=body,
                                  headers={k: v for k, v in (headers or {}).items() if v is not None}).prepare()
        assert ours.url == theirs.url
        assert ours.body == (theirs.body.encode() if isinstance(theirs.body, str) else theirs.body)


# -- the same answer -----------------------------------------------------------------------------

PAYLOAD = json.dumps({"issues": [{"id": str(n), "summary": "ünï ☃"} for n in range(300)]}).encode()


def answers(handler: BaseHTTPRequestHandler, seen: Seen) -> None:
    if seen.path.endswith("/gzip"):
        send_json(handler, 200, gzip.compress(PAYLOAD),
                  {"Content-Type": "application/json", "Content-Encoding": "gzip"})
    elif seen.path.endswith("/deflate"):
        send_json(handler, 200, zlib.compress(PAYLOAD), {"Content-Type": "application/json",
                                                         "Content-Encoding": "deflate"})
    elif seen.path.endswith("/raw-deflate"):
        packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        send_json(handler, 200, packer.compress(PAYLOAD) + packer.flush(),
                  {"Content-Type": "application/json", "Content-Encoding": "deflate"})
    elif seen.path.endswith("/gzip-members"):
        half = len(PAYLOAD) // 2
        send_json(handler, 200, gzip.compress(PAYLOAD[:half]) + gzip.compress(PAYLOAD[half:]),
                  {"Content-Type": "application/json", "Content-Encoding": "gzip"})
    elif seen.path.endswith("/gzip-garbage"):
        send_json(handler, 200, gzip.compress(PAYLOAD) + b"\x00trailing",
                  {"Content-Type": "application/json", "Content-Encoding": "gzip"})
    elif seen.path.endswith("/odd-coding"):
        send_json(handler, 200, PAYLOAD, {"Content-Type": "application/json", "Content-Encoding": "utf-8"})
    elif seen.path.endswith("/chunked"):
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for start in range(0, len(PAYLOAD), 1000):
            piece = PAYLOAD[start : start + 1000]
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        handler.wfile.write(b"0\r\n\r\n")
    elif seen.path.endswith("/repeated"):
        handler.send_response(200)
        handler.send_header("Link", '<http://x/?page=2>; rel="next"')
        handler.send_header("Link", '<http://x/?page=9>; rel="last"')
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", "2")
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(b"{}")
    elif seen.path.endswith("/same"):
        handler.send_response(304)
        handler.send_header("ETag", '"v1"')
        handler.end_headers()
    else:
        send_json(handler, 404, b'{"errorMessages": ["no"]}')


@pytest.mark.parametrize("path", ["gzip", "gzip-members", "gzip-garbage", "odd-coding", "deflate", "raw-deflate",
                                  "chunked", "repeated", "same"])
def test_both_transports_read_the_same_answer(
    path: str, server: Callable[..., Server], monkeypatch: pytest.MonkeyPatch, direct_calls: list[Exchange]
) -> None:
    tracker = server(answers)
    got = []
    for transport in TRANSPORTS:
        answer = client(tracker.url, transport, monkeypatch).request("GET", path, parse_json=path != "same")
        headers = {k.lower(): v for k, v in answer.headers.items() if k.lower() not in ("date", "server")}
        got.append((answer.status, answer.raw.content, answer.json_body, headers, answer.next_link()))
    assert len(direct_calls) == 1
    assert got[0] == got[1]
    if path != "same":
        assert got[0][2] == json.loads(PAYLOAD) or path == "repeated"


def test_a_404_is_the_same_error_on_both(server: Callable[..., Server], monkeypatch: pytest.MonkeyPatch) -> None:
    tracker = server(answers)
    messages = []
    for transport in TRANSPORTS:
        with pytest.raises(Exception) as caught:
            client(tracker.url, transport, monkeypatch).get_json("missing")
        messages.append((type(caught.value), str(caught.value), getattr(caught.value, "body", None)))
    assert messages[0] == messages[1]
    assert "HTTP 404 on GET /missing" in messages[0][1]


# -- the same failures ---------------------------------------------------------------------------


def http_answer(body: bytes, length: int | None = None, extra: str = "") -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {length or len(body)}\r\n{extra}"
    return (head + "Connection: close\r\n\r\n").encode() + body


FAULTS: dict[str, tuple[bytes, float]] = {
    "cut off": (http_answer(b'{"issues": [', length=5000), 0.0),
    "stalled": (http_answer(b'{"issues": [', length=5000), 1.0),
    "no status line": (b"garbage that is not HTTP\r\n\r\n", 0.0),
    "closed at once": (b"", 0.0),
    "bad gzip": (http_answer(b"not gzip at all", extra="Content-Encoding: gzip\r\n"), 0.0),
    "reset mid-body": (http_answer(b'{"issues": [', length=5000), -1.0),
    "reset before the status": (b"HTTP/1.", -1.0),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_both_transports_fail_alike_and_are_retried_alike(fault: str, monkeypatch: pytest.MonkeyPatch,
                                                          direct_calls: list[Exchange]) -> None:
    outcomes = []
    for transport in TRANSPORTS:
        raw = RawServer([FAULTS[fault]] * 2)
        try:
            http = client(raw.url, transport, monkeypatch, attempts=2, timeout=0.3)
            with pytest.raises(TransientError) as caught:
                http.get_json("search")
            outcomes.append((str(caught.value).replace(raw.url.split(":")[-1], "PORT"), http.request_count,
                             len(http.sleep.waits)))  # type: ignore[union-attr]
            assert SECRET not in str(caught.value)
        finally:
            raw.close()
    assert len(direct_calls) == 2  # both attempts of the direct run
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][1:] == (2, 1)


@pytest.mark.parametrize("case", ["bad port", "NaN in the body", "space before a header value"])
def test_what_requests_refuses_to_send_the_direct_transport_refuses_alike(
    case: str, server: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker = server(echo)
    outcomes = []
    for transport in TRANSPORTS:
        url = f"{tracker.url}:99999" if case == "bad port" else tracker.url
        http = client(url, transport, monkeypatch, attempts=1)
        with pytest.raises(TransientError) as caught:
            if case == "NaN in the body":
                http.request("PUT", "x", json_body={"value": float("nan")})
            elif case == "space before a header value":
                http.request("GET", "x", headers={"X-Token": " pasted with a space"})
            else:
                http.request("GET", "x")
        outcomes.append(str(caught.value))
    assert outcomes[0] == outcomes[1]
    assert "request failed (Invalid" in outcomes[0]
    assert tracker.seen == []


def test_the_exchange_never_shows_its_credentials() -> None:
    exchange = prepare("GET", "http://127.0.0.1:9/x", None, {"a": 1}, {"Authorization": f"Bearer {SECRET}"})
    assert SECRET not in repr(exchange) and SECRET in exchange.headers["Authorization"]


def test_a_refused_connection_is_the_same_error_on_both(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    messages = []
    for transport in TRANSPORTS:
        with pytest.raises(TransientError) as caught:
            client(f"http://127.0.0.1:{port}", transport, monkeypatch, attempts=2).get_json("x")
        messages.append(str(caught.value))
    assert messages[0] == messages[1] == f"jira: cannot connect to 127.0.0.1:{port}; gave up after 2 attempts"


def test_a_kept_alive_connection_the_server_closed_is_replaced_without_a_retry(
    server: Callable[..., Server], monkeypatch: pytest.MonkeyPatch, direct_calls: list[Exchange]
) -> None:
    def close_after(handler: BaseHTTPRequestHandler, seen: Seen) -> None:
        send_json(handler, 200, b"{}", {"Content-Type": "application/json"})  # no "Connection: close"
        handler.close_connection = True  # ... and yet the server hangs up, as idle timeouts do

    tracker = server(close_after)
    http = client(tracker.url, "direct", monkeypatch)
    for _ in range(3):
        assert http.get_json("x") == {}
        time.sleep(0.05)  # the server's FIN arrives before the next request
    assert http.request_count == 3 and http.sleep.waits == []  # type: ignore[union-attr]
    assert len(direct_calls) == 3 and len(set(tracker.connections)) == 3


def test_one_connection_carries_every_request_while_the_server_keeps_it(
    server: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker = server(answers)
    http = client(tracker.url, "direct", monkeypatch)
    for _ in range(3):
        assert http.get_json("gzip")["issues"][0]["id"] == "0"
        assert http.request("GET", "same").not_modified
        assert http.request("HEAD", "repeated").status == 200
    assert http.request_count == 9 and len(tracker.connections) == 1


# -- cookies and redirects -----------------------------------------------------------------------


def test_cookies_the_tracker_sets_are_kept_and_sent_back_directly(
    server: Callable[..., Server], monkeypatch: pytest.MonkeyPatch, direct_calls: list[Exchange]
) -> None:
    def sets_cookie(handler: BaseHTTPRequestHandler, seen: Seen) -> None:
        headers = {"Content-Type": "application/json"}
        if seen.path.endswith("/login"):
            headers["Set-Cookie"] = "JSESSIONID=s1; Path=/"
        send_json(handler, 200, b"{}", headers)

    tracker = server(sets_cookie)
    http = client(tracker.url, "direct", monkeypatch)
    http.get_json("login")
    http.get_json("next")
    assert "cookie" not in tracker.seen[0].headers
    assert tracker.seen[1].headers["cookie"] == "JSESSIONID=s1"
    assert len(direct_calls) == 2


def test_a_redirect_is_followed_by_requests_and_drops_the_credentials_across_hosts(
    server: Callable[..., Server], monkeypatch: pytest.MonkeyPatch, direct_calls: list[Exchange]
) -> None:
    other = server(echo, "127.0.0.2")  # loopback too, and another host as far as the credentials go
    elsewhere = other.url

    def moves(handler: BaseHTTPRequestHandler, seen: Seen) -> None:
        if seen.path.endswith("/moved"):
            send_json(handler, 301, b"", {"Location": f"{elsewhere}/landed"})
        elif seen.path.endswith("/renamed"):
            send_json(handler, 301, b"", {"Location": "/new-name"})
        else:
            echo(handler, seen)

    tracker = server(moves)
    http = client(tracker.url, "direct", monkeypatch)
    assert http.get_json("renamed") == {"path": "/new-name"}
    assert http.get_json("moved") == {"path": "/landed"}
    assert tracker.seen[1].headers["authorization"] == f"Bearer {SECRET}"  # same host: kept
    assert "authorization" not in other.seen[0].headers
    assert http.request_count == 2


# -- when requests' machinery is what the user set up --------------------------------------------


def test_the_direct_transport_steps_aside_for_what_requests_was_set_up_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OKRSYNC_HTTP_TRANSPORT", raising=False)
    session = requests.Session()
    url = "https://jira.example.test/rest/api/3/field"
    assert direct_allowed(session, url, {})
    assert not direct_allowed(session, url, {"https": "http://proxy.internal:3128"})
    assert direct_allowed(session, url, {"http": "http://proxy.internal:3128"})  # for the other scheme only
    assert not direct_allowed(session, "ftp://jira.example.test/x", {})
    monkeypatch.setenv("OKRSYNC_HTTP_TRANSPORT", "requests")
    assert not direct_allowed(session, url, {})
    monkeypatch.delenv("OKRSYNC_HTTP_TRANSPORT")
    session.cert = "/etc/okrsync/client.pem"
    assert not direct_allowed(session, url, {})
    session.cert = None

    class Custom(requests.adapters.HTTPAdapter):
        pass

    mounted = requests.Session()
    mounted.mount("https://jira.example.test", Custom())
    assert not direct_allowed(mounted, url, {})
    retrying = requests.Session()
    retrying.mount("https://", requests.adapters.HTTPAdapter(max_retries=3))  # requests' own, told to retry
    assert not direct_allowed(retrying, url, {})
    with responses.RequestsMock():
        assert not direct_allowed(session, url, {})  # a mock answers: leave it every request
    original = requests.adapters.HTTPAdapter.send
    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", functools.wraps(original)(lambda *a, **k: None))
    assert direct_allowed(session, url, {})  # an observer that names what it wraps


def test_a_proxy_in_the_environment_sends_the_request_through_requests(
    server: Callable[..., Server], monkeypatch: pytest.MonkeyPatch, direct_calls: list[Exchange]
) -> None:
    tracker = server(echo)
    proxy = server(echo)  # answers as if it were the proxy: enough to see where the request went
    http = client(tracker.url, "direct", monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "")
    http.get_json("x")
    assert direct_calls == [] and tracker.seen == []
    assert proxy.seen[0].path == f"{tracker.url}/x"  # a proxy is asked for the absolute URL


# -- TLS -----------------------------------------------------------------------------------------


def test_https_is_verified_against_the_source_s_ca_bundle(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, direct_calls: list[Exchange]
) -> None:
    import ssl

    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    tracker = Server(echo)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    certificate.configure_cert(context)
    tracker.httpd.socket = context.wrap_socket(tracker.httpd.socket, server_side=True)
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    url = tracker.url.replace("http://", "https://")
    try:
        for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv("OKRSYNC_HTTP_TRANSPORT", raising=False)
        trusted = HttpClient(source="jira", base_url=url, headers={"Authorization": f"Bearer {SECRET}"},
                             secrets=(SECRET,), ca_bundle=str(ca_file))
        assert trusted.get_json("x") == {"path": "/x"}
        assert trusted.get_json("y") == {"path": "/y"}
        assert len(direct_calls) == 2 and len(tracker.connections) == 1
        refused = []
        for transport in TRANSPORTS:
            if transport == "requests":
                monkeypatch.setenv("OKRSYNC_HTTP_TRANSPORT", "requests")
            untrusted = HttpClient(source="jira", base_url=url, secrets=(SECRET,),
                                   policy=HttpPolicy(attempts=1))  # certifi's bundle: this CA is not in it
            with pytest.raises(TransientError) as caught:
                untrusted.get_json("x")
            refused.append(str(caught.value))
        assert refused[0] == refused[1]
        assert "cannot connect to 127.0.0.1" in refused[0]
        assert len(tracker.seen) == 2  # the refused handshakes sent nothing
    finally:
        tracker.close()


def _cn_only_certificate(tmp_path: Any) -> tuple[str, str, str]:
    """A CA and a server certificate naming ``localhost`` only in its subject's CN (no
    subjectAltName), as old internal servers have: (CA file, certificate file, key file)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "okrsync test CA")])
    day = datetime.timedelta(days=1)
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - day).not_valid_after(now + day)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(leaf_key.public_key()).serial_number(2)
            .not_valid_before(now - day).not_valid_after(now + day)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    files = [tmp_path / "cn-ca.pem", tmp_path / "cn-leaf.pem", tmp_path / "cn-leaf.key"]
    files[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    files[2].write_bytes(leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    return str(files[0]), str(files[1]), str(files[2])


def test_tls_refusals_are_the_same_on_both(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A name only in the certificate's CN is not a match (as urllib3 checks), and a CA bundle
    that holds no certificate is a connection failure, not an exception out of the HTTP layer."""
    import ssl

    pytest.importorskip("cryptography")
    ca_file, leaf_file, key_file = _cn_only_certificate(tmp_path)
    not_a_bundle = tmp_path / "not-a-bundle.pem"
    not_a_bundle.write_text("this is not a certificate\n")
    tracker = Server(echo)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(leaf_file, key_file)
    tracker.httpd.socket = context.wrap_socket(tracker.httpd.socket, server_side=True)
    url = f"https://localhost:{tracker.httpd.server_address[1]}"
    try:
        for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
        for bundle in (ca_file, str(not_a_bundle)):
            refused = []
            for transport in TRANSPORTS:
                if transport == "requests":
                    monkeypatch.setenv("OKRSYNC_HTTP_TRANSPORT", "requests")
                else:
                    monkeypatch.delenv("OKRSYNC_HTTP_TRANSPORT", raising=False)
                http = HttpClient(source="jira", base_url=url, secrets=(SECRET,), ca_bundle=bundle,
                                  policy=HttpPolicy(attempts=1))
                with pytest.raises(TransientError) as caught:
                    http.get_json("x")
                refused.append(str(caught.value))
            assert refused[0] == refused[1] == f"jira: cannot connect to {url.split('//')[1]}; gave up after 1 attempts"
        assert tracker.seen == []
    finally:
        tracker.close()
