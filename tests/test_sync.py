"""run_once against in-memory connectors: isolation, staleness, census, dry-run, write-back, lock."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.memory import MemoryConnector, MemoryPublish, MemoryRule, MemorySource
from syncer.config import Config, Cycle, KeyResult, Objective, Unaligned
from syncer.errors import SyncBusyError, TransientError
from syncer.model import ItemKind, Page, State, WorkItem
from syncer.store import Store
from syncer.sync import SyncOptions, run_once

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CYCLE = Cycle(name="2026-Q4", start=date(2026, 10, 1), end=date(2026, 12, 31))


def item(source: str, n: int, state: State = State.TODO, **kw: object) -> WorkItem:
    fields: dict[str, object] = {
        "source": source, "id": f"{source}-{n}", "key": f"{source.upper()}-{n}", "title": f"item {n}",
        "url": f"https://example.test/{source}/{n}", "kind": ItemKind.ISSUE, "state": state,
        "updated_at": NOW - timedelta(days=1), "container": "P",
    }
    if state is State.DONE:
        fields["done_at"] = NOW - timedelta(days=2)
    fields.update(kw)
    return WorkItem(**fields)  # type: ignore[arg-type]


def config(label: str | None = None, publish: bool = False) -> Config:
    jira_kr = KeyResult(
        id="jira-epic", title="Epic work", metric="percent_done",
        match=(MemoryRule(source="jira", parent="EP-1"),),
        publish=(MemoryPublish(source="jira", issue="OKR-1", field="progress"),) if publish else (),
    )
    gh_kr = KeyResult(
        id="gh-bugs", title="Close bugs", metric="count_done", target=4,
        match=(MemoryRule(source="github", labels=("bug",)),),
    )
    both = KeyResult(
        id="both", title="Both trackers", metric="percent_done",
        match=(MemoryRule(source="jira", labels=("x",)), MemoryRule(source="github", labels=("x",))),
    )
    return Config(
        cycle=CYCLE,
        sources={"jira": MemorySource(type="memory"), "github": MemorySource(type="memory")},
        objectives=(Objective(id="o", title="O", key_results=(jira_kr, gh_kr, both)),),
        unaligned=Unaligned(ignore_labels=("chore",), label=label),
    )


class Trackers:
    """Two in-memory trackers whose connectors survive between passes (like real trackers)."""

    def __init__(self) -> None:
        self.jira = MemoryConnector("jira", [
            item("jira", 1, State.DONE, parent_key="EP-1"),
            item("jira", 2, State.IN_PROGRESS, parent_key="EP-1"),
            item("jira", 3, parent_key="EP-1"),
            item("jira", 4, State.DONE, parent_key="EP-1", excluded=True),
            item("jira", 5, labels=("x",)),
            item("jira", 6),  # unaligned
            item("jira", 7, labels=("chore",)),  # ignored
        ])
        self.github = MemoryConnector("github", [
            item("github", 1, State.DONE, labels=("bug",)),
            item("github", 2, State.DONE, labels=("bug",), done_at=datetime(2026, 9, 1, tzinfo=UTC)),
            item("github", 3, labels=("bug",)),
            item("github", 4, State.DONE, labels=("x",)),
            item("github", 5),  # unaligned
        ])

    def factory(self, name: str, _config: object, _context: object) -> MemoryConnector:
        return self.jira if name == "jira" else self.github


@pytest.fixture
def store(tmp_path: Path):
    with Store.open(f"sqlite:///{tmp_path / 'okrsync.db'}") as opened:
        yield opened


def sync(cfg: Config, store: Store, trackers: Trackers, **options: object):
    return run_once(cfg, store, SyncOptions(**options), now=lambda: NOW,  # type: ignore[arg-type]
                    connector_factory=trackers.factory)


def test_a_pass_computes_every_key_result_from_both_trackers(store: Store) -> None:
    trackers = Trackers()
    result = sync(config(), store, trackers, full=True)
    assert result.exit_code == 0
    assert [o.fetched for o in result.outcomes] == [7, 5]
    latest = store.latest_snapshots()
    assert latest["jira-epic"]["current"] == pytest.approx(100 / 3)  # 1 of 3 (won't-do left out)
    assert latest["gh-bugs"]["current"] == 1  # the bug closed before the cycle does not count
    assert latest["both"]["current"] == 50  # github-4 done, jira-5 open
    unaligned = {i.key for i in store.unaligned(CYCLE.starts_at, CYCLE.ends_at, ("chore",))}
    assert unaligned == {"JIRA-6", "GITHUB-5"}


def test_a_first_sync_builds_the_deferred_index_even_when_a_source_fails(store: Store) -> None:
    from sqlalchemy import inspect

    trackers = Trackers()
    seen: list[bool] = []
    real = trackers.github.fetch

    def watching(*args: Any, **kwargs: Any) -> Iterator[Page]:
        with store._read("list indexes") as conn:
            seen.append(any(ix["name"] == "ix_items_updated" for ix in inspect(conn).get_indexes("items")))
        yield from real(*args, **kwargs)

    trackers.github.fetch = watching  # type: ignore[method-assign]
    trackers.jira.fail = TransientError("jira", "HTTP 502 from jira.example.test; gave up after 5 attempts")
    result = sync(config(), store, trackers, full=True)
    assert result.exit_code == 1 and seen == [False], "the index was left out while the sources wrote"
    with store._read("list indexes") as conn:
        assert "ix_items_updated" in {ix["name"] for ix in inspect(conn).get_indexes("items")}
    assert store.get_meta("indexes_deferred") is None
    assert {i.key for i in store.unaligned(CYCLE.starts_at, CYCLE.ends_at, ("chore",))} == {"GITHUB-5"}


def test_the_next_pass_builds_indexes_a_dead_first_sync_left_out(store: Store) -> None:
    from sqlalchemy import inspect

    assert store.defer_indexes_if_empty()
    store.write_page("jira", [item("jira", 1)], {}, None, NOW)  # ... and then the process died
    result = sync(config(), store, Trackers())
    assert result.exit_code == 0 and not store.deferred_indexes_left()
    with store._read("list indexes") as conn:
        assert "ix_items_updated" in {ix["name"] for ix in inspect(conn).get_indexes("items")}


def test_a_failing_source_keeps_its_numbers_stale_and_the_other_source_syncs(store: Store) -> None:
    trackers = Trackers()
    sync(config(), store, trackers, full=True)
    trackers.jira.items = [i._replace(state=State.DONE, done_at=NOW) for i in trackers.jira.items]
    trackers.jira.fail = TransientError("jira", "HTTP 502 from jira.example.test; gave up after 5 attempts")
    trackers.github.items.append(item("github", 6, State.DONE, labels=("bug",), updated_at=NOW))
    result = sync(config(), store, trackers)
    assert result.exit_code == 1
    jira, github = result.outcomes
    assert not jira.ok and "HTTP 502" in (jira.error or "")
    assert github.ok and github.fetched >= 1
    latest = store.latest_snapshots()
    assert latest["jira-epic"]["current"] == pytest.approx(100 / 3), "the failed source's KR kept its value"
    assert latest["jira-epic"]["stale"]
    assert latest["both"]["stale"], "a KR fed by a failed source is stale even if the other source synced"
    assert latest["gh-bugs"]["current"] == 2 and not latest["gh-bugs"]["stale"]
    assert store.count_items("jira") == 7, "nothing of the failed source was dropped"
    keys = {i.key for i in store.unaligned(CYCLE.starts_at, CYCLE.ends_at, ("chore",), exclude_sources={"jira"})}
    assert keys == {"GITHUB-5"}


def test_cursor_does_not_move_when_the_source_fails(store: Store) -> None:
    trackers = Trackers()
    sync(config(), store, trackers, full=True)
    before = store.get_cursor("jira")
    trackers.jira.items.append(item("jira", 9, updated_at=NOW + timedelta(hours=1)))
    trackers.jira.fail = TransientError("jira", "boom")
    sync(config(), store, trackers)
    assert store.get_cursor("jira") == before


def test_census_retires_vanished_items_but_a_mass_disappearance_fails_the_source(store: Store) -> None:
    trackers = Trackers()
    sync(config(), store, trackers, full=True)
    trackers.jira.items = [i for i in trackers.jira.items if i.id != "jira-3"]
    result = sync(config(), store, trackers, full=True)
    assert result.outcomes[0].ok and result.outcomes[0].retired == 1
    assert store.latest_snapshots()["jira-epic"]["current"] == 50  # 1 of 2 now
    trackers.jira.items += [item("jira", n) for n in range(10, 16)]
    sync(config(), store, trackers, full=True)
    trackers.jira.items = trackers.jira.items[:1]  # 11 of 12 vanish at once: visibility lost, not deletion
    result = sync(config(), store, trackers, full=True)
    assert not result.outcomes[0].ok and "visibility lost" in (result.outcomes[0].error or "")
    assert store.count_items("jira") == 12
    assert store.latest_snapshots()["jira-epic"]["stale"]


def test_a_first_sync_into_an_empty_store_compares_no_census_and_the_next_full_pass_does(store: Store) -> None:
    trackers = Trackers()
    calls: list[tuple[str, int]] = []
    real = store.retire_missing

    def watching(source: str, seen_ids: Any, now: datetime, **kwargs: Any) -> int:
        calls.append((source, len(seen_ids)))
        return real(source, seen_ids, now, **kwargs)

    store.retire_missing = watching  # type: ignore[method-assign]
    result = sync(config(), store, trackers, full=True)
    assert result.exit_code == 0 and calls == [], "every stored item was written, and seen, by this pass"
    assert [o.retired for o in result.outcomes] == [0, 0] and store.count_items("jira") == 7
    trackers.jira.items = [i for i in trackers.jira.items if i.id != "jira-3"]
    result = sync(config(), store, trackers, full=True)
    assert sorted(calls) == [("github", 5), ("jira", 6)]
    assert result.outcomes[0].retired == 1 and store.latest_snapshots()["jira-epic"]["current"] == 50


def test_an_incremental_pass_into_an_empty_store_still_compares_its_census(store: Store) -> None:
    # A store can be empty and still hold a cursor (the first pass found nothing). The next pass
    # is then incremental, and its census is taken apart from the changes (Jira: after them): an
    # item that left the scope in between must still be retired (a review finding).
    class CensusAfterTheChanges(MemoryConnector):
        def fetch(self, cursor: Any, *, full: bool, census: bool, rules: Any) -> Iterator[Page]:
            for page in super().fetch(cursor, full=full, census=census, rules=rules):
                if page.census is not None:
                    page = Page(items=page.items, cursor=page.cursor, census=page.census - {"jira-3"})
                yield page

    trackers = Trackers()
    trackers.jira, trackers.github.items = CensusAfterTheChanges("jira", []), []
    assert sync(config(), store, trackers, full=True).exit_code == 0
    assert store.count_items("jira") == 0 and store.get_cursor("jira") is not None
    trackers.jira.items = [item("jira", n) for n in (1, 2, 3)]
    result = sync(config(), store, trackers, census=True)
    assert [o.retired for o in result.outcomes] == [1, 0] and store.count_items("jira") == 2


def test_a_first_pass_rebuilds_history_from_the_day_groups_read_with_the_snapshot_maps(store: Store) -> None:
    from syncer.backfill import reconstruct_days

    trackers = Trackers()
    trackers.github.items = [
        i._replace(created_at=NOW - timedelta(days=n * 10)) for n, i in enumerate(trackers.github.items)
    ]
    rebuilt: dict[str, Any] = {}
    separate_reads: list[list[str]] = []
    real_days = store.kr_item_days
    real_write = store.write_backfill
    store.kr_item_days = lambda ids: separate_reads.append(list(ids)) or real_days(ids)  # type: ignore[method-assign]
    store.write_backfill = lambda kr_id, points: rebuilt.update({kr_id: list(points)}) or real_write(kr_id, points)  # type: ignore[method-assign]
    cfg = config()
    assert sync(cfg, store, trackers, full=True).exit_code == 0
    assert separate_reads == [], "the day groups came with the snapshot's maps"
    assert set(rebuilt) == {"jira-epic", "gh-bugs", "both"}
    for kr_id, points in rebuilt.items():
        kr = cfg.key_result(kr_id)
        assert kr is not None
        assert points == reconstruct_days(kr[1], real_days([kr_id]).get(kr_id, []), CYCLE, NOW)
    assert any(p.current > 0 for p in rebuilt["jira-epic"]), "a history with something in it"
    assert [p.total for p in rebuilt["gh-bugs"]][::7][:4] == [0, 0, 0, 0] and rebuilt["gh-bugs"][-1].total == 2
    rebuilt.clear()
    sync(cfg, store, trackers)
    assert rebuilt == {} and separate_reads == [], "a key result's history is rebuilt on its first pass only"


def test_dry_run_writes_nothing_to_the_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'okrsync.db'}"
    trackers = Trackers()
    with Store.open(url) as store:
        sync(config(), store, trackers, full=True)
        store.checkpoint()
    db = tmp_path / "okrsync.db"
    before = db.read_bytes()
    trackers.github.items.append(item("github", 7, State.DONE, labels=("bug",), updated_at=NOW))
    with Store.open(url, dry_run=True) as store:
        result = sync(config(publish=True), store, trackers, dry_run=True)
        assert result.changes["gh-bugs"].after == 2, "the plan shows the change"
        assert any(w.target == "OKR-1:progress" for w in result.writes)
    assert trackers.jira.written == [], "dry-run makes no write-back"
    assert db.read_bytes() == before
    with Store.open(url) as store:
        assert len(store.last_runs(10)) == 1
        assert store.latest_snapshots()["gh-bugs"]["current"] == 1


def test_write_back_is_idempotent(store: Store) -> None:
    trackers = Trackers()
    cfg = config(label="okr-unaligned", publish=True)
    first = sync(cfg, store, trackers, full=True)
    kinds = sorted((w.source, w.kind, w.target) for w in first.writes)
    assert ("jira", "field", "OKR-1:progress") in kinds
    assert ("jira", "add_label", "JIRA-6") in kinds and ("github", "add_label", "GITHUB-5") in kinds
    written = len(trackers.jira.written) + len(trackers.github.written)
    assert written == len(first.writes) == 3
    second = sync(cfg, store, trackers)
    assert second.writes == [], "a pass that changed nothing writes nothing"
    # JIRA-6 joins the epic: its label comes off, the KR's field value changes
    trackers.jira.items = [i._replace(parent_key="EP-1", updated_at=NOW) if i.id == "jira-6" else i
                           for i in trackers.jira.items]
    third = sync(cfg, store, trackers)
    assert sorted((w.kind, w.target) for w in third.writes) == [("field", "OKR-1:progress"),
                                                               ("remove_label", "JIRA-6")]


def test_a_failed_write_is_reported_and_retried_next_pass(store: Store) -> None:
    trackers = Trackers()

    def broken(write: object) -> None:
        raise TransientError("jira", "HTTP 503 on PUT /rest/api/3/issue/OKR-1")

    trackers.jira.publish = broken  # type: ignore[method-assign]
    first = sync(config(publish=True), store, trackers, full=True)
    assert first.exit_code == 1 and "OKR-1" in first.write_errors[0]
    assert store.latest_snapshots()["jira-epic"]["current"] == pytest.approx(100 / 3), "values kept"
    trackers.jira.publish = trackers.jira.written.append  # type: ignore[method-assign]
    second = sync(config(publish=True), store, trackers)
    assert [w.target for w in second.writes] == ["OKR-1:progress"]


def test_a_second_pass_waits_then_says_a_sync_is_running(store: Store) -> None:
    trackers = Trackers()
    assert store.acquire_lease("source:jira", "otherhost:1:abc", timedelta(minutes=2), NOW)
    with pytest.raises(SyncBusyError, match="already running for source jira"):
        sync(config(), store, trackers, lock_wait=0.3)
    assert store.acquire_lease("source:github", "me", timedelta(minutes=2), NOW), "nothing left held"


def test_workers_skip_sources_another_worker_holds(store: Store) -> None:
    trackers = Trackers()
    assert store.acquire_lease("source:jira", "otherhost:1:abc", timedelta(minutes=2), NOW)
    result = sync(config(), store, trackers, skip_busy=True, full=True)
    assert result.skipped == ["jira"] and [o.name for o in result.outcomes] == ["github"]


def test_stop_event_ends_the_pass_before_the_next_source(store: Store) -> None:
    trackers = Trackers()
    stop = threading.Event()
    stop.set()
    result = sync(config(), store, trackers, stop=stop)
    assert result.outcomes == []


def test_a_child_named_by_key_under_a_matched_item_is_not_unaligned(store: Store) -> None:
    """CONTRACT §3: unaligned means no key result matches it directly or through its parent."""
    trackers = Trackers()
    trackers.jira.items.append(item("jira", 30, parent_key="JIRA-5"))  # JIRA-5 serves KR "both" (label x)
    sync(config(), store, trackers, full=True)
    keys = {i.key for i in store.unaligned(CYCLE.starts_at, CYCLE.ends_at, ("chore",))}
    assert "JIRA-30" not in keys and "JIRA-6" in keys


class _FailsAfterPages:
    """Serves ``pages`` pages of ``size`` items without a cursor, then fails (a 502 mid-fetch)."""

    def __init__(self, pages: int, size: int) -> None:
        self.pages, self.size, self.requests = pages, size, 0

    def fetch(self, cursor: object, *, full: bool, census: bool, rules: object) -> Iterator[Page]:
        for p in range(self.pages):
            self.requests += 1
            yield Page(items=tuple(item("jira", p * self.size + n) for n in range(self.size)))
        raise TransientError("jira", "HTTP 502 after the pages")

    def publish(self, write: object) -> None:
        return None


def test_pages_fetched_before_a_failure_are_kept_and_written_in_batches(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages are buffered up to ``_WRITE_BATCH`` items per transaction; a source failing mid-fetch
    still keeps every page it fetched (at-least-once), and its cursor stays."""
    import syncer.sync as sync_module

    writes: list[int] = []
    original = Store.write_page

    def counting(self: Store, source: str, items: Sequence[WorkItem], *args: Any, **kw: Any) -> None:
        writes.append(len(items))
        return original(self, source, items, *args, **kw)

    monkeypatch.setattr(Store, "write_page", counting)
    monkeypatch.setattr(sync_module, "_WRITE_BATCH", 25)
    trackers = Trackers()
    failing = _FailsAfterPages(pages=7, size=10)
    def make(name: str, _config: object, _context: object) -> Any:
        return failing if name == "jira" else trackers.github

    result = run_once(config(), store, SyncOptions(sources=("jira",)), now=lambda: NOW, connector_factory=make)
    assert result.exit_code == 1 and "HTTP 502" in (result.outcomes[0].error or "")
    assert writes == [30, 30, 10], "three batches of >= 25 items, the rest kept after the failure"
    assert store.count_items("jira") == 70 and store.get_cursor("jira") is None


