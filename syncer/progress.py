"""Pure progress: metrics, progress, health, roll-up, unaligned work, change summaries.

Everything here follows CONTRACT §3 and takes ``now`` as an argument (UTC-aware), so the same
inputs always give the same report. No I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime

from syncer.config import Config, Cycle, KeyResult, Objective
from syncer.model import (
    ItemKind,
    KeyResultChange,
    KeyResultProgress,
    ObjectiveProgress,
    State,
    Status,
    Tally,
    WorkItem,
)

__all__ = [
    "AT_RISK_MARGIN",
    "EPSILON",
    "ON_TRACK_MARGIN",
    "PERCENT_METRICS",
    "compute_key_result",
    "current_value",
    "describe_change",
    "expected_fraction",
    "find_unaligned",
    "format_change",
    "health_band",
    "is_unaligned_candidate",
    "progress_of",
    "roll_up",
    "status_of",
    "tally",
    "unit_of",
]

ON_TRACK_MARGIN = 0.10
AT_RISK_MARGIN = 0.25
EPSILON = 1e-9
"""Float slack so that a value exactly on a band edge (0.5 vs 0.6 - 0.1) lands in the better band."""

PERCENT_METRICS = frozenset({"percent_done", "points_percent_done"})

_UNITS = {
    "percent_done": "%",
    "points_percent_done": "%",
    "count_done": "done",
    "sum_points_done": "points done",
    "count_open": "open",
    "manual": "",
}
_NOT_UNALIGNED_KINDS = frozenset({ItemKind.EPIC, ItemKind.SUBTASK, ItemKind.PULL_REQUEST})


def _in_cycle(at: datetime | None, cycle: Cycle) -> bool:
    """``[start 00:00 UTC, end + 1 day 00:00 UTC)``; aware datetimes compare in UTC."""
    return at is not None and cycle.starts_at <= at < cycle.ends_at


def tally(items: Iterable[WorkItem], cycle: Cycle) -> Tally:
    """Count a key result's items by state and story points (CONTRACT §3).

    Excluded items (won't do, not planned, duplicate) count in neither done nor total; sub-tasks
    are never counted (they follow their parent); an item given twice counts once; ``unknown``
    counts in the total but not as done. ``done_in_cycle`` uses ``done_at`` and, when a tracker
    gave none for a done item, ``updated_at`` (its last change is the best bound we have;
    dropping it would leave "close 50 bugs" stuck at zero). ``listed`` counts every distinct
    item given, sub-tasks and excluded ones too (what a report's item list shows).
    """
    seen: set[tuple[str, str]] = set()
    total = done = in_progress = todo = unknown = done_in_cycle = unestimated = excluded = 0
    points_total = points_done = points_done_in_cycle = 0.0
    excluded_seen: set[tuple[str, str]] = set()
    listed: set[tuple[str, str]] = set()
    for item in items:
        ident = (item.source, item.id)
        listed.add(ident)
        if item.kind is ItemKind.SUBTASK:
            continue
        if item.excluded:
            if ident not in excluded_seen:
                excluded_seen.add(ident)
                excluded += 1
            continue
        if ident in seen:
            continue
        seen.add(ident)
        total += 1
        points = item.points
        if points is None:
            unestimated += 1
        else:
            points_total += points
        if item.state is State.DONE:
            done += 1
            points_done += points or 0.0
            if _in_cycle(item.done_at or item.updated_at, cycle):
                done_in_cycle += 1
                points_done_in_cycle += points or 0.0
        elif item.state is State.IN_PROGRESS:
            in_progress += 1
        elif item.state is State.TODO:
            todo += 1
        else:
            unknown += 1
    return Tally(
        total=total,
        done=done,
        in_progress=in_progress,
        todo=todo,
        unknown=unknown,
        points_total=points_total,
        points_done=points_done,
        done_in_cycle=done_in_cycle,
        points_done_in_cycle=points_done_in_cycle,
        unestimated=unestimated,
        excluded=excluded,
        listed=len(listed),
    )


def current_value(kr: KeyResult, tally: Tally, checkin: float | None) -> float:
    """The key result's number in its own unit (percent, count, points, or the check-in)."""
    metric = kr.metric
    if metric == "percent_done":
        return 100.0 * tally.done / tally.total if tally.total else 0.0
    if metric == "points_percent_done":
        return 100.0 * tally.points_done / tally.points_total if tally.points_total else 0.0
    if metric == "count_done":
        return float(tally.done_in_cycle)
    if metric == "sum_points_done":
        return float(tally.points_done_in_cycle)
    if metric == "count_open":
        return float(tally.open)
    return kr.start_value if checkin is None else float(checkin)


def progress_of(current: float, start: float, target: float) -> float:
    """``clamp((current - start) / (target - start), 0, 1)``; works for targets below start.

    ``start == target`` is a config error; should it get here, reaching the target is 1, else 0.
    """
    if target == start:
        return 1.0 if current == target else 0.0
    return min(1.0, max(0.0, (current - start) / (target - start)))


def expected_fraction(cycle: Cycle, now: datetime) -> float:
    """The elapsed share of the cycle at ``now``, clamped to 0..1."""
    length = (cycle.ends_at - cycle.starts_at).total_seconds()
    if length <= 0:
        return 1.0
    elapsed = (now - cycle.starts_at).total_seconds()
    return min(1.0, max(0.0, elapsed / length))


def health_band(progress: float, expected: float) -> Status:
    """The health bands alone: done, then on track / at risk / off track against ``expected``."""
    if progress >= 1.0 - EPSILON:
        return Status.DONE
    if progress >= expected - ON_TRACK_MARGIN - EPSILON:
        return Status.ON_TRACK
    if progress >= expected - AT_RISK_MARGIN - EPSILON:
        return Status.AT_RISK
    return Status.OFF_TRACK


def status_of(progress: float, expected: float, cycle: Cycle, now: datetime) -> Status:
    """CONTRACT §3 status: done, else not_started before the cycle, else the bands."""
    if progress >= 1.0 - EPSILON:
        return Status.DONE
    if now < cycle.starts_at:
        return Status.NOT_STARTED
    return health_band(progress, expected)


def compute_key_result(
    objective_id: str,
    kr: KeyResult,
    tally: Tally,
    cycle: Cycle,
    now: datetime,
    *,
    checkin: float | None = None,
    stale: bool = False,
    last_synced: datetime | None = None,
    item_ids: tuple[str, ...] = (),
    sources: tuple[str, ...] = (),
    baseline: float | None = None,
) -> KeyResultProgress:
    """One key result's progress and status at ``now``.

    ``baseline`` stands in for an unset ``start`` (for ``count_open``: the value at the cycle's
    first snapshot); a ``start`` in the config always wins.
    """
    start = kr.start if kr.start is not None else (baseline if baseline is not None else kr.start_value)
    target = kr.target_value
    current = current_value(kr, tally, checkin)
    progress = progress_of(current, start, target)
    status = status_of(progress, expected_fraction(cycle, now), cycle, now)
    return KeyResultProgress(
        id=kr.id,
        objective_id=objective_id,
        title=kr.title,
        metric=kr.metric,
        start=start,
        target=target,
        current=current,
        progress=progress,
        status=status,
        tally=tally,
        weight=kr.weight,
        stale=stale,
        last_synced=last_synced,
        sources=sources,
        item_ids=item_ids,
    )


def roll_up(
    config: Config, krs: Mapping[str, KeyResultProgress], now: datetime
) -> tuple[ObjectiveProgress, ...]:
    """Every objective's progress: the weighted mean of its key results and child objectives.

    Recursive through any depth. Nothing under an objective, or a total weight of 0, gives 0.
    Key results missing from ``krs`` (never computed) are left out of the mean. Objectives come
    back in config order with ``children`` in config order too.
    """
    cycle = config.cycle
    expected = expected_fraction(cycle, now)
    ids = {objective.id for objective in config.objectives}
    children: dict[str, list[Objective]] = {objective.id: [] for objective in config.objectives}
    for objective in config.objectives:
        if objective.parent is not None and objective.parent in ids:
            children[objective.parent].append(objective)

    done: dict[str, float] = {}
    visiting: set[str] = set()

    def progress(objective: Objective) -> float:
        if objective.id in done:
            return done[objective.id]
        if objective.id in visiting:
            raise ValueError(f"objective {objective.id!r} is its own ancestor")
        visiting.add(objective.id)
        parts = [(kr.weight, krs[kr.id].progress) for kr in objective.key_results if kr.id in krs]
        parts.extend((child.weight, progress(child)) for child in children[objective.id])
        weight = math.fsum(w for w, _ in parts)
        value = math.fsum(w * p for w, p in parts) / weight if weight > 0 else 0.0
        visiting.discard(objective.id)
        done[objective.id] = value
        return value

    result: list[ObjectiveProgress] = []
    for objective in config.objectives:
        value = progress(objective)
        result.append(
            ObjectiveProgress(
                id=objective.id,
                title=objective.title,
                parent=objective.parent,
                progress=value,
                status=status_of(value, expected, cycle, now),
                key_results=tuple(krs[kr.id] for kr in objective.key_results if kr.id in krs),
                owner=objective.owner,
                weight=objective.weight,
                children=tuple(child.id for child in children[objective.id]),
            )
        )
    return tuple(result)


def is_unaligned_candidate(item: WorkItem, cycle: Cycle, ignore_labels: Collection[str]) -> bool:
    """Could this item be unaligned work? (CONTRACT §3, before looking at the matches.)

    In the source's scope; open, or updated inside the cycle; not an epic, sub-task or pull
    request; carrying none of ``ignore_labels`` (compared case-insensitively).
    """
    if not item.in_scope or item.kind in _NOT_UNALIGNED_KINDS:
        return False
    if ignore_labels:
        ignored = {label.casefold() for label in ignore_labels}
        if any(label.casefold() in ignored for label in item.labels):
            return False
    is_open = item.state is not State.DONE and not item.excluded
    return is_open or _in_cycle(item.updated_at, cycle)


_DIGITS = re.compile(r"(\d+)")


def _natural(key: str) -> tuple[tuple[int, int | str], ...]:
    """``PLAT-9`` before ``PLAT-10``: numbers in a key compare as numbers."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part.casefold()) for part in _DIGITS.split(key) if part
    )


def find_unaligned(
    items: Iterable[WorkItem],
    matched_ids: Collection[str],
    cycle: Cycle,
    ignore_labels: Collection[str],
    *,
    failed_sources: Collection[str] = (),
) -> list[WorkItem]:
    """Candidates that no key result matches, directly or through their parent/epic chain.

    The parent chain is followed through the items given (``parent_id``, or ``parent_key``
    within the same source when the id is missing). Items of a source that failed this pass
    are never flagged: the failure says nothing about them. Sorted by source, container, key.
    """
    pool = list(items)
    matched = matched_ids if isinstance(matched_ids, set | frozenset) else set(matched_ids)
    failed = set(failed_sources)
    id_by_key = {(item.source, item.key): item.id for item in pool}
    parent_of: dict[str, str] = {}
    for item in pool:
        parent = item.parent_id
        if parent is None and item.parent_key is not None:
            parent = id_by_key.get((item.source, item.parent_key))
        if parent is not None:
            parent_of[item.id] = parent

    def aligned(item_id: str) -> bool:
        seen: set[str] = set()
        current: str | None = item_id
        while current is not None and current not in seen:
            if current in matched:
                return True
            seen.add(current)
            current = parent_of.get(current)
        return False

    found = [
        item
        for item in pool
        if item.source not in failed
        and is_unaligned_candidate(item, cycle, ignore_labels)
        and not aligned(item.id)
    ]
    found.sort(key=lambda item: (item.source, item.container, _natural(item.key)))
    return found


def unit_of(metric: str) -> str:
    """How a metric's number is written: ``%`` for percentages, a word for counts."""
    return _UNITS.get(metric, "")


def describe_change(
    kr_before: KeyResultProgress | None,
    kr_after: KeyResultProgress,
    ids_before: Mapping[str, str],
    ids_after: Mapping[str, str],
) -> KeyResultChange:
    """What moved since the previous pass; ``ids_*`` map item id -> state (``done``, ...).

    ``done_delta`` counts items done now that were not done before (new items included),
    ``added`` items that joined the key result, ``left`` items that are no longer in it.
    """
    done = State.DONE.value
    done_delta = sum(
        1 for item_id, state in ids_after.items() if state == done and ids_before.get(item_id) != done
    )
    added = sum(1 for item_id in ids_after if item_id not in ids_before)
    left = sum(1 for item_id in ids_before if item_id not in ids_after)
    return KeyResultChange(
        kr_id=kr_after.id,
        before=None if kr_before is None else kr_before.current,
        after=kr_after.current,
        unit=unit_of(kr_after.metric),
        done_delta=done_delta,
        added=added,
        left=left,
    )


def _number(value: float, unit: str, *, with_unit: bool = True) -> str:
    """Percentages as whole numbers with ``%``; other values whole when they are, else 1 decimal."""
    if unit == "%":
        return f"{math.floor(value + 1e-9)}%"  # floored like every progress bar: 99.6% is not yet 100%
    rounded = round(value)
    text = str(int(rounded)) if abs(value - rounded) < 1e-9 else f"{value:.1f}"
    return f"{text} {unit}" if unit and with_unit else text


def format_change(change: KeyResultChange) -> str:
    """``onboarding-revamp: 42% -> 47% (+3 done, +1 added, 1 left)``; ``bugs: 12 -> 15 done``.

    Zero parts are left out; ``no change`` when neither the shown value nor any item moved;
    ``new`` when there was no previous value.
    """
    parts = [
        text
        for count, text in (
            (change.done_delta, f"+{change.done_delta} done"),
            (change.added, f"+{change.added} added"),
            (change.left, f"{change.left} left"),
        )
        if count
    ]
    after = _number(change.after, change.unit)
    suffix = f" ({', '.join(parts)})" if parts else ""
    if change.before is None:
        return f"{change.kr_id}: new -> {after}{suffix}"
    if _number(change.before, change.unit) == after and not parts:
        return f"{change.kr_id}: {after} (no change)"
    before = _number(change.before, change.unit, with_unit=False)
    return f"{change.kr_id}: {before} -> {after}{suffix}"
