"""A direct HTTP/1.1 transport on ``http.client`` for the common exchange, under ``HttpClient``.

Why: a 200k full sync makes 1 129 requests, and requests + urllib3 spent 0.6–1.0 ms of CPU on
each above what ``http.client`` needs for the same bytes (~2 000 Python calls: the request
prepared and re-quoted, the pool and TLS context looked up, urllib3's response wrapped in
requests'), 0.7–1.1 s of the pass (bench/RESULTS.md, tenth session). This module sends the same
request (same URL, headers and body as ``requests.Request.prepare`` makes; a test compares them
on the wire) on one kept-alive connection per host and hands back a ``requests.Response``, so
everything above it (``HttpClient``'s retries, limits, redaction, the connectors) is unchanged.

It steps aside (``HttpClient`` then uses requests as before) whenever requests' own machinery is
what the user or a test set up: a proxy for the URL, a client certificate, a session with auth,
parameters, hooks or another adapter mounted, requests' ``HTTPAdapter.send`` replaced (the
``responses`` library; a wrapper made with ``functools.wraps`` only observes, and must wrap
``DirectTransport.send`` too to see every request), or ``OKRSYNC_HTTP_TRANSPORT=requests``.
Redirects are followed by requests too (``Session.resolve_redirects``: its rules on dropping
credentials stay the only ones).

Failures are raised as the requests exceptions requests would raise for them (``ConnectTimeout``,
``ReadTimeout``, ``ConnectionError``, ``SSLError``, ``ChunkedEncodingError`` for a truncated
body, ``ContentDecodingError``), so ``HttpClient`` retries them by the same rules. As with
requests' default adapter, nothing is retried here: a kept-alive connection the server closed is
noticed before it is reused (a readable idle socket) and replaced.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

if TYPE_CHECKING:  # ``http.client`` and ``ssl`` are imported where a request is made: `okrsync
    import http.client  # report` and `--version` never make one, and they were 19 ms of their start-up
    import socket
    import ssl

    import requests

__all__ = ["DirectTransport", "Exchange", "direct_allowed", "prepare"]

ACCEPT_ENCODING = "gzip, deflate"
"""What both transports ask for: the encodings this module inflates (``requests`` would add br
and zstd when their packages happen to be installed)."""

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass
class Exchange:
    """A request as it goes on the wire: what ``requests.PreparedRequest`` holds, no more."""

    method: str
    url: str
    headers: dict[str, str] = field(repr=False)  # the credentials travel here
    body: bytes | None = field(default=None, repr=False)


def prepare(
    method: str, url: str, params: Mapping[str, Any] | None, json_body: Any, headers: Mapping[str, Any]
) -> Exchange:
    """The URL, headers and body ``requests.Request(...).prepare()`` makes for these arguments
    (no auth, no cookies, no files): parameters appended to the URL's own query, the URL
    re-quoted, ``None`` parameter values and ``None`` headers dropped, a JSON body as UTF-8 with
    its content type."""
    import requests
    from requests.utils import check_header_validity, requote_uri

    if params:
        pairs: list[tuple[str, Any]] = []
        for key, value in params.items():  # as requests' ``_encode_params``
            values = (value,) if isinstance(value, str | bytes) or not hasattr(value, "__iter__") else value
            pairs.extend((key, v) for v in values if v is not None)
        query = urlencode(pairs)
        if query:
            parts = urlsplit(url)
            url = urlunsplit(parts._replace(query=f"{parts.query}&{query}" if parts.query else query))
    wire: dict[str, str] = {}
    for name, value in headers.items():
        if value is not None:
            check_header_validity((name, value))  # InvalidHeader, as requests refuses them
            wire[name] = value.decode("latin-1") if isinstance(value, bytes) else value
    body: bytes | None = None
    if json_body is not None:
        try:
            body = json.dumps(json_body, allow_nan=False).encode("utf-8")
        except ValueError as exc:
            raise requests.exceptions.InvalidJSONError(exc) from None
        if not any(name.lower() == "content-type" for name in wire):
            wire["Content-Type"] = "application/json"
    method = method.upper()
    if body is not None:
        wire["Content-Length"] = str(len(body))
    elif method not in ("GET", "HEAD"):
        wire["Content-Length"] = "0"  # requests says so for a DELETE too; http.client would not
    return Exchange(method, requote_uri(url), wire, body)


def direct_allowed(session: requests.Session, url: str, proxies: Mapping[str, str]) -> bool:
    """Whether ``DirectTransport`` may carry this request in place of the session's adapter."""
    import requests.adapters
    from requests.utils import select_proxy

    if os.environ.get("OKRSYNC_HTTP_TRANSPORT", "").strip().lower() == "requests":
        return False
    if not url.startswith(("http://", "https://")) or session.cert:
        return False
    adapter = session.get_adapter(url)
    if type(adapter) is not requests.adapters.HTTPAdapter or getattr(adapter.max_retries, "total", None) != 0:
        return False  # another adapter, or requests' own told to retry: the user's setup rules
    # Replaced by a mock (``responses``): leave every request to it. A wrapper that names what it
    # wraps (``functools.wraps``) only observes, and observes ``DirectTransport.send`` as well.
    send = inspect.unwrap(requests.adapters.HTTPAdapter.send)
    code = getattr(send, "__code__", None)
    if code is None or code.co_name != "send" or code.co_filename != requests.adapters.__file__:
        return False
    return select_proxy(url, dict(proxies)) is None


class DirectTransport:
    """Kept-alive ``http.client`` connections, one per scheme, host, port and trust setting.

    One request at a time: ``HttpClient`` sends under its own lock."""

    def __init__(self) -> None:
        self._connections: dict[tuple[str, str, int, str], http.client.HTTPConnection] = {}
        self._contexts: dict[str, ssl.SSLContext] = {}

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()

    def send(
        self,
        exchange: Exchange,
        *,
        connect_timeout: float,
        read_timeout: float,
        verify: bool | str = True,
        cookies: Any = None,
    ) -> requests.Response:
        """Send ``exchange`` and read the whole answer (the connection is then free again)."""
        import http.client
        import socket
        import ssl

        import requests

        parts = urlsplit(exchange.url)
        scheme, host = parts.scheme, parts.hostname or ""
        try:
            port = parts.port or _DEFAULT_PORTS[scheme]
            if not host:
                raise ValueError("no host")
        except (ValueError, KeyError) as exc:
            raise requests.exceptions.InvalidURL(f"cannot send to {exchange.url}: {exc}") from None
        trust = "" if scheme == "http" else (verify if isinstance(verify, str) else "")
        key = (scheme, host, port, trust)
        target = urlunsplit(("", "", parts.path or "/", parts.query, ""))
        headers = exchange.headers
        if cookies is not None and len(cookies):
            from requests.cookies import get_cookie_header

            cookie = get_cookie_header(cookies, _CookieRequest(exchange))  # type: ignore[no-untyped-call]
            if cookie:
                headers = {**headers, "Cookie": cookie}
        connection = self._connection(key, connect_timeout, read_timeout)
        reading = False  # once the status line is in, a failure is the body's (as urllib3 tells them apart)
        try:
            try:
                connection.request(exchange.method, target, body=exchange.body, headers=headers)
            except ValueError as exc:  # an illegal header value or name, refused before sending
                raise requests.exceptions.InvalidHeader(str(exc)) from None
            answer = connection.getresponse()
            reading = True
            body = answer.read()
            if answer.will_close:
                self._drop(key)
        except requests.RequestException:
            self._drop(key)
            raise
        except http.client.IncompleteRead as exc:
            self._drop(key)
            raise requests.exceptions.ChunkedEncodingError(
                f"the answer ended after {len(exc.partial)} bytes, {exc.expected} more expected"
            ) from None
        except (TimeoutError, socket.timeout) as exc:  # noqa: UP041 - the same class, named for readers
            self._drop(key)
            raise requests.exceptions.ReadTimeout(f"read timed out ({exc})") from None
        except ssl.SSLError as exc:
            self._drop(key)
            raise requests.exceptions.SSLError(str(exc)) from None
        except (OSError, http.client.HTTPException) as exc:
            self._drop(key)
            failure = requests.exceptions.ChunkedEncodingError if reading else requests.exceptions.ConnectionError
            raise failure(f"{type(exc).__name__}: {exc}") from None
        except BaseException:  # interrupted mid-answer: the connection holds half of it
            self._drop(key)
            raise
        return _response(exchange, answer, _inflate(body, answer.getheader("Content-Encoding")))

    # -- connections --------------------------------------------------------------------

    def _connection(self, key: tuple[str, str, int, str], connect_timeout: float,
                    read_timeout: float) -> http.client.HTTPConnection:
        import http.client
        import socket
        import ssl

        import requests

        connection = self._connections.get(key)
        if connection is not None and connection.sock is not None and not _idle_socket_closed(connection.sock):
            connection.sock.settimeout(read_timeout)
            return connection
        if connection is not None:
            connection.close()
        scheme, host, port, trust = key
        try:
            sock = socket.create_connection((host, port), connect_timeout)
        except UnicodeError as exc:  # a host name IDNA cannot encode (a label over 63 characters)
            raise requests.exceptions.InvalidURL(f"cannot send to {host}: {exc}") from None
        except (TimeoutError, socket.timeout) as exc:  # noqa: UP041
            raise requests.exceptions.ConnectTimeout(f"connecting to {host}:{port} timed out ({exc})") from None
        except OSError as exc:
            raise requests.exceptions.ConnectionError(f"cannot connect to {host}:{port}: {exc}") from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(read_timeout)  # the TLS handshake too, as urllib3 does
            if scheme == "https":
                context = self._context(trust)
                connection = http.client.HTTPSConnection(host, port, context=context)
                sock = context.wrap_socket(sock, server_hostname=host)
            else:
                connection = http.client.HTTPConnection(host, port)
        except (TimeoutError, socket.timeout) as exc:  # noqa: UP041
            sock.close()
            raise requests.exceptions.ReadTimeout(f"the TLS handshake with {host}:{port} timed out ({exc})") from None
        except ssl.SSLError as exc:
            sock.close()
            raise requests.exceptions.SSLError(str(exc)) from None
        except FileNotFoundError:
            sock.close()
            raise  # a CA bundle that is not there: requests raises the OSError too
        except OSError as exc:
            sock.close()
            raise requests.exceptions.ConnectionError(f"cannot connect to {host}:{port}: {exc}") from None
        connection.sock = sock
        self._connections[key] = connection
        return connection

    def _drop(self, key: tuple[str, str, int, str]) -> None:
        connection = self._connections.pop(key, None)
        if connection is not None:
            connection.close()

    def _context(self, trust: str) -> ssl.SSLContext:
        """Built as urllib3 builds requests' (``create_urllib3_context``: TLS 1.2 or later, host
        names checked against the certificate's subjectAltName only), trusting ``trust`` (a CA
        file or directory) or, as requests does, certifi's bundle."""
        context = self._contexts.get(trust)
        if context is None:
            import ssl

            from requests.utils import DEFAULT_CA_BUNDLE_PATH
            from urllib3.util.ssl_ import create_urllib3_context

            context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
            if trust and os.path.isdir(trust):
                context.load_verify_locations(capath=trust)
            else:
                context.load_verify_locations(cafile=trust or DEFAULT_CA_BUNDLE_PATH)
            context.check_hostname = True
            context.hostname_checks_common_name = False
            context.set_alpn_protocols(["http/1.1"])
            self._contexts[trust] = context
        return context


def _idle_socket_closed(sock: socket.socket) -> bool:
    """An idle kept-alive socket with something to read was closed by the server (or holds
    garbage): either way it must not carry the next request (urllib3's ``is_connection_dropped``)."""
    import select

    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _inflate(body: bytes, encoding: str | None) -> bytes:
    """The body as urllib3 decodes it: gzip (every member) and deflate (zlib or raw) undone,
    any other coding left as it came."""
    import zlib

    import requests

    if not encoding or not body:
        return body
    for coding in reversed([c.strip().lower() for c in encoding.split(",") if c.strip()]):
        try:
            if coding in ("gzip", "x-gzip"):
                body = _gunzip(body)
            elif coding == "deflate":
                try:
                    body = zlib.decompress(body)
                except zlib.error:  # raw deflate, as some servers send it
                    body = zlib.decompress(body, -zlib.MAX_WBITS)
        except zlib.error as exc:
            raise requests.exceptions.ContentDecodingError(f"cannot inflate the {coding} answer: {exc}") from None
    return body


def _gunzip(data: bytes) -> bytes:
    """Every gzip member, in order; after the first, what does not inflate is ignored as trailing
    garbage (urllib3's ``GzipDecoder``)."""
    import zlib

    out: list[bytes] = []
    first = True
    while data:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out.append(inflater.decompress(data) + inflater.flush())
        except zlib.error:
            if first:
                raise
            break
        first, data = False, inflater.unused_data
    return b"".join(out)


class _RawAnswer:
    """What requests reads of ``Response.raw`` after the body was read: the ``http.client``
    answer (its headers, for cookies) and no-op close/release."""

    def __init__(self, answer: http.client.HTTPResponse) -> None:
        self._original_response = answer

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass

    def read(self, *args: Any, **kwargs: Any) -> bytes:
        return b""


class _CookieRequest:
    """The members of a request ``requests.cookies.MockRequest`` reads."""

    def __init__(self, exchange: Exchange) -> None:
        self.url = exchange.url
        self.headers = exchange.headers
        self.method = exchange.method


def _response(exchange: Exchange, answer: http.client.HTTPResponse, body: bytes) -> requests.Response:
    """The ``requests.Response`` requests' adapter would have built for this answer."""
    import requests
    from requests.structures import CaseInsensitiveDict
    from requests.utils import get_encoding_from_headers

    headers: CaseInsensitiveDict[str] = CaseInsensitiveDict()
    for name, value in answer.getheaders():
        known = headers.get(name)
        headers[name] = value if known is None else f"{known}, {value}"  # as urllib3 joins repeats
    response = requests.Response()
    response.status_code = answer.status
    response.reason = answer.reason
    response.headers = headers
    response.encoding = get_encoding_from_headers(headers)
    response.url = exchange.url
    response.raw = _RawAnswer(answer)
    response._content = body
    response._content_consumed = True  # type: ignore[attr-defined]
    response.request = exchange  # type: ignore[assignment]  # method, url, headers, body: what is read of it
    return response