class _MeetsTheOther(MemoryConnector):
    """Fetches only once the other source's fetch has started too (a barrier of two, 10 s at most):
    a pass that synced its sources one after another would break the barrier and fail both."""

    def __init__(self, base: MemoryConnector, barrier: threading.Barrier, fail: Exception | None = None) -> None:
        super().__init__(base.name, base.items)
        self.barrier, self.fail_after_meeting = barrier, fail

    def fetch(self, cursor: Any, *, full: bool, census: bool, rules: Any) -> Iterator[Page]:
        self.barrier.wait()
        if self.fail_after_meeting is not None:
            raise self.fail_after_meeting
        yield from super().fetch(cursor, full=full, census=census, rules=rules)


def test_sources_sync_side_by_side_and_stay_isolated(store: Store) -> None:
    trackers = Trackers()
    barrier = threading.Barrier(2, timeout=10)
    jira = _MeetsTheOther(trackers.jira, barrier, fail=TransientError("jira", "HTTP 503 while github was syncing"))
    github = _MeetsTheOther(trackers.github, barrier)

    def make(name: str, _config: object, _context: object) -> Any:
        return jira if name == "jira" else github

    result = run_once(config(), store, SyncOptions(full=True), now=lambda: NOW, connector_factory=make)
    assert [o.name for o in result.outcomes] == ["jira", "github"], "outcomes in config order"
    failed, synced = result.outcomes
    assert not failed.ok and "HTTP 503" in (failed.error or "") and not barrier.broken
    assert synced.ok and synced.fetched == 5 and store.count_items("github") == 5
    assert store.count_items("jira") == 0 and store.get_cursor("jira") is None
    latest = store.latest_snapshots()
    assert latest["gh-bugs"]["current"] == 1 and not latest["gh-bugs"]["stale"]
    assert latest["jira-epic"]["stale"]


