"""Several workers on one store: leases, takeover, lost leases, one snapshot per round.

The first tests drive ``run_once`` in this process (both dialects, via ``store``); the last one runs
three ``okrsync daemon --worker`` processes on one PostgreSQL store against both sandbox trackers
and kills one of them mid-pass.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.memory import MemoryConnector, MemoryRule, MemorySource
from syncer import sync as sync_module
from syncer.config import Config, Cycle, KeyResult, Objective
from syncer.errors import ConfigError
from syncer.model import ItemKind, Page, PlannedWrite, State, WorkItem
from syncer.results import compute_key_results
from syncer.store import Store
from syncer.sync import LEASE_TTL, LeaseLostError, SyncOptions, SyncResult, lease_ttl_from_env, run_once

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CYCLE = Cycle(name="2026-Q4", start=date(2026, 10, 1), end=date(2026, 12, 31))
OTHER = "otherhost:4242:feedbeef"
"""A worker on another host: only its lease's expiry can free what it holds."""


def item(source: str, n: int, state: State = State.TODO, **kw: Any) -> WorkItem:
    fields: dict[str, Any] = {
        "source": source, "id": f"{source}-{n}", "key": f"{source.upper()}-{n}", "title": f"item {n}",
        "url": f"https://example.test/{source}/{n}", "kind": ItemKind.ISSUE, "state": state,
        "updated_at": NOW - timedelta(days=1), "container": "P", "labels": ("x",),
    }
    if state is State.DONE:
        fields["done_at"] = NOW - timedelta(days=2)
    fields.update(kw)
    return WorkItem(**fields)


def config() -> Config:
    kr = KeyResult(id="both", title="Both trackers", metric="count_done", target=10,
                   match=(MemoryRule(source="jira", labels=("x",)), MemoryRule(source="github", labels=("x",))))
    return Config(cycle=CYCLE, sources={"jira": MemorySource(type="memory"), "github": MemorySource(type="memory")},
                  objectives=(Objective(id="o", title="O", key_results=(kr,)),))


class Paged:
    """A tracker that serves two pages (the second with the cursor) and can pause between them."""

    def __init__(self, name: str, items: Sequence[WorkItem], *, between: Callable[[], None] | None = None,
                 before: Callable[[], None] | None = None, fail: Exception | None = None) -> None:
        self.name, self.items = name, list(items)
        self.between, self.before, self.fail = between, before, fail
        self.fetches = 0

    @property
    def requests(self) -> int:
        return self.fetches

    def check(self) -> None:
        return None

    def fetch(self, cursor: Mapping[str, Any] | None, *, full: bool, census: bool,
              rules: Sequence[Any]) -> Iterator[Page]:
        self.fetches += 1
        if self.before:
            self.before()
        if self.fail:
            raise self.fail
        half = len(self.items) // 2
        yield Page(items=tuple(self.items[:half]))
        if self.between:
            self.between()
        yield Page(items=tuple(self.items[half:]), cursor={"since": "page-2"})

    def publish(self, write: PlannedWrite) -> None:
        return None


def factory(**connectors: Any) -> Callable[[str, Any, Any], Any]:
    defaults = {"jira": MemoryConnector("jira", [item("jira", n, State.DONE) for n in range(1, 5)]),
                "github": MemoryConnector("github", [item("github", n) for n in range(1, 4)])}
    defaults.update(connectors)
    return lambda name, _config, _context: defaults[name]


def sync(store: Store, make: Callable[[str, Any, Any], Any], *, at: datetime = NOW, **options: Any) -> SyncResult:
    options.setdefault("lease_ttl", timedelta(minutes=2))
    return run_once(config(), store, SyncOptions(**options), now=lambda: at, connector_factory=make)


def snapshot_runs(store: Store) -> set[int]:
    from sqlalchemy import select

    from syncer.store_schema import snapshots

    with store._read("test") as conn:
        return set(conn.scalars(select(snapshots.c.run_id)))


