"""The store against SQLite and PostgreSQL: every test here runs once per dialect (``store``)."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, inspect, select, text

from syncer import store as store_module
from syncer import store_schema
from syncer.config import Cycle
from syncer.errors import StoreError, VisibilityLostError
from syncer.model import HistoryPoint, ItemKind, KeyResultProgress, State, Status, Tally, WorkItem
from syncer.progress import tally
from syncer.store import Store, copy_store

NOW = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
CYCLE = Cycle(name="2026-Q4", start=date(2026, 10, 1), end=date(2026, 12, 31))
START, END = CYCLE.starts_at, CYCLE.ends_at


def item(i: str | int, source: str = "jira", **kw: Any) -> WorkItem:
    fields: dict[str, Any] = {
        "source": source,
        "id": str(i),
        "key": f"P-{i}",
        "title": f"item {i}",
        "url": f"https://example.test/P-{i}",
        "kind": ItemKind.ISSUE,
        "state": State.TODO,
        "updated_at": NOW,
        "container": "P",
    }
    fields.update(kw)
    return WorkItem(**fields)


def rows(store: Store, table: str) -> int:
    with store._read("count") as conn:
        return int(conn.scalar(select(func.count()).select_from(store_schema.metadata.tables[table])) or 0)


# -- items ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text_"),
    [
        (datetime(2026, 11, 23, 12, 0, 5, 7, tzinfo=UTC), "2026-11-23T12:00:05.000007Z"),
        (datetime(2026, 11, 23, 7, 0, tzinfo=timezone(timedelta(hours=-5))), "2026-11-23T12:00:00.000000Z"),
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=5, minutes=30))), "2026-01-01T21:34:05.000000Z"),
        (datetime(999, 1, 2, 3, 4, 5), "0999-01-02T03:04:05.000000Z"),  # naive: taken as UTC
    ],
)
def test_times_are_stored_as_fixed_width_utc_text(value: datetime, text_: str) -> None:
    assert store_schema.format_utc(value) == text_
    assert store_schema.parse_utc(text_) == (value if value.tzinfo else value.replace(tzinfo=UTC))


def test_stored_time_text_matches_the_plain_format_for_any_moment(monkeypatch: pytest.MonkeyPatch) -> None:
    """``format_utc`` keeps each day's text: whatever day, clock or offset, and after its day
    cache has been emptied at its bound, it writes what plain %-formatting of the UTC moment
    writes."""
    import random

    monkeypatch.setattr(store_schema, "_DAY_TEXT_LIMIT", 50)
    rng = random.Random(7)
    offsets = [UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=13, minutes=45)), None]
    lowest, highest = datetime(1, 1, 2).toordinal(), datetime(9999, 12, 30).toordinal()
    for n in range(3000):
        day = datetime.fromordinal(rng.randint(lowest, highest) if n % 3 else rng.randint(738_000, 738_100))
        moment = day.replace(
            hour=rng.randrange(24), minute=rng.randrange(60), second=rng.randrange(60),
            microsecond=rng.choice([0, rng.randrange(1000) * 1000, rng.randrange(1_000_000)]),
            tzinfo=rng.choice(offsets),
        )  # fmt: skip
        utc = moment if moment.tzinfo is None else moment.astimezone(UTC)
        expected = "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (  # noqa: UP031 - the reference form
            utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond,
        )  # fmt: skip
        assert store_schema.format_utc(moment) == expected, moment
        assert len(store_schema._DAY_TEXT) <= 50


def test_upsert_by_stable_id_keeps_one_row(store: Store) -> None:
    store.write_page("jira", [item(1, key="PLAT-1")], {}, None, NOW)
    store.write_page("jira", [item(1, key="MOB-7", container="MOB")], {}, None, NOW + timedelta(hours=1))
    assert store.count_items() == 1
    [moved] = store.items_by_ids("jira", ["1"])
    assert (moved.key, moved.container) == ("MOB-7", "MOB")


def test_item_round_trips_every_field(store: Store) -> None:
    plus2 = timezone(timedelta(hours=2))
    full = item(
        "10001",
        key="PLAT-5",
        kind=ItemKind.PULL_REQUEST,
        state=State.DONE,
        updated_at=datetime(2026, 11, 2, 10, 30, 15, 123456, tzinfo=plus2),
        issue_type="Story",
        created_at=datetime(2026, 10, 2, tzinfo=UTC),
        done_at=datetime(2026, 11, 1, 23, 59, 59, 999999, tzinfo=UTC),
        excluded=True,
        resolution="Won't Do",
        points=2.5,
        labels=("Bug", "100%_sure"),
        components=("api",),
        milestone="2026-Q4",
        fix_versions=("1.2", "1.3"),
        parent_key="PLAT-1",
        parent_id="10000",
        status_name="Closed",
        in_scope=False,
        unknown_fields=("status:Weird",),
    )
    store.write_page("jira", [full], {}, None, NOW)
    [back] = store.items_by_ids("jira", ["10001"])
    assert back == full
    assert back.updated_at.tzinfo == UTC and back.updated_at == full.updated_at
    assert isinstance(back.state, State) and isinstance(back.kind, ItemKind)


def test_write_page_replaces_matches_of_exactly_these_items(store: Store) -> None:
    store.write_page("jira", [item(1), item(2)], {"1": {"a": 0, "b": 1}, "2": {"a": 0}}, None, NOW)
    store.write_page("jira", [item(1)], {"1": {"b": 2}}, None, NOW)
    assert store.item_matches("jira", ["1", "2"]) == {"1": {"b": 2}, "2": {"a": 0}}
    store.replace_matches("jira", {"2": {}})
    assert store.item_matches("jira", ["1", "2"]) == {"1": {"b": 2}}
    store.clear_matches()
    assert store.item_matches("jira", ["1", "2"]) == {}


def test_replacing_matches_page_by_page_keeps_exactly_the_latest_per_item(store: Store) -> None:
    """Pages of ids in and out of order, overlapping and disjoint in text order (where the
    SQLite store skips the deletes of a page whose id range holds no matches), non-ASCII ids
    among them: the stored matches are always those each item was last written with."""
    import random

    rng = random.Random(7)
    pool = [str(n) for n in range(1, 40)] + ["a", "Ā", "é", "zé", "😀", "\uff00", "\U00010000"]
    expected: dict[str, dict[str, int]] = {}
    for page in range(60):
        if page % 3 == 0:  # beyond every id written so far, in order: the skip on SQLite
            ids = [f"\U0010fffe{page:03d}{k}" for k in range(3)]
        else:
            ids = [rng.choice(pool + list(expected)) for _ in range(4)]
        wanted = {i: {f"kr{rng.randrange(4)}": rng.randrange(3)} for i in ids if rng.random() < 0.7}
        store.write_page("jira", [item(i) for i in ids], wanted, None, NOW)
        for i in ids:
            expected[i] = dict(wanted.get(i, {}))
        assert store.item_matches("jira", expected) == {i: m for i, m in expected.items() if m}, page


@pytest.mark.parametrize(
    ("encoding", "low", "high"),
    [("UTF-16le", "a", "Ā"), ("UTF-16be", "\uff00", "\U00010000")],
)
def test_a_utf16_sqlite_store_deletes_matches_whatever_the_id_range(
    tmp_path: Path, encoding: str, low: str, high: str
) -> None:
    """A SQLite file created as UTF-16 compares ids by their UTF-16 bytes, where ``high`` sorts
    before ``low`` (unlike in Python): the range probe must not decide the deletes there."""
    import sqlite3

    assert low < high
    path = tmp_path / "utf16.db"
    created = sqlite3.connect(path)
    created.execute(f"PRAGMA encoding = '{encoding}'")
    created.execute("CREATE TABLE made_by_another_tool (x)")
    created.commit()
    created.close()
    with Store.open(f"sqlite:///{path}") as s:
        s.write_page("jira", [item(low)], {low: {"kr1": 0}}, None, NOW)
        s.write_page("jira", [item(low), item(high)], {}, None, NOW)
        assert s.item_matches("jira", [low, high]) == {}
        s.write_page("jira", [item(low), item(high)], {low: {"kr1": 0}, high: {"kr2": 1}}, None, NOW)
        assert s.item_matches("jira", [low, high]) == {low: {"kr1": 0}, high: {"kr2": 1}}


def test_a_page_beyond_every_stored_match_deletes_nothing(store: Store) -> None:
    """The 200k first sync's 100k Jira deletes: a page whose ids all sort after the stored
    matches' (as a full Cloud pass writes them) skips them on SQLite; a page whose range holds a
    stored match deletes as before. PostgreSQL always deletes (its collation may order ids
    differently from ``sorted``)."""
    from sqlalchemy import event

    deletes: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("DELETE FROM matches"):
            deletes.append(statement)

    event.listen(store._engine, "before_cursor_execute", note)
    try:
        store.write_page("jira", [item("10001"), item("10002")], {"10001": {"a": 0}}, None, NOW)
        store.write_page("jira", [item("10003"), item("10004")], {"10004": {"b": 0}}, None, NOW)
        skipped = len(deletes)
        store.write_page("jira", [item("10000"), item("10002")], {"10002": {"a": 1}}, None, NOW)
    finally:
        event.remove(store._engine, "before_cursor_execute", note)
    assert skipped == (0 if store.dialect == "sqlite" else 2)
    assert len(deletes) == skipped + 1  # 10000..10002 holds 10001's match: deleted as before
    assert store.item_matches("jira", ["10001", "10002", "10004"]) == {
        "10001": {"a": 0}, "10002": {"a": 1}, "10004": {"b": 0},
    }  # fmt: skip


def test_a_page_is_upserted_in_key_order_and_its_last_version_wins(store: Store) -> None:
    """An incremental pass's items lie all over the table: upserting them in the key's order
    visits each B-tree page once (bench/RESULTS.md). A repeated id keeps its last version."""
    from sqlalchemy import event

    upserted: list[list[str]] = []

    def note(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.startswith("INSERT INTO items"):
            upserted.append([row[1] for row in parameters] if many else [parameters[1]])

    event.listen(store._engine, "before_cursor_execute", note)
    try:
        page = [item(30), item(7, title="old"), item(100), item(12), item(7, title="new"), item(2)]
        store.write_page("jira", page, {"12": {"a": 0}}, None, NOW)
    finally:
        event.remove(store._engine, "before_cursor_execute", note)
    assert [i for batch in upserted for i in batch] == ["100", "12", "2", "30", "7"]  # text order, once each
    assert [i.title for i in store.items_by_ids("jira", ["7"])] == ["new"]
    assert store.item_matches("jira", ["12"]) == {"12": {"a": 0}}


def test_cursor_moves_only_with_its_items(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    store.write_page("jira", [item(1)], {}, {"hw": 1}, NOW)

    def boom(*args: Any) -> None:
        raise RuntimeError("crash between the items and the cursor")

    monkeypatch.setattr(Store, "_set_cursor", staticmethod(boom))
    with pytest.raises(RuntimeError):
        store.write_page("jira", [item(2), item(3)], {"2": {"a": 0}}, {"hw": 2}, NOW)
    monkeypatch.undo()
    assert store.live_ids("jira") == {"1"}
    assert store.get_cursor("jira") == {"hw": 1}
    assert store.item_matches("jira", ["2"]) == {}

    with pytest.raises(RuntimeError), store.transaction():
        store.write_page("jira", [item(4)], {}, None, NOW)
        store.set_cursor("jira", {"hw": 4})
        raise RuntimeError("crash before commit")
    assert store.live_ids("jira") == {"1"}
    assert store.get_cursor("jira") == {"hw": 1}
    store.set_cursor("jira", None)
    assert store.get_cursor("jira") is None


def test_nested_transaction_is_a_savepoint(store: Store) -> None:
    with store.transaction():
        store.write_page("jira", [item(1)], {}, None, NOW)
        with pytest.raises(RuntimeError), store.transaction():
            store.write_page("jira", [item(2)], {}, None, NOW)
            raise RuntimeError("inner fails")
        store.write_page("jira", [item(3)], {}, None, NOW)
    assert store.live_ids("jira") == {"1", "3"}


def test_iter_items_streams_in_batches(store: Store) -> None:
    store.write_page("jira", [item(i) for i in range(7)], {}, None, NOW)
    store.write_page("gh", [item(i, source="gh") for i in range(3)], {}, None, NOW)
    store.retire_missing("gh", ["0", "1"], NOW, guard=1.0)
    assert [(i.source, i.id) for i in store.iter_items(batch=2)] == [
        ("gh", "0"), ("gh", "1"), *[("jira", str(i)) for i in range(7)]
    ]  # fmt: skip
    assert len(list(store.iter_items("gh", include_retired=True, batch=1))) == 3
    assert store.count_items() == 9 and store.count_items("gh") == 2


# -- retirement ------------------------------------------------------------------------------------


def test_retire_missing_and_revive(store: Store) -> None:
    items = [item(i) for i in range(10)] + [item("x", in_scope=False)]
    store.write_page("jira", items, {}, None, NOW)
    assert store.retire_missing("jira", [str(i) for i in range(9)], NOW, guard=0.2) == 1
    assert store.live_ids("jira") == {*(str(i) for i in range(9)), "x"}  # out of scope stays
    assert store.retire_missing("jira", [str(i) for i in range(9)], NOW, guard=0.2) == 0
    store.write_page("jira", [item(9)], {}, None, NOW)
    assert "9" in store.live_ids("jira")
    assert store.retire_missing("jira", [str(i) for i in range(10)], NOW, guard=0.2, in_scope_only=False) == 1


def test_retire_guard_retires_nothing_when_too_much_vanishes(store: Store) -> None:
    store.write_page("jira", [item(i) for i in range(20)], {}, None, NOW)
    with pytest.raises(VisibilityLostError) as caught:
        store.retire_missing("jira", ["0", "1", "2", "3", "4"], NOW, guard=0.2)
    assert "15 of 20 items (75%)" in str(caught.value) and "nothing retired" in str(caught.value)
    assert caught.value.source == "jira"
    assert store.count_items("jira") == 20
    # a handful vanishing is below the guard's floor
    store.write_page("gh", [item(i, source="gh") for i in range(4)], {}, None, NOW)
    assert store.retire_missing("gh", [], NOW, guard=0.2) == 4


# -- progress --------------------------------------------------------------------------------------


def _tally_fixture(store: Store) -> dict[str, list[WorkItem]]:
    before = START - timedelta(days=3)
    a = [
        item(1, state=State.DONE, points=3.0, done_at=START + timedelta(days=1)),
        item(2, state=State.DONE, points=2.0, done_at=before),  # done before the cycle
        item(3, state=State.IN_PROGRESS, points=5.0),
        item(4, state=State.TODO),  # unestimated
        item(5, state=State.UNKNOWN, points=1.0),
        item(6, state=State.DONE, excluded=True, points=8.0, done_at=NOW),  # won't do
        item(7, state=State.DONE, kind=ItemKind.SUBTASK, points=1.0, done_at=NOW),  # sub-task
        item(8, state=State.DONE, points=1.5, updated_at=START + timedelta(days=2)),  # no done_at
        item(9, state=State.DONE, points=4.0, done_at=END),  # end is exclusive
        item(10, state=State.TODO, points=2.0),  # retired below
    ]
    b = [item(20, source="gh", state=State.DONE, done_at=NOW), item(21, source="gh")]
    store.write_page("jira", a, {i.id: {"a": 0} for i in a}, None, NOW)
    store.write_page("gh", b, {"20": {"a": 1, "b": 0}, "21": {"b": 0}}, None, NOW)
    store.retire_missing("jira", [i.id for i in a if i.id != "10"], NOW, guard=1.0)
    return {"a": [i for i in a if i.id != "10"] + b[:1], "b": b}


def test_tallies_match_hand_count_and_pure_tally(store: Store) -> None:
    live = _tally_fixture(store)
    got = store.tallies(START, END)
    assert got["a"] == Tally(
        total=8,  # 1,2,3,4,5,8,9,20
        done=5,  # 1,2,8,9,20
        in_progress=1,
        todo=1,
        unknown=1,
        points_total=16.5,  # 3+2+5+1+1.5+4
        points_done=10.5,  # 3+2+1.5+4
        done_in_cycle=3,  # 1, 8 (by updated_at), 20
        points_done_in_cycle=4.5,
        unestimated=2,  # 4, 20
        excluded=1,  # 6 (won't do)
        listed=10,  # the eight above, 6 (won't do) and 7 (sub-task): what its item list shows
    )
    assert got["b"] == Tally(total=2, done=1, todo=1, done_in_cycle=1, unestimated=2, listed=2)
    for kr_id, members_ in live.items():
        assert got[kr_id] == tally(members_, CYCLE)
        assert got[kr_id].listed == len(store.kr_items(kr_id)) == store.kr_item_counts()[kr_id]


def test_kr_items_and_states(store: Store) -> None:
    _tally_fixture(store)
    behind = store.kr_items("b")
    assert [(i.key, rule) for i, rule in behind] == [("P-20", 0), ("P-21", 0)]
    states = store.kr_item_states("a")
    assert states["1"] == "done" and states["3"] == "in_progress" and states["5"] == "unknown"
    assert not {"6", "7", "10"} & set(states)  # excluded, sub-task, retired
    assert {i.id for i, _ in store.kr_items("a")} >= {"6"}  # explain still shows excluded items


def test_unaligned_rules(store: Store) -> None:
    old = START - timedelta(days=30)
    jira = [
        item("open"),
        item("in-cycle-done", state=State.DONE, updated_at=START + timedelta(days=3)),
        item("old-done", state=State.DONE, updated_at=old),
        item("old-wontdo", state=State.TODO, excluded=True, updated_at=old),
        item("epic", kind=ItemKind.EPIC),
        item("sub", kind=ItemKind.SUBTASK),
        item("pr", kind=ItemKind.PULL_REQUEST),
        item("out", in_scope=False),
        item("chore", labels=("CHORE",)),
        item("pct", labels=("100%",)),  # LIKE wildcards in labels are literal
        item("matched"),
        item("child", parent_id="matched"),
        item("grandchild", parent_id="child"),
        item("orphan", parent_id="nowhere"),
        item("gone"),
    ]
    store.write_page("jira", jira, {"matched": {"kr": 0}}, None, NOW)
    store.write_page("gh", [item("gh-open", source="gh")], {}, None, NOW)
    store.retire_missing("jira", [i.id for i in jira if i.id != "gone"], NOW, guard=1.0)

    found = store.unaligned(START, END, ["chore", "1%"])
    assert {i.id for i in found} == {"open", "in-cycle-done", "pct", "orphan", "gh-open"}
    assert {i.id for i in store.unaligned(START, END, ["Chore", "100%"])} == {
        "open", "in-cycle-done", "orphan", "gh-open"
    }  # fmt: skip
    only_jira = store.unaligned(START, END, ["chore"], exclude_sources=["gh"])
    assert "gh-open" not in {i.id for i in only_jira}
    assert len(store.unaligned(START, END, [], limit=2)) == 2
    # denominator: the same candidates, matched or not (matched, child, grandchild count too)
    assert store.count_unaligned_candidates(START, END, ["chore"]) == 8
    assert store.count_unaligned_candidates(START, END, ["chore"], exclude_sources=["gh"]) == 7


# -- members ---------------------------------------------------------------------------------------


def test_replace_members_returns_changed_ids(store: Store) -> None:
    assert store.replace_members("jira", {"jql:a": frozenset({"1", "2"}), "parent:X": frozenset({"3"})}) == {
        "1", "2", "3"
    }  # fmt: skip
    changed = store.replace_members("jira", {"jql:a": frozenset({"2", "4"})})
    assert changed == {"1", "4"}
    assert store.get_members("jira") == {"jql:a": frozenset({"2", "4"}), "parent:X": frozenset({"3"})}
    assert store.replace_members("jira", {"parent:X": frozenset()}) == {"3"}
    assert store.get_members("jira") == {"jql:a": frozenset({"2", "4"})}
    assert store.get_members("gh") == {}


# -- runs, status, snapshots -------------------------------------------------------------------------


def kr(kr_id: str, current: float, done: int, total: int, *, stale: bool = False) -> KeyResultProgress:
    return KeyResultProgress(
        id=kr_id,
        objective_id="o",
        title=kr_id,
        metric="percent_done",
        start=0,
        target=100,
        current=current,
        progress=current / 100,
        status=Status.ON_TRACK,
        tally=Tally(total=total, done=done, todo=total - done, points_total=1.5),
        stale=stale,
        last_synced=NOW,
    )


def test_runs_and_source_status(store: Store) -> None:
    first = store.begin_run(NOW, full=True, dry_run=False, worker="w1")
    second = store.begin_run(NOW + timedelta(minutes=1), full=False, dry_run=True, worker="w2")
    assert second > first
    store.finish_run(first, NOW + timedelta(seconds=5), "partial", 12, {"jira": {"ok": False}})
    runs = store.last_runs()
    assert [r["id"] for r in runs] == [second, first]
    assert runs[1]["outcome"] == "partial" and runs[1]["requests"] == 12 and runs[1]["full"] is True
    assert runs[1]["detail"] == {"jira": {"ok": False}} and runs[0]["outcome"] == "running"
    with pytest.raises(StoreError):
        store.finish_run(first, NOW, "weird", 0, {})

    later = NOW + timedelta(hours=1)
    store.record_source_attempt("jira", NOW, ok=True, error=None, full=True, census=True)
    store.record_source_attempt("jira", later, ok=False, error="boom", full=False, census=False, resume_at=later)
    store.record_source_attempt("jira", later, ok=False, error="boom again", full=False, census=False)
    status = store.source_status()["jira"]
    assert status["last_success_at"] == NOW and status["last_full_at"] == NOW
    assert status["last_census_at"] == NOW and status["last_attempt_at"] == later
    assert status["consecutive_failures"] == 2 and status["last_error"] == "boom again"
    store.record_source_attempt("jira", later, ok=True, error=None, full=False, census=False)
    status = store.source_status()["jira"]
    assert status["consecutive_failures"] == 0 and status["last_error"] is None
    assert status["last_full_at"] == NOW


def test_snapshots_and_history(store: Store) -> None:
    ids = []
    for day in range(3):
        at = NOW + timedelta(days=day)
        run = store.begin_run(at, full=False, dry_run=False, worker="w")
        ids.append(run)
        krs = [kr("a", 10.0 * (day + 1), day + 1, 10), kr("b", 50.0, 1, 2, stale=day == 2)]
        store.write_snapshots(run, at, krs, {"a": {"1": "done", "2": State.TODO}, "b": {}})
    latest = store.latest_snapshots()
    assert latest["a"]["current"] == 30.0 and latest["a"]["run_id"] == ids[2]
    assert latest["a"]["items"] == {"1": "done", "2": "todo"}
    assert latest["b"]["stale"] is True and latest["b"]["points_total"] == 1.5
    prev = store.previous_snapshot("a", before_run=ids[2])
    assert prev is not None and prev["current"] == 20.0
    newest = store.previous_snapshot("a")
    assert newest is not None and newest["run_id"] == ids[2]
    assert store.previous_snapshot("a", before_run=ids[0]) is None
    first = store.first_snapshot_in("a", NOW + timedelta(hours=1))
    assert first is not None and first["current"] == 20.0

    history = store.history("a")
    assert [(p.current, p.done, p.total) for p in history] == [(10.0, 1, 10), (20.0, 2, 10), (30.0, 3, 10)]
    assert [p.at for p in history] == sorted(p.at for p in history)
    assert [p.current for p in store.history("a", since=NOW + timedelta(days=1))] == [20.0, 30.0]
    all_histories = store.histories(since=NOW + timedelta(days=2))
    assert {k: [p.current for p in v] for k, v in all_histories.items()} == {"a": [30.0], "b": [50.0]}
    # writing the same run again replaces its row
    store.write_snapshots(ids[2], NOW + timedelta(days=2), [kr("a", 35.0, 3, 10)], {})
    assert [p.current for p in store.history("a")][-1] == 35.0


# -- check-ins, write-back, labels, meta -------------------------------------------------------------


def test_checkins(store: Store) -> None:
    store.add_checkin("nps", 31.0, "first", NOW)
    store.add_checkin("nps", 35.5, None, NOW + timedelta(days=7))
    store.add_checkin("csat", 4.0, None, NOW)
    store.add_checkin("nps", 33.0, "late entry for an earlier date", NOW + timedelta(days=1))
    assert store.latest_checkins() == {"nps": 35.5, "csat": 4.0}
    assert store.checkins("nps") == [
        (NOW, 31.0, "first"),
        (NOW + timedelta(days=1), 33.0, "late entry for an earlier date"),
        (NOW + timedelta(days=7), 35.5, None),
    ]


def test_writes_labels_and_meta(store: Store) -> None:
    assert store.last_written("jira", "OKR-12:customfield_1") is None
    store.record_written("jira", "OKR-12:customfield_1", "42", NOW)
    store.record_written("jira", "OKR-12:customfield_1", "47", NOW)
    assert store.last_written("jira", "OKR-12:customfield_1") == "47"
    store.set_labelled("gh", "n1", True)
    store.set_labelled("gh", "n1", True)
    store.set_labelled("gh", "n2", True)
    store.set_labelled("gh", "n1", False)
    assert store.labelled("gh") == {"n2"} and store.labelled("jira") == set()
    assert store.get_meta("config_hash") is None
    store.set_meta("config_hash", "abc")
    store.set_meta("config_hash", "def")
    assert store.get_meta("config_hash") == "def"
    assert store.quick_check() is True


# -- leases ----------------------------------------------------------------------------------------


def test_leases(store: Store) -> None:
    ttl = timedelta(minutes=5)
    assert store.acquire_lease("sync", "a", ttl, NOW)
    assert not store.acquire_lease("sync", "b", ttl, NOW + timedelta(minutes=1))  # contention
    assert store.acquire_lease("sync", "a", ttl, NOW + timedelta(minutes=1))  # already ours
    assert store.renew_lease("sync", "a", ttl, NOW + timedelta(minutes=4))
    assert not store.acquire_lease("sync", "b", ttl, NOW + timedelta(minutes=8))  # renewed
    assert store.acquire_lease("sync", "b", ttl, NOW + timedelta(minutes=9, seconds=1))  # expired
    assert not store.renew_lease("sync", "a", ttl, NOW + timedelta(minutes=10))  # lost it
    [lease] = store.leases()
    assert lease["holder"] == "b" and lease["expires_at"] == NOW + timedelta(minutes=14, seconds=1)
    store.release_lease("sync", "a")  # not ours: no effect
    assert len(store.leases()) == 1
    store.release_lease("sync", "b")
    assert store.leases() == []


def test_lease_contention_across_threads(store_url: str) -> None:
    stores = [Store.open(store_url) for _ in range(4)]
    won: list[int] = []
    barrier = threading.Barrier(len(stores))

    def grab(n: int) -> None:
        barrier.wait()
        if stores[n].acquire_lease("sync", f"w{n}", timedelta(minutes=5), NOW):
            won.append(n)

    threads = [threading.Thread(target=grab, args=(n,)) for n in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for s in stores:
        s.close()
    assert len(won) == 1


# -- migrations, dry run, copy, errors ---------------------------------------------------------------


def test_schema_version_recorded_and_newer_refused(store_url: str) -> None:
    with Store.open(store_url) as s:
        assert s.get_meta("schema_version") == str(store_schema.SCHEMA_VERSION) == "5"
        s.set_meta("schema_version", "99")
    with pytest.raises(StoreError, match="schema version 99 is newer than this okrsync knows"):
        Store.open(store_url)


def test_a_version_1_store_gains_the_backfill_table(store_url: str) -> None:
    with Store.open(store_url) as s:
        with s._write("simulate a version-1 store") as conn:
            conn.execute(text("DROP TABLE backfill"))
        s.set_meta("schema_version", "1")
    with Store.open(store_url) as s:
        assert s.schema_version() == len(store_schema.MIGRATIONS)
        s.write_backfill("a", [HistoryPoint(NOW - timedelta(days=1), 5.0, 0.5, 10, 5)])
        assert s.backfilled() == {"a"}
        assert [p.current for p in s.history("a")] == [5.0]


def test_a_version_3_store_trades_the_parent_index_for_the_partial_one(store_url: str) -> None:
    with Store.open(store_url) as s:
        with s._write("simulate a version-3 store") as conn:
            conn.execute(text("DROP INDEX ix_items_unlinked"))
            conn.execute(text("CREATE INDEX ix_items_parent ON items (source, parent_id)"))
        s.set_meta("schema_version", "3")
    with Store.open(store_url) as s:
        assert s.schema_version() == len(store_schema.MIGRATIONS)
        with s._read("list indexes") as conn:
            names = {ix["name"] for ix in inspect(conn).get_indexes("items")}
        assert "ix_items_unlinked" in names and "ix_items_parent" not in names
        s.write_page("jira", [item(2, key="PLAT-2", parent_key="PLAT-1"), item(1, key="PLAT-1")], {}, None, NOW)
        assert s.link_parents("jira") == 1


def test_analyze_gives_sqlite_statistics_for_items_and_a_by_id_read_its_key(tmp_path: Path) -> None:
    # Without statistics SQLite read ``items`` by (source, retired_at IS NULL), every live item,
    # to find a few hundred by id; ``PRAGMA optimize`` alone never analyzed the table.
    with Store.open(f"sqlite:///{tmp_path / 'okrsync.db'}") as s:
        s.write_page("jira", [item(n) for n in range(1, 1201)], {str(n): {"a": 0} for n in range(1, 1201)},
                     None, NOW)
        s.analyze()
        with s._read("statistics") as conn:
            analyzed = set(conn.exec_driver_sql("SELECT tbl FROM sqlite_stat1").scalars())
            plan = " ".join(
                str(row[-1]) for row in conn.exec_driver_sql(
                    "EXPLAIN QUERY PLAN SELECT m.kr_id, i.state FROM matches m JOIN items i"
                    " ON i.source = m.source AND i.id = m.item_id WHERE m.source = 'jira'"
                    " AND m.item_id IN ('1', '2', '3') AND i.retired_at IS NULL"
                )
            )
    assert {"items", "matches"} <= analyzed
    assert "ix_items_source_retired" not in plan, plan


def _item_indexes(s: Store) -> set[str]:
    """The indexes of ``items`` and ``matches`` (the two tables a first load fills)."""
    with s._read("list indexes") as conn:
        return {str(ix["name"]) for table in ("items", "matches") for ix in inspect(conn).get_indexes(table)}


def test_a_first_load_defers_the_read_only_index_and_builds_it_after(store_url: str) -> None:
    with Store.open(store_url) as s:
        if s.dialect == "postgresql":  # shared by workers and roles: never dropped there
            assert not s.defer_indexes_if_empty() and "ix_items_updated" in _item_indexes(s)
            return
        deferred = {"ix_items_updated", "ix_matches_kr"}
        assert s.defer_indexes_if_empty()
        assert not deferred & _item_indexes(s) and s.deferred_indexes_left()
        s.write_page("jira", [item(n, updated_at=NOW - timedelta(minutes=100 - n)) for n in range(1, 30)],
                     {str(n): {"KR-1": 0} for n in range(1, 30, 2)}, None, NOW)
        s.replace_matches("jira", {"3": {"KR-2": 1}})  # a write that replaces matches needs no deferred index
        assert not s.defer_indexes_if_empty(), "a store with items keeps its indexes"
        s.build_deferred_indexes()
        assert deferred <= _item_indexes(s) and not s.deferred_indexes_left()
        with s._read("statistics") as conn:
            analyzed = set(conn.exec_driver_sql("SELECT idx FROM sqlite_stat1").scalars())
        assert deferred <= analyzed, "built, then analyzed with the loaded rows"
        s.build_deferred_indexes()  # idempotent
        assert [i.key for i in s.unaligned(START, END, (), limit=2)] == ["P-28", "P-26"]  # newest first
        assert len(s.kr_item_letters(["KR-1"])["KR-1"]) == 14 and set(s.kr_item_letters(["KR-2"])["KR-2"]) == {"3"}


def test_a_store_left_with_deferred_indexes_is_read_as_is(tmp_path: Path) -> None:
    # A first sync that died before building them: reads stay correct and never write.
    url = f"sqlite:///{tmp_path / 'okrsync.db'}"
    with Store.open(url) as s:
        assert s.defer_indexes_if_empty()
        s.write_page("jira", [item(1)], {}, None, NOW)
    with Store.open(url, dry_run=True) as dry:
        assert not dry.deferred_indexes_left() and not dry.defer_indexes_if_empty(), "a dry run builds nothing"
    with Store.open(url) as s:
        assert not {"ix_items_updated", "ix_matches_kr"} & _item_indexes(s) and s.deferred_indexes_left()
        assert [i.key for i in s.unaligned(START, END, ())] == ["P-1"]


def test_migrations_apply_in_order_once(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    Store.open(store_url).close()
    applied: list[int] = []

    known = len(store_schema.MIGRATIONS)
    with Store.open(store_url) as s:
        assert s.schema_version() == known

    def next_step(conn: Any) -> None:
        applied.append(known + 1)

    monkeypatch.setattr(store_schema, "MIGRATIONS", [*store_schema.MIGRATIONS, next_step])
    with Store.open(store_url) as s:
        assert s.schema_version() == known + 1
    with Store.open(store_url) as s:
        assert s.schema_version() == known + 1
    assert applied == [known + 1]


def _counts(store: Store) -> dict[str, int]:
    return {name: rows(store, name) for name in store_schema.metadata.tables}


def test_dry_run_changes_nothing_but_sees_its_writes(store_url: str) -> None:
    with Store.open(store_url) as s:
        s.write_page("jira", [item(1)], {"1": {"a": 0}}, {"hw": 1}, NOW)
        run = s.begin_run(NOW, full=True, dry_run=False, worker="w")
        s.write_snapshots(run, NOW, [kr("a", 10.0, 1, 10)], {})
        before = _counts(s)
    path = Path(store_url.removeprefix("sqlite:///")) if store_url.startswith("sqlite") else None
    before_bytes = path.read_bytes() if path else b""

    with Store.open(store_url, dry_run=True) as dry:
        assert dry.count_items() == 1
        dry.write_page("jira", [item(2), item(1, key="NEW-1")], {"1": {"a": 0}, "2": {"a": 0}}, {"hw": 2}, NOW)
        run = dry.begin_run(NOW, full=False, dry_run=True, worker="w")
        dry.write_snapshots(run, NOW, [kr("a", 20.0, 2, 10)], {})
        dry.set_meta("rules_hash", "x")
        with dry.transaction():
            dry.add_checkin("nps", 40.0, None, NOW)
        assert dry.count_items() == 2 and dry.get_cursor("jira") == {"hw": 2}
        assert dry.latest_snapshots()["a"]["current"] == 20.0
        assert dry.tallies(START, END)["a"].total == 2

    with Store.open(store_url) as s:
        assert _counts(s) == before
        assert s.get_cursor("jira") == {"hw": 1}
        assert [i.key for i in s.items_by_ids("jira", ["1"])] == ["P-1"]
    if path:
        assert path.read_bytes() == before_bytes


@pytest.mark.postgres
def test_copy_sqlite_to_postgres(tmp_path: Path, pg_url: str) -> None:
    src = Store.open(f"sqlite:///{tmp_path / 'src.db'}")
    _tally_fixture(src)
    src.replace_members("jira", {"jql:x": frozenset({"1", "2"})})
    run = src.begin_run(NOW, full=True, dry_run=False, worker="w")
    src.write_snapshots(run, NOW, [kr("a", 10.0, 1, 10)], {"a": {"1": "done"}})
    src.finish_run(run, NOW, "ok", 3, {"jira": {"ok": True}})
    src.add_checkin("nps", 31.0, None, NOW)
    src.record_written("jira", "t", "v", NOW)
    src.set_labelled("gh", "21", True)
    src.record_source_attempt("jira", NOW, ok=True, error=None, full=True, census=False)
    src.set_cursor("jira", {"hw": 5})
    dst = Store.open(pg_url)
    counts = copy_store(src, dst, batch=3)
    assert all(n_src == n_dst for n_src, n_dst in counts.values()), counts
    assert counts["items"] == (12, 12) and counts["snapshots"] == (1, 1) and counts["runs"] == (1, 1)
    assert dst.tallies(START, END) == src.tallies(START, END)
    assert dst.latest_snapshots() == src.latest_snapshots()
    assert dst.get_cursor("jira") == {"hw": 5} and dst.checkins("nps") == src.checkins("nps")
    assert dst.begin_run(NOW, full=False, dry_run=False, worker="w") > run  # sequence moved on
    assert copy_store(src, dst)["items"] == (12, 12)  # re-runnable
    src.close()
    dst.close()


def test_two_stores_on_one_sqlite_file_write_concurrently(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    stores = [Store.open(url), Store.open(url)]
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for page in range(15):
                ids = [f"{n}-{page}-{k}" for k in range(40)]
                stores[n].write_page("jira", [item(i) for i in ids], {i: {"a": 0} for i in ids}, {"page": page}, NOW)
                stores[n].record_source_attempt("jira", NOW, ok=True, error=None, full=False, census=False)
                stores[n].tallies(START, END)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert stores[0].count_items() == 2 * 15 * 40
    assert stores[1].tallies(START, END)["a"].total == 2 * 15 * 40
    for s in stores:
        s.close()


def test_memory_store_works(tmp_path: Path) -> None:
    with Store.open("sqlite://") as s:
        s.write_page("jira", [item(1)], {}, {"hw": 1}, NOW)
        assert s.count_items() == 1 and s.get_cursor("jira") == {"hw": 1}


def test_url_redacted_and_errors_are_one_line() -> None:
    with pytest.raises(StoreError, match="unsupported store URL scheme"):
        Store.open("mysql://u:p@h/db")
    with pytest.raises(StoreError) as caught:
        Store.open("postgresql://okr:hunter2@127.0.0.1:1/nothing?connect_timeout=2")
    message = str(caught.value)
    assert "hunter2" not in message and "\n" not in message and "***" in message
    with pytest.raises(StoreError, match="cannot open store"):
        Store.open("sqlite:////nonexistent-dir/okrsync.db")


def test_closed_store_refuses(store: Store) -> None:
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.count_items()
    store.close()  # idempotent


def test_dry_run_on_a_missing_sqlite_file_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "never.db"
    with Store.open(f"sqlite:///{path}", dry_run=True) as dry:
        dry.write_page("jira", [item(1)], {"1": {"a": 0}}, {"hw": 1}, NOW)
        assert dry.count_items() == 1 and dry.tallies(START, END)["a"].total == 1
        assert dry.url_redacted == f"sqlite:///{path}"
    assert list(tmp_path.iterdir()) == []


# -- the report's aggregates (issue 7): counts and groups in SQL, daily history ----------------------


def _unaligned_world(store: Store) -> list[WorkItem]:
    """~300 items of two sources over four containers, with every trait the filter looks at.

    Seeded, so a failure reproduces; ids are matched directly, through a parent or through a
    grandparent, some items are retired, out of scope, epics, sub-tasks, pull requests, done
    before the cycle, won't-do, or carry an ignored label (in any case).
    """
    import random

    rng = random.Random(7)
    written: list[WorkItem] = []
    for source, containers in (("jira", ("PLAT", "MOB")), ("gh", ("acme/web", "acme/api"))):
        page: list[WorkItem] = []
        for n in range(150):
            parent = f"{source}-{rng.randrange(n)}" if n > 5 and rng.random() < 0.5 else None
            page.append(
                item(
                    f"{source}-{n}",
                    source=source,
                    key=f"{source.upper()}-{n}",
                    container=rng.choice(containers),
                    state=rng.choice([State.TODO, State.IN_PROGRESS, State.DONE, State.DONE, State.UNKNOWN]),
                    kind=rng.choice([ItemKind.ISSUE] * 6 + [ItemKind.EPIC, ItemKind.SUBTASK, ItemKind.PULL_REQUEST]),
                    excluded=rng.random() < 0.1,
                    in_scope=rng.random() < 0.9,
                    labels=rng.choice([(), (), ("bug",), ("Chore",), ("chore", "x"), ("deps",)]),
                    updated_at=rng.choice([START - timedelta(days=20), START + timedelta(days=5), NOW]),
                    parent_id=parent,
                )
            )
        matched = {i.id: {"kr": 0} for i in page if rng.random() < 0.3}
        store.write_page(source, page, matched, None, NOW)
        gone = {i.id for i in page if rng.random() < 0.05}
        store.retire_missing(source, [i.id for i in page if i.id not in gone], NOW, guard=1.0)
        written += [i for i in page if i.id not in gone]
    return written


def _python_unaligned(store: Store, live: list[WorkItem], ignore: set[str], failed: set[str]) -> list[WorkItem]:
    """The SQL's rule, re-stated over plain objects: own match, parent's, or grandparent's."""
    everything = {(i.source, i.id): i for i in store.iter_items(include_retired=True)}
    matched = {(s, i) for s in ("jira", "gh") for i, krs in store.item_matches(s, [x[1] for x in everything]).items()
               if krs}  # fmt: skip

    def candidate(i: WorkItem) -> bool:
        open_work = i.state != State.DONE and not i.excluded
        touched = START <= i.updated_at < END
        return (
            i.in_scope and i.source not in failed and (open_work or touched)
            and i.kind not in (ItemKind.EPIC, ItemKind.SUBTASK, ItemKind.PULL_REQUEST)
        )  # fmt: skip

    def aligned(i: WorkItem) -> bool:
        if (i.source, i.id) in matched or (i.source, i.parent_id) in matched:
            return True
        parent = everything.get((i.source, i.parent_id or ""))
        return parent is not None and (i.source, parent.parent_id) in matched

    return [
        i for i in live
        if candidate(i) and not aligned(i) and not {label.lower() for label in i.labels} & ignore
    ]  # fmt: skip


