"""Several workers on one store: leases, takeover, lost leases, one snapshot per round.

The first tests drive ``run_once`` in this process (both dialects, via ``store``); the last one runs
three ``okrsync daemon --worker`` processes on one PostgreSQL store against both sandbox trackers
and kills one of them mid-pass.
"""

from __future__ import annotations

import json
import os
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


def test_a_worker_that_lost_its_lease_writes_no_further_page_and_no_cursor(store: Store) -> None:
    """The lease expires during a stalled fetch and another worker takes the source: the stalled
    worker's next page and its cursor are refused inside their transaction."""
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


def test_a_single_pass_that_lost_its_lease_fails_that_source_without_writing(store: Store) -> None:
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
        for worker in ("a", "b"):
            run_ids.append(setup.begin_run(NOW, full=False, dry_run=False, worker=worker))
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
