"""The one HTTP layer every connector uses: timeouts, bounded retries, rate limits, counting, redaction.

Why not the trackers' own clients' retry logic: pycontribs ``ResilientSession`` has no timeout,
retries only 429/503 and can retry *before* a long ``Retry-After``; PyGithub's ``GithubRetry``
retries 5xx ten times with no backoff and ignores a 429 without ``Retry-After``
(research §I fact 45, §J fact 48). Here:

- every request has a (connect, read) timeout and goes out one at a time per client (a lock),
  so one token never has two requests in flight;
- 429, 5xx, timeouts, connection errors and truncated / non-JSON 200 answers are retried with
  exponential backoff plus jitter (tenacity), a bounded number of times;
- ``Retry-After`` (seconds or an HTTP date) and ``X-RateLimit-Reset`` are floors: no request is
  sent before them, jitter only adds on top; a 403/429 with ``x-ratelimit-remaining: 0`` waits
  for the reset; GitHub's secondary limit without headers waits at least a minute;
- a wait that would end past the pass deadline, or a stop request (SIGTERM), raises instead of
  sleeping, so a source stops cleanly with its cursor unchanged and shutdown is never blocked;
- every attempt is counted (``request_count``), 304s separately (``not_modified``: they cost no quota);
- error messages never contain a secret: known secret values and ``Authorization`` headers are
  replaced by ``***`` before any exception leaves this module.
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import msgspec

from connectors.shapes import BodyShape
from connectors.transport import ACCEPT_ENCODING, DirectTransport, direct_allowed, prepare
from syncer.errors import AuthError, RateLimitedError, SourceError, TransientError

if TYPE_CHECKING:  # imported where a request is made: `okrsync report` and `--version` never
    import requests  # make one, and requests + urllib3 + tenacity were 55 ms of their start-up
    from tenacity import RetryCallState

__all__ = ["HttpClient", "HttpPolicy", "StatusError", "redact"]

# A full sync decodes ~300 MB of JSON at 200k issues. msgspec decodes a whole answer about as fast
# as orjson did (a 300 KB GitHub page 0.47 against 0.41 ms, a Jira bulkfetch page the same; the
# standard library takes twice that), and its typed decoding is what the body shapes
# (connectors/shapes.py) are built on, which the large pages go through: one library for both.
_loads = msgspec.json.Decoder().decode

_RETRYABLE_STATUS = {429, 500, 502, 503, 504}
_USER_AGENT = "okrsync/0.1 (+https://github.com/okrsync/okrsync)"


class StatusError(SourceError):
    """An answer the caller may want to handle (404, 410, 400, 403 without a rate limit...)."""

    def __init__(self, source: str, message: str, status: int, body: str = "") -> None:
        super().__init__(source, message)
        self.status = status
        self.body = body


class _Retry(Exception):
    """Internal: an attempt failed in a way worth another try; ``floor`` is the server's minimum wait."""

    def __init__(self, reason: str, floor: float = 0.0, rate_limited: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.floor = floor
        self.rate_limited = rate_limited


def _not_carried_out(exc: BaseException) -> bool:
    """A failure after which the server certainly did nothing: safe to send a write again."""
    return isinstance(exc, _Retry) and exc.rate_limited


class _PastDeadline(Exception):
    def __init__(self, wait: float) -> None:
        super().__init__(wait)
        self.wait = wait


_HEADER_LINE = re.compile(r"(?i)\b(?:proxy-)?authorization\b\s*[:=][^\n]*")
_MASK = "[credentials redacted]"


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value masked and any ``Authorization`` header line replaced.

    The header's name goes too, so no output of okrsync ever carries an ``Authorization`` header,
    not even a masked one.
    """
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _HEADER_LINE.sub(_MASK, text)


@dataclass(frozen=True)
class HttpPolicy:
    """Knobs of the HTTP layer; defaults suit a daemon against the real trackers."""

    timeout: float = 30.0
    connect_timeout: float = 10.0
    attempts: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    jitter: float = 0.5
    """Up to this share of the wait is added at random (never subtracted)."""
    unknown_limit_wait: float = 60.0
    """Wait after a rate limit that names no time (GitHub secondary limit without headers)."""
    unknown_limit_cap: float = 900.0
    """That wait doubles per attempt up to this many seconds."""
    near_limit_pause: float = 1.0
    """Seconds between requests after the tracker warned the budget is nearly spent."""
    deadline: float | None = None
    """Seconds from the client's creation after which no wait may end (the pass deadline)."""


@dataclass
class HttpClient:
    """A requests session bound to one tracker base URL and one credential."""

    source: str
    base_url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    policy: HttpPolicy = field(default_factory=HttpPolicy)
    ca_bundle: str | None = None
    session: requests.Session | None = None
    sleep: Callable[[float], None] | None = None
    monotonic: Callable[[], float] = time.monotonic
    stop: threading.Event = field(default_factory=threading.Event)
    request_count: int = 0
    not_modified: int = 0
    writes: int = 0
    rate_remaining: int | None = None
    near_limit_signals: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _proxy_cache: dict[tuple[str, str, bool, tuple[tuple[str, str], ...]], dict[str, str]] = field(
        default_factory=dict, repr=False
    )
    _started: float = 0.0
    _not_before: float = 0.0
    _direct: DirectTransport = field(default_factory=DirectTransport, repr=False)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        if self.session is None:
            import requests

            self.session = requests.Session()
        self.session.headers.update(
            {"User-Agent": _USER_AGENT, "Accept": "application/json", "Accept-Encoding": ACCEPT_ENCODING}
        )
        self.session.headers.update(dict(self.headers))
        # Certificate verification stays on; a CA bundle only adds trust, it never disables it.
        self.session.verify = self.ca_bundle or True
        self._started = self.monotonic()

    # -- public -----------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"

    def get_json(self, path: str, params: Mapping[str, Any] | None = None, **kw: Any) -> Any:
        """GET and decode JSON; a truncated or non-JSON body is retried like a 5xx."""
        return self.request("GET", path, params=params, parse_json=True, **kw).json_body

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        parse_json: bool = False,
        shape: BodyShape | None = None,
        accept: Iterable[int] = (),
        idempotent: bool = True,
    ) -> Response:
        """Send one logical request (retried as needed) and return its answer.

        ``idempotent=False`` (posting a comment) retries only answers that say the request was
        not carried out (429 and rate limits); after a 5xx or a timeout the server may have acted,
        so the failure is reported instead of risking a second comment.

        2xx and 304 are returned; statuses in ``accept`` are returned too; 401 and a 403 that is
        not a rate limit raise ``AuthError``; other 4xx raise ``StatusError``; retryable failures
        that outlast the attempts raise ``TransientError``; waits past the deadline raise
        ``RateLimitedError``.

        ``shape`` (implies ``parse_json``) decodes only what the caller reads of a large answer
        (``connectors.shapes``); an answer that does not fit it is decoded whole.
        """
        from tenacity import Retrying, retry_if_exception, retry_if_exception_type, stop_after_attempt

        accepted = set(accept)
        decode = (shape or _loads) if parse_json or shape is not None else None
        retrying = Retrying(
            stop=stop_after_attempt(max(1, self.policy.attempts)),
            wait=self._wait,
            retry=retry_if_exception_type(_Retry) if idempotent else retry_if_exception(_not_carried_out),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._attempt(method, path, params, json_body, headers, decode, accepted)
        except _Retry as exc:
            raise self._give_up(exc) from None
        except _PastDeadline as exc:
            resume = datetime.now(UTC) + timedelta(seconds=exc.wait)
            raise RateLimitedError(
                self.source,
                f"rate limited: the tracker asks to wait {exc.wait:.0f}s, past this pass's deadline; "
                f"resuming at {resume:%Y-%m-%dT%H:%M:%SZ}",
                resume_at=resume,
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    # -- one attempt ------------------------------------------------------------------------

    def _attempt(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json_body: Any,
        headers: Mapping[str, str] | None,
        decode: BodyShape | None,
        accepted: set[int],
    ) -> Response:
        import requests

        if self.stop.is_set():
            raise TransientError(self.source, "stopped before the request was sent")
        assert self.session is not None
        with self._lock:
            self._honour_not_before()
            self.request_count += 1
            if method != "GET":
                self.writes += 1
            try:
                raw = self._send(method, self.url(path), params, json_body, headers)
                _read_body(raw)
            except requests.Timeout as exc:
                raise _Retry(f"timed out ({type(exc).__name__})") from None
            except requests.ConnectionError:
                raise _Retry(f"cannot connect to {self._host()}") from None
            except requests.RequestException as exc:
                raise _Retry(f"request failed ({type(exc).__name__})") from None
        self._note_limits(raw)
        status = raw.status_code
        if status == 304:
            self.not_modified += 1
            return Response(raw, None)
        if status in (403, 429) and self._is_rate_limited(raw):
            floor = self._rate_limit_floor(raw)
            raise _Retry(f"rate limited (HTTP {status})", floor=floor, rate_limited=True)
        if status in _RETRYABLE_STATUS:
            raise _Retry(f"HTTP {status} from {self._host()}", floor=_retry_after(raw) or 0.0)
        if status in accepted:
            return Response(raw, self._decode(raw, decode) if decode is not None and raw.content else None)
        if status == 401 or status == 403:
            raise AuthError(self.source, self._describe(raw, "credentials refused"))
        if status >= 400:
            raise StatusError(self.source, self._describe(raw, "request refused"), status, self._excerpt(raw))
        return Response(raw, self._decode(raw, decode) if decode is not None else None)

    def _send(
        self, method: str, url: str, params: Mapping[str, Any] | None, json_body: Any, headers: Mapping[str, str] | None
    ) -> requests.Response:
        """One HTTP exchange through the session's transport adapter, redirects followed.

        ``Session.request`` spent ~0.6 ms of CPU per request before the adapter was reached
        (the environment's proxy settings read twice, cookie jars merged and copied, hooks):
        ~0.7 s of a 200k full sync's 1 129 requests (bench/RESULTS.md). The request is prepared
        and sent here with what ``Session.request`` would have merged in: the session's headers
        (a ``None`` value removes one) and cookies, the environment's proxies for the URL and its
        CA bundle (``trust_env``; a source's own ``ca_bundle`` comes first), the certificate, no
        netrc (``_headers_as_set``). Cookies the tracker sets are kept in the session's jar (a
        Jira Data Center session, a load balancer's sticky node). A redirect goes through
        ``Session.resolve_redirects``, so its rules stay requests' own (the credentials are
        dropped on the way to another host). A session with hooks, its own auth or parameters
        takes ``Session.request``."""
        import requests

        session = self.session
        assert session is not None
        timeout = (self.policy.connect_timeout, self.policy.timeout)
        if session.auth or session.params or any(session.hooks.values()):
            return session.request(method, url, params=params, json=json_body, headers=dict(headers or {}),
                                   timeout=timeout, allow_redirects=True, auth=_headers_as_set, stream=True)
        merged = requests.structures.CaseInsensitiveDict(session.headers)
        merged.update(headers or {})
        for name in [name for name, value in merged.items() if value is None]:
            del merged[name]  # as requests' merge_setting: None removes a header
        verify: Any = session.verify
        if session.trust_env and verify is True and not self.ca_bundle:
            verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or verify
        settings: dict[str, Any] = {"stream": True, "timeout": timeout, "verify": verify, "cert": session.cert,
                                    "proxies": self._proxies(url)}
        raw: requests.Response | None = None
        if direct_allowed(session, url, settings["proxies"]):
            exchange = prepare(method, url, params, json_body, merged)
            raw = self._direct.send(exchange, connect_timeout=timeout[0], read_timeout=timeout[1], verify=verify,
                                    cookies=session.cookies)
            if "Set-Cookie" in raw.headers:
                requests.cookies.extract_cookies_to_jar(  # type: ignore[no-untyped-call]
                    session.cookies, raw.request, raw.raw
                )
            if not raw.is_redirect:
                return raw
        # The requests path; a redirect the direct transport met is followed from here too.
        prepared = requests.Request(method, url, headers=merged, params=params, json=json_body,
                                    cookies=session.cookies, auth=_headers_as_set).prepare()
        if raw is None:
            raw = session.get_adapter(prepared.url or url).send(prepared, **settings)
            requests.cookies.extract_cookies_to_jar(session.cookies, prepared, raw.raw)  # type: ignore[no-untyped-call]
        if raw.is_redirect:
            hops = list(session.resolve_redirects(raw, prepared, **settings))
            if hops:
                hops.insert(0, raw)
                raw = hops.pop()
                raw.history = hops
        return raw

    def _proxies(self, url: str) -> dict[str, str]:
        """The proxies ``Session.request`` would use for this URL, looked up once per scheme and
        host instead of twice per request."""
        import requests

        session = self.session
        assert session is not None
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, session.trust_env, tuple(sorted(session.proxies.items())))
        found = self._proxy_cache.get(key)
        if found is None:
            # As ``Session.merge_environment_settings``: the environment's win over the session's.
            env = requests.utils.get_environ_proxies(url, no_proxy=None) if session.trust_env else {}
            found = {**session.proxies, **env}
            self._proxy_cache[key] = found
        return dict(found)

    def _decode(self, raw: requests.Response, decode: BodyShape) -> Any:
        content = raw.content
        # msgspec's errors are ValueErrors from 0.21 on (the floor in pyproject.toml); named as
        # well, so that an older msgspec in a user's environment still falls back.
        if decode is not _loads:
            try:
                return decode(content)
            except (ValueError, UnicodeDecodeError, msgspec.MsgspecError):
                pass  # drift the shape does not declare: decoded whole, as the mapping expects
        try:
            return _loads(content)
        except (ValueError, UnicodeDecodeError, msgspec.MsgspecError):
            pass
        try:  # what msgspec refuses and the standard library takes (NaN, a lone surrogate)
            return json.loads(content)
        except (ValueError, UnicodeDecodeError):
            kind = raw.headers.get("Content-Type", "unknown type").split(";")[0]
            raise _Retry(f"a malformed or truncated answer ({kind}, {len(raw.content)} bytes)") from None

    # -- waits ------------------------------------------------------------------------------

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        floor: float = exc.floor if isinstance(exc, _Retry) else 0.0
        if isinstance(exc, _Retry) and exc.rate_limited and floor <= 0:
            floor = min(self.policy.unknown_limit_cap,
                        self.policy.unknown_limit_wait * (2 ** max(0, state.attempt_number - 1)))
        growth = self.policy.backoff_base * 2 ** (state.attempt_number - 1)
        backoff: float = min(self.policy.backoff_max, growth)
        wait = max(floor, backoff)
        return wait + random.uniform(0, self.policy.jitter * wait)

    def _sleep(self, seconds: float) -> None:
        if self.policy.deadline is not None:
            elapsed = self.monotonic() - self._started
            if elapsed + seconds > self.policy.deadline:
                raise _PastDeadline(seconds)
        if self.sleep is not None:
            self.sleep(seconds)
        elif self.stop.wait(seconds):
            raise TransientError(self.source, "stopped while waiting to retry")

    def _honour_not_before(self) -> None:
        """Never send before a rate-limit reset announced on an earlier (successful) answer."""
        wait = self._not_before - self.monotonic()
        if wait > 0:
            self._sleep(wait)

    # -- rate-limit headers -----------------------------------------------------------------

    def _note_limits(self, raw: requests.Response) -> None:
        remaining = raw.headers.get("x-ratelimit-remaining")
        if remaining is not None and remaining.strip().isdigit():
            self.rate_remaining = int(remaining)
            if self.rate_remaining == 0 and raw.status_code < 400:
                reset = _reset_seconds(raw)
                if reset:
                    self._not_before = self.monotonic() + reset
        near = raw.headers.get("X-RateLimit-NearLimit", "").lower() == "true"
        if near or "Beta-Retry-After" in raw.headers:
            # Advisory (research fact 28): not an order to sleep out the quoted wait, but a reason
            # to pace down — the next request leaves a short pause instead of going at once.
            self.near_limit_signals += 1
            self._not_before = max(self._not_before, self.monotonic() + self.policy.near_limit_pause)

    @staticmethod
    def _is_rate_limited(raw: requests.Response) -> bool:
        if raw.status_code == 429:
            return True
        if raw.headers.get("x-ratelimit-remaining") == "0" or "retry-after" in raw.headers:
            return True
        return "rate limit" in raw.text[:2000].lower()

    @staticmethod
    def _rate_limit_floor(raw: requests.Response) -> float:
        after = _retry_after(raw)
        if after is not None:
            return after
        if raw.headers.get("x-ratelimit-remaining") == "0" or raw.status_code == 429:
            reset = _reset_seconds(raw)
            if reset is not None:
                return reset
        return 0.0

    # -- messages ---------------------------------------------------------------------------

    def _host(self) -> str:
        return self.base_url.split("://", 1)[-1].split("/", 1)[0]

    def _excerpt(self, raw: requests.Response) -> str:
        return redact(raw.text[:500], self.secrets)

    def _describe(self, raw: requests.Response, what: str) -> str:
        detail = _error_detail(raw)
        text = f"{what}: HTTP {raw.status_code} on {raw.request.method} {_path_of(raw.url)}"
        return redact(f"{text} ({detail})" if detail else text, self.secrets)

    def _give_up(self, exc: _Retry) -> SourceError:
        message = redact(f"{exc.reason}; gave up after {self.policy.attempts} attempts", self.secrets)
        if exc.rate_limited:
            return RateLimitedError(self.source, message)
        return TransientError(self.source, message)


@dataclass
class Response:
    """A finished answer: the raw response and, when asked for, its decoded JSON."""

    raw: requests.Response
    json_body: Any

    @property
    def status(self) -> int:
        return self.raw.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self.raw.headers

    @property
    def not_modified(self) -> bool:
        return self.raw.status_code == 304

    def next_link(self) -> str | None:
        """The ``rel="next"`` URL of a ``Link`` header (GitHub pagination)."""
        return _next_link(self.raw.headers.get("Link", ""))


def _next_link(header: str) -> str | None:
    for part in header.split(","):
        section = part.split(";")
        if len(section) < 2:
            continue
        url = section[0].strip().strip("<>")
        if any(s.strip().replace(" ", "") in ('rel="next"', "rel=next") for s in section[1:]):
            return url
    return None


def _read_body(raw: requests.Response) -> None:
    """Read the whole answer in one call and hand the connection back to the pool.

    requests without ``stream`` reads a body through ``iter_content`` in 10 KB pieces: for a
    300 KB GitHub page that cost 1 ms more CPU than one read (about 1.3 s of a 200k full sync,
    bench/RESULTS.md). The body lands where requests keeps it, so ``.content``, ``.text`` and
    ``.json()`` behave as before. urllib3's failures are raised as requests exceptions, so the
    retry rules above stay the same (a read timeout is a timeout, not "cannot connect")."""
    if raw._content_consumed:  # type: ignore[attr-defined]  # the direct transport read it already
        return
    import requests
    import urllib3.exceptions as u3

    try:
        body = raw.raw.read(decode_content=True) if raw.raw is not None else b""
    except u3.ReadTimeoutError as exc:
        raise requests.exceptions.ReadTimeout(exc) from None
    except u3.DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc) from None
    except (u3.ProtocolError, u3.SSLError, OSError) as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from None
    finally:
        raw.close()
    raw._content = body or b""
    raw._content_consumed = True  # type: ignore[attr-defined]  # requests sets it after reading too


