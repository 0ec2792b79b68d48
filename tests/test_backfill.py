"""History reconstruction from item dates (pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from connectors.memory import MemoryRule
from syncer.backfill import RECONSTRUCTIBLE, reconstruct
from syncer.config import Cycle, KeyResult

CYCLE = Cycle(name="Q4", start=date(2026, 10, 1), end=date(2026, 12, 31))
START = CYCLE.starts_at


def at(day: float) -> datetime:
    return START + timedelta(days=day)


def kr(metric: str, **kw: float) -> KeyResult:
    return KeyResult(id="k", title="K", metric=metric, match=(MemoryRule(source="m", labels=("x",)),), **kw)


ITEMS = [
    (at(-10), at(-2), True, 2.0),  # done before the cycle
    (at(-10), at(0.5), True, 3.0),  # done on day 0
    (at(-10), at(2.2), True, 5.0),  # done on day 2
    (at(1.5), None, False, 1.0),  # created on day 1, open
    (at(3.5), at(3.6), True, 8.0),  # created and done on day 3
]


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        ("percent_done", [200 / 3, 50.0, 75.0]),  # ends of days 0,1,2: 2/3, 2/4, 3/4
        ("points_percent_done", [50.0, 5 / 11 * 100, 10 / 11 * 100]),  # points 5/10, 5/11, 10/11
        ("count_done", [1.0, 1.0, 2.0]),  # the pre-cycle close does not count
        ("sum_points_done", [3.0, 3.0, 8.0]),
        ("count_open", [1.0, 2.0, 1.0]),
    ],
)
def test_daily_values_from_created_and_done_dates(metric: str, expected: list[float]) -> None:
    points = reconstruct(kr(metric, target=10 if metric.startswith(("count", "sum")) else 100), ITEMS, CYCLE,
                         until=at(3.5))
    assert [p.at for p in points] == [at(1), at(2), at(3)]
    assert [p.current for p in points] == pytest.approx(expected)


def test_count_open_without_start_measures_progress_from_its_first_day() -> None:
    items = [(at(-5), at(1.5), True, None), (at(-5), at(2.5), True, None), (at(-5), None, False, None),
             (at(-5), None, False, None)]
    points = reconstruct(kr("count_open", target=0), items, CYCLE, until=at(3.5))
    assert [p.current for p in points] == [4.0, 3.0, 2.0]
    assert [p.progress for p in points] == pytest.approx([0.0, 0.25, 0.5])


def test_nothing_to_rebuild_on_the_first_day_or_for_manual_metrics() -> None:
    assert reconstruct(kr("percent_done"), ITEMS, CYCLE, until=at(0.5)) == []
    assert reconstruct(KeyResult(id="m", title="M", metric="manual", start=1, target=2), ITEMS, CYCLE, at(9)) == []
    assert reconstruct(kr("percent_done"), [], CYCLE, until=at(9)) == []


def test_no_point_after_the_cycle_end() -> None:
    points = reconstruct(kr("percent_done"), ITEMS, CYCLE, until=datetime(2027, 3, 1, tzinfo=UTC))
    assert points[-1].at == CYCLE.ends_at
    assert len(points) == (CYCLE.ends_at - START).days


def test_grouping_items_by_day_gives_the_same_history_as_the_items_one_by_one() -> None:
    from collections import Counter

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from syncer.backfill import day_groups, reconstruct_days

    moment = st.one_of(st.none(), st.floats(min_value=-20, max_value=100).map(at))
    one = st.tuples(moment, moment, st.booleans(), st.one_of(st.none(), st.sampled_from([0.5, 1.0, 3.0])))

    @settings(max_examples=200, deadline=None)
    @given(st.lists(one, max_size=30), st.sampled_from(list(RECONSTRUCTIBLE)), st.floats(min_value=0.5, max_value=95))
    def check(items: list[tuple[Any, ...]], metric: str, until: float) -> None:
        target = 10 if metric.startswith(("count", "sum")) else 100
        one_by_one = reconstruct(kr(metric, target=target), items, CYCLE, until=at(until))
        groups: Counter[tuple[Any, ...]] = Counter()
        points: dict[tuple[Any, ...], float] = {}
        for created, done_day, is_done, count, pts in day_groups(items):
            groups[created, done_day, is_done] += count
            points[created, done_day, is_done] = points.get((created, done_day, is_done), 0.0) + pts
        grouped = [(*key, n, points[key]) for key, n in groups.items()]
        by_day = reconstruct_days(kr(metric, target=target), grouped, CYCLE, until=at(until))
        assert [(p.at, p.total, p.done) for p in by_day] == [(p.at, p.total, p.done) for p in one_by_one]
        # And both as counted from the exact moments the days replaced: an item is in scope (done)
        # at every day end after its creation (its creation and its done moment).
        ends = [p.at for p in one_by_one]
        expected = [(sum(1 for c, *_ in items if c is None or c < end),
                     sum(1 for c, d, done, _ in items if done and d is not None and max(c or START, d) < end))
                    for end in ends]
        assert [(p.total, p.done) for p in one_by_one] == expected
        assert [p.current for p in by_day] == pytest.approx([p.current for p in one_by_one])
        assert [p.progress for p in by_day] == pytest.approx([p.progress for p in one_by_one])

    check()