def test_unaligned_summary_equals_a_python_count_over_the_same_items(store: Store) -> None:
    live = _unaligned_world(store)
    for ignore, failed in (((), ()), (("CHORE",), ()), (("chore", "deps"), ("gh",))):
        summary = store.unaligned_summary(START, END, ignore, exclude_sources=failed)
        expected = _python_unaligned(store, live, {label.lower() for label in ignore}, set(failed))
        by_group: dict[tuple[str, str], int] = {}
        for i in expected:
            by_group[(i.source, i.container)] = by_group.get((i.source, i.container), 0) + 1
        assert summary.count == len(expected) > 0
        assert {(g.source, g.container): g.count for g in summary.groups} == by_group
        assert [g.count for g in summary.groups] == sorted((g.count for g in summary.groups), reverse=True)
        # the same answer as listing every unaligned item, and the same denominator as before
        listed = store.unaligned(START, END, ignore, exclude_sources=failed)
        assert {(i.source, i.id) for i in listed} == {(i.source, i.id) for i in expected}
        assert summary.total_work_items == store.count_unaligned_candidates(START, END, (), exclude_sources=failed)
        # the capped list is the head of the full list, in the same order
        assert store.unaligned(START, END, ignore, exclude_sources=failed, limit=7) == listed[:7]