def _headers_as_set(prepared: requests.PreparedRequest) -> requests.PreparedRequest:
    """An explicit no-op auth: without one, requests looks the host up in ``~/.netrc`` on every
    request and an entry there replaces the configured ``Authorization`` header."""
    return prepared


def _retry_after(raw: requests.Response) -> float | None:
    """``Retry-After`` in seconds (a number or an HTTP date); ``0`` still means "wait a little"."""
    value = raw.headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.5, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.5, (when - datetime.now(UTC)).total_seconds())


def _reset_seconds(raw: requests.Response) -> float | None:
    """Seconds until ``X-RateLimit-Reset``: GitHub sends epoch seconds, Jira an ISO-8601 time."""
    value = raw.headers.get("x-ratelimit-reset")
    if not value:
        return None
    value = value.strip()
    now = datetime.now(UTC)
    try:
        number = float(value)
    except ValueError:
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(1.0, (when - now).total_seconds())
    if number > 1e9:  # epoch seconds
        return max(1.0, number - now.timestamp())
    return max(1.0, number)


def _error_detail(raw: requests.Response) -> str:
    """The tracker's own error text, when it sent one (Jira errorMessages, GitHub message)."""
    try:
        body = raw.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    parts: list[str] = []
    messages = body.get("errorMessages")
    if isinstance(messages, list):
        parts.extend(str(m) for m in messages[:3])
    errors = body.get("errors")
    if isinstance(errors, dict):
        parts.extend(f"{k}: {v}" for k, v in list(errors.items())[:3])
    if isinstance(body.get("message"), str):
        parts.append(body["message"])
    return "; ".join(parts)[:300]


def _path_of(url: str | None) -> str:
    if not url:
        return "?"
    rest = url.split("://", 1)[-1]
    return "/" + rest.split("/", 1)[1] if "/" in rest else "/"
