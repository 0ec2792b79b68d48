"""The HTTP layer: retries, rate-limit floors, deadlines, counting and redaction."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
import urllib3
from responses import registries

from connectors.http import HttpClient, HttpPolicy, StatusError
from syncer.errors import AuthError, RateLimitedError, TransientError
from tests.connectors.loopback import RawServer

BASE = "http://127.0.0.1:9/api"
SECRET = "s3cr3t-token-value"


class FakeClock:
    """A monotonic clock that only moves when the client sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.sent_at: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def make_client(clock: FakeClock, **policy: float | int | None) -> HttpClient:
    return HttpClient(
        source="jira",
        base_url=BASE,
        headers={"Authorization": f"Bearer {SECRET}"},
        secrets=(SECRET,),
        policy=HttpPolicy(**policy),  # type: ignore[arg-type]
        sleep=clock.sleep,
        monotonic=clock.monotonic,
    )


def stamp(clock: FakeClock, status: int, body: str = "{}", headers: dict[str, str] | None = None):
    def callback(request):
        clock.sent_at.append(clock.now)
        return status, headers or {}, body

    return callback


@responses.activate(registry=registries.OrderedRegistry)
def test_retry_after_is_a_floor_and_every_attempt_is_counted() -> None:
    clock = FakeClock()
    for _ in range(3):
        responses.add_callback("GET", f"{BASE}/x", callback=stamp(clock, 429, headers={"Retry-After": "7"}))
    responses.add_callback("GET", f"{BASE}/x", callback=stamp(clock, 200, '{"ok": true}'))
    client = make_client(clock)
    assert client.get_json("x") == {"ok": True}
    assert client.request_count == 4
    gaps = [b - a for a, b in zip(clock.sent_at, clock.sent_at[1:], strict=False)]
    assert len(gaps) == 3
    assert all(gap >= 7 for gap in gaps), gaps
    assert all(gap <= 7 * 1.5 + 1e-9 for gap in gaps), "jitter adds at most half the wait"


@responses.activate(registry=registries.OrderedRegistry)
def test_5xx_burst_is_retried_with_growing_backoff_then_succeeds() -> None:
    clock = FakeClock()
    for status in (500, 502, 503, 504):
        responses.add("GET", f"{BASE}/x", status=status)
    responses.add("GET", f"{BASE}/x", json={"n": 1})
    client = make_client(clock, attempts=5, jitter=0.0)
    assert client.get_json("x") == {"n": 1}
    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0]


@responses.activate
def test_5xx_past_the_attempt_budget_is_a_transient_error() -> None:
    clock = FakeClock()
    responses.add("GET", f"{BASE}/x", status=502)
    client = make_client(clock, attempts=3)
    with pytest.raises(TransientError, match="HTTP 502"):
        client.get_json("x")
    assert client.request_count == 3


@responses.activate(registry=registries.OrderedRegistry)
def test_truncated_json_is_retried_and_never_returned() -> None:
    clock = FakeClock()
    responses.add("GET", f"{BASE}/x", body='{"issues":[{"id":', content_type="application/json")
    responses.add("GET", f"{BASE}/x", body="<html>proxy</html>", content_type="text/html")
    responses.add("GET", f"{BASE}/x", json={"issues": []})
    client = make_client(clock)
    assert client.get_json("x") == {"issues": []}
    assert client.request_count == 3


@responses.activate
def test_truncated_json_every_time_fails_the_source() -> None:
    clock = FakeClock()
    responses.add("GET", f"{BASE}/x", body='{"issues":[', content_type="application/json")
    with pytest.raises(TransientError, match="malformed or truncated"):
        make_client(clock, attempts=2).get_json("x")


@responses.activate
def test_json_the_fast_decoder_refuses_is_read_as_the_standard_library_reads_it() -> None:
    # msgspec (like orjson) refuses NaN and a lone surrogate; Python's json (and so requests, and the trackers'
    # own clients) accepts both. The answer is data, not a fault: one request, no retry.
    responses.add("GET", f"{BASE}/x", body='{"points": NaN, "title": "a\\ud800b", "n": 1}',
                  content_type="application/json")
    got = make_client(FakeClock()).get_json("x")
    assert got["n"] == 1 and got["title"] == "a\ud800b" and got["points"] != got["points"]
    assert len(responses.calls) == 1


@responses.activate
def test_a_netrc_entry_for_the_host_does_not_replace_the_configured_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1\nlogin someone\npassword else\n", encoding="utf-8")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HOME", str(tmp_path))
    responses.add("GET", f"{BASE}/x", json={})
    make_client(FakeClock()).get_json("x")
    assert responses.calls[0].request.headers["Authorization"] == f"Bearer {SECRET}"


