"""Faults of the process: kill -9 anywhere (19), SIGTERM in a long back-off (20), two writers (21),
and an exception or overrun inside the daemon's schedule (29).

``okrsync`` runs as a real subprocess against the sandbox trackers served by this test process
(server threads). Every process is killed in a ``finally``; every wait is bounded.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from syncer.sandbox.server import Fault
from syncer.store import Store
from tests.conftest import clean_env, write_memory_config
from tests.reliability.harness import ENV, Org, differences, sandbox_org

CRASH_RUNS = 30
CRASH_SEED = int(os.environ.get("OKRSYNC_CRASH_SEED", "1908"))


def okrsync_env(folder: Path) -> dict[str, str]:
    return clean_env(folder, **ENV)


def start(folder: Path, *args: str, log: Path | None = None) -> subprocess.Popen[bytes]:
    err = log.open("wb") if log is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen([sys.executable, "-m", "syncer", *args], cwd=folder, env=okrsync_env(folder),
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    finally:
        if log is not None and hasattr(err, "close"):
            err.close()


def run(folder: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "syncer", *args], cwd=folder, env=okrsync_env(folder),
                          capture_output=True, text=True, timeout=timeout, check=False)


def kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def wait_until(what: str, probe: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def cursor_not_ahead(store: Store, org: Org) -> list[str]:
    """Every item the tracker changed before a cursor's time is stored with that very version.

    Jira: one cursor (``updated_ms``) for the site. GitHub: one ``since`` per repository. An item
    changed at or after the cursor may be missing or older: the next pass reads from there.
    """
    problems: list[str] = []
    truth = org.truth()
    have = {(i.source, i.id): i for i in store.iter_items()}
    jira = store.get_cursor("jira")
    if jira:
        limit = datetime.fromtimestamp(int(jira["updated_ms"]) / 1000, UTC)
        for ref, item in truth.items():
            if ref[0] == "jira" and item.updated_at < limit:
                got = have.get(ref)
                if got is None or got.updated_at != item.updated_at:
                    problems.append(f"jira cursor {limit} ahead of {item.key} ({item.updated_at})")
    github = store.get_cursor("github")
    for repo, entry in ((github or {}).get("repos") or {}).items():
        since = datetime.fromisoformat(str(entry["since"]).replace("Z", "+00:00"))
        for ref, item in truth.items():
            if ref[0] == "github" and item.container == repo and item.updated_at < since:
                got = have.get(ref)
                if got is None or got.updated_at != item.updated_at:
                    problems.append(f"github {repo} since {since} ahead of {item.key} ({item.updated_at})")
    return problems[:5]


def churn(org: Org, rng: random.Random) -> None:
    """A few changes between two runs, so every pass has something new to commit."""
    for _ in range(5):
        key = f"{rng.choice(['PLAT', 'MOB'])}-{rng.randint(2, 700)}"
        if org.jira.find(key) is not None:
            org.jira.control("update", {"key": key, "status": rng.choice(["Done", "In Progress", "To Do"])})
        repo = rng.choice(org.repos)
        numbers = list(org.github.repos[repo].issues)
        org.github.control("update", {"repo": repo, "number": rng.choice(numbers),
                                      "state": rng.choice(["open", "closed"])})


@pytest.fixture
def bench_org(tmp_path: Path) -> Iterator[Org]:
    repos = tuple(f"bench/repo-{i:02d}" for i in range(5))
    with sandbox_org(tmp_path, jira_scenario="bench", jira_size=1500, github_scenario="bench", github_size=1500,
                     repos=repos) as org:
        yield org


@pytest.mark.slow
def test_f19_kill_9_anywhere_never_corrupts_or_runs_ahead(bench_org: Org) -> None:
    org = bench_org
    folder = org.folder
    (folder / "okrs.yaml").write_text(org.config_text(), encoding="utf-8")
    rng = random.Random(CRASH_SEED)
    print(f"crash loop seed {CRASH_SEED} (set OKRSYNC_CRASH_SEED to replay)")
    db = f"sqlite:///{folder / 'okrsync.db'}"
    # One clean run to learn how long a full pass takes here; kills land anywhere inside it.
    began = time.monotonic()
    first = run(folder, "sync", "-c", "okrs.yaml", "--quiet", "--full")
    span = time.monotonic() - began
    assert first.returncode == 0, first.stderr
    killed = finished = 0
    for number in range(CRASH_RUNS):
        churn(org, rng)
        args = ["sync", "-c", "okrs.yaml", "--quiet"] + (["--full"] if rng.random() < 0.3 else [])
        delay = rng.uniform(0, span * 1.1)
        proc = start(folder, *args)
        try:
            try:
                proc.wait(timeout=delay)
                finished += 1
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                killed += 1
        finally:
            kill(proc)
        with Store.open(db) as store:
            assert store.quick_check(), f"run {number}: quick_check failed (seed {CRASH_SEED})"
            ahead = cursor_not_ahead(store, org)
            assert ahead == [], f"run {number} ({args}, killed after {delay:.2f}s): {ahead}"
    final = run(folder, "sync", "-c", "okrs.yaml", "--quiet")
    assert final.returncode == 0, final.stderr
    with Store.open(db) as store:
        assert store.quick_check() and store.leases() == []
        assert differences(store, org.truth()) == []
    assert killed >= CRASH_RUNS // 3, (killed, finished)


@pytest.fixture
def demo_org(tmp_path: Path) -> Iterator[Org]:
    with sandbox_org(tmp_path) as org:
        yield org


def test_f20_f21_sigterm_in_a_long_backoff_and_a_second_writer(demo_org: Org) -> None:
    org = demo_org
    folder = org.folder
    (folder / "okrs.yaml").write_text(org.config_text(schedule="{interval: 1h, deadline: 30m}"), encoding="utf-8")
    org.jira_server.inject(Fault(status=429, path="/rest/api/3/search", times=10**6, headers={"Retry-After": "300"}))
    log = folder / "daemon.log"
    daemon = start(folder, "daemon", "-c", "okrs.yaml", "--listen", "127.0.0.1:0", log=log)
    try:
        wait_until("the daemon's first 429", lambda: any(r.status == 429 for r in org.jira_server.requests()))
        time.sleep(0.3)  # now inside the 300 s wait
        # 21: a second writer waits (lock_wait), then refuses in one clear line.
        second = run(folder, "sync", "-c", "okrs.yaml", "--quiet", timeout=30)
        assert second.returncode == 1
        assert "a sync is already running" in second.stderr
        assert "database is locked" not in second.stderr and "Traceback" not in second.stderr
        status = run(folder, "status", "-c", "okrs.yaml")
        assert status.returncode == 0 and "held by" in status.stdout
        # 20: SIGTERM during the back-off: exit 0 within 10 s, lease released, store consistent.
        stopped_at = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=12)
        took = time.monotonic() - stopped_at
    finally:
        kill(daemon)
    assert code == 0 and took < 10, (code, took, log.read_text()[-2000:])
    with Store.open(f"sqlite:///{folder / 'okrsync.db'}") as store:
        assert store.quick_check()
        assert store.leases() == []
        assert store.get_cursor("jira") is None  # nothing of the interrupted source was committed as done
    org.jira_server.clear_faults()
    after = run(folder, "sync", "-c", "okrs.yaml", "--quiet")
    assert after.returncode == 0, after.stderr
    with Store.open(f"sqlite:///{folder / 'okrsync.db'}") as store:
        assert differences(store, org.truth()) == []


def test_f21_checkin_while_a_sync_writes_succeeds(bench_org: Org) -> None:
    org = bench_org
    folder = org.folder
    (folder / "okrs.yaml").write_text(org.config_text(manual=True), encoding="utf-8")
    sync = start(folder, "sync", "-c", "okrs.yaml", "--quiet", "--full", log=folder / "sync.log")
    results: list[subprocess.CompletedProcess[str]] = []
    try:
        wait_until("the store file", lambda: (folder / "okrsync.db").exists())
        for value in range(3):
            results.append(run(folder, "checkin", "-c", "okrs.yaml", "nps", str(35 + value), timeout=60))
        assert sync.wait(timeout=60) == 0, (folder / "sync.log").read_text()
    finally:
        kill(sync)
    for result in results:
        assert result.returncode == 0, result.stderr
        assert "locked" not in result.stderr
    with Store.open(f"sqlite:///{folder / 'okrsync.db'}") as store:
        assert [v for _, v, _ in store.checkins("nps")] == [35.0, 36.0, 37.0]
        assert differences(store, org.truth()) == []


def test_f29_an_exception_in_a_pass_does_not_stop_the_loop_and_passes_never_overlap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import syncer.sync as sync_module
    from syncer.daemon import Daemon

    env = write_memory_config(tmp_path)
    real = sync_module.run_once
    calls: list[tuple[float, float]] = []
    active = threading.Lock()

    def flaky(*args: Any, **kwargs: Any) -> Any:
        assert active.acquire(blocking=False), "two passes overlapped"
        started = time.monotonic()
        try:
            if not calls:
                calls.append((started, time.monotonic()))
                raise RuntimeError("boom in the first pass")
            time.sleep(1.2)  # longer than the 1 s interval: the next pass must wait for this one
            return real(*args, **kwargs)
        finally:
            if calls and calls[-1][0] != started:
                calls.append((started, time.monotonic()))
            active.release()

    monkeypatch.setattr(sync_module, "run_once", flaky)
    daemon = Daemon(env.config, interval=timedelta(seconds=1), listen=None)
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    try:
        wait_until("three passes", lambda: len(calls) >= 3, timeout=30)
    finally:
        daemon.request_stop()
        runner.join(timeout=15)
    assert not runner.is_alive()
    assert daemon.passes >= 3
    for (_, end), (start_next, _) in zip(calls, calls[1:], strict=False):
        assert start_next >= end  # scheduled from the end of the previous pass
    assert '"current"' in daemon.published.report_json  # a later pass published a report
