"""CONTRACT §3, rule by rule: counting, metrics, progress, status bands, roll-up, unaligned, changes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncer.config import Config, Cycle, KeyResult, Objective
from syncer.model import ItemKind, KeyResultChange, KeyResultProgress, State, Status, Tally, WorkItem
from syncer.progress import (
    compute_key_result,
    current_value,
    describe_change,
    expected_fraction,
    find_unaligned,
    format_change,
    is_unaligned_candidate,
    progress_of,
    roll_up,
    status_of,
    tally,
)

CYCLE = Cycle(name="2026-Q4", start=date(2026, 10, 1), end=date(2026, 12, 31))
START = datetime(2026, 10, 1, tzinfo=UTC)
END = datetime(2027, 1, 1, tzinfo=UTC)  # exclusive: end date + 1 day, 00:00 UTC
MID = START + (END - START) / 2
US = timedelta(microseconds=1)


def item(key: str, state: State = State.TODO, **kw: Any) -> WorkItem:
    base: dict[str, Any] = dict(
        source="jira",
        id=f"id-{key}",
        key=key,
        title=key,
        url=f"https://jira/{key}",
        kind=ItemKind.ISSUE,
        state=state,
        updated_at=MID,
        container=key.split("-")[0],
    )
    if state is State.DONE:
        base["done_at"] = MID
    base.update(kw)
    return WorkItem(**base)


def kr(metric: str = "percent_done", **kw: Any) -> KeyResult:
    return KeyResult(id=kw.pop("id", "kr"), title="KR", metric=metric, **kw)


# --- tally -----------------------------------------------------------------------------------


def test_tally_counts_states_and_points() -> None:
    items = [
        item("A-1", State.DONE, points=3),
        item("A-2", State.IN_PROGRESS, points=5),
        item("A-3", State.TODO),
        item("A-4", State.UNKNOWN, points=1),
    ]
    assert tally(items, CYCLE) == Tally(
        total=4,
        done=1,
        in_progress=1,
        todo=1,
        unknown=1,
        points_total=9.0,
        points_done=3.0,
        done_in_cycle=1,
        points_done_in_cycle=3.0,
        unestimated=1,
        listed=4,
    )


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(item("X-1", State.DONE, excluded=True, resolution="Won't Do"), id="wont-do"),
        pytest.param(item("X-2", State.DONE, excluded=True, resolution="not_planned"), id="not-planned"),
        pytest.param(item("X-3", State.DONE, excluded=True, resolution="Duplicate"), id="duplicate"),
        pytest.param(item("X-4", State.TODO, excluded=True), id="excluded-open"),
        pytest.param(item("X-5", State.DONE, kind=ItemKind.SUBTASK, points=8), id="subtask-done"),
        pytest.param(item("X-6", State.TODO, kind=ItemKind.SUBTASK), id="subtask-open"),
        pytest.param(item("A-1", State.DONE, points=3), id="same-item-twice"),
    ],
)
def test_tally_ignores(extra: WorkItem) -> None:
    """Excluded items, sub-tasks and repeats change neither done nor total."""
    base = [item("A-1", State.DONE, points=3), item("A-2", State.TODO, points=2)]
    with_extra = tally([*base, extra], CYCLE)
    assert replace(with_extra, excluded=0, listed=0) == replace(tally(base, CYCLE), listed=0)
    assert with_extra.listed == len({(i.source, i.id) for i in [*base, extra]})  # what a list shows
    assert with_extra.total == 2
    assert with_extra.excluded == (1 if extra.excluded and extra.kind is not ItemKind.SUBTASK else 0)


@pytest.mark.parametrize(
    ("done_at", "counted"),
    [
        pytest.param(START - US, False, id="just-before-start"),
        pytest.param(START, True, id="exactly-at-start"),
        pytest.param(END - US, True, id="just-before-end-plus-one-day"),
        pytest.param(END, False, id="at-end-plus-one-day"),
        pytest.param(datetime(2026, 10, 1, 1, tzinfo=timezone(timedelta(hours=2))), False, id="utc+2-before"),
        pytest.param(
            datetime(2026, 12, 31, 20, tzinfo=timezone(timedelta(hours=-5))), False, id="utc-5-after"
        ),
        pytest.param(
            datetime(2026, 12, 31, 18, tzinfo=timezone(timedelta(hours=-5))), True, id="utc-5-inside"
        ),
    ],
)
def test_done_in_cycle_edges(done_at: datetime, counted: bool) -> None:
    t = tally([item("A-1", State.DONE, points=2, done_at=done_at)], CYCLE)
    assert (t.done, t.total) == (1, 1)  # percent metrics count it whatever its date
    assert t.done_in_cycle == int(counted)
    assert t.points_done_in_cycle == (2.0 if counted else 0.0)


@pytest.mark.parametrize(("updated_at", "counted"), [(START - US, False), (START, True)])
def test_done_without_done_at_uses_updated_at(updated_at: datetime, counted: bool) -> None:
    t = tally([item("A-1", State.DONE, done_at=None, updated_at=updated_at)], CYCLE)
    assert t.done_in_cycle == int(counted)


# --- metrics and progress --------------------------------------------------------------------

TALLY = Tally(
    total=8, done=2, in_progress=3, todo=3, points_total=40.0, points_done=10.0,
    done_in_cycle=1, points_done_in_cycle=5.0,
)  # fmt: skip


@pytest.mark.parametrize(
    ("metric", "tally_", "checkin", "expected"),
    [
        ("percent_done", TALLY, None, 25.0),
        ("percent_done", Tally(), None, 0.0),
        ("points_percent_done", TALLY, None, 25.0),
        ("points_percent_done", Tally(total=3, done=1), None, 0.0),
        ("count_done", TALLY, None, 1.0),
        ("sum_points_done", TALLY, None, 5.0),
        ("count_open", TALLY, None, 6.0),
        ("count_open", Tally(total=2, unknown=2), None, 2.0),
        ("manual", TALLY, 37.5, 37.5),
        ("manual", TALLY, None, 30.0),  # no check-in yet: the start value
    ],
)
def test_current_value(metric: str, tally_: Tally, checkin: float | None, expected: float) -> None:
    assert current_value(kr(metric, start=30, target=45), tally_, checkin) == expected


@pytest.mark.parametrize(
    ("current", "start", "target", "expected"),
    [
        (50, 0, 100, 0.5),
        (0, 0, 100, 0.0),
        (120, 0, 100, 1.0),
        (-5, 0, 100, 0.0),
        (37.5, 30, 45, 0.5),
        # decreasing target: count_open from 40 down to 10
        (40, 40, 10, 0.0),
        (25, 40, 10, 0.5),
        (10, 40, 10, 1.0),
        (4, 40, 10, 1.0),
        (45, 40, 10, 0.0),
        # start == target is a config error; no crash
        (0, 0, 0, 1.0),
        (3, 0, 0, 0.0),
    ],
)
def test_progress_of(current: float, start: float, target: float, expected: float) -> None:
    assert progress_of(current, start, target) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (START - timedelta(days=3), 0.0),
        (START, 0.0),
        (START + timedelta(days=23), 0.25),
        (MID, 0.5),
        (END, 1.0),
        (END + timedelta(days=10), 1.0),
    ],
)
def test_expected_fraction(now: datetime, expected: float) -> None:
    assert expected_fraction(CYCLE, now) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("progress", "expected", "status"),
    [
        (1.0, 0.5, Status.DONE),
        (0.5, 0.6, Status.ON_TRACK),  # exactly expected - 0.10
        (0.7, 0.8, Status.ON_TRACK),  # 0.8 - 0.1 is 0.7000000000000001 in floats
        (0.45, 0.55, Status.ON_TRACK),  # 0.55 - 0.1 is 0.45000000000000007
        (0.69, 0.8, Status.AT_RISK),
        (0.35, 0.6, Status.AT_RISK),  # exactly expected - 0.25
        (0.30, 0.55, Status.AT_RISK),  # 0.55 - 0.25 is 0.30000000000000004
        (0.34, 0.6, Status.OFF_TRACK),
        (0.0, 0.3, Status.OFF_TRACK),
        (0.0, 0.25, Status.AT_RISK),
        (0.0, 0.1, Status.ON_TRACK),
        (0.9, 1.0, Status.ON_TRACK),  # the cycle is over: expected 1
        (0.75, 1.0, Status.AT_RISK),
        (0.74, 1.0, Status.OFF_TRACK),
    ],
)
def test_status_bands_at_their_edges(progress: float, expected: float, status: Status) -> None:
    assert status_of(progress, expected, CYCLE, MID) is status


@pytest.mark.parametrize(
    ("progress", "now", "status"),
    [
        (0.0, START - US, Status.NOT_STARTED),
        (0.5, START - timedelta(days=30), Status.NOT_STARTED),
        (1.0, START - US, Status.DONE),
        (0.0, START, Status.ON_TRACK),
        (0.0, END + timedelta(days=1), Status.OFF_TRACK),
        (1.0, END + timedelta(days=1), Status.DONE),
    ],
)
def test_status_before_and_after_the_cycle(progress: float, now: datetime, status: Status) -> None:
    assert status_of(progress, expected_fraction(CYCLE, now), CYCLE, now) is status


def test_compute_key_result_percent_done() -> None:
    synced = MID - timedelta(minutes=2)
    result = compute_key_result(
        "onboarding",
        kr(id="onboarding-revamp", weight=2),
        TALLY,
        CYCLE,
        MID,
        stale=True,
        last_synced=synced,
        item_ids=("a", "b"),
        sources=("jira",),
    )
    assert result == KeyResultProgress(
        id="onboarding-revamp",
        objective_id="onboarding",
        title="KR",
        metric="percent_done",
        start=0.0,
        target=100.0,
        current=25.0,
        progress=0.25,
        status=Status.AT_RISK,  # expected 0.5: 0.25 is exactly the at-risk edge
        tally=TALLY,
        weight=2.0,
        stale=True,
        last_synced=synced,
        sources=("jira",),
        item_ids=("a", "b"),
    )


@pytest.mark.parametrize(
    ("key_result", "tally_", "checkin", "baseline", "current", "progress", "status"),
    [
        pytest.param(
            kr("count_open", start=40, target=10), Tally(total=30, done=5), None, None, 25.0, 0.5,
            Status.ON_TRACK, id="count-open-decreasing",
        ),
        pytest.param(
            kr("count_open", target=10), Tally(total=30, done=5), None, 40.0, 25.0, 0.5,
            Status.ON_TRACK, id="count-open-baseline-for-missing-start",
        ),
        pytest.param(
            kr("count_open", start=40, target=10), Tally(total=9), None, 50.0, 9.0, 1.0,
            Status.DONE, id="count-open-config-start-beats-baseline",
        ),
        pytest.param(
            kr("manual", start=30, target=45), Tally(), 42.0, None, 42.0, 0.8, Status.ON_TRACK,
            id="manual-with-checkin",
        ),
        pytest.param(
            kr("manual", start=30, target=45), Tally(), None, None, 30.0, 0.0, Status.OFF_TRACK,
            id="manual-without-checkin",
        ),
        pytest.param(
            kr("count_done", target=50), Tally(total=60, done=40, done_in_cycle=20), None, None,
            20.0, 0.4, Status.ON_TRACK, id="count-done-only-in-cycle",
        ),
        pytest.param(
            kr("sum_points_done", target=120), Tally(points_done_in_cycle=30.0), None, None, 30.0,
            0.25, Status.AT_RISK, id="sum-points",
        ),
    ],
)  # fmt: skip
def test_compute_key_result_metrics(
    key_result: KeyResult,
    tally_: Tally,
    checkin: float | None,
    baseline: float | None,
    current: float,
    progress: float,
    status: Status,
) -> None:
    result = compute_key_result("o", key_result, tally_, CYCLE, MID, checkin=checkin, baseline=baseline)
    assert result.current == pytest.approx(current)
    assert result.progress == pytest.approx(progress)
    assert result.status is status


def test_compute_key_result_before_the_cycle_is_not_started() -> None:
    result = compute_key_result("o", kr(), TALLY, CYCLE, START - timedelta(days=1))
    assert result.status is Status.NOT_STARTED


# --- roll-up ---------------------------------------------------------------------------------


def _kr_progress(kr_id: str, progress: float, weight: float = 1.0) -> KeyResultProgress:
    return KeyResultProgress(
        id=kr_id, objective_id="", title=kr_id, metric="percent_done", start=0, target=100,
        current=100 * progress, progress=progress, status=Status.ON_TRACK, tally=Tally(), weight=weight,
    )  # fmt: skip


def _rollup_config() -> Config:
    """grow <- onb (weight 2) <- onb-sub; grow <- ret (weight 1, empty). Children listed first."""
    return Config(
        cycle=CYCLE,
        objectives=(
            Objective(id="onb-sub", title="Sub", parent="onb", key_results=(kr(id="k3"),)),
            Objective(id="grow", title="Grow", owner="vp"),
            Objective(
                id="onb",
                title="Onboarding",
                parent="grow",
                weight=2,
                key_results=(kr(id="k1"), kr(id="k2", weight=3), kr(id="never-computed")),
            ),
            Objective(id="ret", title="Retention", parent="grow"),
            Objective(id="zero", title="Zero weight", key_results=(kr(id="kz", weight=0),)),
        ),
    )


def test_roll_up_weighted_through_two_levels() -> None:
    krs = {
        "k1": _kr_progress("k1", 0.4),
        "k2": _kr_progress("k2", 0.8, weight=3),
        "k3": _kr_progress("k3", 1.0),
        "kz": _kr_progress("kz", 0.9, weight=0),
    }
    result = {o.id: o for o in roll_up(_rollup_config(), krs, MID)}
    assert [o.id for o in roll_up(_rollup_config(), krs, MID)] == ["onb-sub", "grow", "onb", "ret", "zero"]
    # onb = (1*0.4 + 3*0.8 + 1*1.0) / (1 + 3 + 1) = 0.76 ; grow = (2*0.76 + 1*0) / 3
    expected = {"onb-sub": 1.0, "onb": 0.76, "ret": 0.0, "grow": 1.52 / 3, "zero": 0.0}
    assert {k: o.progress for k, o in result.items()} == pytest.approx(expected)
    assert {k: o.status for k, o in result.items()} == {
        "onb-sub": Status.DONE,
        "onb": Status.ON_TRACK,
        "ret": Status.OFF_TRACK,
        "grow": Status.ON_TRACK,
        "zero": Status.OFF_TRACK,
    }
    assert result["grow"].children == ("onb", "ret")
    assert result["onb"].children == ("onb-sub",)
    assert [k.id for k in result["onb"].key_results] == ["k1", "k2"]
    assert (result["onb"].weight, result["onb"].parent, result["grow"].owner) == (2.0, "grow", "vp")


def test_roll_up_before_the_cycle() -> None:
    result = roll_up(_rollup_config(), {"k1": _kr_progress("k1", 0.1)}, START - US)
    assert {o.status for o in result} == {Status.NOT_STARTED}


# --- unaligned -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        pytest.param(item("P-1"), True, id="open-issue"),
        pytest.param(
            item("P-1", State.IN_PROGRESS, updated_at=START - timedelta(days=90)), True, id="old-open"
        ),
        pytest.param(item("P-1", State.UNKNOWN), True, id="unknown-state-is-open"),
        pytest.param(item("P-1", in_scope=False), False, id="outside-scope"),
        pytest.param(item("P-1", kind=ItemKind.EPIC), False, id="epic"),
        pytest.param(item("P-1", kind=ItemKind.SUBTASK), False, id="subtask"),
        pytest.param(item("P-1", kind=ItemKind.PULL_REQUEST), False, id="pull-request"),
        pytest.param(item("P-1", labels=("Chore",)), False, id="ignored-label-any-case"),
        pytest.param(item("P-1", labels=("chores",)), True, id="label-not-ignored"),
        pytest.param(item("P-1", State.DONE, updated_at=START - US), False, id="closed-before-cycle"),
        pytest.param(item("P-1", State.DONE, updated_at=START), True, id="closed-inside-cycle"),
        pytest.param(item("P-1", State.DONE, updated_at=END), False, id="updated-after-cycle"),
        pytest.param(item("P-1", excluded=True, updated_at=START - US), False, id="not-planned-before"),
        pytest.param(item("P-1", excluded=True, updated_at=MID), True, id="not-planned-updated-inside"),
    ],
)
def test_unaligned_candidate(candidate: WorkItem, expected: bool) -> None:
    assert is_unaligned_candidate(candidate, CYCLE, ("chore", "dependencies")) is expected


def test_find_unaligned_follows_parents_skips_failed_sources_and_sorts() -> None:
    epic = item("PLAT-1", kind=ItemKind.EPIC)
    story = item("PLAT-2", parent_id=epic.id, parent_key=epic.key)
    grandchild = item("PLAT-3", parent_id=story.id)  # an issue under a story: aligned via the epic
    by_key_only = item("PLAT-4", parent_key="PLAT-1")
    loose = [item("PLAT-10"), item("PLAT-9"), item("MOB-1")]
    gh = item("acme/web#3", source="github", id="gh-3", container="acme/web")
    failed = item("acme/api#1", source="gh-enterprise", id="ghe-1", container="acme/api")
    loop_a = item("PLAT-20", parent_id="id-PLAT-21")
    loop_b = item("PLAT-21", parent_id="id-PLAT-20")
    result = find_unaligned(
        [epic, story, grandchild, by_key_only, *loose, gh, failed, loop_a, loop_b],
        {epic.id},
        CYCLE,
        ["chore"],
        failed_sources=["gh-enterprise"],
    )
    assert [i.key for i in result] == ["acme/web#3", "MOB-1", "PLAT-9", "PLAT-10", "PLAT-20", "PLAT-21"]


def test_find_unaligned_matched_directly() -> None:
    items = [item("P-1"), item("P-2")]
    assert [i.key for i in find_unaligned(items, ["id-P-1"], CYCLE, [])] == ["P-2"]
    assert find_unaligned(items, [], CYCLE, [], failed_sources={"jira"}) == []


# --- change since the previous pass ----------------------------------------------------------


def test_describe_change_counts_done_added_left() -> None:
    before = _kr_progress("onboarding-revamp", 0.42)
    after = _kr_progress("onboarding-revamp", 0.47)
    ids_before = {"a": "todo", "b": "in_progress", "c": "done", "d": "todo", "gone": "todo"}
    ids_after = {"a": "done", "b": "done", "c": "done", "d": "todo", "new": "done"}
    change = describe_change(before, after, ids_before, ids_after)
    assert change == KeyResultChange(
        kr_id="onboarding-revamp", before=42.0, after=47.0, unit="%", done_delta=3, added=1, left=1
    )
    assert format_change(change) == "onboarding-revamp: 42% -> 47% (+3 done, +1 added, 1 left)"


def test_describe_change_first_pass() -> None:
    change = describe_change(None, _kr_progress("k", 0.5), {}, {"a": "done", "b": "todo"})
    assert (change.before, change.done_delta, change.added, change.left) == (None, 1, 2, 0)


@pytest.mark.parametrize(
    ("change", "text"),
    [
        (KeyResultChange("k", 42.0, 47.0, "%", done_delta=3), "k: 42% -> 47% (+3 done)"),
        (KeyResultChange("k", 42.4, 46.6, "%"), "k: 42% -> 46%"),
        (KeyResultChange("k", 98.0, 99.6, "%"), "k: 98% -> 99%"),
        (KeyResultChange("k", 42.0, 42.0, "%"), "k: 42% (no change)"),
        (KeyResultChange("k", 42.1, 42.3, "%"), "k: 42% (no change)"),
        (KeyResultChange("k", 42.0, 42.0, "%", added=1, left=1), "k: 42% -> 42% (+1 added, 1 left)"),
        (KeyResultChange("k", None, 50.0, "%", done_delta=1, added=2), "k: new -> 50% (+1 done, +2 added)"),
        (KeyResultChange("bugs", 12.0, 15.0, "done", done_delta=3), "bugs: 12 -> 15 done (+3 done)"),
        (KeyResultChange("open", 40.0, 35.0, "open", done_delta=5), "open: 40 -> 35 open (+5 done)"),
        (KeyResultChange("pts", 10.0, 12.5, "points done"), "pts: 10 -> 12.5 points done"),
        (KeyResultChange("nps", 30.0, 32.0, ""), "nps: 30 -> 32"),
        (KeyResultChange("nps", 32.0, 32.0, ""), "nps: 32 (no change)"),
    ],
)
def test_format_change(change: KeyResultChange, text: str) -> None:
    assert format_change(change) == text


# --- invariants ------------------------------------------------------------------------------


@given(
    st.lists(
        st.tuples(
            st.sampled_from(list(State)),
            st.sampled_from(list(ItemKind)),
            st.booleans(),
            st.none() | st.floats(0, 100),
            st.integers(0, 30),
        ),
        max_size=30,
    )
)
def test_tally_invariants(rows: list[tuple[State, ItemKind, bool, float | None, int]]) -> None:
    items = [
        item(f"A-{n}", state, kind=kind, excluded=excluded, points=points)
        for state, kind, excluded, points, n in rows
    ]
    t = tally(items, CYCLE)
    counted = {i.id for i in items if not i.excluded and i.kind is not ItemKind.SUBTASK}
    assert t.total == len(counted) == t.done + t.in_progress + t.todo + t.unknown
    assert 0 <= t.done_in_cycle <= t.done and t.unestimated <= t.total
    assert 0.0 <= current_value(kr(), t, None) <= 100.0


@given(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6), st.floats(-1e6, 1e6))
def test_progress_is_always_between_0_and_1(current: float, start: float, target: float) -> None:
    assert 0.0 <= progress_of(current, start, target) <= 1.0