class _Endless(MemoryConnector):
    """Pages for as long as nobody stops the pass (at most 400, 10 ms apart); the jira one sends
    the process a Ctrl-C after its third page."""

    def __init__(self, name: str) -> None:
        super().__init__(name, [])
        self.pages = 0

    def fetch(self, cursor: Any, *, full: bool, census: bool, rules: Any) -> Iterator[Page]:
        for n in range(400):
            threading.Event().wait(0.01)
            self.pages += 1
            if self.name == "jira" and n == 2:
                os.kill(os.getpid(), signal.SIGINT)  # a real signal: it interrupts the waiting main thread
            yield Page(items=(item(self.name, n),))


def test_ctrl_c_while_sources_sync_side_by_side_stops_them_all(store: Store) -> None:
    connectors = {name: _Endless(name) for name in ("jira", "github")}
    options = SyncOptions(full=True)
    with pytest.raises(KeyboardInterrupt):
        run_once(config(), store, options, now=lambda: NOW, connector_factory=lambda n, c, x: connectors[n])
    assert options.stop.is_set()
    assert not [t.name for t in threading.enumerate() if t.name.startswith("okrsync-source")], "threads ended"
    assert all(c.pages < 400 for c in connectors.values()), {n: c.pages for n, c in connectors.items()}
    assert store.get_cursor("jira") is None and store.get_cursor("github") is None


