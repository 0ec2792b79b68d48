"""``okrsync daemon``: ``run_once`` on a schedule, with health, metrics and the report over HTTP.

- ``schedule`` drives the passes: every ``interval`` plus up to ``jitter``, measured from the end
  of the previous pass (a long pass never overlaps the next); a full pass with the deletion census
  whenever the last one is older than ``schedule.full_every`` (daily by default). Every job is
  wrapped: an exception is logged and the loop goes on (``schedule`` itself would propagate it).
- A source the tracker rate-limited past the pass deadline is not slept on: run_once records
  "resume at T" and skips it until then, so neither the loop nor shutdown is blocked.
- SIGTERM/SIGINT set a stop event that every wait in the HTTP layer watches; the current pass ends
  at its next page boundary (its transaction commits or rolls back) and the process exits 0. A
  watchdog makes sure that happens within 10 seconds even if a socket read hangs.
- SIGHUP reloads the config; an invalid file is reported and the running config kept.
- Logs fire on edges: "github failing: …" once, "github recovered" once.
- The HTTP endpoint (127.0.0.1:8080 by default) serves read-only GETs from the last pass's
  results: ``/healthz``, ``/metrics`` (Prometheus), ``/report.json`` and ``/`` (the HTML report).
  Anything else gets 405; a malformed request never stops the server.
"""

from __future__ import annotations

import gc
import logging
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

import schedule
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from connectors.http import redact
from syncer.config import Config, format_duration, load
from syncer.errors import ConfigError, OkrsyncError, SyncBusyError
from syncer.results import utc_now
from syncer.store import Store

__all__ = ["Daemon", "Metrics"]

log = logging.getLogger("okrsync.daemon")

SHUTDOWN_DEADLINE = 9.0
"""Seconds between SIGTERM and a forced exit (the contract promises exit within 10 s)."""