# -- configuration ---------------------------------------------------------------------------------


def test_lease_ttl_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OKRSYNC_LEASE_TTL", raising=False)
    assert lease_ttl_from_env() == LEASE_TTL == timedelta(minutes=2)
    monkeypatch.setenv("OKRSYNC_LEASE_TTL", "5s")
    assert lease_ttl_from_env() == timedelta(seconds=5)
    assert SyncOptions().lease_ttl == timedelta(seconds=5)
    monkeypatch.setenv("OKRSYNC_LEASE_TTL", "soon")
    with pytest.raises(ConfigError, match="OKRSYNC_LEASE_TTL: invalid duration 'soon'"):
        lease_ttl_from_env()


# -- who syncs what ----------------------------------------------------------------------------------


def test_a_worker_syncs_what_is_free_and_leaves_what_another_host_holds(store: Store) -> None:
    assert store.acquire_lease("source:jira", OTHER, timedelta(minutes=2), NOW)
    result = sync(store, factory(), skip_busy=True, worker="w1")
    assert result.skipped == ["jira"] and [o.name for o in result.outcomes] == ["github"]
    assert store.count_items("jira") == 0 and store.count_items("github") == 3
    assert [(lease["name"], lease["holder"]) for lease in store.leases()] == [("source:jira", OTHER)]


def test_an_expired_lease_of_another_host_is_taken_over(store: Store) -> None:
    assert store.acquire_lease("source:jira", OTHER, timedelta(minutes=2), NOW - timedelta(minutes=3))
    result = sync(store, factory(), skip_busy=True, worker="w1")
    assert [o.name for o in result.outcomes] == ["jira", "github"] and result.skipped == []
    assert store.count_items("jira") == 4
    assert store.leases() == [], "released at the end of each source"


def test_a_dead_process_on_this_host_frees_its_lease_at_once(store: Store) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    dead = f"{socket.gethostname()}:{child.pid}:0badc0de"
    assert store.acquire_lease("source:jira", dead, timedelta(minutes=2), NOW)  # far from expiry
    result = sync(store, factory(), skip_busy=True, worker="w1")
    assert [o.name for o in result.outcomes] == ["jira", "github"]
    assert store.count_items("jira") == 4


def test_a_source_synced_recently_by_any_worker_is_not_synced_again(store: Store) -> None:
    first = sync(store, factory(), skip_busy=True, worker="w1", fresh_for=timedelta(minutes=10))
    assert [o.name for o in first.outcomes] == ["jira", "github"]
    second = sync(store, factory(), at=NOW + timedelta(minutes=5), skip_busy=True, worker="w2",
                  fresh_for=timedelta(minutes=10))
    assert (second.run_id, second.outcomes) == (0, []), "nothing due: no run, no snapshot"
    assert len(store.last_runs()) == 1
    third = sync(store, factory(), at=NOW + timedelta(minutes=11), skip_busy=True, worker="w2",
                 fresh_for=timedelta(minutes=10))
    assert [o.name for o in third.outcomes] == ["jira", "github"]


# -- leases during a source ---------------------------------------------------------------------------