@responses.activate
def test_a_wait_past_the_deadline_stops_instead_of_sleeping() -> None:
    clock = FakeClock()
    responses.add("GET", f"{BASE}/x", status=429, headers={"Retry-After": "1847"})
    client = make_client(clock, deadline=600)
    with pytest.raises(RateLimitedError) as caught:
        client.get_json("x")
    assert caught.value.resume_at is not None
    assert clock.sleeps == [], "no sleep through an hour-long Retry-After"
    assert client.request_count == 1


@responses.activate
def test_rate_limit_without_headers_waits_at_least_the_configured_minimum() -> None:
    clock = FakeClock()
    body = '{"message": "You have exceeded a secondary rate limit"}'
    responses.add("GET", f"{BASE}/x", status=403, body=body)
    client = make_client(clock, attempts=2, unknown_limit_wait=60)
    with pytest.raises(RateLimitedError):
        client.get_json("x")
    assert len(clock.sleeps) == 1 and clock.sleeps[0] >= 60


@responses.activate
def test_primary_limit_waits_for_reset_header() -> None:
    import time as _time

    clock = FakeClock()
    reset = str(int(_time.time()) + 120)
    responses.add(
        "GET", f"{BASE}/x", status=403, json={"message": "API rate limit exceeded"},
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset},
    )
    client = make_client(clock, attempts=2)
    with pytest.raises(RateLimitedError):
        client.get_json("x")
    assert clock.sleeps and clock.sleeps[0] >= 100


@responses.activate
def test_401_is_an_auth_error_without_retries_and_without_the_secret() -> None:
    clock = FakeClock()
    responses.add("GET", f"{BASE}/x", status=401, json={"errorMessages": [f"bad token {SECRET}"]})
    client = make_client(clock)
    with pytest.raises(AuthError) as caught:
        client.get_json("x")
    assert client.request_count == 1
    assert SECRET not in str(caught.value)
    assert "HTTP 401" in str(caught.value)


@responses.activate
def test_404_is_a_status_error_the_connector_can_handle() -> None:
    responses.add("GET", f"{BASE}/x", status=404, json={"message": "Not Found"})
    with pytest.raises(StatusError) as caught:
        make_client(FakeClock()).get_json("x")
    assert caught.value.status == 404


@responses.activate
def test_accepted_status_is_returned() -> None:
    responses.add("GET", f"{BASE}/x", status=410, json={"errorMessages": ["removed"]})
    answer = make_client(FakeClock()).request("GET", "x", parse_json=True, accept=(410,))
    assert answer.status == 410 and answer.json_body == {"errorMessages": ["removed"]}


@responses.activate
def test_connection_errors_and_timeouts_are_retried() -> None:
    clock = FakeClock()
    responses.add("GET", f"{BASE}/x", body=requests.ConnectTimeout())
    responses.add("GET", f"{BASE}/x", body=requests.ReadTimeout())
    responses.add("GET", f"{BASE}/x", json=[1])
    client = make_client(clock)
    assert client.get_json("x") == [1]
    assert client.request_count == 3


@responses.activate
def test_304_is_counted_separately() -> None:
    responses.add("GET", f"{BASE}/x", status=304)
    client = make_client(FakeClock())
    answer = client.request("GET", "x", headers={"If-None-Match": '"abc"'})
    assert answer.not_modified and client.not_modified == 1 and client.request_count == 1


def test_a_stop_request_interrupts_a_wait() -> None:
    client = HttpClient(source="github", base_url=BASE, policy=HttpPolicy())
    client.stop.set()
    with pytest.raises(TransientError, match="stopped"):
        client.get_json("x")
    assert client.request_count == 0


@responses.activate(registry=registries.OrderedRegistry)
def test_a_near_limit_warning_paces_the_next_request_without_sleeping_out_beta_retry_after() -> None:
    clock = FakeClock()
    responses.add_callback("GET", f"{BASE}/x", callback=stamp(clock, 200, "{}", {"X-RateLimit-NearLimit": "true",
                                                                               "Beta-Retry-After": "1800"}))
    responses.add_callback("GET", f"{BASE}/x", callback=stamp(clock, 200, "{}"))
    client = make_client(clock, near_limit_pause=1.0)
    client.get_json("x")
    client.get_json("x")
    assert clock.sent_at[1] - clock.sent_at[0] == pytest.approx(1.0)
    assert client.near_limit_signals == 1


