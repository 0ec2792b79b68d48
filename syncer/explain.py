"""``okrsync explain KR``: the items behind a key result's number and what moved since last time.

Provenance is what commercial OKR tools lack: every number can be traced to the issues that
produced it, with the rule that matched each one.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from syncer.config import Config
from syncer.progress import format_change
from syncer.results import compute_key_results, failed_sources_from_status
from syncer.store import Store

__all__ = ["explain"]


def explain(config: Config, store: Store, kr_id: str, at: datetime, *, as_json: bool = False) -> str:
    found = config.key_result(kr_id)
    assert found is not None
    objective, kr_config = found
    failed = failed_sources_from_status(store.source_status())
    kr = compute_key_results(config, store, at, failed_sources=failed)[kr_id]
    rows = store.kr_items(kr_id)
    rows.sort(key=lambda row: (row[0].source, row[0].key))
    latest = store.latest_snapshots().get(kr_id)
    previous = store.previous_snapshot(kr_id, before_run=latest["run_id"]) if latest else None
    after: dict[str, str] = dict(latest["items"]) if latest else {}
    before: dict[str, str] = dict(previous["items"]) if previous else {}
    by_id = {item.id: item for item, _ in rows}
    gone = [i for i in before if i not in after]
    gone_items = {i.id: i for s in {r.source for r in kr_config.match} for i in store.items_by_ids(s, gone)}

    def key_of(item_id: str) -> str:
        item = by_id.get(item_id) or gone_items.get(item_id)
        return item.key if item else item_id

    added = sorted(key_of(i) for i in after if i not in before)
    left = sorted(key_of(i) for i in gone)
    newly_done = sorted(key_of(i) for i, s in after.items() if s == "done" and before.get(i, "") != "done")
    reopened = sorted(key_of(i) for i, s in after.items() if before.get(i) == "done" and s != "done")
    items: list[dict[str, Any]] = [
        {
            "source": item.source, "key": item.key, "title": item.title, "state": item.state.value,
            "points": item.points, "excluded": item.excluded, "url": item.url,
            "rule": kr_config.match[index].describe() if 0 <= index < len(kr_config.match) else "",
        }
        for item, index in rows
    ]
    change: dict[str, Any] = {
        "previous_sync": previous["at"].isoformat() if previous else None,
        "latest_sync": latest["at"].isoformat() if latest else None,
        "previous_value": previous["current"] if previous else None,
        "latest_value": latest["current"] if latest else None,
        "added": added, "left": left, "done": newly_done, "reopened": reopened,
    }
    if as_json:
        payload = {
            "key_result": {"id": kr.id, "objective": objective.id, "title": kr.title, "metric": kr.metric,
                           "current": kr.current, "progress": kr.progress, "status": kr.status.value,
                           "stale": kr.stale},
            "items": items, "change": change,
        }
        return json.dumps(payload, indent=2, default=str) + "\n"
    lines = [
        f"{kr.id}: {kr.title}",
        f"  objective {objective.id}; metric {kr.metric}; current {kr.current:g} of {kr.target:g} "
        f"(start {kr.start:g}); progress {round(kr.progress * 100)}%; {kr.status.value.replace('_', ' ')}"
        + ("; STALE" if kr.stale else ""),
        f"  items: {kr.tally.total} counted ({kr.tally.done} done, {kr.tally.in_progress} in progress, "
        f"{kr.tally.todo} to do), {sum(1 for i in items if i['excluded'])} excluded (won't do / not planned)",
        "",
    ]
    if kr_config.metric == "manual":
        for when, value, note in store.checkins(kr_id):
            lines.append(f"  check-in {when:%Y-%m-%d %H:%M}Z  {value:g}" + (f"  {note}" if note else ""))
    else:
        width = max((len(i["key"]) for i in items), default=4)
        for i in items:
            points = "" if i["points"] is None else f"{i['points']:g} pts"
            state = "excluded" if i["excluded"] else i["state"]
            lines.append(f"  {i['key']:<{width}}  {state:<11} {points:>8}  {i['title'][:60]:<60}  [{i['rule']}]")
        if not items:
            lines.append("  (no items match this key result yet)")
    lines.append("")
    if latest is None:
        lines.append("  no sync has stored a snapshot of this key result yet")
    elif previous is None:
        lines.append(f"  first snapshot at {latest['at']:%Y-%m-%d %H:%M}Z; nothing to compare with yet")
    else:
        from syncer.model import KeyResultChange
        from syncer.progress import unit_of

        summary = format_change(KeyResultChange(
            kr_id, float(previous["current"]), float(latest["current"]), unit_of(kr.metric),
            len(newly_done), len(added), len(left),
        ))
        lines.append(f"  since {previous['at']:%Y-%m-%d %H:%M}Z: {summary}")
        for label, keys in (("done", newly_done), ("added", added), ("left", left), ("reopened", reopened)):
            if keys:
                lines.append(f"    {label:<9} {', '.join(keys[:30])}" + (" …" if len(keys) > 30 else ""))
    return "\n".join(lines) + "\n"