def test_unaligned_summary_of_an_empty_store(store: Store) -> None:
    summary = store.unaligned_summary(START, END, ["chore"])
    assert (summary.count, summary.groups, summary.total_work_items) == (0, (), 0)


def test_tallies_count_excluded_items_in_the_same_pass(store: Store) -> None:
    won_t = [item(n, state=State.DONE, excluded=True, points=2.0, done_at=NOW) for n in (1, 2)]
    store.write_page("jira", [*won_t, item(3, kind=ItemKind.SUBTASK, excluded=True)], {
        "1": {"only-excluded": 0}, "2": {"only-excluded": 0, "mixed": 0}, "3": {"only-excluded": 0}
    }, None, NOW)  # fmt: skip
    store.write_page("gh", [item(9, source="gh", points=1.0)], {"9": {"mixed": 0}}, None, NOW)
    got = store.tallies(START, END)
    assert got["only-excluded"] == Tally(excluded=2, listed=3)  # the sub-task counts only as listed
    assert got["mixed"] == Tally(total=1, todo=1, points_total=1.0, excluded=1, listed=2)


def test_kr_items_limit_done_first_and_counts(store: Store) -> None:
    _tally_fixture(store)
    everything = store.kr_items("a")
    first = store.kr_items("a", limit=3, done_first=True)
    done_first = sorted(everything, key=lambda row: (row[0].state != State.DONE, row[0].source, row[0].key))
    assert [i.id for i, _ in first] == [i.id for i, _ in done_first[:3]]
    assert all(i.state == State.DONE for i, _ in first)
    assert len(store.kr_items("a", limit=2)) == 2
    assert store.kr_item_counts() == {"a": len(everything), "b": len(store.kr_items("b"))}
    page, total = store.kr_items_page("a", 3)
    assert page == first and total == len(everything) == 10  # 1-9 less the retired 10, plus P-20
    assert store.kr_items_page("a", None) == (done_first, 10)
    assert store.kr_items_page("nothing", 5) == ([], 0)
    assert store.kr_items_page("a", 10) == (done_first, 10), "a page exactly full"
    assert store.kr_items_page("a", 50) == (done_first, 10), "a page not full: no count asked"
    assert store.kr_items_page("a", 3, count=False) == (first, None), "full: the tallies' listed"
    assert store.kr_items_page("a", 50, count=False) == (done_first, 10)
    assert store.tallies(START, END)["a"].listed == 10


