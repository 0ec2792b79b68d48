"""``okrsync daemon`` as a real process: HTTP endpoints, schedule, reload, edge logs, health, SIGTERM.

One daemon (2 s interval) is shared by the module's tests; each test leaves the JSON trackers and
the config as it found them. The health and shutdown tests start their own short-lived daemon.
Every wait is bounded; every process is killed in a ``finally``.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import MemoryEnv, clean_env, write_json, write_memory_config

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class DaemonProcess:
    """A running ``python -m syncer daemon`` and the files it reads and logs to."""

    env: MemoryEnv
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    _log: Any = field(repr=False, default=None)

    def get(self, path: str, method: str = "GET", body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request(method, path, body=body)
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()

    def status(self, path: str) -> int | None:
        try:
            return self.get(path)[0]
        except OSError:
            return None

    def report(self) -> dict[str, Any]:
        code, _, body = self.get("/report.json")
        assert code == 200
        data: dict[str, Any] = json.loads(body)
        return data

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        code, _, body = self.get("/metrics")
        assert code == 200
        values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return values

    def metric(self, name: str, **labels: str) -> float | None:
        return self.metrics().get((name, tuple(sorted(labels.items()))))

    def logs(self) -> list[dict[str, Any]]:
        """Every log line, parsed (the daemon logs JSON lines when stderr is not a terminal)."""
        lines = self.log_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def messages(self) -> list[str]:
        return [str(entry["message"]) for entry in self.logs()]


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 20.0, every: float = 0.2) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (OSError, http.client.HTTPException, ValueError):
            last = None
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")


def start_daemon(env: MemoryEnv, interval: str) -> DaemonProcess:
    port = free_port()
    log_path = env.config.parent / "daemon.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncer", "daemon", "-c", str(env.config), "--interval", interval,
         "--listen", f"127.0.0.1:{port}"],
        cwd=env.config.parent, env=clean_env(env.config.parent), stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=log,
    )
    daemon = DaemonProcess(env=env, port=port, proc=proc, log_path=log_path, _log=log)
    try:
        wait_for("/healthz 200", lambda: proc.poll() is None and daemon.status("/healthz") == 200, timeout=20)
    except AssertionError:
        stop_daemon(daemon)
        raise AssertionError(f"daemon did not become healthy; log:\n{log_path.read_text()}") from None
    return daemon


def stop_daemon(daemon: DaemonProcess) -> int | None:
    """SIGTERM, wait up to 10 s, then SIGKILL; returns the exit code after SIGTERM (None if killed)."""
    code: int | None = None
    try:
        if daemon.proc.poll() is None:
            daemon.proc.send_signal(signal.SIGTERM)
        code = daemon.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        code = None
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait(timeout=10)
        daemon._log.close()
    return code


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    env = write_memory_config(tmp_path_factory.mktemp("daemon"))
    running = start_daemon(env, "2s")
    try:
        yield running
    finally:
        stop_daemon(running)


def kr_value(report: dict[str, Any], kr_id: str, key: str = "current") -> Any:
    return next(kr[key] for o in report["objectives"] for kr in o["key_results"] if kr["id"] == kr_id)


def passes(daemon: DaemonProcess, source: str = "memory") -> float:
    return daemon.metric("okrsync_passes_total", source=source) or 0.0


# -- the HTTP endpoint ------------------------------------------------------------------------


def test_healthz_is_200_and_plain_text(daemon: DaemonProcess) -> None:
    code, headers, body = daemon.get("/healthz")
    assert code == 200
    assert headers["content-type"].startswith("text/plain")
    assert body == b"ok\n"


def test_metrics_count_passes_and_match_the_report(daemon: DaemonProcess) -> None:
    metrics = daemon.metrics()
    for source in ("memory", "ops"):
        assert metrics[("okrsync_passes_total", (("source", source),))] >= 1
    report = daemon.report()
    for objective in report["objectives"]:
        for kr in objective["key_results"]:
            labels = (("key_result", kr["id"]), ("objective", objective["id"]))
            assert metrics[("okrsync_key_result_progress", labels)] == pytest.approx(kr["progress"], abs=1e-4)
            assert metrics[("okrsync_key_result_value", labels)] == pytest.approx(kr["current"])
    assert metrics[("okrsync_key_result_progress", (("key_result", "launch"), ("objective", "product")))] \
        == pytest.approx(0.6)
    assert metrics[("okrsync_unaligned_items", ())] == len(report["unaligned"]) == 1


def test_report_json_has_the_objectives(daemon: DaemonProcess) -> None:
    code, headers, body = daemon.get("/report.json")
    assert code == 200
    assert headers["content-type"].startswith("application/json")
    report = json.loads(body)
    assert [o["id"] for o in report["objectives"]] == ["company", "product", "reliability"]
    assert kr_value(report, "ops-uptime") == 50.0
    assert {s["name"]: s["ok"] for s in report["sources"]} == {"memory": True, "ops": True}


def test_root_is_the_html_report(daemon: DaemonProcess) -> None:
    code, headers, body = daemon.get("/")
    assert code == 200
    assert headers["content-type"].startswith("text/html")
    text = body.decode()
    assert text.lstrip().lower().startswith("<!doctype html")
    assert "launch" in text and "ops-uptime" in text


def test_unknown_path_is_404_and_writes_are_405(daemon: DaemonProcess) -> None:
    assert daemon.get("/nope")[0] == 404
    for method in ("POST", "PUT", "DELETE"):
        code, headers, _ = daemon.get("/report.json", method=method, body=b"{}")
        assert code == 405, method
        assert headers["allow"] == "GET, HEAD"
    code, headers, body = daemon.get("/metrics", method="HEAD")
    assert (code, body) == (200, b"")
    assert headers["content-type"].startswith("text/plain") and int(headers["content-length"]) > 100
    assert daemon.get("/nope", method="HEAD")[0] == 404


def test_a_malformed_request_does_not_stop_the_server(daemon: DaemonProcess) -> None:
    for garbage in (b"\x16\x03\x01\x02\x00garbage\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9 extra\r\n\r\n", b""):
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=5) as sock:
            sock.sendall(garbage)
            sock.shutdown(socket.SHUT_WR)
            try:
                sock.recv(4096)
            except OSError:
                pass
    assert daemon.proc.poll() is None
    assert daemon.get("/healthz")[0] == 200


# -- passes, reload, edge-triggered logs ------------------------------------------------------


def test_a_changed_item_shows_in_the_report_after_a_pass(daemon: DaemonProcess) -> None:
    items = json.loads(daemon.env.items.read_text(encoding="utf-8"))
    assert kr_value(daemon.report(), "launch") == 60.0
    for item in items:
        if item["key"] == "MEM-6":
            item.update(state="done", done_at=item["updated_at"], updated_at="2099-01-01T00:00:00Z")
    daemon.env.write_items(items)
    wait_for("launch at 80%", lambda: kr_value(daemon.report(), "launch") == 80.0, timeout=30)
    assert daemon.metric("okrsync_key_result_value", key_result="launch", objective="product") == 80.0


def test_a_broken_config_on_sighup_is_reported_and_the_old_one_kept(daemon: DaemonProcess) -> None:
    original = daemon.env.config.read_bytes()
    try:
        daemon.env.config.write_text("version: 1\ncycle: {name: x\nobjectives: [\n", encoding="utf-8")
        daemon.proc.send_signal(signal.SIGHUP)
        failed = wait_for("config reload failed", lambda: [e for e in daemon.logs()
                                                          if e["message"].startswith("config reload failed")])
        assert failed[0]["level"] == "error"
        assert "YAML" in failed[0]["message"]
        before = passes(daemon)
        wait_for("two more passes", lambda: passes(daemon) >= before + 2, timeout=30)
        assert daemon.get("/healthz")[0] == 200
        assert daemon.proc.poll() is None
    finally:
        daemon.env.config.write_bytes(original)
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for("config reloaded", lambda: "config reloaded" in daemon.messages())


def test_a_failing_source_is_logged_once_and_its_recovery_once(daemon: DaemonProcess) -> None:
    original = daemon.env.items.read_bytes()
    failures = daemon.metric("okrsync_source_failures_total", source="memory") or 0.0
    try:
        daemon.env.items.write_text("[{broken", encoding="utf-8")
        wait_for("three failed passes",
                 lambda: (daemon.metric("okrsync_source_failures_total", source="memory") or 0) >= failures + 3,
                 timeout=20)
        report = daemon.report()
        assert kr_value(report, "launch", "stale") is True
        assert kr_value(report, "ops-uptime", "stale") is False
        assert daemon.metric("okrsync_key_result_stale", key_result="launch") == 1
    finally:
        daemon.env.items.write_bytes(original)
    wait_for("memory recovered", lambda: "memory recovered" in daemon.messages(), timeout=30)
    recovered_at = passes(daemon)
    wait_for("another good pass", lambda: passes(daemon) >= recovered_at + 1, timeout=30)
    messages = daemon.messages()
    failing = [m for m in messages if m.startswith("memory failing")]
    assert len(failing) == 1, failing
    assert "not valid JSON" in failing[0]
    assert messages.count("memory recovered") == 1
    assert not any(m.startswith("ops failing") for m in messages)
    assert kr_value(daemon.report(), "launch", "stale") is False
    assert daemon.get("/healthz")[0] == 200


def test_logs_are_json_lines(daemon: DaemonProcess) -> None:
    entries = daemon.logs()  # json.loads on every line: a non-JSON line fails here
    assert entries[0]["message"] == "okrsync daemon started"
    assert entries[0]["listen"] == f"127.0.0.1:{daemon.port}"
    finished = [e for e in entries if e["message"] == "pass finished"]
    assert finished and all({"at", "level", "logger", "sources"} <= set(e) for e in finished)
    assert finished[0]["full"] is True


# -- health and shutdown (their own daemons) ---------------------------------------------------


def test_healthz_turns_503_when_the_last_good_pass_is_too_old_and_sigterm_exits_0(tmp_path: Path) -> None:
    env = write_memory_config(tmp_path)
    running = start_daemon(env, "1s")
    try:
        write_json(env.items, {"not": "a list"})
        # interval 1 s + jitter 1 s: unhealthy once the last good pass is older than 3 x that.
        wait_for("/healthz 503", lambda: running.status("/healthz") == 503, timeout=20)
        code, _, body = running.get("/healthz")
        assert code == 503
        assert body.decode().startswith("memory: last good pass ")
        assert "ops" not in body.decode()
        status, headers, head_body = running.get("/healthz", method="HEAD")
        assert (status, head_body) == (503, b""), "a HEAD probe sees the same health as GET"
        assert headers["content-length"] == str(len(body))
        assert running.get("/report.json")[0] == 200, "the report is still served"
        sent = time.monotonic()
        running.proc.send_signal(signal.SIGTERM)
        exit_code = running.proc.wait(timeout=10)
        assert time.monotonic() - sent < 10
        assert exit_code == 0
        assert running.messages()[-1].startswith("okrsync daemon stopped after ")
        assert "stopping: SIGTERM received" in running.messages()
    finally:
        stop_daemon(running)


def test_sigint_also_stops_with_exit_0(tmp_path: Path) -> None:
    env = write_memory_config(tmp_path)
    running = start_daemon(env, "1s")
    try:
        running.proc.send_signal(signal.SIGINT)
        assert running.proc.wait(timeout=10) == 0
    finally:
        stop_daemon(running)


def test_daemon_with_an_invalid_config_exits_2_before_listening(tmp_path: Path) -> None:
    bad = tmp_path / "okrs.yaml"
    bad.write_text("version: 1\nobjectives: [\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "syncer", "daemon", "-c", str(bad), "--listen", f"127.0.0.1:{free_port()}"],
        cwd=tmp_path, env=clean_env(tmp_path), capture_output=True, text=True, timeout=30, check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0].startswith(f"{bad}:")
    assert "Traceback" not in proc.stderr


def test_daemon_on_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    env = write_memory_config(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "syncer", "daemon", "-c", str(env.config), "--listen", f"127.0.0.1:{port}"],
            cwd=tmp_path, env=clean_env(tmp_path), capture_output=True, text=True, timeout=30, check=False,
        )
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [f"okrsync: cannot listen on 127.0.0.1:{port}: address already in use"]


# -- health arithmetic, in-process (no server, a fixed clock) ----------------------------------


def test_health_allows_for_the_jitter_between_passes(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from syncer.config import load
    from syncer.daemon import Daemon

    env = write_memory_config(tmp_path)
    env.config.write_text(env.config.read_text(encoding="utf-8").replace("jitter: 1s", "jitter: 30s"),
                          encoding="utf-8")
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    daemon = Daemon(env.config, interval=timedelta(seconds=10), listen=None, now=lambda: now)
    daemon.config = load(env.config)
    daemon.published.sources = ("memory", "ops")
    daemon.published.started_at = now - timedelta(hours=1)
    # A pass may come up to 10 s + 30 s after the previous one: 100 s is within 3 x 40 s.
    daemon.published.last_success = {"memory": now - timedelta(seconds=100), "ops": now}
    assert daemon.health() == (True, "ok")
    daemon.published.last_success["memory"] = now - timedelta(seconds=121)
    ok, reason = daemon.health()
    assert not ok
    assert reason == "memory: last good pass 121s ago"


def test_each_pass_ends_with_a_full_collection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # okrsync collects cyclic garbage rarely during a pass (cli.tune_gc); a daemon frees it
    # after each pass so it cannot pile up over days.
    import gc
    from datetime import timedelta

    from syncer.config import load
    from syncer.daemon import Daemon

    env = write_memory_config(tmp_path)
    daemon = Daemon(env.config, interval=timedelta(seconds=10), listen=None)
    daemon.config = load(env.config)
    daemon.published.sources = tuple(daemon.config.sources)
    collected: list[int] = []
    monkeypatch.setattr(gc, "collect", lambda *a: collected.append(1) or 0)
    daemon._job()
    assert daemon.passes == 1 and collected == [1]


def test_an_ipv6_listen_address_gets_an_ipv6_socket(tmp_path) -> None:
    import socket as _socket

    from syncer.daemon import Daemon

    daemon = Daemon(tmp_path / "unused.yaml", listen=("::1", 0))
    try:
        daemon._serve("::1", 0)
    except Exception as exc:  # noqa: BLE001 - a host without IPv6 loopback cannot run this check
        pytest.skip(f"no IPv6 loopback here: {exc}")
    assert daemon.server is not None
    try:
        assert daemon.server.socket.family == _socket.AF_INET6
    finally:
        daemon._shutdown()