class Metrics:
    """The Prometheus series the daemon exposes on ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.passes = Counter("okrsync_passes", "Sync passes per source", ["source"], registry=self.registry)
        self.failures = Counter("okrsync_source_failures", "Failed passes per source", ["source"],
                                registry=self.registry)
        self.requests = Counter("okrsync_requests", "HTTP requests sent to trackers", ["source"],
                                registry=self.registry)
        self.items = Gauge("okrsync_items_fetched", "Items fetched by the last pass", ["source"],
                           registry=self.registry)
        self.last_success = Gauge("okrsync_last_success_timestamp_seconds", "Last successful pass (epoch s)",
                                  ["source"], registry=self.registry)
        self.progress = Gauge("okrsync_key_result_progress", "Key-result progress (0..1)",
                              ["key_result", "objective"], registry=self.registry)
        self.current = Gauge("okrsync_key_result_value", "Key-result current value",
                             ["key_result", "objective"], registry=self.registry)
        self.stale = Gauge("okrsync_key_result_stale", "1 when the key result's source failed",
                           ["key_result"], registry=self.registry)
        self.pass_seconds = Gauge("okrsync_pass_duration_seconds", "Duration of the last pass",
                                  registry=self.registry)
        self.unaligned = Gauge("okrsync_unaligned_items", "Unaligned items in the last report",
                               registry=self.registry)

    def text(self) -> bytes:
        return generate_latest(self.registry)


@dataclass
class _Published:
    """What the HTTP thread serves: rendered once per pass by the loop thread (no store access)."""

    report_json: str = "{}"
    report_html: str = "<!doctype html><title>okrsync</title><p>No pass has finished yet.</p>"
    last_success: dict[str, datetime] = field(default_factory=dict)
    last_error: dict[str, str] = field(default_factory=dict)
    sources: tuple[str, ...] = ()
    started_at: datetime = field(default_factory=utc_now)


class Daemon:
    """The scheduling loop; ``run()`` blocks until SIGTERM/SIGINT and returns the exit code."""

    def __init__(
        self,
        config_path: Path,
        *,
        interval: timedelta | None = None,
        listen: tuple[str, int] | None = ("127.0.0.1", 8080),
        worker_mode: bool = False,
        once: bool = False,
        now: Callable[[], datetime] = utc_now,
        connector_factory: Any = None,
    ) -> None:
        self.config_path = config_path
        self.interval_override = interval
        self.listen = listen
        self.worker_mode = worker_mode
        self.once = once
        self.now = now
        self.connector_factory = connector_factory
        self.stop = threading.Event()
        self.reload_requested = threading.Event()
        self.metrics = Metrics()
        self.published = _Published()
        self.failing: dict[str, bool] = {}
        self.passes = 0
        self.config: Config | None = None
        self.server: ThreadingHTTPServer | None = None
        self._scheduler = schedule.Scheduler()
        self._worker = f"daemon-{os.getpid()}"

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def interval(self) -> timedelta:
        assert self.config is not None
        return self.interval_override or self.config.schedule.interval

    def run(self) -> int:
        self.config = load(self.config_path)
        from syncer.sync import worker_id

        self._worker = worker_id()
        self.published.sources = tuple(self.config.sources)
        self._install_signals()
        if self.listen is not None:
            self._serve(*self.listen)
        log.info("okrsync daemon started", extra={"fields": {
            "interval": format_duration(self.interval), "worker": self._worker,
            "listen": f"{self.listen[0]}:{self.listen[1]}" if self.listen else None}})
        try:
            self._job()
            if not self.once:
                self._schedule_next()
                while not self.stop.is_set():
                    if self.reload_requested.is_set():
                        self._reload()
                    self._scheduler.run_pending()
                    idle = self._scheduler.idle_seconds
                    self.stop.wait(1.0 if idle is None else max(0.05, min(1.0, idle)))
        finally:
            self._shutdown()
        return 0

    def request_stop(self) -> None:
        self.stop.set()

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, lambda *_: self.reload_requested.set())

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stop.is_set():
            return
        log.info("stopping: %s received", signal.Signals(signum).name)
        self.stop.set()
        watchdog = threading.Thread(target=self._force_exit_later, daemon=True)
        watchdog.start()

    def _force_exit_later(self) -> None:
        """If a pass is stuck in a socket read, leave anyway: SQLite/PostgreSQL roll the open
        transaction back on their own, and the lease of a dead process is freed by the next pass."""
        time.sleep(SHUTDOWN_DEADLINE)
        log.warning("shutdown deadline reached; exiting with the open transaction rolled back")
        logging.shutdown()
        os._exit(0)

    def _shutdown(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        log.info("okrsync daemon stopped after %d passes", self.passes)

    def _schedule_next(self) -> None:
        """One-shot job: the next pass is scheduled from the end of this one, with jitter."""
        self._scheduler.clear()
        assert self.config is not None
        jitter = self.config.schedule.jitter.total_seconds()
        delay = max(1, round(self.interval.total_seconds() + random.uniform(0, jitter)))
        self._scheduler.every(delay).seconds.do(self._tick)

    def _tick(self) -> Any:
        self._job()
        if not self.stop.is_set():
            self._schedule_next()
        return schedule.CancelJob

    def _reload(self) -> None:
        self.reload_requested.clear()
        try:
            config = load(self.config_path)
        except ConfigError as exc:
            first = exc.problems[0] if exc.problems else str(exc)
            log.error("config reload failed; keeping the running config: %s", first,
                      extra={"fields": {"problems": len(exc.problems)}})
            return
        self.config = config
        self.published.sources = tuple(config.sources)
        log.info("config reloaded", extra={"fields": {"sources": list(config.sources)}})
        self._schedule_next()

    # -- one pass ----------------------------------------------------------------------------

    def _job(self) -> None:
        """One pass; never lets an exception out (the loop must survive anything)."""
        if self.stop.is_set():
            return
        started = time.monotonic()
        try:
            self._pass()
        except SyncBusyError as exc:
            log.info("skipping this pass: %s", exc)
        except OkrsyncError as exc:
            log.error("pass failed: %s", redact(str(exc), self._secrets()))
        except Exception as exc:  # the loop outlives any bug in one pass
            log.exception("pass crashed: %s", redact(f"{type(exc).__name__}: {exc}", self._secrets()))
        finally:
            self.passes += 1
            self.metrics.pass_seconds.set(time.monotonic() - started)
            # okrsync raises the collector's thresholds (cli.tune_gc): a pass's cyclic garbage
            # (an exception's traceback holding an answer, say) is freed here, not passes later.
            gc.collect()

    def _pass(self) -> None:
        from syncer.assemble import assemble_report
        from syncer.report import render
        from syncer.sync import SyncOptions, run_once

        config = self.config
        assert config is not None
        full = False
        with Store.open(config.store_url()) as store:
            full = self._full_due(config, store)
            options = SyncOptions(full=full, worker=self._worker, stop=self.stop, skip_busy=self.worker_mode,
                                  lock_wait=2.0)
            if self.worker_mode:
                # Several workers share the sources: a source someone synced within the last 80% of
                # an interval is not due yet, and one snapshot per interval is the history's pace.
                options.fresh_for = self.interval * 0.8
                options.snapshot_window = self.interval * 0.8
            kwargs: dict[str, Any] = {"now": self.now}
            if self.connector_factory is not None:
                kwargs["connector_factory"] = self.connector_factory
            result = run_once(config, store, options, **kwargs)
            data = assemble_report(config, store, self.now(), outcomes=result.outcomes, writes=result.writes,
                                   krs=result.key_results or None, changes=result.changes, item_limit=100)
            report_json, report_html = render(data, "json"), render(data, "html")
            store.keep_aggregates()
            shared = store.source_status() if self.worker_mode else {}
        # Metrics first, then the report: whoever sees a pass's numbers in /report.json finds the
        # same numbers in /metrics (the other order let a scrape between the two see old gauges).
        self._observe(config, result, data, full)
        self._observe_shared(shared)
        self.published.report_json, self.published.report_html = report_json, report_html

    def _full_due(self, config: Config, store: Store) -> bool:
        status = store.source_status()
        for name in config.sources:
            last = status.get(name, {}).get("last_full_at")
            if last is None:
                return True
            if isinstance(last, str):
                last = datetime.fromisoformat(last.replace("Z", "+00:00"))
            if self.now() - last >= config.schedule.full_every:
                return True
        return False

    def _observe(self, config: Config, result: Any, data: Any, full: bool) -> None:
        at = self.now()
        for outcome in result.outcomes:
            name = outcome.name
            self.metrics.passes.labels(name).inc()
            self.metrics.requests.labels(name).inc(outcome.requests)
            self.metrics.items.labels(name).set(outcome.fetched)
            if outcome.ok:
                self.published.last_success[name] = at
                self.published.last_error.pop(name, None)
                self.metrics.last_success.labels(name).set(at.timestamp())
                if self.failing.get(name):
                    log.info("%s recovered", name, extra={"fields": {"source": name}})
                self.failing[name] = False
            else:
                self.metrics.failures.labels(name).inc()
                error = redact(outcome.error or "failed", self._secrets())
                self.published.last_error[name] = error
                if not self.failing.get(name):
                    log.warning("%s failing: %s", name, error, extra={"fields": {"source": name}})
                self.failing[name] = True
        for objective in data.objectives:
            for kr in objective.key_results:
                self.metrics.progress.labels(kr.id, objective.id).set(kr.progress)
                self.metrics.current.labels(kr.id, objective.id).set(kr.current)
                self.metrics.stale.labels(kr.id).set(1 if kr.stale else 0)
        self.metrics.unaligned.set(data.unaligned_total)  # all of them, not the capped list
        log.info("pass finished", extra={"fields": {
            "full": full, "requests": result.requests,
            "sources": {o.name: ("ok" if o.ok else "failed") for o in result.outcomes},
            "writes": len(result.writes)}})

    def _observe_shared(self, status: dict[str, dict[str, Any]]) -> None:
        """Worker mode: a source another worker synced counts for this one's health too."""
        for name, row in status.items():
            last = row.get("last_success_at")
            if isinstance(last, datetime) and last > self.published.last_success.get(name, last - timedelta(1)):
                self.published.last_success[name] = last
                if not row.get("last_error"):
                    self.published.last_error.pop(name, None)

    def _secrets(self) -> tuple[str, ...]:
        return self.config.secrets() if self.config else ()

    # -- health --------------------------------------------------------------------------------

    def health(self) -> tuple[bool, str]:
        """Healthy while every source's last good pass is younger than three intervals.

        An interval here is the longest gap the scheduler may leave between passes, the interval
        plus its jitter: with ``--interval 10s`` and the default 30 s jitter, three bare intervals
        (30 s) would report a healthy daemon as down between two of its passes.
        """
        limit = (self.interval + self.config.schedule.jitter) * 3 if self.config else timedelta(minutes=45)
        at = self.now()
        problems: list[str] = []
        for name in self.published.sources:
            last = self.published.last_success.get(name)
            if last is None:
                if at - self.published.started_at > limit:
                    problems.append(f"{name}: no successful pass since start")
                elif name in self.published.last_error:
                    problems.append(f"{name}: failing: {self.published.last_error[name]}")
                else:
                    problems.append(f"{name}: no pass finished yet")
            elif at - last > limit:
                age = int((at - last).total_seconds())
                error = self.published.last_error.get(name, "")
                problems.append(f"{name}: last good pass {age}s ago" + (f" ({error})" if error else ""))
        if problems:
            return False, "; ".join(problems)
        return True, "ok"

    def _serve(self, host: str, port: int) -> None:
        try:
            server_class = _V6Server if ":" in host else ThreadingHTTPServer
            self.server = server_class((host, port), _handler(self))
        except OSError as exc:  # a port in use or an address not on this host: one line, not a traceback
            reason = (exc.strerror or str(exc)).lower()
            raise OkrsyncError(f"cannot listen on {host}:{port}: {reason}") from None
        self.server.daemon_threads = True
        thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        thread.start()


