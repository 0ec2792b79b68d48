"""Cached aggregates: a sync keeps its key results' tallies and its unaligned summary, and a
report reads them only while no write has changed items or matches since (SQLite)."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from syncer.config import Cycle
from syncer.model import ItemKind, State, Tally, UnalignedSummary, WorkItem
from syncer.store import Store, copy_store

NOW = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
CYCLE = Cycle(name="2026-Q4", start=date(2026, 10, 1), end=date(2026, 12, 31))
START, END = CYCLE.starts_at, CYCLE.ends_at
IGNORE = ("chore",)


def item(n: int, **kw: Any) -> WorkItem:
    fields: dict[str, Any] = {
        "source": "jira", "id": str(n), "key": f"P-{n}", "title": f"item {n}", "url": f"https://example.test/P-{n}",
        "kind": ItemKind.ISSUE, "state": State.TODO, "updated_at": NOW, "created_at": NOW - timedelta(days=3),
        "container": "P",
    }  # fmt: skip
    fields.update(kw)
    return WorkItem(**fields)


Aggregates = tuple[dict[str, Tally], UnalignedSummary]


def aggregates(store: Store, ignore: tuple[str, ...] = IGNORE, failed: tuple[str, ...] = ()) -> Aggregates:
    return store.tallies(START, END), store.unaligned_summary(START, END, ignore, exclude_sources=failed)


def computed(store: Store, ignore: tuple[str, ...] = IGNORE, failed: tuple[str, ...] = ()) -> Aggregates:
    """The same aggregates computed from the rows, whatever is cached."""
    cached = Store._cached
    Store._cached = lambda self, conn, kind, args: (None, None)  # type: ignore[method-assign]
    try:
        return aggregates(store, ignore, failed)
    finally:
        Store._cached = cached  # type: ignore[method-assign]


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'okrsync.db'}"


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    opened = Store.open(url)
    opened.write_page("jira", [
        item(1, state=State.DONE, done_at=NOW, points=3.0), item(2, points=2.0), item(3, state=State.IN_PROGRESS),
        item(4), item(5, labels=("chore",)), item(6, parent_key="P-1"),
    ], {"1": {"a": 0}, "2": {"a": 0}, "3": {"b": 0}}, None, NOW)  # fmt: skip
    opened.link_parents("jira")  # 6 is aligned through its parent 1
    try:
        yield opened
    finally:
        opened.close()


def kept(store: Store) -> Aggregates:
    """What a pass does: compute, report, keep."""
    found = aggregates(store)
    store.keep_aggregates()
    return found


def behind_okrsyncs_back(url: str, sql: str) -> None:
    """Change rows without the Store (so without counting the generation up)."""
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        conn.execute(sql)


def test_a_report_after_a_pass_reads_what_the_pass_kept(store: Store, url: str) -> None:
    before = kept(store)
    assert before[0]["a"].total == 2 and before[1].count == 1  # 4 (5 carries an ignored label, 6 has a parent)
    behind_okrsyncs_back(url, "UPDATE items SET state = 'done' WHERE id = '2'")
    with Store.open(url) as report:
        assert aggregates(report) == before  # read from the cache, not from the rows
        assert computed(report)[0]["a"].done == 2 != before[0]["a"].done


def test_other_arguments_are_computed_not_served_from_the_cache(store: Store, url: str) -> None:
    kept(store)
    behind_okrsyncs_back(url, "UPDATE items SET labels_lc = char(31) WHERE id = '5'")  # no longer ignored
    with Store.open(url) as report:
        for ignore, failed in (((), ()), (IGNORE, ("jira",)), (("other",), ())):
            assert report.unaligned_summary(START, END, ignore, exclude_sources=failed) == computed(
                report, ignore, failed
            )[1]
        later = Cycle(name="2027-Q1", start=date(2027, 1, 1), end=date(2027, 3, 31))
        assert report.tallies(later.starts_at, later.ends_at)["a"].done_in_cycle == 0


CHANGES: dict[str, Callable[[Store], Any]] = {
    "a new item": lambda s: s.write_page("jira", [item(7)], {"7": {"a": 0}}, None, NOW),
    "an item done": lambda s: s.write_page("jira", [item(2, state=State.DONE, done_at=NOW)], {"2": {"a": 0}},
                                           None, NOW),
    "an item leaves a key result": lambda s: s.replace_matches("jira", {"2": {}}),
    "unaligned work joins one": lambda s: s.replace_matches("jira", {"4": {"b": 0}}),
    "rules changed": lambda s: s.clear_matches(),
    "an item retired": lambda s: s.retire_missing("jira", ["1", "3", "4", "5", "6"], NOW, guard=1.0),
    "a parent linked": lambda s: (s.write_page("jira", [item(8, parent_key="P-4")], {}, None, NOW),
                                  s.write_page("jira", [item(4)], {"4": {"b": 0}}, None, NOW), s.link_parents("jira")),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_every_write_that_changes_items_or_matches_makes_the_kept_aggregates_stale(
    store: Store, url: str, change: str
) -> None:
    before = kept(store)
    CHANGES[change](store)
    with Store.open(url) as report:
        now = computed(report)
        assert now != before, "the change should change an aggregate"
        assert aggregates(report) == now


def test_a_copy_into_a_store_makes_its_kept_aggregates_stale(store: Store, url: str, tmp_path: Path) -> None:
    before = kept(store)
    with Store.open(f"sqlite:///{tmp_path / 'other.db'}") as other:
        other.write_page("jira", [item(9, state=State.DONE, done_at=NOW)], {"9": {"a": 0}}, None, NOW)
        kept(other)  # its meta (generation, aggregates) is copied along with the rows
        copy_store(other, store)
    with Store.open(url) as report:
        now = computed(report)
        assert now[0]["a"].total == before[0]["a"].total + 1
        assert aggregates(report) == now


def test_a_copy_never_sets_the_generation_back_to_where_old_aggregates_look_current(
    store: Store, url: str, tmp_path: Path
) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'other.db'}") as other:
        other.write_page("jira", [item(9, state=State.DONE, done_at=NOW)], {"9": {"a": 0}}, None, NOW)
        kept(other)
        for _ in range(5):  # the target has counted further than the source
            store.write_page("jira", [item(4)], {}, None, NOW)
        kept(store)
        generation = int(store.get_meta("data_generation") or 0)
        copy_store(other, store)
    assert int(store.get_meta("data_generation") or 0) > generation
    assert f'"generation": {generation},' in str(store.get_meta("aggregate:tallies"))  # its own, now stale
    with Store.open(url) as report:
        assert aggregates(report) == computed(report)
        assert computed(report)[0]["a"].total == 3


def test_a_pass_that_changed_nothing_keeps_the_aggregates(store: Store, url: str) -> None:
    before = kept(store)
    generation = store.get_meta("data_generation")
    run = store.begin_run(NOW, full=False, dry_run=False, worker="w")
    with store.transaction():
        store.write_page("jira", [], {}, {"cursor": 1}, NOW)  # an idle pass's last page
        store.replace_matches("jira", {})
        assert store.link_parents("jira") == 0 and store.retire_missing("jira", ["1", "2", "3", "4", "5", "6"],
                                                                         NOW, guard=1.0) == 0
        store.replace_members("jira", {"fp": frozenset({"1"})})
        store.record_source_attempt("jira", NOW, ok=True, error=None, full=False, census=False)
        store.set_meta("connector_state:jira", "{}")
    store.add_checkin("manual", 3.0, None, NOW)
    store.record_written("jira", "P-1", "50%", NOW)
    store.set_labelled("jira", "4", True)
    assert store.acquire_lease("source:jira", "w", timedelta(minutes=1), NOW)
    store.release_lease("source:jira", "w")
    store.finish_run(run, NOW, "ok", 1, {})
    assert store.get_meta("data_generation") == generation
    behind_okrsyncs_back(url, "UPDATE items SET state = 'done' WHERE id = '2'")
    with Store.open(url) as report:
        assert aggregates(report) == before


def test_aggregates_kept_by_another_okrsync_version_are_not_used(
    store: Store, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept(store)
    behind_okrsyncs_back(url, "UPDATE items SET state = 'done' WHERE id = '2'")
    monkeypatch.setattr("syncer.store.__version__", "99.0.0")  # an upgrade may aggregate differently
    with Store.open(url) as report:
        assert aggregates(report) == computed(report)
        assert aggregates(report)[0]["a"].done == 2


def test_tallies_kept_before_they_counted_listed_items_are_not_used(store: Store, url: str) -> None:
    """An entry kept by this version before ``Tally.listed`` existed (its arguments without the
    "listed" mark, eleven values per key result) would give every list a length of 0."""
    import json

    kept(store)
    entry = json.loads(str(store.get_meta("aggregate:tallies")))
    entry["args"] = [a for a in entry["args"] if a != "listed"]
    entry["value"] = {kr_id: values[:11] for kr_id, values in entry["value"].items()}
    behind_okrsyncs_back(url, f"UPDATE meta SET value = '{json.dumps(entry)}' WHERE key = 'aggregate:tallies'")
    with Store.open(url) as report:
        tallies = report.tallies(START, END)
        assert tallies == computed(report)[0] and tallies["a"].listed == 2


def test_aggregates_computed_before_a_write_are_not_kept(store: Store) -> None:
    aggregates(store)
    store.write_page("jira", [item(7)], {}, None, NOW)
    store.keep_aggregates()
    assert store.get_meta("aggregate:tallies") is None and store.get_meta("aggregate:unaligned_summary") is None


def test_a_store_that_cannot_take_the_aggregates_leaves_the_pass_ok(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    def locked(*args: Any, **kw: Any) -> None:
        raise OperationalError("INSERT INTO meta", {}, Exception("database is locked"))

    aggregates(store)
    monkeypatch.setattr("syncer.store._upsert", locked)
    store.keep_aggregates()  # no exception: keeping them is only a saving
    monkeypatch.undo()
    assert store.get_meta("aggregate:tallies") is None
    assert aggregates(store) == computed(store)


def test_a_dry_run_keeps_nothing_and_reads_its_own_writes(store: Store, url: str) -> None:
    kept(store)
    with Store.open(url, dry_run=True) as dry:
        dry.write_page("jira", [item(2, state=State.DONE, done_at=NOW)], {"2": {"a": 0}}, None, NOW)
        assert aggregates(dry)[0]["a"].done == 2
        dry.keep_aggregates()
    with Store.open(url) as report:
        assert aggregates(report)[0]["a"].done == 1 == computed(report)[0]["a"].done


def test_postgresql_never_caches(pg_url: str) -> None:
    with Store.open(pg_url) as pg:
        pg.write_page("jira", [item(1)], {"1": {"a": 0}}, None, NOW)
        kept(pg)
        assert pg.get_meta("aggregate:tallies") is None
        pg.write_page("jira", [item(1, state=State.DONE, done_at=NOW)], {"1": {"a": 0}}, None, NOW)
        assert aggregates(pg)[0]["a"].done == 1


def test_cached_aggregates_equal_computed_ones_through_any_sequence_of_writes(store: Store, url: str) -> None:
    # Random writes, passes keeping their aggregates at random moments, reports in between:
    # a report never sees numbers other than the rows give.
    rng = random.Random(7)
    for step in range(120):
        n = rng.randint(1, 12)
        roll = rng.random()
        if roll < 0.35:
            state = rng.choice([State.TODO, State.IN_PROGRESS, State.DONE])
            changed = item(n, state=state, done_at=NOW if state is State.DONE else None,
                           labels=rng.choice([(), ("chore",), ("x",)]), parent_key=rng.choice([None, "P-1", "P-2"]))
            krs = rng.choice([{}, {"a": 0}, {"b": 1}, {"a": 0, "b": 0}])
            store.write_page("jira", [changed], {changed.id: krs}, None, NOW)
        elif roll < 0.5:
            store.replace_matches("jira", {str(n): rng.choice([{}, {"a": 1}, {"b": 0}])})
        elif roll < 0.55:
            live = [str(i) for i in range(1, 13) if rng.random() < 0.9]
            store.retire_missing("jira", live, NOW, guard=1.0)
        elif roll < 0.6:
            store.link_parents("jira")
        elif roll < 0.8:
            kept(store)
        else:
            with Store.open(url) as report:
                assert aggregates(report) == computed(report), f"step {step}"
    with Store.open(url) as report:
        assert aggregates(report) == computed(report)
