"""Forecast by least squares, the expected line, scope change and chart downsampling."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from syncer.config import Cycle, KeyResult
from syncer.forecast import downsample, expected_line, forecast, scope_change
from syncer.model import HistoryPoint, Status

CYCLE = Cycle(name="2026-Q4", start=date(2026, 10, 1), end=date(2026, 12, 31))
START = datetime(2026, 10, 1, tzinfo=UTC)
END = datetime(2027, 1, 1, tzinfo=UTC)  # 92 days after START
NOW = START + timedelta(days=40)


def day(d: float) -> datetime:
    return START + timedelta(days=d)


def kr(metric: str = "count_done", **kw: Any) -> KeyResult:
    return KeyResult(id="kr", title="KR", metric=metric, **kw)


def line(days: range, per_day: float, offset: float = 0.0) -> list[HistoryPoint]:
    return [HistoryPoint(at=day(d), current=offset + per_day * d, progress=0.0) for d in days]


def test_perfect_line_gives_the_exact_end_value() -> None:
    history = line(range(10, 31), 0.5)
    result = forecast(history, kr(target=50), CYCLE, NOW)
    assert result is not None
    assert result.value == pytest.approx(46.0, abs=1e-9)  # 0.5 a day x 92 days
    assert result.progress == pytest.approx(0.92)
    assert result.status is Status.ON_TRACK
    assert (result.points_used, result.method) == (14, "least squares over last 14 snapshots")


def test_least_squares_on_noisy_points() -> None:
    # (0, 0), (1, 2), (2, 1) in days: slope 0.5/day through (1, 1) -> 1 + 0.5 * 91 at day 92
    history = [HistoryPoint(day(d), v, 0.0) for d, v in ((0, 0.0), (1, 2.0), (2, 1.0))]
    result = forecast(history, kr(target=100), CYCLE, NOW)
    assert result is not None and result.value == pytest.approx(46.5)


def test_window_uses_only_the_latest_points() -> None:
    # a flat start then 1 a day: the last 3 points see only the slope
    history = [HistoryPoint(day(d), 0.0, 0.0) for d in range(5)] + line(range(5, 8), 1.0)
    result = forecast(history, kr(target=100), CYCLE, NOW, window=3)
    assert result is not None and result.value == pytest.approx(92.0)
    assert result.points_used == 3


@pytest.mark.parametrize(
    "history",
    [
        pytest.param([], id="empty"),
        pytest.param([HistoryPoint(day(1), 1.0, 0.0)], id="one-point"),
        pytest.param([HistoryPoint(day(1), 1.0, 0.0), HistoryPoint(day(1), 2.0, 0.0)], id="same-time"),
        pytest.param(
            [
                HistoryPoint(day(-2), 1.0, 0.0),
                HistoryPoint(day(-1), 2.0, 0.0),
                HistoryPoint(day(1), 3.0, 0.0),
            ],
            id="only-one-inside-the-cycle",
        ),
        pytest.param(
            [HistoryPoint(day(1), 1.0, 0.0), HistoryPoint(day(50), 2.0, 0.0)], id="second-after-now"
        ),
    ],
)
def test_no_forecast_without_two_timestamps(history: list[HistoryPoint]) -> None:
    assert forecast(history, kr(target=10), CYCLE, NOW) is None


@pytest.mark.parametrize(
    ("key_result", "history", "value", "status"),
    [
        pytest.param(kr("percent_done"), line(range(3), 5.0), 100.0, Status.DONE, id="percent-capped-100"),
        pytest.param(
            kr("percent_done"), line(range(3), -5.0, 50.0), 0.0, Status.OFF_TRACK, id="percent-floor-0"
        ),
        pytest.param(
            kr("count_done", target=10), line(range(3), -1.0, 2), 0.0, Status.OFF_TRACK, id="count-floor"
        ),
        pytest.param(
            kr("count_open", start=40, target=10), line(range(3), -0.25, 40), 17.0, Status.AT_RISK,
            id="count-open-decreasing",
        ),
        pytest.param(
            kr("manual", start=0, target=-20), line(range(3), -0.5), -46.0, Status.DONE,
            id="manual-not-clamped",
        ),
        # the bands as if the cycle had ended: >= 0.9 on track, >= 0.75 at risk
        pytest.param(kr(target=92), line(range(3), 0.9), 82.8, Status.ON_TRACK, id="exactly-0.9"),
        pytest.param(kr(target=92), line(range(3), 0.75), 69.0, Status.AT_RISK, id="exactly-0.75"),
        pytest.param(kr(target=92), line(range(3), 0.74), 68.08, Status.OFF_TRACK, id="below-0.75"),
        pytest.param(kr(target=92), line(range(3), 1.0), 92.0, Status.DONE, id="reaches-target"),
    ],
)  # fmt: skip
def test_forecast_clamps_and_status(
    key_result: KeyResult, history: list[HistoryPoint], value: float, status: Status
) -> None:
    result = forecast(history, key_result, CYCLE, NOW)
    assert result is not None
    assert result.value == pytest.approx(value)
    assert result.status is status


def test_count_open_baseline_when_start_unset() -> None:
    result = forecast(line(range(3), -0.25, 40), kr("count_open", target=10), CYCLE, NOW, baseline=40)
    assert result is not None and result.progress == pytest.approx(23 / 30)


def test_expected_line() -> None:
    assert expected_line(kr("count_done", start=5, target=50), CYCLE) == ((START, 5.0), (END, 50.0))
    assert expected_line(kr("percent_done"), CYCLE) == ((START, 0.0), (END, 100.0))
    assert expected_line(kr("count_open", target=10), CYCLE, baseline=40) == ((START, 40.0), (END, 10.0))


@pytest.mark.parametrize(
    ("first", "now", "expected"),
    [(None, 10, None), (0, 10, None), (10, 10, 0.0), (10, 15, 0.5), (20, 15, -0.25)],
)
def test_scope_change(first: int | None, now: int, expected: float | None) -> None:
    assert scope_change(first, now) == expected


@pytest.mark.parametrize(
    ("n", "max_points", "size"), [(0, 200, 0), (5, 200, 5), (200, 200, 200), (1000, 200, 200), (7, 2, 2)]
)
def test_downsample_keeps_first_and_last(n: int, max_points: int, size: int) -> None:
    points = list(range(n))
    result = downsample(points, max_points)
    assert len(result) == size
    assert result == sorted(set(result))  # in order, no repeats
    if n:
        assert (result[0], result[-1]) == (0, n - 1)


def test_downsample_spacing_and_bad_size() -> None:
    assert downsample(list(range(9)), 5) == [0, 2, 4, 6, 8]
    with pytest.raises(ValueError, match="at least 2"):
        downsample([1, 2, 3], 1)


def test_passes_minutes_apart_give_no_forecast_and_dense_history_is_read_per_day() -> None:
    minutes = [HistoryPoint(day(39) + timedelta(minutes=m), 5.0 + m, 0.0) for m in range(0, 30, 15)]
    assert forecast(minutes, kr(target=50), CYCLE, NOW) is None, "a pace over 15 minutes is noise"
    # 96 passes a day for 10 days along a line of 1/day: the daily points give the same line
    dense = [HistoryPoint(day(30 + i / 96), 10.0 + (30 + i / 96) - 30, 0.0) for i in range(96 * 10)]
    result = forecast(dense, kr(target=200), CYCLE, NOW)
    assert result is not None and result.points_used == 10
    end_day = (CYCLE.ends_at - START).total_seconds() / 86400
    assert result.value == pytest.approx(10.0 + end_day - 30, abs=0.05)
