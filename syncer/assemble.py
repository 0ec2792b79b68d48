"""Turns the store into a ``ReportData``: key results, roll-up, history, forecasts, unaligned work.

Used by ``okrsync report`` (no network), by ``okrsync sync`` after its pass, and by the daemon's
pages. Only aggregates are read for the numbers (SQL tallies); item lists are read per key result
and capped, so a report over 200k items stays fast.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from syncer.config import Config
from syncer.forecast import downsample, forecast, scope_change
from syncer.model import (
    HistoryPoint,
    KeyResultChange,
    KeyResultDetail,
    KeyResultProgress,
    PlannedWrite,
    ReportData,
    ReportItem,
    SourceOutcome,
    WorkItem,
)
from syncer.progress import PERCENT_METRICS, expected_fraction, roll_up
from syncer.results import compute_key_results, failed_sources_from_status
from syncer.store import Store

__all__ = ["assemble_report", "report_item"]

CHART_POINTS = 120


def report_item(item: WorkItem, rule: str = "") -> ReportItem:
    return ReportItem(
        source=item.source, key=item.key, title=item.title, url=item.url, state=item.state.value,
        container=item.container, points=item.points, kind=item.kind.value, rule=rule,
        excluded=item.excluded,
    )


def assemble_report(
    config: Config,
    store: Store,
    at: datetime,
    *,
    krs: Mapping[str, KeyResultProgress] | None = None,
    outcomes: Sequence[SourceOutcome] | None = None,
    writes: Sequence[PlannedWrite] = (),
    changes: Mapping[str, KeyResultChange] | None = None,
    dry_run: bool = False,
    item_limit: int | None = 200,
    with_items: bool = True,
    history: bool = True,
) -> ReportData:
    """The report as of ``at``. Without ``outcomes``, source health comes from the store."""
    cycle = config.cycle
    status = store.source_status()
    failed: Collection[str] = (
        {o.name for o in outcomes if not o.ok} if outcomes is not None else failed_sources_from_status(status)
    )
    if krs is None:
        krs = compute_key_results(config, store, at, failed_sources=failed)
    objectives = roll_up(config, krs, at)
    histories = store.histories(since=cycle.starts_at) if history else {}
    details: dict[str, KeyResultDetail] = {}
    for _, kr_config in config.key_results():
        kr = krs.get(kr_config.id)
        if kr is None:
            continue
        points = histories.get(kr.id, [])
        if kr_config.metric == "manual":
            points = [HistoryPoint(at=t, current=v, progress=0.0) for t, v, _ in store.checkins(kr.id)] or points
        baseline = kr.start if kr_config.start is None else None
        details[kr.id] = KeyResultDetail(
            history=tuple(downsample(points, CHART_POINTS)) if points else (),
            forecast=forecast(points, kr_config, cycle, at, baseline=baseline),
            scope_change=_scope_change(kr_config.metric, points, kr.tally.total),
            items=_items(store, kr_config, item_limit) if with_items else (),
            change=(changes or {}).get(kr.id),
        )
    unaligned = store.unaligned(
        cycle.starts_at, cycle.ends_at, config.unaligned.ignore_labels, exclude_sources=failed
    )
    total_work = store.count_unaligned_candidates(
        cycle.starts_at, cycle.ends_at, (), exclude_sources=failed
    )
    return ReportData(
        cycle_name=cycle.name,
        cycle_start=cycle.starts_at,
        cycle_end=cycle.ends_at,
        expected=expected_fraction(cycle, at),
        generated_at=at,
        objectives=objectives,
        details=details,
        unaligned=tuple(report_item(i) for i in unaligned),
        total_work_items=total_work,
        sources=tuple(outcomes) if outcomes is not None else _stored_outcomes(config, status),
        source_last_synced={name: _dt(status.get(name, {}).get("last_success_at")) for name in config.sources},
        writes=tuple(writes),
        dry_run=dry_run,
        requests=sum(o.requests for o in outcomes) if outcomes else 0,
    )


def _scope_change(metric: str, points: Sequence[HistoryPoint], total_now: int) -> float | None:
    if metric not in PERCENT_METRICS or not points:
        return None
    return scope_change(points[0].total, total_now)


def _items(store: Store, kr_config: Any, limit: int | None) -> tuple[ReportItem, ...]:
    rows = store.kr_items(kr_config.id)
    rows.sort(key=lambda row: (row[0].state.value != "done", row[0].source, row[0].key))
    if limit is not None:
        rows = rows[:limit]
    rules = kr_config.match
    return tuple(
        report_item(item, rules[index].describe() if 0 <= index < len(rules) else "") for item, index in rows
    )


def _stored_outcomes(config: Config, status: Mapping[str, Mapping[str, Any]]) -> tuple[SourceOutcome, ...]:
    failed = failed_sources_from_status(status)
    return tuple(
        SourceOutcome(
            name=name,
            ok=name not in failed,
            error=status.get(name, {}).get("last_error") if name in failed else None,
        )
        for name in config.sources
    )


def _dt(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