@responses.activate
def test_a_rate_limit_without_a_time_doubles_up_to_the_cap() -> None:
    clock = FakeClock()
    responses.add("GET", f"{BASE}/x", status=429)
    client = make_client(clock, attempts=6, unknown_limit_wait=60, unknown_limit_cap=200, jitter=0.0)
    with pytest.raises(RateLimitedError):
        client.get_json("x")
    assert clock.sleeps == [60, 120, 200, 200, 200]


def test_redact_masks_secrets_and_drops_authorization_headers_whole() -> None:
    from connectors.http import redact

    text = redact(f"token {SECRET} sent\nAuthorization: Bearer abc.def\nproxy-authorization=Basic xyz", (SECRET,))
    assert SECRET not in text and "abc.def" not in text and "xyz" not in text
    assert "authorization" not in text.lower()
    assert text.splitlines() == ["token *** sent", "[credentials redacted]", "[credentials redacted]"]


@responses.activate(registry=registries.OrderedRegistry)
def test_a_non_idempotent_write_is_not_resent_after_a_5xx_but_is_after_a_429() -> None:
    clock = FakeClock()
    responses.add("POST", f"{BASE}/comment", status=502)
    client = make_client(clock)
    with pytest.raises(TransientError, match="HTTP 502"):
        client.request("POST", "comment", json_body={"body": "x"}, idempotent=False)
    assert client.request_count == 1, "the server may have posted it: no second comment"
    responses.add("POST", f"{BASE}/comment", status=429, headers={"Retry-After": "1"})
    responses.add("POST", f"{BASE}/comment", status=201, json={"id": "2"})
    assert client.request("POST", "comment", json_body={"body": "x"}, idempotent=False).status == 201
    assert client.request_count == 3 and clock.sleeps and clock.sleeps[0] >= 1


def _answer(body: bytes, length: int | None = None) -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {length or len(body)}\r\n"
    return (head + "Connection: close\r\n\r\n").encode() + body


def _raw_client(url: str, clock: FakeClock, **policy: float | int) -> HttpClient:
    return HttpClient(source="jira", base_url=url, headers={"Authorization": f"Bearer {SECRET}"},
                      secrets=(SECRET,), policy=HttpPolicy(jitter=0.0, **policy),  # type: ignore[arg-type]
                      sleep=clock.sleep, monotonic=clock.monotonic)


def test_a_body_cut_off_mid_way_is_retried_and_then_read_whole() -> None:
    # The body is read in one call under the session: a short read must still be a retry.
    good = b'{"issues": [' + b", ".join(b'{"id": "%d"}' % n for n in range(500)) + b"]}"
    server = RawServer([(_answer(good[:100], length=len(good)), 0.0), (_answer(good), 0.0)])
    try:
        clock = FakeClock()
        client = _raw_client(server.url, clock)
        body = client.get_json("search")
        assert len(body["issues"]) == 500
        assert client.request_count == 2 and len(clock.sleeps) == 1
    finally:
        server.close()


def test_a_body_cut_off_every_time_fails_the_source_without_a_secret() -> None:
    cut = _answer(b'{"issues": [', length=5000)
    server = RawServer([(cut, 0.0)] * 3)
    try:
        client = _raw_client(server.url, FakeClock(), attempts=3)
        with pytest.raises(TransientError) as caught:
            client.get_json("search")
        assert client.request_count == 3
        assert "ChunkedEncodingError" in str(caught.value) and SECRET not in str(caught.value)
    finally:
        server.close()


def test_a_body_that_stalls_past_the_read_timeout_is_a_timeout() -> None:
    stalled = _answer(b'{"issues": [', length=5000)
    server = RawServer([(stalled, 1.5), (_answer(b'{"ok": true}'), 0.0)])
    try:
        clock = FakeClock()
        client = _raw_client(server.url, clock, timeout=0.3)
        assert client.get_json("x") == {"ok": True}
        assert client.request_count == 2 and len(clock.sleeps) == 1
    finally:
        server.close()