def test_a_worker_that_lost_its_lease_writes_no_further_page_and_no_cursor(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lease expires during a stalled fetch and another worker takes the source: the stalled
    worker's next page and its cursor are refused inside their transaction."""
    monkeypatch.setattr(sync_module, "_WRITE_BATCH", 1)  # every page its own write, as a big page is
    def stall() -> None:  # what a frozen worker looks like to the others: its lease runs out
        store.release_lease("source:jira", "w1")
        assert store.acquire_lease("source:jira", "thief", timedelta(minutes=2), NOW)

    jira = Paged("jira", [item("jira", n) for n in range(1, 7)], between=stall)
    result = sync(store, factory(jira=jira), skip_busy=True, worker="w1")
    assert result.skipped == ["jira"] and [o.name for o in result.outcomes] == ["github"]
    assert sorted(i.id for i in store.iter_items("jira")) == ["jira-1", "jira-2", "jira-3"], "page 1 only"
    assert store.get_cursor("jira") is None, "the cursor never moved"
    assert "jira" not in store.source_status(), "no success and no failure recorded for jira"
    assert [(lease["name"], lease["holder"]) for lease in store.leases()] == [("source:jira", "thief")]
    [run] = store.last_runs(1)
    assert run["detail"]["skipped"] == ["jira"] and [s["name"] for s in run["detail"]["sources"]] == ["github"]


def test_a_single_pass_that_lost_its_lease_fails_that_source_without_writing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sync_module, "_WRITE_BATCH", 1)  # every page its own write, as a big page is
    def steal() -> None:
        store.release_lease("source:jira", "w1")
        assert store.acquire_lease("source:jira", "thief", timedelta(minutes=2), NOW)

    jira = Paged("jira", [item("jira", n) for n in range(1, 5)], between=steal)
    result = sync(store, factory(jira=jira), worker="w1")  # okrsync sync: all leases up front
    assert result.skipped == ["jira"] and store.get_cursor("jira") is None
    assert store.count_items("jira") == 2


def test_the_lease_is_renewed_while_a_slow_fetch_runs(store: Store) -> None:
    """TTL 1 s; the fetch waits (bounded) until it has seen the lease's expiry move twice."""
    seen: list[datetime] = []

    def slow() -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(set(seen)) < 3:
            seen.extend(lease["expires_at"] for lease in store.leases() if lease["name"] == "source:jira")
            time.sleep(0.05)

    clock = {"at": NOW}

    def now() -> datetime:  # a clock that moves, so each renewal writes a new expiry
        clock["at"] += timedelta(milliseconds=10)
        return clock["at"]

    jira = Paged("jira", [item("jira", n) for n in range(1, 5)], before=slow)
    result = run_once(config(), store, SyncOptions(skip_busy=True, worker="w1", lease_ttl=timedelta(seconds=1)),
                      now=now, connector_factory=factory(jira=jira))
    assert len(set(seen)) >= 3, "renewed at least twice during the fetch"
    assert [o.ok for o in result.outcomes] == [True, True] and store.count_items("jira") == 4
    assert store.leases() == []


@pytest.mark.parametrize("skip_busy", [True, False])
def test_leases_are_released_when_a_source_crashes(store: Store, skip_busy: bool) -> None:
    jira = Paged("jira", [], fail=RuntimeError("connector bug"))
    result = sync(store, factory(jira=jira), skip_busy=skip_busy, worker="w1")
    assert [(o.name, o.ok) for o in result.outcomes] == [("jira", False), ("github", True)]
    assert store.leases() == []
    assert store.source_status()["jira"]["last_error"] == "unexpected RuntimeError: connector bug"


def test_lease_lost_error_is_a_source_error() -> None:
    assert LeaseLostError("jira", "lost").message == "lost"


# -- one snapshot per round -----------------------------------------------------------------------------


def test_two_workers_in_one_round_write_one_snapshot(store: Store) -> None:
    """w1 syncs github while w2 holds jira; then w2 syncs jira in the same window: two runs, one
    snapshot. The next window gets its own snapshot."""
    window = timedelta(minutes=8)
    assert store.acquire_lease("source:jira", "w2", timedelta(minutes=2), NOW)
    one = sync(store, factory(), skip_busy=True, worker="w1", snapshot_window=window)
    store.release_lease("source:jira", "w2")
    two = sync(store, factory(), at=NOW + timedelta(minutes=1), skip_busy=True, worker="w2",
               sources=("jira",), snapshot_window=window)
    assert one.run_id and two.run_id and one.run_id != two.run_id
    assert snapshot_runs(store) == {one.run_id}
    three = sync(store, factory(), at=NOW + timedelta(minutes=9), skip_busy=True, worker="w2",
                 snapshot_window=window)
    assert snapshot_runs(store) == {one.run_id, three.run_id}
    assert store.latest_snapshots()["both"]["current"] == 4, "the newest snapshot has both sources"


