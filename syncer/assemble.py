"""Turns the store into a ``ReportData``: key results, roll-up, history, forecasts, unaligned work.

Used by ``okrsync report`` (no network), by ``okrsync sync`` after its pass, and by the daemon's
pages. The numbers come from SQL aggregates (tallies, the unaligned count and its groups per
source and container); history is read at one point per day; item lists (behind a key result,
unaligned) are capped in SQL. So the cost of a report does not grow with the number of items or
snapshots: at 200k items and 90 days of 15-minute snapshots it reads a few thousand rows.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

from syncer.config import Config, KeyResult
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
    Tally,
    UnalignedSummary,
    WorkItem,
)
from syncer.progress import PERCENT_METRICS, expected_fraction, roll_up
from syncer.results import compute_key_results, failed_sources_from_status
from syncer.store import Store

__all__ = ["DEFAULT_ITEM_LIMIT", "DEFAULT_UNALIGNED_LIMIT", "UnalignedPrefetch", "assemble_report", "report_item"]

_T = TypeVar("_T")

CHART_POINTS = 120
DEFAULT_UNALIGNED_LIMIT = 200
"""Unaligned items listed by default (``--unaligned-limit``); the count and groups cover all."""
DEFAULT_ITEM_LIMIT = 100
"""Items listed per key result in HTML/Markdown; the rest are counted ("and N more")."""


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
    item_limit: int | None = DEFAULT_ITEM_LIMIT,
    with_items: bool = True,
    history: bool = True,
    unaligned_limit: int | None = DEFAULT_UNALIGNED_LIMIT,
    prefetched: UnalignedPrefetch | None = None,
) -> ReportData:
    """The report as of ``at``. Without ``outcomes``, source health comes from the store.

    ``unaligned_limit`` caps the unaligned list (``None`` or 0: all); the count, the groups and
    the share always cover every unaligned item. ``item_limit`` caps each key result's items.
    ``prefetched``: the unaligned summary, already being read since the sources finished.
    """
    cycle = config.cycle
    status = store.source_status()
    failed: Collection[str] = (
        {o.name for o in outcomes if not o.ok} if outcomes is not None else failed_sources_from_status(status)
    )
    ignore = config.unaligned.ignore_labels
    kr_ids = [kr.id for _, kr in config.key_results()]
    # The aggregates are independent reads; SQLite and PostgreSQL run them while Python waits,
    # so two at a time nearly halve a report's wall time on a large store.
    with _reader(store) as background:
        # The item lists are the longest read (40 key results, 0.6 s at 200k items), in two
        # halves: one starts at once, the other after the unaligned summary, which is instant
        # when the last sync kept it (both halves then run side by side) and 0.45 s when not
        # (then it runs beside the first half instead of waiting behind both).
        kr_configs = [kr for _, kr in config.key_results()]
        halves = [half for half in (kr_configs[::2], kr_configs[1::2]) if half] if with_items else []
        # A full list's length comes with the tallies read below (``Tally.listed``) rather than
        # from a count per key result (0.16-0.21 s at 200k items, none at all when a sync kept
        # the tallies); only where the caller brought its own ``krs`` are the lists counted. The
        # tallies are another read than the list's: a sync writing in between can move the count
        # by what it changed, as it could move the key result's own numbers.
        count = krs is not None
        items_jobs = [background.submit(_all_items, store, halves[0], item_limit, count)] if halves else []
        summary_job = (prefetched.job(failed) if prefetched is not None else None) or background.submit(
            store.unaligned_summary, cycle.starts_at, cycle.ends_at, ignore, exclude_sources=failed
        )
        items_jobs += [background.submit(_all_items, store, half, item_limit, count) for half in halves[1:]]
        history_job = (
            background.submit(store.daily_histories, since=cycle.starts_at, kr_ids=kr_ids) if history else None
        )
        tallies: Mapping[str, Tally] = {}
        if krs is None:
            tallies = store.tallies(cycle.starts_at, cycle.ends_at)
            krs = compute_key_results(config, store, at, failed_sources=failed, tallies=tallies)
        histories = history_job.result() if history_job is not None else {}
        items = {kr_id: found for job in items_jobs for kr_id, found in job.result().items()}
        summary = summary_job.result()
    objectives = roll_up(config, krs, at)
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
            items=items[kr.id][0] if with_items else (),
            change=(changes or {}).get(kr.id),
            item_count=_listed(items[kr.id][1], tallies.get(kr.id)) if with_items else None,
        )
    limit = unaligned_limit or None
    unaligned = (
        store.unaligned(cycle.starts_at, cycle.ends_at, ignore, exclude_sources=failed, limit=limit)
        if summary.count
        else []
    )
    total_work = summary.total_work_items
    if total_work is None:
        total_work = store.count_unaligned_candidates(cycle.starts_at, cycle.ends_at, (), exclude_sources=failed)
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
        sources=tuple(outcomes) if outcomes is not None else _stored_outcomes(config, status, store.last_runs(20)),
        source_last_synced={name: _dt(status.get(name, {}).get("last_success_at")) for name in config.sources},
        writes=tuple(writes),
        dry_run=dry_run,
        requests=sum(o.requests for o in outcomes) if outcomes else 0,
        unaligned_count=summary.count,
        unaligned_groups=summary.groups,
    )


class _Inline(Executor):
    """Runs each job at once in the caller's thread (reads that must share its connection)."""

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        job: Future[_T] = Future()
        try:
            job.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # re-raised by .result(), as a thread pool would
            job.set_exception(exc)
        return job


class UnalignedPrefetch:
    """Reads the unaligned summary (0.3–0.4 s of SQL at 200k items) on its own thread from the
    moment a pass's sources are synced (``SyncOptions.after_sources``), while the pass computes
    key results and writes snapshots; nothing the pass does after its sources changes it.
    Only where reads may run on other threads (``Store.concurrent_reads``); ``close`` when done."""

    def __init__(self, config: Config, store: Store) -> None:
        self._config, self._store = config, store
        self._pool: ThreadPoolExecutor | None = None
        self._job: Future[UnalignedSummary] | None = None
        self._failed: frozenset[str] | None = None

    def start(self, failed: frozenset[str]) -> None:
        if self._job is not None or not self._store.concurrent_reads():
            return
        cycle = self._config.cycle
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="okrsync-prefetch")
        self._failed = failed
        self._job = self._pool.submit(
            self._store.unaligned_summary, cycle.starts_at, cycle.ends_at, self._config.unaligned.ignore_labels,
            exclude_sources=failed,
        )

    def job(self, failed: Collection[str]) -> Future[UnalignedSummary] | None:
        """The read, if it was started for these failed sources."""
        return self._job if self._failed == frozenset(failed) else None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def _reader(store: Store) -> Executor:
    """Two background readers when the store allows it (``Store.concurrent_reads``), else inline."""
    if store.concurrent_reads():
        return ThreadPoolExecutor(max_workers=2, thread_name_prefix="okrsync-report")
    return _Inline()


def _scope_change(metric: str, points: Sequence[HistoryPoint], total_now: int) -> float | None:
    if metric not in PERCENT_METRICS or not points:
        return None
    return scope_change(points[0].total, total_now)


def _listed(counted: int | None, tally: Tally | None) -> int | None:
    """A key result's item count: the list's own where it was counted (or not full), else the
    tallies' ``listed``; ``None`` (the list's length) where neither is known."""
    if counted is not None:
        return counted
    return tally.listed if tally is not None else None


def _all_items(
    store: Store, kr_configs: Sequence[KeyResult], limit: int | None, count: bool = True
) -> dict[str, tuple[tuple[ReportItem, ...], int | None]]:
    """Per key result: its first ``limit`` items (done first, then by source and key), and how
    many there are (``None`` for a full list when not ``count``). The database sorts and stops
    at ``limit``."""
    found: dict[str, tuple[tuple[ReportItem, ...], int | None]] = {}
    for kr_config in kr_configs:
        rows, total = store.kr_items_page(kr_config.id, limit or None, count=count)
        rules = kr_config.match
        found[kr_config.id] = (
            tuple(report_item(item, rules[i].describe() if 0 <= i < len(rules) else "") for item, i in rows),
            total,
        )
    return found


def _stored_outcomes(
    config: Config, status: Mapping[str, Mapping[str, Any]], last_runs: Sequence[Mapping[str, Any]] = ()
) -> tuple[SourceOutcome, ...]:
    """Each source as its most recent pass left it: health from the store, and the items fetched
    and requests sent by the latest run that synced it (CONTRACT §4's real figures, offline)."""
    failed = failed_sources_from_status(status)
    figures: dict[str, Mapping[str, Any]] = {}
    for run in last_runs:  # newest first
        detail = run.get("detail") or {}
        for entry in detail.get("sources", ()) if isinstance(detail, Mapping) else ():
            if isinstance(entry, Mapping) and entry.get("name") not in figures:
                figures[str(entry.get("name"))] = entry
    return tuple(
        SourceOutcome(
            name=name,
            ok=name not in failed,
            error=status.get(name, {}).get("last_error") if name in failed else None,
            fetched=int(figures.get(name, {}).get("fetched") or 0),
            requests=int(figures.get(name, {}).get("requests") or 0),
            retired=int(figures.get(name, {}).get("retired") or 0),
            full=bool(figures.get(name, {}).get("full")),
        )
        for name in config.sources
    )


def _dt(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