def test_latest_snapshots_without_provenance(store: Store) -> None:
    run = store.begin_run(NOW, full=False, dry_run=False, worker="w")
    store.write_snapshots(run, NOW, [kr("a", 40.0, 4, 10)], {"a": {"1": "done"}})
    light = store.latest_snapshots(items=False)["a"]
    full = store.latest_snapshots()["a"]
    assert light["items"] == {} and full["items"] == {"1": "done"}
    assert {k: v for k, v in light.items() if k != "items"} == {k: v for k, v in full.items() if k != "items"}


def _snap(store: Store, at: datetime, current: float, *krs: str) -> None:
    run = store.begin_run(at, full=False, dry_run=False, worker="w")
    store.write_snapshots(run, at, [kr(k, current, 1, 10) for k in krs or ("a",)], {})


def test_daily_histories_keep_each_days_last_point(store: Store) -> None:
    day = datetime(2026, 10, 10, tzinfo=UTC)
    _snap(store, day - timedelta(days=3, hours=1), 1.0)  # before `since`: left out
    _snap(store, day + timedelta(hours=9), 10.0, "a", "b")  # first in the window: kept
    _snap(store, day + timedelta(hours=15), 11.0)
    _snap(store, day + timedelta(hours=23, minutes=59, seconds=59), 12.0)  # the day's last
    _snap(store, day + timedelta(days=1), 20.0)  # midnight belongs to the next day
    _snap(store, day + timedelta(days=1, hours=12), 21.0, "a", "b")
    # no snapshot on day + 2
    _snap(store, day + timedelta(days=3, hours=8), 30.0)
    _snap(store, day + timedelta(days=3, hours=8), 31.0)  # another run at the same instant wins
    since = day - timedelta(days=1)
    daily = store.daily_histories(since=since)
    assert [(p.at - day, p.current) for p in daily["a"]] == [
        (timedelta(hours=9), 10.0),
        (timedelta(hours=23, minutes=59, seconds=59), 12.0),
        (timedelta(days=1, hours=12), 21.0),
        (timedelta(days=3, hours=8), 31.0),
    ]
    assert [p.current for p in daily["b"]] == [10.0, 21.0]
    assert daily["a"][0].total == 10 and daily["a"][0].done == 1
    # the same as thinning the full history in Python
    full = store.histories(since=since)["a"]
    by_day = {p.at.date(): p for p in full}
    assert daily["a"] == [full[0], *[p for p in by_day.values() if p is not full[0]]]
    assert store.daily_histories(since=since, kr_ids=["b", "nothing"]) == {"b": daily["b"]}
    assert [p.current for p in store.daily_histories()["a"]][:2] == [1.0, 12.0]  # no window: every day


