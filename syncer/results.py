"""Key results from the store: SQL tallies fed through the pure arithmetic of ``progress``.

Shared by ``run_once`` (after fetching) and ``okrsync report`` (no network), so a report and a
sync can never disagree on a number. A key result that depends on a failed source keeps the
values of its last snapshot and is marked stale with the time of its last good sync.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from syncer.config import Config, KeyResult
from syncer.model import KeyResultProgress, Tally
from syncer.progress import compute_key_result, expected_fraction, status_of
from syncer.store import Store

__all__ = ["compute_key_results", "failed_sources_from_status", "kr_sources", "utc_now"]


def utc_now() -> datetime:
    return datetime.now(UTC)


def kr_sources(kr: KeyResult) -> tuple[str, ...]:
    """The sources a key result's number depends on (none for ``manual``)."""
    return tuple(sorted({rule.source for rule in kr.match}))


def failed_sources_from_status(status: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """Sources whose latest attempt failed (what ``okrsync report`` marks stale)."""
    return {name for name, row in status.items() if row.get("last_error") and not _ok_after_error(row)}


def _ok_after_error(row: Mapping[str, Any]) -> bool:
    success, attempt = _dt(row.get("last_success_at")), _dt(row.get("last_attempt_at"))
    return success is not None and attempt is not None and success >= attempt


def compute_key_results(
    config: Config,
    store: Store,
    at: datetime,
    *,
    failed_sources: Collection[str] = (),
    tallies: Mapping[str, Tally] | None = None,
) -> dict[str, KeyResultProgress]:
    """Every key result at ``at``, in config order. ``tallies``: ``store.tallies`` over the
    cycle, when the caller has read them already."""
    cycle = config.cycle
    if tallies is None:
        tallies = store.tallies(cycle.starts_at, cycle.ends_at)
    checkins = store.latest_checkins()
    latest = store.latest_snapshots(items=False)  # the numbers only: provenance is megabytes at 200k
    status = store.source_status()
    failed = set(failed_sources)
    result: dict[str, KeyResultProgress] = {}
    for objective, kr in config.key_results():
        sources = kr_sources(kr)
        last_synced = _last_synced(sources, status)
        stale = any(s in failed for s in sources) or (bool(sources) and last_synced is None and bool(failed))
        snapshot = latest.get(kr.id)
        if stale and snapshot is not None:
            result[kr.id] = _from_snapshot(objective.id, kr, snapshot, config, at, last_synced, sources)
            continue
        if kr.metric == "manual":
            last_synced = _dt(_latest_checkin_at(store, kr.id)) or last_synced
        baseline = None
        if kr.start is None and kr.metric == "count_open":
            first = store.first_snapshot_in(kr.id, cycle.starts_at)
            baseline = float(first["current"]) if first else None
        result[kr.id] = compute_key_result(
            objective.id, kr, tallies.get(kr.id, Tally()), cycle, at,
            checkin=checkins.get(kr.id), stale=stale, last_synced=last_synced,
            sources=sources, baseline=baseline,
        )
    return result


def _from_snapshot(
    objective_id: str,
    kr: KeyResult,
    snapshot: Mapping[str, Any],
    config: Config,
    at: datetime,
    last_synced: datetime | None,
    sources: tuple[str, ...],
) -> KeyResultProgress:
    """The last known value of a key result whose source failed: same number, marked stale."""
    progress = float(snapshot["progress"])
    tally = Tally(
        total=int(snapshot.get("total") or 0), done=int(snapshot.get("done") or 0),
        in_progress=int(snapshot.get("in_progress") or 0), todo=int(snapshot.get("todo") or 0),
        points_total=float(snapshot.get("points_total") or 0.0),
        points_done=float(snapshot.get("points_done") or 0.0),
    )
    start = kr.start if kr.start is not None else float(snapshot.get("start", kr.start_value) or 0.0)
    return KeyResultProgress(
        id=kr.id, objective_id=objective_id, title=kr.title, metric=kr.metric,
        start=start, target=kr.target_value, current=float(snapshot["current"]), progress=progress,
        status=status_of(progress, expected_fraction(config.cycle, at), config.cycle, at),
        tally=tally, weight=kr.weight, stale=True, last_synced=last_synced, sources=sources,
    )


def _last_synced(sources: tuple[str, ...], status: Mapping[str, Mapping[str, Any]]) -> datetime | None:
    """The oldest last good sync among a key result's sources: when its number was last whole."""
    times = [_dt(status.get(s, {}).get("last_success_at")) for s in sources]
    if not times or any(t is None for t in times):
        return None
    return min(t for t in times if t is not None)


def _latest_checkin_at(store: Store, kr_id: str) -> datetime | None:
    rows = store.checkins(kr_id)
    return rows[-1][0] if rows else None


def _dt(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