def test_write_snapshots_once_lets_one_of_two_racing_workers_through(store_url: str) -> None:
    run_ids: list[int] = []
    with Store.open(store_url) as setup:
        for name in ("a", "b"):
            run_ids.append(setup.begin_run(NOW, full=False, dry_run=False, worker=name))
        krs = list(compute_key_results(config(), setup, NOW).values())
    barrier = threading.Barrier(2, timeout=30)
    wrote: list[bool] = []

    def worker(run_id: int) -> None:
        with Store.open(store_url) as store:
            barrier.wait()
            wrote.append(store.write_snapshots_once(run_id, NOW, krs, {}, timedelta(minutes=5)))

    threads = [threading.Thread(target=worker, args=(r,)) for r in run_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(wrote) == [False, True]
    with Store.open(store_url) as store:
        assert len(snapshot_runs(store)) == 1


# -- three daemons, one PostgreSQL store, both sandbox trackers -------------------------------------------

JIRA_EMAIL, JIRA_TOKEN, GITHUB_TOKEN = "workers@example.com", "workers-jira-token", "workers-github-token"
REPOS = tuple(f"bench/repo-{i:02d}" for i in range(4))
SIZE = 1200
TTL_S = 5.0


def sandbox_config(jira_url: str, github_url: str, now: datetime, store_url: str) -> str:
    from syncer.sandbox.github import cycle_of

    name, start, end = cycle_of(now)
    return f"""\
version: 1
cycle: {{name: {name}, start: {start.isoformat()}, end: {end.isoformat()}}}
store: {store_url}
schedule: {{interval: 1s, jitter: 0.1s, census_every: 1d, full_every: 1d, deadline: 1m}}
sources:
  jira:
    type: jira
    url: {jira_url}
    auth: {{email: "${{W_JIRA_EMAIL}}", token: "${{W_JIRA_TOKEN}}"}}
    scope: project in (PLAT, MOB)
  github:
    type: github
    url: {github_url}
    token: "${{W_GITHUB_TOKEN}}"
    repos: [{", ".join(REPOS)}]
objectives:
  - id: ship
    title: Ship the quarter's work
    key_results:
      - {{id: perf-points, title: Performance points, metric: sum_points_done, target: 200,
          match: [{{source: jira, jql: labels = perf}}]}}
      - {{id: mobile-done, title: Mobile work, metric: percent_done, match: [{{source: jira, jql: project = MOB}}]}}
      - {{id: bugs-closed, title: Customer bugs, metric: count_done, target: 100,
          match: [{{source: github, labels: [bug]}}]}}
"""


def worker_env(home: Path) -> dict[str, str]:
    from tests.conftest import clean_env

    return clean_env(home, OKRSYNC_LEASE_TTL=f"{TTL_S:g}s", W_JIRA_EMAIL=JIRA_EMAIL, W_JIRA_TOKEN=JIRA_TOKEN,
                     W_GITHUB_TOKEN=GITHUB_TOKEN)


@dataclass
class Interval:
    source: str
    worker: str
    start: float
    end: float | None = None
    lost: bool = False


def intervals(logs: Sequence[Path]) -> list[Interval]:
    """Each worker's ``source sync started/finished`` lines, paired per source."""
    found: list[Interval] = []
    for path in logs:
        open_: dict[str, Interval] = {}
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            entry = json.loads(line)
            if str(entry.get("message", "")).startswith("source sync started"):
                open_[entry["source"]] = Interval(entry["source"], entry["worker"], float(entry["t"]))
            elif str(entry.get("message", "")).startswith("source sync finished"):
                span = open_.pop(entry["source"])
                span.end, span.lost = float(entry["t"]), bool(entry.get("lost"))
                found.append(span)
        found.extend(open_.values())  # a killed worker's last source never finished
    return found


def wait_for(what: str, check: Callable[[], Any], deadline: float, step: float = 0.1) -> Any:
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.postgres
@pytest.mark.slow
def test_three_workers_share_the_sources_survive_a_kill_and_end_at_the_truth(tmp_path: Path) -> None:
    from syncer.config import load
    from syncer.sandbox.github import start_github_sandbox
    from syncer.sandbox.jira import start_jira_sandbox
    from syncer.sandbox.server import Fault
    from tests.store_fixtures import fresh_postgres_url

    began = time.monotonic()
    deadline = began + 85
    now = datetime.now(UTC)
    jira_server, jira = start_jira_sandbox("bench", size=SIZE, now=now, seed=9, users={JIRA_EMAIL: JIRA_TOKEN})
    github_server, github = start_github_sandbox("bench", size=SIZE, now=now, seed=9, repos=REPOS,
                                                 tokens=(GITHUB_TOKEN,))
    github.rate_limit = 10**6
    github.control("quota", {"limit": 10**6, "remaining": 10**6})
    slow = [Fault(kind="slow", delay=0.25, times=10**6, probability=0.6)]
    jira_server.inject(*slow)
    github_server.inject(*slow)
    procs: dict[int, subprocess.Popen[bytes]] = {}
    logs: list[Path] = []
    home = tmp_path / "home"
    home.mkdir()
    try:
        with fresh_postgres_url() as url, fresh_postgres_url() as fresh_url:
            config_path = tmp_path / "okrs.yaml"
            config_path.write_text(sandbox_config(jira_server.url, github_server.url, now, url), encoding="utf-8")
            Store.open(url).close()  # migrate once up front, so three first opens do not race for it
            for n in range(3):
                log_path = tmp_path / f"worker{n}.log"
                logs.append(log_path)
                with log_path.open("wb") as log:
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "syncer", "daemon", "-c", str(config_path), "--worker",
                         "--interval", "1s", "--listen", f"127.0.0.1:{free_port()}"],
                        cwd=tmp_path, env=worker_env(home), stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL, stderr=log,
                    )
                procs[proc.pid] = proc
            with Store.open(url) as store:
                # 1. Kill -9 a worker while it holds a lease (mid-pass), after it has written a page.
                def held() -> dict[str, Any] | None:
                    for lease in store.leases():
                        pid = int(str(lease["holder"]).split(":")[1])
                        if pid in procs and store.count_items(lease["name"].split(":", 1)[1]) > 0:
                            return lease
                    return None

                victim_lease = wait_for("a worker holding a lease mid-pass", held, deadline)
                victim_source = victim_lease["name"].split(":", 1)[1]
                victim_pid = int(str(victim_lease["holder"]).split(":")[1])
                victim = procs.pop(victim_pid)
                victim.send_signal(signal.SIGKILL)
                victim.wait(timeout=10)
                killed_at = time.time()
                # 2. Within the lease timeout, another worker takes the source over and syncs it.
                def taken_over() -> bool:
                    row = store.source_status().get(victim_source, {})
                    done = row.get("last_success_at")
                    return done is not None and done.timestamp() > killed_at
                wait_for(f"{victim_source} synced by another worker", taken_over, deadline)
                took = next(i for i in sorted(intervals(logs), key=lambda i: i.start)
                            if i.source == victim_source and i.start > killed_at)
                assert str(victim_pid) not in took.worker.split(":")
                assert took.start - killed_at < TTL_S, "a dead process's lease is freed without waiting"
                # 3. Changes keep coming while the two survivors sync; then the trackers go quiet.
                for n in range(6):
                    jira.control("update", {"key": f"PLAT-{n + 3}", "status": "Done"})
                    github.control("update", {"repo": REPOS[n % len(REPOS)], "number": n + 2, "state": "closed",
                                              "state_reason": "completed"})
                    time.sleep(0.3)
                jira_server.clear_faults()
                github_server.clear_faults()
                quiet = datetime.now(UTC)

                def synced_after(moment: datetime) -> bool:
                    status = store.source_status()
                    return all((status.get(s, {}).get("last_success_at") or moment) > moment
                               for s in ("jira", "github"))

                wait_for("a pass of each source after the last change", lambda: synced_after(quiet), deadline)
                second = datetime.now(UTC)
                wait_for("one more pass of each source", lambda: synced_after(second), deadline)
                for proc in procs.values():
                    proc.send_signal(signal.SIGTERM)
                codes = [proc.wait(timeout=15) for proc in procs.values()]
                assert codes == [0, 0]
                assert store.leases() == [], "every lease released on the way out"
                # 4. The store equals the trackers' truth; the numbers equal a fresh full sync.
                expected = {(i.source, i.id): i for i in [*jira.truth("jira", jira_server.url),
                                                          *github.truth("github", repos=REPOS)]}
                actual = {(i.source, i.id): i for i in store.iter_items()}
                assert len(expected) > 2 * SIZE * 0.9 and set(actual) == set(expected)
                diff = [ref for ref, want in expected.items()
                        if (actual[ref].key, actual[ref].state, actual[ref].points, sorted(actual[ref].labels))
                        != (want.key, want.state, want.points, sorted(want.labels))]
                assert diff == []
                config = load(config_path, env=worker_env(home))
                at = datetime.now(UTC)
                shared = {k: (v.current, v.tally.total, v.tally.done)
                          for k, v in compute_key_results(config, store, at).items()}
                spans = intervals(logs)
                snapshot_times = sorted({s["at"] for s in _all_snapshots(store)})
            with Store.open(fresh_url) as fresh:
                assert run_once(config, fresh, SyncOptions(full=True)).exit_code == 0
                alone = {k: (v.current, v.tally.total, v.tally.done)
                         for k, v in compute_key_results(config, fresh, at).items()}
            assert shared == alone
        # 5. No source was ever synced by two workers at once; the work was shared.
        for source in ("jira", "github"):
            mine = sorted((i for i in spans if i.source == source), key=lambda i: i.start)
            for before, after in zip(mine, mine[1:], strict=False):
                end = before.end if before.end is not None else killed_at
                assert after.start >= end, f"{source}: {before} overlaps {after}"
        assert len({i.worker for i in spans}) == 3 and not any(i.lost for i in spans)
        # 6. One snapshot per round: no two within the 0.8 s window of a 1 s interval.
        gaps = [(b - a).total_seconds() for a, b in zip(snapshot_times, snapshot_times[1:], strict=False)]
        assert snapshot_times and min(gaps, default=1.0) >= 0.8
        assert time.monotonic() - began < 90
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        jira_server.stop()
        github_server.stop()


def _all_snapshots(store: Store) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from syncer.store_schema import snapshots

    with store._read("test") as conn:
        return [dict(r) for r in conn.execute(select(snapshots.c.run_id, snapshots.c.at)).mappings()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_two_workers_rematching_after_a_rules_change_do_not_collide(store_url: str) -> None:
    """Both see a new rules hash at once: one recomputes the matches, the other waits and leaves."""
    from syncer.matching import build_index, compile_rules
    from syncer.sync import _rematch_if_rules_changed

    with Store.open(store_url) as setup:
        for start in range(0, 3000, 500):
            setup.write_page("jira", [item("jira", n) for n in range(start, start + 500)], {}, None, NOW)
    index = build_index(compile_rules(config()))
    barrier = threading.Barrier(2, timeout=30)
    errors: list[BaseException] = []

    def rematch() -> None:
        try:
            with Store.open(store_url) as store:
                barrier.wait()
                _rematch_if_rules_changed(config(), store, index)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=rematch) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    with Store.open(store_url) as store:
        assert len(store.kr_item_states("both")) == 3000, "every item (label x) matched once"
        assert sum(len(m) for m in store.item_matches("jira", [f"jira-{n}" for n in range(3000)]).values()) == 3000