def test_daily_histories_put_backfill_before_the_first_snapshot(store: Store) -> None:
    day = datetime(2026, 10, 10, tzinfo=UTC)
    store.write_backfill("a", [
        HistoryPoint(day - timedelta(days=n), float(10 - n), 0.0, 10, 10 - n) for n in (3, 2, 1)
    ] + [HistoryPoint(day + timedelta(days=1), 99.0, 0.0, 10, 9)])  # fmt: skip
    store.write_backfill("c", [HistoryPoint(day, 5.0, 0.5, 10, 5)])  # reconstruction only
    _snap(store, day + timedelta(hours=10), 40.0)
    _snap(store, day + timedelta(days=1, hours=10), 50.0)
    daily = store.daily_histories(since=day - timedelta(days=2, hours=1))
    assert [p.current for p in daily["a"]] == [8.0, 9.0, 40.0, 50.0]  # 99 loses to real snapshots
    assert [p.current for p in daily["c"]] == [5.0]
    assert daily["a"] == [p for p in store.histories(since=day - timedelta(days=2, hours=1))["a"]]


def test_link_parents_gives_children_named_by_key_their_parents_id(store: Store) -> None:
    epic = item(1, key="PLAT-1", kind=ItemKind.EPIC)
    child = item(2, key="PLAT-2", parent_key="PLAT-1")
    orphan = item(3, key="PLAT-3", parent_key="GONE-9")
    store.write_page("jira", [child, orphan, epic], {}, None, NOW)
    assert store.link_parents("jira") == 1
    by_id = {i.id: i for i in store.iter_items("jira")}
    assert by_id["2"].parent_id == "1" and by_id["3"].parent_id is None
    assert store.link_parents("jira") == 0, "nothing left to link: no row is rewritten"