def test_the_report_reads_unaligned_work_while_the_pass_finishes(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """``after_sources`` fires once, with the failed sources, before the key results; the summary
    read started there is the one the report uses, and it equals a summary read afterwards."""
    from syncer.assemble import UnalignedPrefetch, assemble_report

    trackers = Trackers()
    sync(config(), store, trackers, full=True)
    trackers.jira.fail = TransientError("jira", "HTTP 502")
    trackers.github.items.append(item("github", 7, updated_at=NOW))  # new unaligned work
    reads: list[frozenset[str]] = []
    original = Store.unaligned_summary

    def counting(self: Store, *args: Any, exclude_sources: Any = (), **kw: Any) -> Any:
        reads.append(frozenset(exclude_sources))
        return original(self, *args, exclude_sources=exclude_sources, **kw)

    monkeypatch.setattr(Store, "unaligned_summary", counting)
    prefetch = UnalignedPrefetch(config(), store)
    seen: list[frozenset[str]] = []

    def after(failed: frozenset[str]) -> None:
        seen.append(failed)
        prefetch.start(failed)

    result = run_once(config(), store, SyncOptions(after_sources=after), now=lambda: NOW,
                      connector_factory=trackers.factory)
    try:
        data = assemble_report(config(), store, NOW, outcomes=result.outcomes, krs=result.key_results,
                               prefetched=prefetch)
    finally:
        prefetch.close()
    assert seen == [frozenset({"jira"})] and reads == [frozenset({"jira"})], "read once, where the pass said"
    again = assemble_report(config(), store, NOW, outcomes=result.outcomes, krs=result.key_results)
    assert (data.unaligned_count, data.unaligned_groups, data.total_work_items) == (
        again.unaligned_count, again.unaligned_groups, again.total_work_items)
    assert data.unaligned_count == 2 and {i.key for i in data.unaligned} == {"GITHUB-5", "GITHUB-7"}


def test_a_reports_item_counts_come_with_the_tallies(store: Store) -> None:
    """A full item list's length is the tallies' ``listed`` (excluded items counted, as the
    list shows them), with no count per key result; a caller's own key results count as before."""
    from sqlalchemy import event

    from syncer.assemble import assemble_report

    trackers = Trackers()
    result = sync(config(), store, trackers, full=True)
    statements: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(store._engine, "before_cursor_execute", note)
    try:
        data = assemble_report(config(), store, NOW, item_limit=1)
        counted_by_query = [s for s in statements if s.lstrip().upper().startswith("SELECT COUNT(*)")]
        statements.clear()
        given = assemble_report(config(), store, NOW, item_limit=1, krs=result.key_results)
        counted_for_given = [s for s in statements if s.lstrip().upper().startswith("SELECT COUNT(*)")]
    finally:
        event.remove(store._engine, "before_cursor_execute", note)
    listed = {kr_id: len(store.kr_items(kr_id)) for kr_id in ("jira-epic", "gh-bugs", "both")}
    assert listed == {"jira-epic": 4, "gh-bugs": 3, "both": 2}  # jira-4 (won't do) is listed
    for report in (data, given):
        assert {kr_id: d.item_count for kr_id, d in report.details.items()} == listed
        assert all(len(d.items) == 1 for d in report.details.values())
    assert counted_by_query == [] and len(counted_for_given) == 3
