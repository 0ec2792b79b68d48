"""A small threaded HTTP server that the sandbox trackers plug into, with fault injection.

Each sandbox tracker is an ``App``: ``handle(request) -> Reply`` plus ``control(action, body)``
for its own knobs (mutations). This module owns what they share: binding to a loopback port,
parsing requests, a request log for tests and benchmarks, and injected faults (a status with
headers, a truncated or non-JSON body, a slow answer, a dropped connection) matched by method
and path prefix, each for a bounded number of requests.

Control endpoints (for tests and benchmarks that run okrsync as a subprocess):
``POST /_sandbox/faults`` (a JSON list of faults), ``DELETE /_sandbox/faults``,
``GET /_sandbox/requests`` (the log), ``DELETE /_sandbox/requests``, and
``POST /_sandbox/<action>`` passed to the app's ``control``.

``compress=True`` makes it answer as GitHub's and Jira Cloud's front ends do for a client that
sends ``Accept-Encoding: gzip`` (requests does by default): bodies of ``COMPRESS_MIN`` bytes or
more go out gzip-compressed (``Content-Encoding: gzip``, ``Vary: Accept-Encoding``), so that a
bench can charge the client the decompression it pays against the real trackers.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import msgspec

__all__ = ["COMPRESS_MIN", "App", "Fault", "Reply", "Request", "SandboxServer", "accepts_gzip", "encode_json"]

COMPRESS_MIN = 1024
"""Smaller bodies go out as they are (front ends skip them: the header costs more than it saves)."""

COMPRESS_LEVEL = 1
"""nginx's default ``gzip_comp_level``: the sandbox's CPU is not what a bench measures."""


def encode_json(value: Any) -> bytes:
    """Compact JSON, UTF-8 as the trackers send it (msgspec: the sandbox's own CPU is on the
    bench's two cores next to okrsync's, and the standard library's encoder was ~15% of it)."""
    return msgspec.json.encode(value)


def accepts_gzip(header: str | None) -> bool:
    """``Accept-Encoding`` gives gzip a weight above zero: its own, or ``*``'s when it is not named."""
    weights: dict[str, float] = {}
    for part in (header or "").split(","):
        coding, *params = part.split(";")
        weight = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0  # an unreadable weight accepts nothing
        weights[coding.strip().lower()] = weight
    named = weights.get("gzip", weights.get("x-gzip"))
    return (named if named is not None else weights.get("*", 0.0)) > 0


@dataclass
class Request:
    """One parsed request. ``query`` keeps every value of repeated parameters."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    """bytes/str are sent as they are; anything else is sent as JSON."""
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if self.body is None:
            return b"", headers
        if isinstance(self.body, bytes):
            return self.body, headers
        if isinstance(self.body, str):
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
            return self.body.encode(), headers
        headers.setdefault("Content-Type", "application/json; charset=utf-8")
        return encode_json(self.body), headers


@dataclass
class Fault:
    """Something to go wrong for the next ``times`` requests matching ``method`` and ``path``.

    ``kind``: ``status`` (answer ``status`` with ``headers`` and ``body``), ``truncate`` (the real
    answer cut to ``keep`` bytes), ``html`` (a 200 HTML page instead of JSON), ``slow`` (sleep
    ``delay`` seconds, then answer normally), ``drop`` (close the connection without answering).
    """

    kind: str = "status"
    path: str = "/"
    method: str = "*"
    times: int = 1
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    keep: int = 40
    delay: float = 0.0
    probability: float = 1.0

    def matches(self, request: Request) -> bool:
        if self.times <= 0:
            return False
        if self.method != "*" and self.method.upper() != request.method:
            return False
        return request.path.startswith(self.path)


class App(Protocol):
    """A sandbox tracker."""

    def handle(self, request: Request) -> Reply: ...

    def control(self, action: str, body: Any) -> Any: ...


@dataclass
class LoggedRequest:
    method: str
    path: str
    query: str
    status: int
    at: float
    conditional: bool
    """Sent with ``If-None-Match`` (a GitHub ETag gate)."""


class SandboxServer:
    """Serves one ``App`` on 127.0.0.1 in a background thread; ``with`` starts and stops it."""

    def __init__(
        self, app: App, host: str = "127.0.0.1", port: int = 0, *, seed: int = 0, compress: bool = False
    ) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the sandbox only listens on loopback addresses")
        self.app = app
        self.compress = compress
        self.compressed = 0
        """Answers sent gzip-compressed so far."""
        self.faults: list[Fault] = []
        self.log: list[LoggedRequest] = []
        self._lock = threading.Lock()
        self._random = __import__("random").Random(seed)
        handler = _make_handler(self)
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        address = self.httpd.server_address
        return f"http://{address[0]!s}:{address[1]}"

    def start(self) -> SandboxServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1})
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- knobs ------------------------------------------------------------------------------

    def inject(self, *faults: Fault) -> None:
        with self._lock:
            self.faults.extend(faults)

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def requests(self, method: str | None = None, path: str = "") -> list[LoggedRequest]:
        """Logged requests (control endpoints excluded), optionally filtered."""
        with self._lock:
            return [
                r for r in self.log if (method is None or r.method == method) and r.path.startswith(path)
            ]

    def clear_log(self) -> None:
        with self._lock:
            self.log.clear()

    def _take_fault(self, request: Request) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(request) and self._random.random() < fault.probability:
                    fault.times -= 1
                    return fault
            return None

    def _record(self, request: Request, status: int) -> None:
        raw_query = "&".join(f"{k}={v}" for k, vs in request.query.items() for v in vs)
        conditional = "if-none-match" in {k.lower() for k in request.headers}
        with self._lock:
            self.log.append(
                LoggedRequest(request.method, request.path, raw_query, status, time.time(), conditional)
            )

    def _control(self, request: Request) -> Reply:
        action = request.path[len("/_sandbox/") :].strip("/")
        if action == "faults":
            if request.method == "DELETE":
                self.clear_faults()
                return Reply(204)
            payload = request.json()
            self.inject(*(Fault(**f) for f in (payload if isinstance(payload, list) else [payload])))
            return Reply(201, {"faults": len(self.faults)})
        if action == "requests":
            if request.method == "DELETE":
                self.clear_log()
                return Reply(204)
            return Reply(200, [asdict(r) for r in self.requests()])
        try:
            result = self.app.control(action, request.json() if request.body else None)
        except KeyError as exc:
            return Reply(404, {"error": f"unknown sandbox action {exc}"})
        except (ValueError, TypeError) as exc:
            return Reply(400, {"error": str(exc)})
        return Reply(200, result)


def _make_handler(server: SandboxServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        """TCP_NODELAY: headers and body go out as two writes; with Nagle and the client's delayed
        ACK every answer with a body waited ~40 ms on loopback (the bench measured that, not us)."""

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            return  # quiet: tests and the demo read the structured log instead

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = Request(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query, keep_blank_values=True),
                headers={k: v for k, v in self.headers.items()},
                body=body,
            )
            if parts.path.startswith("/_sandbox/"):
                self._send(server._control(request))
                return
            fault = server._take_fault(request)
            if fault is not None and fault.kind == "drop":
                server._record(request, 0)
                self.close_connection = True
                self.connection.close()
                return
            if fault is not None and fault.kind == "slow":
                time.sleep(min(fault.delay, 30.0))
                fault = None
            if fault is not None and fault.kind == "status":
                reply = Reply(fault.status, fault.body if fault.body is not None else {"message": "injected"},
                              dict(fault.headers))
            elif fault is not None and fault.kind == "html":
                reply = Reply(200, b"<html><body>Proxy error</body></html>", {"Content-Type": "text/html"})
            else:
                try:
                    reply = server.app.handle(request)
                except Exception as exc:  # a sandbox bug must show up as a 500, not a hung client
                    reply = Reply(500, {"errorMessages": [f"sandbox error: {type(exc).__name__}: {exc}"]})
                if fault is not None and fault.kind == "truncate":
                    payload, headers = reply.encoded()
                    reply = Reply(reply.status, payload[: fault.keep], headers)
            server._record(request, reply.status)
            self._send(reply, gzip_ok=server.compress and accepts_gzip(self.headers.get("Accept-Encoding")))

        def _send(self, reply: Reply, *, gzip_ok: bool = False) -> None:
            payload, headers = reply.encoded()
            if gzip_ok and reply.status != 304 and len(payload) >= COMPRESS_MIN:
                payload = gzip.compress(payload, compresslevel=COMPRESS_LEVEL, mtime=0)
                vary = next((v for k, v in headers.items() if k.lower() == "vary"), "")
                headers = {k: v for k, v in headers.items() if k.lower() != "vary"}
                headers["Content-Encoding"] = "gzip"
                headers["Vary"] = f"{vary}, Accept-Encoding" if vary else "Accept-Encoding"
                with server._lock:
                    server.compressed += 1
            if any(name.lower() == "date" for name in headers):
                # The app keeps its own clock (data dated relative to a given ``now``): its Date wins.
                self.send_response_only(reply.status)
                self.send_header("Server", self.version_string())
            else:
                self.send_response(reply.status)
            for name, value in headers.items():
                self.send_header(name, value)
            if reply.status != 304:
                self.send_header("Content-Length", str(len(payload)))
            else:
                self.send_header("Content-Length", "0")
                payload = b""
            self.end_headers()
            if payload and self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

    return Handler
