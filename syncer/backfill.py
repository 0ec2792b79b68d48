"""History reconstructed from item dates, so a burn-up has a line from the cycle's start.

On a key result's first pass there is one snapshot: a chart of one point. The items know better:
when each was created and when it became done. From those, this module rebuilds the value at the
end of every past day of the cycle (pure arithmetic; the store keeps the result apart from real
snapshots, which always win). What it cannot know — items that were reopened, re-scoped or
deleted before okrsync first looked — is why real snapshots replace it from the first pass on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta

from syncer.config import Cycle, KeyResult
from syncer.model import HistoryPoint
from syncer.progress import progress_of

__all__ = ["RECONSTRUCTIBLE", "DayGroup", "ItemDates", "day_groups", "reconstruct", "reconstruct_days"]

RECONSTRUCTIBLE = frozenset({"percent_done", "points_percent_done", "count_done", "sum_points_done", "count_open"})

ItemDates = tuple[datetime | None, datetime | None, bool, float | None]
"""(created_at, done_at, is_done_now, points) of one counted item."""

DayGroup = tuple[date | None, date | None, bool, int, float]
"""(created UTC day, done UTC day, is_done_now, items, their points) of items alike in all three:
what the store's grouped query returns, so a first pass does not read 100k items one by one."""


def reconstruct(
    kr: KeyResult, items: Sequence[ItemDates], cycle: Cycle, until: datetime
) -> list[HistoryPoint]:
    """The key result's value at the end of each whole day from the cycle's start to ``until``.

    An item is in scope from its creation (or from the start, when unknown) and done from its
    done date if it is done now. Points are at most one per day, ending before ``until``.
    """
    return reconstruct_days(kr, day_groups(items), cycle, until)


def day_groups(items: Iterable[ItemDates]) -> list[DayGroup]:
    """Items as one group each, by their UTC days (a naive time is taken as UTC already)."""
    return [(_utc_day(created), _utc_day(done_at), is_done, 1, points or 0.0)
            for created, done_at, is_done, points in items]


def reconstruct_days(
    kr: KeyResult, groups: Sequence[DayGroup], cycle: Cycle, until: datetime
) -> list[HistoryPoint]:
    """``reconstruct`` over items grouped by their UTC creation and done days.

    Days are enough: a cycle starts at UTC midnight (``Cycle.starts_at``), so the end of day
    ``n`` is midnight ``n + 1`` days later and an item created or done at any moment of a UTC
    day counts from that day's end on.
    """
    if kr.metric not in RECONSTRUCTIBLE or not groups:
        return []
    ends: list[datetime] = []
    moment = cycle.starts_at + timedelta(days=1)
    while moment < until and moment <= cycle.ends_at:
        ends.append(moment)
        moment += timedelta(days=1)
    if not ends:
        return []
    days = len(ends)
    first_day = cycle.starts_at.date()

    def day_of(day: date | None) -> int:
        """Index of the first day end after ``day`` (0 for before the cycle, days = never)."""
        if day is None or day < first_day:
            return 0
        return min(days, (day - first_day).days)

    scope = [0] * (days + 1)
    scope_points = [0.0] * (days + 1)
    done = [0] * (days + 1)
    done_points = [0.0] * (days + 1)
    done_in_cycle = [0] * (days + 1)
    done_points_in_cycle = [0.0] * (days + 1)
    for created, done_day, is_done, count, points in groups:
        first = day_of(created)
        scope[first] += count
        scope_points[first] += points
        if is_done and done_day is not None:
            day = max(first, day_of(done_day))
            done[day] += count
            done_points[day] += points
            if done_day >= first_day:
                done_in_cycle[day] += count
                done_points_in_cycle[day] += points
    history: list[HistoryPoint] = []
    total = n_done = n_cycle = 0
    points_total = points_done = points_cycle = 0.0
    baseline: float | None = kr.start
    for index, end in enumerate(ends):
        total += scope[index]
        points_total += scope_points[index]
        n_done += done[index]
        points_done += done_points[index]
        n_cycle += done_in_cycle[index]
        points_cycle += done_points_in_cycle[index]
        current = _value(kr.metric, total, points_total, n_done, points_done, n_cycle, points_cycle)
        if baseline is None:
            baseline = current if kr.metric == "count_open" else kr.start_value
        progress = progress_of(current, baseline, kr.target_value)
        history.append(HistoryPoint(at=end, current=current, progress=progress, total=total, done=n_done))
    return history


def _utc_day(moment: datetime | None) -> date | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo is None else moment.astimezone(UTC)).date()


def _value(metric: str, total: int, points_total: float, done: int, points_done: float, done_in_cycle: int,
           points_in_cycle: float) -> float:
    if metric == "percent_done":
        return 100.0 * done / total if total else 0.0
    if metric == "points_percent_done":
        return 100.0 * points_done / points_total if points_total else 0.0
    if metric == "count_done":
        return float(done_in_cycle)
    if metric == "sum_points_done":
        return points_in_cycle
    return float(total - done)  # count_open