def test_only_the_two_newest_runs_keep_their_item_maps(store: Store) -> None:
    runs_ = [store.begin_run(NOW + timedelta(minutes=n), full=False, dry_run=False, worker="w") for n in range(3)]
    for n, run in enumerate(runs_):
        store.write_snapshots(run, NOW + timedelta(minutes=n), [kr("a", 10.0 + n, 1, 10)], {"a": {"1": "done"}})
    with store._read("inspect") as conn:
        maps = dict(conn.execute(select(store_schema.snapshots.c.run_id, store_schema.snapshots.c["items"])).all())
    assert maps[runs_[0]] == {} and maps[runs_[1]] == {"1": "d"} and maps[runs_[2]] == {"1": "d"}
    assert [p.current for p in store.history("a")] == [10.0, 11.0, 12.0], "the numbers stay"
    latest = store.latest_snapshots()["a"]
    assert latest["items"] == {"1": "done"}
    assert store.previous_snapshot("a", before_run=latest["run_id"])["items"] == {"1": "done"}


def test_item_maps_pruned_run_by_run_and_a_late_writer_keeps_none(store: Store) -> None:
    late = store.begin_run(NOW, full=False, dry_run=False, worker="slow")
    runs_ = [store.begin_run(NOW + timedelta(minutes=n), full=False, dry_run=False, worker="w") for n in range(1, 6)]

    def maps() -> dict[int, Any]:
        with store._read("inspect") as conn:
            return dict(conn.execute(select(store_schema.snapshots.c.run_id, store_schema.snapshots.c["items"])).all())

    for n, run in enumerate(runs_, start=1):
        store.write_snapshots(run, NOW + timedelta(minutes=n), [kr("a", float(n), 1, 10)], {"a": {str(n): "done"}})
        kept = [r for r, m in maps().items() if m]
        assert kept == runs_[max(0, n - 2) : n], f"after run {n}: only the two newest keep their maps"
    # A worker that began before all of them finishes now: two newer runs exist, so its map goes.
    store.write_snapshots(late, NOW, [kr("a", 0.5, 1, 10)], {"a": {"0": "todo"}})
    assert maps()[late] == {} and [r for r, m in maps().items() if m] == runs_[-2:]
    assert [p.current for p in store.history("a")] == [0.5, 1.0, 2.0, 3.0, 4.0, 5.0], "the numbers stay"


def test_a_prune_waits_for_a_snapshot_writer_still_in_its_transaction(store: Store, store_url: str) -> None:
    """A newer run's prune must not move its mark past a run whose snapshots are not committed
    yet: that run's map would then be kept for ever (PostgreSQL has no single write lock)."""
    runs_ = [store.begin_run(NOW + timedelta(minutes=n), full=False, dry_run=False, worker="w") for n in range(6)]
    for n in (0, 2):
        store.write_snapshots(runs_[n], NOW + timedelta(minutes=n), [kr("a", float(n), 1, 10)], {"a": {str(n): "done"}})
    other = Store.open(store_url)
    errors: list[BaseException] = []

    def newer_run() -> None:
        try:
            other.write_snapshots(runs_[3], NOW + timedelta(minutes=3), [kr("a", 3.0, 1, 10)], {"a": {"3": "done"}})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    worker = threading.Thread(target=newer_run)
    try:
        with store.transaction():
            store.write_snapshots(runs_[1], NOW + timedelta(minutes=1), [kr("a", 1.0, 1, 10)], {"a": {"1": "todo"}})
            worker.start()
            worker.join(0.5)  # it waits for this transaction (or, without the lock, finishes)
        worker.join(10)
    finally:
        other.close()
    assert not worker.is_alive() and not errors
    for n in (4, 5):
        store.write_snapshots(runs_[n], NOW + timedelta(minutes=n), [kr("a", float(n), 1, 10)], {"a": {str(n): "done"}})
    with store._read("inspect") as conn:
        maps = dict(conn.execute(select(store_schema.snapshots.c.run_id, store_schema.snapshots.c["items"])).all())
    assert [r for r, m in sorted(maps.items()) if m] == runs_[4:], "only the two newest keep a map"


def test_touch_tracking_stopped_by_another_thread_mid_update(store: Store) -> None:
    """Sources write from their own threads: one may stop the tracking while another is inside
    its update. Neither may fail, and the tracking stays stopped."""
    inside, crossed = threading.Event(), threading.Event()

    def slow_ids() -> Any:
        yield "a1"
        inside.set()
        crossed.wait(5)
        yield "a2"

    def other() -> None:
        inside.wait(5)
        store._touch("gh", ["1", "2", "3"])
        crossed.set()

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(store_module, "_TOUCHED_MAX", 2)
        thread = threading.Thread(target=other)
        thread.start()
        try:
            store._touch("jira", slow_ids())
        finally:
            thread.join(10)
    assert store._touched is None


# -- carrying item maps forward ------------------------------------------------------------------------

_LETTERS = {"todo": "t", "in_progress": "p", "done": "d", "unknown": "u"}


def _truth(store: Store, kr_ids: list[str]) -> dict[str, dict[str, str]]:
    """Each key result's items read one at a time through SQLAlchemy rows (not the raw cursor)."""
    return {k: {i: _LETTERS[s] for i, s in store.kr_item_states(k).items()} for k in kr_ids}


def _pass(store: Store, n: int, kr_ids: list[str], change: Any) -> tuple[dict[str, dict[str, str]], int]:
    """One sync pass as run_once does it: writes, then maps for the snapshots; counts full reads."""
    full_reads = 0
    real = store.kr_item_letters

    def counting(ids: Any) -> dict[str, dict[str, str]]:
        nonlocal full_reads
        full_reads += 1
        return real(ids)

    store.kr_item_letters = counting  # type: ignore[method-assign,assignment]
    try:
        run = store.begin_run(NOW + timedelta(minutes=n), full=False, dry_run=False, worker="w")
        change()
        latest = store.latest_snapshots(letters=True)
        maps = store.snapshot_item_maps(kr_ids, latest, run).letters
        store.write_snapshots(run, NOW + timedelta(minutes=n), [kr(k, 1.0, 0, 1) for k in kr_ids], maps, letters=True)
        store.finish_run(run, NOW + timedelta(minutes=n, seconds=1), "ok", 0, {})
    finally:
        del store.kr_item_letters
    return maps, full_reads


def _clear_then_match(store: Store, item_id: str, kr_id: str) -> None:
    store.clear_matches()
    store.replace_matches("jira", {item_id: {kr_id: 0}})