def test_answers_read_in_one_call_hand_the_connection_back_for_the_next_request() -> None:
    # stream=True plus one read: the pooled keep-alive connection must still be reused
    # (200, 304 and HEAD alike), or every request would pay a new TCP connection.
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    connections: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            connections.append(1)

        def do_GET(self) -> None:  # noqa: N802 - the http.server spelling
            if self.path.endswith("/same"):
                self.send_response(304)
                self.end_headers()
                return
            body = b'{"n": [' + b",".join(b"%d" % n for n in range(20000)) + b"]}"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_HEAD(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        client = _raw_client(f"http://127.0.0.1:{server.server_address[1]}", FakeClock())
        for _ in range(3):
            assert len(client.get_json("big")["n"]) == 20000
            assert client.request("GET", "same").not_modified
            assert client.request("HEAD", "head").status == 200
        assert client.request_count == 9 and len(connections) == 1
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# -- the transport: what Session.request would have merged in, without its per-request cost ------


class RecordingAdapter(requests.adapters.HTTPAdapter):
    """Answers every request with 200 ``{}`` and keeps what the client handed the transport."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[requests.PreparedRequest, dict[str, Any]]] = []

    def send(self, request: requests.PreparedRequest, **kw: Any) -> requests.Response:  # type: ignore[override]
        self.calls.append((request, kw))
        raw = urllib3.HTTPResponse(body=io.BytesIO(b"{}"), status=200, preload_content=False)
        return self.build_response(request, raw)


def recording_client(monkeypatch: pytest.MonkeyPatch, **kw: Any) -> tuple[HttpClient, RecordingAdapter]:
    adapter = RecordingAdapter()
    session = requests.Session()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    client = HttpClient(source="jira", base_url=kw.pop("base_url", "https://jira.example.test"),
                        headers={"Authorization": f"Bearer {SECRET}"}, session=session, **kw)
    return client, adapter


def test_the_environment_s_proxies_and_ca_bundle_reach_the_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "github.example.test")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/corp.pem")
    client, adapter = recording_client(monkeypatch)
    client.get_json("rest/api/3/field", params={"a": "1 2"})
    client.get_json("https://github.example.test/repos/x")
    (first, first_kw), (second, second_kw) = adapter.calls
    assert first.url == "https://jira.example.test/rest/api/3/field?a=1+2"
    assert first.headers["Authorization"] == f"Bearer {SECRET}" and first.headers["Accept"] == "application/json"
    assert first_kw["proxies"]["https"] == "http://proxy.internal:3128"
    assert "https" not in second_kw["proxies"]  # NO_PROXY
    assert first_kw["verify"] == "/etc/ssl/corp.pem" and first_kw["stream"] is True
    assert first_kw["timeout"] == (client.policy.connect_timeout, client.policy.timeout)


def test_a_source_s_own_ca_bundle_comes_before_the_environment_s(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/env.pem")
    client, adapter = recording_client(monkeypatch, ca_bundle="/etc/okrsync/ca.pem")
    client.get_json("x")
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    plain, plain_adapter = recording_client(monkeypatch)
    plain.get_json("x")
    assert adapter.calls[0][1]["verify"] == "/etc/okrsync/ca.pem"
    assert plain_adapter.calls[0][1]["verify"] is True  # verification is never switched off


def test_session_cookies_are_sent_and_a_none_header_removes_one(monkeypatch: pytest.MonkeyPatch) -> None:
    client, adapter = recording_client(monkeypatch)
    assert client.session is not None
    client.session.cookies.set("atlassian.xsrf.token", "abc", domain="jira.example.test")
    client.session.headers["X-Unwanted"] = "1"
    client.request("GET", "x", headers={"X-Unwanted": None, "If-None-Match": None})  # type: ignore[dict-item]
    sent = adapter.calls[0][0].headers
    assert sent["Cookie"] == "atlassian.xsrf.token=abc"
    assert "X-Unwanted" not in sent and "If-None-Match" not in sent


@responses.activate
def test_cookies_the_tracker_sets_are_sent_back() -> None:
    # A Jira Data Center session or a load balancer's sticky node lives in a cookie.
    responses.add("GET", f"{BASE}/a", json={}, headers={"Set-Cookie": "JSESSIONID=s1; Path=/"})
    responses.add("GET", f"{BASE}/b", json={})
    client = make_client(FakeClock())
    client.get_json("a")
    client.get_json("b")
    assert "Cookie" not in responses.calls[0].request.headers
    assert responses.calls[1].request.headers["Cookie"] == "JSESSIONID=s1"


@responses.activate
def test_a_redirect_to_another_host_drops_the_credentials() -> None:
    other = "http://127.0.0.2:9/elsewhere"
    responses.add("GET", f"{BASE}/moved", status=301, headers={"Location": other})
    responses.add("GET", other, json={"ok": True})
    responses.add("GET", f"{BASE}/renamed", status=301, headers={"Location": f"{BASE}/new-name"})
    responses.add("GET", f"{BASE}/new-name", json={"same": True})
    client = make_client(FakeClock())
    assert client.get_json("moved") == {"ok": True}
    assert client.get_json("renamed") == {"same": True}
    sent = {call.request.url: call.request.headers for call in responses.calls}
    assert "Authorization" not in sent[other]
    assert sent[f"{BASE}/new-name"]["Authorization"] == f"Bearer {SECRET}"
    assert client.request_count == 2  # one logical request each, however many hops