class _V6Server(ThreadingHTTPServer):
    """``--listen [::1]:8080``: the same server on an IPv6 socket."""

    address_family = socket.AF_INET6


def _handler(daemon: Daemon) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "okrsync"
        sys_version = ""
        timeout = 10  # a client that trickles its request (slowloris) is cut off, not waited on

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            return

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                ok, reason = daemon.health()
                self._send(200 if ok else 503, "text/plain; charset=utf-8", (reason + "\n").encode())
            elif path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, daemon.metrics.text())
            elif path == "/report.json":
                self._send(200, "application/json", daemon.published.report_json.encode())
            elif path in ("/", "/index.html"):
                self._send(200, "text/html; charset=utf-8", daemon.published.report_html.encode())
            else:
                self._send(404, "text/plain; charset=utf-8", b"not found\n")

        def do_HEAD(self) -> None:  # noqa: N802 - stdlib name
            """GET's status and headers without the body (a HEAD probe of /healthz sees 503 too)."""
            self.do_GET()  # _send leaves the body out when the command is HEAD

        def _refuse(self) -> None:
            self._send(405, "text/plain; charset=utf-8", b"read-only: only GET and HEAD\n",
                       extra={"Allow": "GET, HEAD"})

        do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_TRACE = do_CONNECT = _refuse

        def _send(self, status: int, content_type: str, body: bytes, *, head: bool = False,
                  extra: dict[str, str] | None = None) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.send_header("X-Content-Type-Options", "nosniff")
                for name, value in (extra or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                if not head and self.command != "HEAD":
                    self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler
