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

import http.client
import inspect
import json
import os
import select
import socket
import ssl
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

if TYPE_CHECKING:
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
    headers: dict[str, str]
    body: bytes | None = None


def prepare(
    method: str, url: str, params: Mapping[str, Any] | None, json_body: Any, headers: Mapping[str, Any]
) -> Exchange:
    """The URL, headers and body ``requests.Request(...).prepare()`` makes for these arguments
    (no auth, no cookies, no files): parameters appended to the URL's own query, the URL
    re-quoted, ``None`` parameter values and ``None`` headers dropped, a JSON body as UTF-8 with
    its content type."""
    from requests.utils import requote_uri

    if params:
        pairs: list[tuple[str, Any]] = []
        for key, value in params.items():
            values = value if isinstance(value, list | tuple) else (value,)
            pairs.extend((key, v) for v in values if v is not None)
        query = urlencode(pairs)
        if query:
            parts = urlsplit(url)
            url = urlunsplit(parts._replace(query=f"{parts.query}&{query}" if parts.query else query))
    wire: dict[str, str] = {
        name: value.decode("latin-1") if isinstance(value, bytes) else value
        for name, value in headers.items()
        if value is not None
    }
    body: bytes | None = None
    if json_body is not None:
        body = json.dumps(json_body, allow_nan=False).encode("utf-8")
        if not any(name.lower() == "content-type" for name in wire):
            wire["Content-Type"] = "application/json"
    return Exchange(method.upper(), requote_uri(url), wire, body)


def direct_allowed(session: requests.Session, url: str, proxies: Mapping[str, str]) -> bool:
    """Whether ``DirectTransport`` may carry this request in place of the session's adapter."""
    import requests.adapters
    from requests.utils import select_proxy

    if os.environ.get("OKRSYNC_HTTP_TRANSPORT", "").strip().lower() == "requests":
        return False
    if not url.startswith(("http://", "https://")) or session.cert:
        return False
    if type(session.get_adapter(url)) is not requests.adapters.HTTPAdapter:
        return False
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
        import requests

        parts = urlsplit(exchange.url)
        scheme, host = parts.scheme, parts.hostname or ""
        port = parts.port or _DEFAULT_PORTS[scheme]
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
        try:
            try:
                connection.request(exchange.method, target, body=exchange.body, headers=headers)
            except ValueError as exc:  # an illegal header value or name, refused before sending
                raise requests.exceptions.InvalidHeader(str(exc)) from None
            answer = connection.getresponse()
            try:
                body = answer.read()
            except http.client.IncompleteRead as exc:
                raise requests.exceptions.ChunkedEncodingError(
                    f"the answer ended after {len(exc.partial)} bytes, {exc.expected} more expected"
                ) from None
            if answer.will_close:
                self._drop(key)
        except requests.RequestException:
            self._drop(key)
            raise
        except (TimeoutError, socket.timeout) as exc:  # noqa: UP041 - the same class, named for readers
            self._drop(key)
            raise requests.exceptions.ReadTimeout(f"read timed out ({exc})") from None
        except ssl.SSLError as exc:
            self._drop(key)
            raise requests.exceptions.SSLError(str(exc)) from None
        except (OSError, http.client.HTTPException) as exc:
            self._drop(key)
            raise requests.exceptions.ConnectionError(f"{type(exc).__name__}: {exc}") from None
        return _response(exchange, answer, _inflate(body, answer.getheader("Content-Encoding")))

    # -- connections --------------------------------------------------------------------

    def _connection(self, key: tuple[str, str, int, str], connect_timeout: float,
                    read_timeout: float) -> http.client.HTTPConnection:
        import requests

        connection = self._connections.get(key)
        if connection is not None and connection.sock is not None and not _idle_socket_closed(connection.sock):
            connection.sock.settimeout(read_timeout)
            return connection
        if connection is not None:
            connection.close()
        scheme, host, port, trust = key
        if scheme == "https":
            connection = http.client.HTTPSConnection(host, port, timeout=connect_timeout,
                                                     context=self._context(trust))
        else:
            connection = http.client.HTTPConnection(host, port, timeout=connect_timeout)
        try:
            connection.connect()
        except (TimeoutError, socket.timeout) as exc:  # noqa: UP041
            connection.close()
            raise requests.exceptions.ConnectTimeout(f"connecting to {host}:{port} timed out ({exc})") from None
        except ssl.SSLError as exc:
            connection.close()
            raise requests.exceptions.SSLError(str(exc)) from None
        except OSError as exc:
            connection.close()
            raise requests.exceptions.ConnectionError(f"cannot connect to {host}:{port}: {exc}") from None
        assert connection.sock is not None
        connection.sock.settimeout(read_timeout)
        self._connections[key] = connection
        return connection

    def _drop(self, key: tuple[str, str, int, str]) -> None:
        connection = self._connections.pop(key, None)
        if connection is not None:
            connection.close()

    def _context(self, trust: str) -> ssl.SSLContext:
        """Certificates verified, host names checked: against ``trust`` (a CA file or directory)
        or, as requests does, certifi's bundle."""
        context = self._contexts.get(trust)
        if context is None:
            if trust:
                directory = os.path.isdir(trust)
                context = ssl.create_default_context(cafile=None if directory else trust,
                                                     capath=trust if directory else None)
            else:
                from requests.utils import DEFAULT_CA_BUNDLE_PATH  # certifi's bundle, as requests uses

                context = ssl.create_default_context(cafile=DEFAULT_CA_BUNDLE_PATH)
            context.set_alpn_protocols(["http/1.1"])
            self._contexts[trust] = context
        return context


def _idle_socket_closed(sock: socket.socket) -> bool:
    """An idle kept-alive socket with something to read was closed by the server (or holds
    garbage): either way it must not carry the next request (urllib3's ``is_connection_dropped``)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _inflate(body: bytes, encoding: str | None) -> bytes:
    import requests

    if not encoding or not body:
        return body
    for coding in reversed([c.strip().lower() for c in encoding.split(",") if c.strip()]):
        try:
            if coding in ("gzip", "x-gzip"):
                inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                body = inflater.decompress(body) + inflater.flush()
            elif coding == "deflate":
                try:
                    body = zlib.decompress(body)
                except zlib.error:  # raw deflate, as some servers send it
                    body = zlib.decompress(body, -zlib.MAX_WBITS)
            elif coding != "identity":
                raise requests.exceptions.ContentDecodingError(f"an answer in {coding}, which was not asked for")
        except zlib.error as exc:
            raise requests.exceptions.ContentDecodingError(f"cannot inflate the {coding} answer: {exc}") from None
    return body


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
