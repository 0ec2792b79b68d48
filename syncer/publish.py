"""Write-back planning: what okrsync would write to the trackers, and only what changed.

Pure decisions over the computed key results and the store's record of earlier writes;
``run_once`` carries the plan out after the store has committed (or prints it on ``--dry-run``).
A value is planned only when it differs from the last value written to that target, so a pass
that changed nothing writes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from datetime import datetime

from syncer.config import Config
from syncer.model import KeyResultProgress, PlannedWrite
from syncer.progress import unit_of
from syncer.store import Store

__all__ = ["BLOCK_END", "BLOCK_START", "plan_writes", "render_block", "render_value"]

BLOCK_START = "<!-- okrsync:start -->"
BLOCK_END = "<!-- okrsync:end -->"


def _floor_percent(value: float) -> int:
    """Whole percent rounded down, like the report: an unfinished key result never reads 100%."""
    return math.floor(value + 1e-9)


def render_value(kind: str, kr: KeyResultProgress) -> str:
    """The text written for one key result: a bare percentage for number fields, else a summary."""
    percent = _floor_percent(kr.progress * 100)
    if kind == "field":
        return str(percent)
    if kind == "body_block":
        return render_block(kr)
    unit = unit_of(kr.metric)
    current = f"{_floor_percent(kr.current)}{unit}" if unit == "%" else f"{round(kr.current, 1):g}"
    return f"okrsync: {kr.title}: {percent}% of target ({current}; status {kr.status.value.replace('_', ' ')})"


def render_block(kr: KeyResultProgress) -> str:
    """The markdown kept between the okrsync markers of a GitHub issue body."""
    filled = min(20, math.floor(kr.progress * 20 + 1e-9))
    bar = "█" * filled + "░" * (20 - filled)
    unit = unit_of(kr.metric)
    current = f"{_floor_percent(kr.current)}{unit}" if unit == "%" else f"{round(kr.current, 1):g}"
    target = f"{kr.target:g}{unit}" if unit == "%" else f"{kr.target:g}"
    return (
        f"**{kr.title}** (`{kr.id}`)\n\n"
        f"`{bar}` {_floor_percent(kr.progress * 100)}% · {current} of {target} · "
        f"status: {kr.status.value.replace('_', ' ')}\n\n"
        f"_Items: {kr.tally.done} done, {kr.tally.in_progress} in progress, {kr.tally.todo} to do._"
    )


def plan_writes(
    config: Config,
    store: Store,
    krs: Mapping[str, KeyResultProgress],
    at: datetime,
    *,
    failed_sources: Collection[str] = (),
) -> list[PlannedWrite]:
    """Every write that would change something on a tracker right now."""
    writes: list[PlannedWrite] = []
    for _, kr_config in config.key_results():
        kr = krs.get(kr_config.id)
        if kr is None or kr.stale:
            continue  # a stale number is not news: never publish it again
        for target in kr_config.publish:
            kind = target.write_kind()
            value = render_value(kind, kr)
            if store.last_written(target.source, target.target()) == value:
                continue
            writes.append(PlannedWrite(target.source, target.target(), kind, value, reason=kr.id))
    writes.extend(_label_writes(config, store, at, failed_sources))
    return writes


def _label_writes(
    config: Config, store: Store, at: datetime, failed_sources: Collection[str]
) -> list[PlannedWrite]:
    """Label unaligned items; take the label off items that became aligned (never for a failed source)."""
    label = config.unaligned.label
    if not label:
        return []
    cycle = config.cycle
    unaligned = store.unaligned(
        cycle.starts_at, cycle.ends_at, config.unaligned.ignore_labels, exclude_sources=failed_sources
    )
    writes: list[PlannedWrite] = []
    current: dict[str, set[str]] = {}
    for item in unaligned:
        current.setdefault(item.source, set()).add(item.id)
    for name in config.sources:
        if name in failed_sources:
            continue
        labelled = store.labelled(name)
        now_unaligned = current.get(name, set())
        for item in (i for i in unaligned if i.source == name and i.id not in labelled):
            if label not in item.labels:
                writes.append(PlannedWrite(name, item.key, "add_label", label, "unaligned", item.id))
        gone = sorted(labelled - now_unaligned)
        for item in store.items_by_ids(name, gone):
            writes.append(PlannedWrite(name, item.key, "remove_label", label, "aligned now", item.id))
    return writes