def _write_past_the_cap(store: Store) -> None:
    """Rewrite three items one page at a time with the cap at two: the Store stops tracking."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(store_module, "_TOUCHED_MAX", 2)
        for i in (2, 10, 11):
            store.write_page("jira", [item(i, state=State.IN_PROGRESS)], {str(i): {"c": 0}}, None, NOW)


def test_item_maps_carried_forward_equal_a_full_read(store: Store, store_url: str) -> None:
    kr_ids = ["a", "b", "c"]
    every = [item(i, state=State.TODO) for i in range(12)] + [item(i, source="gh") for i in range(5)]

    def first() -> None:
        store.write_page(
            "jira", every[:12], {str(i): {"a": 0, "b": 1} if i % 2 else {"a": 0} for i in range(12)}, None, NOW
        )
        store.write_page("gh", every[12:], {str(i): {"c": 0} for i in range(5)}, None, NOW)  # ids "0".."4" in both

    steps: list[tuple[str, Any]] = [
        ("first", first),
        ("nothing changed", lambda: None),
        (
            "states change",
            lambda: store.write_page(
                "jira",
                [item(1, state=State.DONE), item(2, state=State.IN_PROGRESS)],
                {"1": {"a": 0, "b": 1}, "2": {"c": 3}},
                None,
                NOW,
            ),
        ),
        ("an item leaves a key result", lambda: store.replace_matches("jira", {"3": {}, "4": {"b": 0}})),
        (
            "excluded and sub-task",
            lambda: store.write_page(
                "jira",
                [item(5, excluded=True), item(6, kind=ItemKind.SUBTASK)],
                {"5": {"a": 0}, "6": {"a": 0}},
                None,
                NOW,
            ),
        ),
        ("retired", lambda: store.retire_missing("jira", [str(i) for i in range(12) if i != 7], NOW, guard=1.0)),
        (
            "same id in the other source",
            lambda: store.write_page("gh", [item(1, source="gh", state=State.DONE)], {"1": {"a": 2}}, None, NOW),
        ),
        ("rules changed", lambda: _clear_then_match(store, "8", "c")),
        ("more written than is worth tracking", lambda: _write_past_the_cap(store)),
        (
            "after a full read",
            lambda: store.write_page("jira", [item(9, state=State.DONE)], {"9": {"c": 0}}, None, NOW),
        ),
    ]
    reads = {}
    for n, (name, change) in enumerate(steps):
        maps, reads[name] = _pass(store, n, kr_ids, change)
        assert maps == _truth(store, kr_ids), name
    assert reads == {
        "first": 1, "nothing changed": 0,  # the first pass reads all; from then on only what changed
        "states change": 0, "an item leaves a key result": 0, "excluded and sub-task": 0, "retired": 0,
        "same id in the other source": 0, "rules changed": 1, "more written than is worth tracking": 1,
        "after a full read": 0,
    }  # fmt: skip
    # clear_matches left only what came after
    assert maps == {"a": {}, "b": {}, "c": {"8": "t", "2": "p", "10": "p", "11": "p", "9": "d"}}

    # Another process's pass carries forward from these maps and writes its own: they hold its
    # writes, so this Store may carry forward from them in turn.
    other = Store.open(store_url)
    try:
        _pass(
            other, 20, kr_ids, lambda: other.write_page("jira", [item(8, state=State.DONE)], {"8": {"c": 0}}, None, NOW)
        )
        maps, full = _pass(store, 21, kr_ids, lambda: None)
        assert full == 0 and maps == _truth(store, kr_ids) and maps["c"]["8"] == "d"

        # It writes items in a run that ends before its snapshots (a crash): this Store never saw
        # those writes, so the next pass reads everything again.
        crashed = other.begin_run(NOW + timedelta(minutes=22), full=False, dry_run=False, worker="w2")
        other.write_page("jira", [item(9, state=State.TODO)], {"9": {"c": 0}}, None, NOW)
        other.finish_run(crashed, NOW + timedelta(minutes=22), "failed", 0, {})
    finally:
        other.close()
    maps, full = _pass(store, 23, kr_ids, lambda: None)
    assert full == 1 and maps == _truth(store, kr_ids) and maps["c"]["9"] == "t"


def _reference_json_list(values: tuple[str, ...]) -> str:
    import json

    return json.dumps(list(values))


def _reference_labels_blob(labels: tuple[str, ...]) -> str:
    return "\x1f" + "".join(label.lower().replace("\x1f", " ") + "\x1f" for label in labels)


@pytest.mark.parametrize(
    "labels",
    [(), ("",), ("a", ""), ("Bug", "customer"), ('say "hi"',), ("back\\slash",), ("tab\there",),
     ("fence\x1fin",), ("DEL\x7f",), ("Größe",), ("ΑΣ", "Σ"), ("İstanbul",), ("😀",), ("x" * 300,)],
)
def test_stored_label_columns_are_what_the_json_encoder_and_per_label_lowering_give(labels: tuple[str, ...]) -> None:
    # The fast paths must store the very bytes the reference forms stored before them.
    assert store_module._json_list(labels) == (_reference_json_list(labels) if labels else "[]")
    assert store_module._labels_blob(labels) == _reference_labels_blob(labels)


def test_stored_label_columns_match_the_reference_for_any_text() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=400, deadline=None)
    @given(st.lists(st.text(max_size=12), max_size=5).map(tuple))
    def check(labels: tuple[str, ...]) -> None:
        assert store_module._json_list(labels) == (_reference_json_list(labels) if labels else "[]")
        assert store_module._labels_blob(labels) == _reference_labels_blob(labels)

    check()


def test_item_days_group_counted_items_by_utc_day_and_leave_out_what_is_not_counted(store: Store) -> None:
    from syncer.backfill import day_groups

    d1 = datetime(2026, 10, 3, 23, 30, tzinfo=UTC)
    late_evening_east = datetime(2026, 10, 4, 1, 0, tzinfo=timezone(timedelta(hours=3)))  # 10-03 22:00 UTC
    done = datetime(2026, 10, 9, 8, 0, tzinfo=UTC)
    written = [
        item(1, created_at=d1, done_at=done, state=State.DONE, points=3.0),
        item(2, created_at=late_evening_east, done_at=done + timedelta(hours=3), state=State.DONE, points=2.0),
        item(3, created_at=d1, done_at=None, state=State.TODO),  # no points: counts as 0
        item(4, created_at=None, done_at=done, state=State.IN_PROGRESS, points=1.0),  # reopened: not done now
        item(5, created_at=d1, excluded=True),  # won't do: not counted
        item(6, created_at=d1, kind=ItemKind.SUBTASK),  # sub-tasks are not counted
        item(7, created_at=d1),  # retired below
    ]
    store.write_page("jira", written, {str(n): {"a": 0} for n in range(1, 8)} | {"1": {"a": 0, "b": 0}}, None, NOW)
    store.retire_missing("jira", {str(n) for n in range(1, 7)}, NOW, guard=1.0)
    found = store.kr_item_days(["a", "b", "c"])
    assert sorted(found["a"], key=str) == sorted([
        (date(2026, 10, 3), date(2026, 10, 9), True, 2, 5.0),
        (date(2026, 10, 3), None, False, 1, 0.0),
        (None, date(2026, 10, 9), False, 1, 1.0),
    ], key=str)  # fmt: skip
    assert found["b"] == [(date(2026, 10, 3), date(2026, 10, 9), True, 1, 3.0)]
    assert "c" not in found
    # The same groups, summed, as the items one by one (what reconstruct() used to be given).
    by_item = day_groups([(i.created_at, i.done_at, i.state is State.DONE, i.points) for i in written[:4]])
    assert sum(g[3] for g in found["a"]) == len(by_item)
    assert sum(g[4] for g in found["a"]) == sum(g[4] for g in by_item)


def test_maps_read_with_day_groups_hold_what_the_two_separate_reads_give(store: Store) -> None:
    # A first pass reads the snapshot's letters and the history's day groups in one join; both
    # must be exactly what kr_item_letters and kr_item_days return, on either database.
    import random

    rng = random.Random(7)
    states = [State.TODO, State.IN_PROGRESS, State.DONE, State.UNKNOWN]
    written, wanted = [], {}
    for n in range(400):
        created = NOW - timedelta(days=rng.randint(0, 60), minutes=rng.randint(0, 1439)) if rng.random() > 0.1 else None
        state = rng.choice(states)
        done_at = NOW - timedelta(days=rng.randint(0, 30), hours=rng.randint(0, 23)) if rng.random() > 0.3 else None
        written.append(item(n, state=state, created_at=created, done_at=done_at,
                            points=rng.choice([None, 0.5, 1.0, 2.0, 3.0, 8.0]), excluded=rng.random() < 0.1,
                            kind=ItemKind.SUBTASK if rng.random() < 0.1 else ItemKind.ISSUE))
        wanted[str(n)] = {k: 0 for k in ("a", "b", "c", "d") if rng.random() < 0.4}
    store.write_page("jira", written, wanted, None, NOW)
    store.retire_missing("jira", {str(n) for n in range(0, 400, 2)} | {str(n) for n in range(1, 40, 2)}, NOW, guard=1.0)
    run = store.begin_run(NOW, full=True, dry_run=False, worker="w")
    maps = store.snapshot_item_maps(["a", "b", "c", "d", "e"], {}, run, days_for=["a", "c", "e"])
    assert maps.letters == store.kr_item_letters(["a", "b", "c", "d", "e"])
    assert maps.days is not None and set(maps.days) == {"a", "c"}  # "e" matches nothing, "b" was not asked
    separate = store.kr_item_days(["a", "c", "e"])
    for kr_id in ("a", "c"):
        assert sorted(maps.days[kr_id], key=str) == sorted(separate[kr_id], key=str)
        assert sum(g[3] for g in maps.days[kr_id]) == len(maps.letters[kr_id]) > 50
    without = store.snapshot_item_maps(["a", "b"], {}, run)
    assert without.days is None and without.letters == {k: maps.letters[k] for k in ("a", "b")}


def test_an_items_row_puts_every_field_of_the_item_in_its_own_column() -> None:
    # _item_values unpacks the item by position: a field added or moved in WorkItem must not
    # land in another column unnoticed.
    from syncer.store_schema import format_utc

    full = item(
        "id-1", source="src", key="K-1", title="t", url="u", kind=ItemKind.EPIC, state=State.DONE,
        updated_at=NOW, container="C", issue_type="Epic", created_at=NOW - timedelta(days=2),
        done_at=NOW - timedelta(days=1), excluded=True, resolution="Done", points=2.5, labels=("A", "b"),
        components=("comp",), milestone="m", fix_versions=("v1",), parent_key="P-0", parent_id="p0",
        status_name="Closed", in_scope=False, unknown_fields=("x",),
    )
    assert len(WorkItem._fields) == 24, "a new WorkItem field needs its column in _item_values"
    row = dict(zip(store_module._ROW_COLUMNS, store_module._item_values(full, "NOW"), strict=True))
    assert row == {
        "source": "src", "id": "id-1", "key": "K-1", "title": "t", "url": "u", "kind": "epic", "state": "done",
        "issue_type": "Epic", "container": "C", "created_at": format_utc(NOW - timedelta(days=2)),
        "updated_at": format_utc(NOW), "done_at": format_utc(NOW - timedelta(days=1)), "excluded": True,
        "resolution": "Done", "points": 2.5, "labels": '["A", "b"]', "labels_lc": store_module._labels_blob(("A", "b")),
        "components": '["comp"]', "milestone": "m", "fix_versions": '["v1"]', "parent_key": "P-0",
        "parent_id": "p0", "status_name": "Closed", "in_scope": False, "unknown_fields": '["x"]',
        "first_seen_at": "NOW", "last_seen_at": "NOW",
    }
    nullable = {c.name for c in store_schema.items.columns if c.nullable}
    stand_ins = {*store_module._NULLABLE, "retired_at"}
    assert nullable == stand_ins, "a new optional column needs its stand-in in _ItemBinding"


_EDGE_TEXT = ("", "0", "0.0", "NULL", "null", "1e3", " ", "ü-Ω", "\x00")
"""Optional text values that a stand-in for NULL must not swallow or retype."""


def _edge_items(source: str, shift: int = 0) -> list[WorkItem]:
    """Items with every optional field empty in some and set to an awkward value in others;
    ``shift`` moves which is which (to write the same ids over again)."""
    points: list[float | None] = [None, 0.0, 0, -1.0, 2.5, 1e300, 3]  # type: ignore[list-item]  # an int too
    made = []
    for n in range(len(_EDGE_TEXT) * 2):
        m = n + shift
        text_or_none = None if m % 3 == 2 else _EDGE_TEXT[m % len(_EDGE_TEXT)]
        made.append(item(
            f"e{n:02d}", source=source, created_at=None if m % 4 == 1 else NOW - timedelta(days=m),
            done_at=None if m % 2 else NOW, excluded=m % 2 == 0, in_scope=m % 3 != 0,
            resolution=text_or_none, milestone=text_or_none, parent_key=text_or_none, parent_id=text_or_none,
            points=points[m % len(points)],
        ))  # fmt: skip
    return made


def _plain_row(i: WorkItem) -> tuple[Any, ...]:
    """``i``'s items row with its flags and optional fields exactly as the item holds them (the
    reference the SQLite spelling must store the same as), in ``_ROW_COLUMNS`` order."""
    from syncer.store_schema import format_utc

    row = dict(zip(store_module._ROW_COLUMNS, store_module._item_values(i, "NOW"), strict=True))
    row.update(
        excluded=i.excluded, in_scope=i.in_scope, resolution=i.resolution, points=i.points, milestone=i.milestone,
        parent_key=i.parent_key, parent_id=i.parent_id, done_at=None if i.done_at is None else format_utc(i.done_at),
        created_at=None if i.created_at is None else format_utc(i.created_at),
    )  # fmt: skip
    return tuple(row[c] for c in store_module._ROW_COLUMNS)


def test_the_dialects_row_spelling_stores_what_plain_values_would(store: Store) -> None:
    # SQLite's rows spell NULL and the flags with stand-ins (_ItemBinding): the stored values and
    # their types must be exactly those that binding None, True and False gives, written new
    # and written over (the upsert's update takes the same spelled values).
    columns = [c for c in store_module._ITEM_ALL if c not in ("source", "first_seen_at", "last_seen_at")]
    typed = ", ".join(f'"{c}"' + (f', typeof("{c}")' if store.dialect == "sqlite" else "") for c in columns)
    for shift in (0, 1, 2):
        edge = _edge_items("jira", shift)
        store.write_page("jira", edge, {}, None, NOW)
        plain = [_plain_row(i) for i in _edge_items("plain", shift)]
        with store._write("plain rows") as conn:
            store_module._executemany(conn, store_module._PLAIN_ITEMS.sql, plain)
        with store._read("rows") as conn:
            query = text(f"SELECT {typed} FROM items WHERE source = :s ORDER BY id")
            ours = [tuple(r) for r in conn.execute(query, {"s": "jira"})]
            reference = [tuple(r) for r in conn.execute(query, {"s": "plain"})]
        assert len(ours) == len(edge) and ours == reference
        assert store.items_by_ids("jira", [i.id for i in edge]) == edge  # and they read back as written


def test_the_row_spelling_keeps_values_a_connector_should_not_send_as_plain_binding_does(tmp_path: Path) -> None:
    # A connector may break WorkItem's types (a JSON number as a parent id, a truthy flag that is
    # not a bool): SQLite stores them exactly as binding the value itself would, never as NULL.
    # (PostgreSQL binds plainly and refuses most of these, as it always did.)
    odd: list[dict[str, Any]] = [
        {"parent_id": 0, "parent_key": 0.0, "resolution": -0.0, "milestone": 7, "points": True},
        {"parent_id": "", "parent_key": b"\x00", "resolution": "x''", "milestone": 1e20, "points": "3"},
        {"parent_id": 10**18, "parent_key": "0", "resolution": 0.5, "milestone": "", "points": 0},
        {"excluded": 2, "in_scope": 0, "points": bytearray(b"\x01"), "created_at": None},
    ]
    store = Store.open(f"sqlite:///{tmp_path / 'okrsync.db'}")
    columns = [c for c in store_module._ITEM_ALL if c not in ("source", "first_seen_at", "last_seen_at")]
    typed = ", ".join(f'"{c}", typeof("{c}")' for c in columns)
    store.write_page("jira", [item(f"o{n}", source="jira", **fields) for n, fields in enumerate(odd)], {}, None, NOW)
    with store._write("plain rows") as conn:
        plain = [_plain_row(item(f"o{n}", source="plain", **fields)) for n, fields in enumerate(odd)]
        store_module._executemany(conn, store_module._PLAIN_ITEMS.sql, plain)
    with store._read("rows") as conn:
        query = text(f"SELECT {typed} FROM items WHERE source = :s ORDER BY id")
        ours = [tuple(r) for r in conn.execute(query, {"s": "jira"})]
        reference = [tuple(r) for r in conn.execute(query, {"s": "plain"})]
    store.close()
    assert len(ours) == len(odd) and ours == reference
    at = columns.index("parent_id") * 2
    assert ours[0][at : at + 2] == ("0", "text")  # a number in a text column is text, as it was


def test_a_new_sqlite_store_takes_16k_pages_and_an_older_store_keeps_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    older = tmp_path / "older.db"
    monkeypatch.setattr(store_module, "PAGE_SIZE", 4096)  # as okrsync created stores before
    with Store.open(f"sqlite:///{older}") as s:
        s.write_page("jira", [item(1)], {"1": {"kr": 0}}, None, NOW)
    monkeypatch.undo()
    newer = tmp_path / "newer.db"
    for path in (older, newer):
        with Store.open(f"sqlite:///{path}") as s:
            s.write_page("jira", [item(2, done_at=None, points=None)], {"2": {"kr": 0}}, None, NOW)
            assert s.count_items() == (2 if path == older else 1) and s.quick_check()
    sizes = {}
    for path in (older, newer):
        db = sqlite3.connect(path)
        try:
            size, mode = db.execute("PRAGMA page_size").fetchone()[0], db.execute("PRAGMA journal_mode").fetchone()[0]
            sizes[path.name] = (size, mode)
        finally:
            db.close()
    assert sizes == {"older.db": (4096, "wal"), "newer.db": (store_module.PAGE_SIZE, "wal")}
    assert store_module.PAGE_SIZE == 16384


def test_a_first_load_takes_statistics_once_when_its_indexes_are_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "_ANALYZE_MIN", 5)
    calls: list[int] = []
    real = store_module._analyze
    monkeypatch.setattr(store_module, "_analyze", lambda conn: calls.append(1) or real(conn))
    with Store.open(f"sqlite:///{tmp_path / 'okrsync.db'}") as s:
        assert s.defer_indexes_if_empty()
        for start in range(0, 40, 8):
            s.write_page("jira", [item(n) for n in range(start, start + 8)], {}, None, NOW)
        assert calls == [], "no statistics while loading"
        s.build_deferred_indexes()
        assert calls == [1]
        for start in range(40, 80, 8):  # a later pass in the same process analyzes as it grows again
            s.write_page("jira", [item(n) for n in range(start, start + 8)], {}, None, NOW)
        assert len(calls) == 2
    with Store.open(f"sqlite:///{tmp_path / 'other.db'}") as s:  # without a deferred load, as before
        for start in range(0, 16, 8):
            s.write_page("jira", [item(n) for n in range(start, start + 8)], {}, None, NOW)
        assert len(calls) == 4
