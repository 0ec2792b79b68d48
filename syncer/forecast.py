"""Pure trend maths for the burn-up chart: forecast, expected line, scope change, downsampling.

A forecast is a least-squares line through a key result's recent snapshots (or check-ins for a
manual key result), read off at the cycle's end. It is deliberately simple: a user can check it
against the chart by eye, and ``method`` says exactly what was done.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from syncer.config import Cycle, KeyResult
from syncer.model import Forecast, HistoryPoint
from syncer.progress import PERCENT_METRICS, health_band, progress_of

__all__ = ["downsample", "expected_line", "forecast", "scope_change"]

T = TypeVar("T")


def _clamp_value(metric: str, value: float) -> float:
    """Percentages stay in 0..100 and counts/points never go negative; manual values are free."""
    if metric in PERCENT_METRICS:
        return min(100.0, max(0.0, value))
    if metric == "manual":
        return value
    return max(0.0, value)


def _start_of(kr: KeyResult, baseline: float | None) -> float:
    if kr.start is not None:
        return kr.start
    return baseline if baseline is not None else kr.start_value


def forecast(
    history: Sequence[HistoryPoint],
    kr: KeyResult,
    cycle: Cycle,
    now: datetime,
    *,
    window: int = 14,
    baseline: float | None = None,
    min_span: timedelta = timedelta(days=1),
) -> Forecast | None:
    """Where the key result lands at the cycle's end if the recent pace holds.

    Uses the last ``window`` days (one point per day, its last) inside the cycle; ``None``
    with fewer than two distinct timestamps or when they span less than ``min_span`` (no pace
    to speak of: two passes minutes apart would extrapolate noise over weeks). The status is judged as if the cycle had
    ended (expected = 1): done at >= 1, on track at >= 0.9, at risk at >= 0.75, else off track.
    ``baseline`` stands in for an unset ``start`` as in ``compute_key_result``.
    """
    first, end = cycle.starts_at, min(cycle.ends_at, now + timedelta.resolution)  # properties: read once
    in_cycle = [p for p in history if first <= p.at < end]
    in_cycle.sort(key=lambda p: p.at)
    daily: dict[object, HistoryPoint] = {}
    for point in in_cycle:  # one point per UTC day (the day's last): a pass every 15 min is not 96 trends
        daily[point.at.date()] = point
    inside = list(daily.values())[-window:] if window > 0 else []
    if len({p.at for p in inside}) < 2 or inside[-1].at - inside[0].at < min_span:
        return None  # a pace measured over minutes says nothing about the cycle's end
    origin = inside[0].at
    xs = [(p.at - origin).total_seconds() for p in inside]
    ys = [p.current for p in inside]
    n = len(inside)
    mean_x = math.fsum(xs) / n
    mean_y = math.fsum(ys) / n
    sxx = math.fsum((x - mean_x) ** 2 for x in xs)
    sxy = math.fsum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx
    end_x = (cycle.ends_at - origin).total_seconds()
    value = _clamp_value(kr.metric, mean_y + slope * (end_x - mean_x))
    progress = progress_of(value, _start_of(kr, baseline), kr.target_value)
    return Forecast(
        value=value,
        progress=progress,
        status=health_band(progress, 1.0),
        method=f"least squares over last {n} snapshots",
        points_used=n,
    )


def expected_line(
    kr: KeyResult, cycle: Cycle, *, baseline: float | None = None
) -> tuple[tuple[datetime, float], tuple[datetime, float]]:
    """The straight line a key result on plan follows: start at the cycle's start, target at its end."""
    return (cycle.starts_at, _start_of(kr, baseline)), (cycle.ends_at, kr.target_value)


def scope_change(first_total: int | None, total_now: int) -> float | None:
    """Growth of the body of work since the cycle's first snapshot, as a fraction of it.

    ``None`` when there is no first snapshot or it was empty (no meaningful base).
    """
    if not first_total:
        return None
    return (total_now - first_total) / first_total


def downsample(points: Sequence[T], max_points: int = 200) -> list[T]:
    """At most ``max_points`` evenly spaced points, always keeping the first and the last.

    Charts of a daemon syncing every 15 minutes would otherwise carry thousands of points.
    """
    if max_points < 2:
        raise ValueError("max_points must be at least 2 (the first and the last point)")
    n = len(points)
    if n <= max_points:
        return list(points)
    step = (n - 1) / (max_points - 1)
    return [points[round(i * step)] for i in range(max_points)]
