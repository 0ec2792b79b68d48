"""Report renderers: one ``ReportData`` in, text out (terminal table, JSON, Markdown, HTML).

Pure functions: nothing here reads the store or writes files; the CLI and the daemon decide
where the text goes. Every string that came from a tracker (titles, keys, URLs, error
messages) is escaped for the format it lands in, because a report is often pasted into a wiki
or opened in a browser and tracker text is untrusted.

The JSON shape is the user-facing contract (CONTRACT.md §4, ``report.schema.json``); the other
formats show the same facts for people.
"""

from __future__ import annotations

import html
import io
import json
import math
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from syncer.errors import ConfigError
from syncer.model import (
    Forecast,
    KeyResultChange,
    KeyResultDetail,
    KeyResultProgress,
    ObjectiveProgress,
    ReportData,
    ReportItem,
    Status,
)
from syncer.progress import format_change

if TYPE_CHECKING:  # rich is imported by render_table only: JSON, HTML and Markdown do not need it
    from rich.text import Text

__all__ = [
    "FORMATS",
    "change_text",
    "forecast_text",
    "progress_bar_text",
    "render",
    "render_html",
    "render_json",
    "render_markdown",
    "render_table",
]

FORMATS = ("table", "json", "markdown", "html")

_STATUS_WORDS = {
    "done": "done",
    "on_track": "on track",
    "at_risk": "at risk",
    "off_track": "off track",
    "not_started": "not started",
}
# A symbol next to the word, so status reads without colour and without words alike.
_STATUS_SYMBOLS = {"done": "✔", "on_track": "●", "at_risk": "▲", "off_track": "✖", "not_started": "○"}
_STATUS_RICH = {
    "done": "bold blue",
    "on_track": "green",
    "at_risk": "yellow",
    "off_track": "bold red",
    "not_started": "dim",
}
_PERCENT_METRICS = ("percent_done", "points_percent_done")
_UNIT = {"sum_points_done": " pts", "count_done": " done", "count_open": " open"}
_STATE_WORDS = {"todo": "to do", "in_progress": "in progress", "done": "done", "unknown": "unknown"}
_TOP_UNALIGNED = 10


# --------------------------------------------------------------------------- shared helpers


def render(data: ReportData, fmt: str, *, color: bool = False, width: int | None = None) -> str:
    """Render ``data`` as ``table``, ``json``, ``markdown`` (alias ``md``) or ``html``."""
    name = fmt.strip().lower()
    if name == "md":
        name = "markdown"
    if name == "table":
        return render_table(data, color=color, width=width)
    if name == "json":
        return render_json(data)
    if name == "markdown":
        return render_markdown(data)
    if name == "html":
        return render_html(data)
    raise ConfigError(f"unknown report format {fmt!r}: use one of {', '.join(FORMATS)}")


def progress_bar_text(fraction: float, width: int = 10) -> str:
    """A bar of ``width`` cells (``▓▓▓▓░░░░░░`` for 0.4), readable anywhere monospace text goes.

    Cells fill by floor, so a bar is only full when the key result is done.
    """
    width = max(1, width)
    if math.isnan(fraction):
        fraction = 0.0
    fraction = min(1.0, max(0.0, fraction))
    filled = width if fraction >= 1.0 else math.floor(fraction * width + 1e-9)
    return "▓" * filled + "░" * (width - filled)


def change_text(change: KeyResultChange) -> str:
    """``42% -> 47% (+3 done, +1 added, 1 left)``: what moved since the previous pass.

    The same words as ``sync --dry-run`` prints (``progress.format_change``), minus the id prefix.
    """
    text = format_change(change)
    prefix = f"{change.kr_id}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def forecast_text(kr: KeyResultProgress, forecast: Forecast, cycle_end: datetime) -> str:
    """``forecast 68% of target by 2026-12-31: at risk (linear, 12 syncs)``."""
    end = _end_date(cycle_end)
    method = forecast.method
    if str(forecast.points_used) not in method:
        method += f", {_plural(forecast.points_used, 'sync')}"
    share = ""
    if not (kr.metric in _PERCENT_METRICS and kr.start == 0 and kr.target == 100):
        share = f" ({_pct(forecast.progress)} of target)"
    return f"forecast {_value(kr, forecast.value)}{share} by {end}: {_status_word(forecast.status)} ({method})"


def _num(value: float | None) -> str:
    """Short human number: ``40``, ``37.5``, ``61.54``."""
    if value is None or math.isnan(value):
        return "–"
    if abs(value - round(value)) < 1e-9:
        return str(int(round(value)))
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _pct(fraction: float | None) -> str:
    """Floor to whole percent so 99.6% never reads as 100% on an unfinished key result."""
    if fraction is None or math.isnan(fraction):
        return "–"
    return f"{math.floor(fraction * 100 + 1e-9)}%"


def _value(kr: KeyResultProgress, value: float | None) -> str:
    if kr.metric in _PERCENT_METRICS:
        return f"{_num(value)}%"
    return _num(value) + _UNIT.get(kr.metric, "")


def _value_text(kr: KeyResultProgress) -> str:
    """``40% / 100%``, ``18 / 50 done``, ``21 open (40 → 10)``, ``36.5 / 45 (from 30)``."""
    if kr.metric == "count_open":
        return f"{_num(kr.current)} open ({_num(kr.start)} → {_num(kr.target)})"
    text = f"{_num(kr.current)} / {_value(kr, kr.target)}"
    if kr.start and kr.metric not in _PERCENT_METRICS:
        text += f" (from {_num(kr.start)})"
    return text


def _status_key(status: Status | str | None) -> str:
    return "" if status is None else str(status)


def _status_word(status: Status | str | None) -> str:
    key = _status_key(status)
    return _STATUS_WORDS.get(key, key.replace("_", " ") or "no value")


def _status_label(status: Status | str | None) -> str:
    key = _status_key(status)
    return f"{_STATUS_SYMBOLS.get(key, '?')} {_status_word(status)}"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with ``Z``, whole seconds (``2026-11-22T10:00:00Z``)."""
    if moment is None:
        return None
    return _utc(moment).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _human_time(moment: datetime | None) -> str:
    return "never" if moment is None else _utc(moment).strftime("%Y-%m-%d %H:%M UTC")


def _end_date(cycle_end: datetime) -> str:
    """The configured end date: ``ReportData.cycle_end`` is exclusive (end + 1 day)."""
    return (_utc(cycle_end) - timedelta(days=1)).date().isoformat()


def _start_date(data: ReportData) -> str:
    return _utc(data.cycle_start).date().isoformat()


def _scope_text(scope: float | None) -> str | None:
    if scope is None:
        return None
    if abs(scope) < 0.0005:
        return "scope unchanged since cycle start"
    return f"scope {scope * 100:+.0f}% since cycle start"


def _stale_text(kr: KeyResultProgress) -> str:
    return f"stale: last good sync {_human_time(kr.last_synced)}"


def _tree(objectives: Sequence[ObjectiveProgress]) -> list[tuple[ObjectiveProgress, int]]:
    """Objectives depth-first (children under their parent, config order among siblings)."""
    by_id = {o.id: o for o in objectives}
    children: dict[str | None, list[ObjectiveProgress]] = {}
    for o in objectives:
        parent = o.parent if o.parent in by_id and o.parent != o.id else None
        children.setdefault(parent, []).append(o)
    out: list[tuple[ObjectiveProgress, int]] = []
    seen: set[str] = set()

    def walk(o: ObjectiveProgress, depth: int) -> None:
        if o.id in seen:
            return
        seen.add(o.id)
        out.append((o, depth))
        for child in children.get(o.id, []):
            walk(child, depth + 1)

    for root in children.get(None, []):
        walk(root, 0)
    for o in objectives:  # anything left over sits in a parent cycle: show it rather than drop it
        walk(o, 0)
    return out


def _detail(data: ReportData, kr_id: str) -> KeyResultDetail:
    return data.details.get(kr_id) or KeyResultDetail()


def _kr_notes(data: ReportData, kr: KeyResultProgress) -> list[str]:
    """The one-line facts under a key result, in the order people scan them."""
    detail = _detail(data, kr.id)
    notes = []
    if kr.stale:
        notes.append(_stale_text(kr))
    if detail.change is not None and not change_text(detail.change).endswith("(no change)"):
        notes.append(f"change: {change_text(detail.change)}")
    if detail.forecast is not None:
        notes.append(forecast_text(kr, detail.forecast, data.cycle_end))
    scope = _scope_text(detail.scope_change)
    if scope and detail.scope_change:
        notes.append(scope)
    return notes


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _share(count: int, total: int) -> str:
    if total <= 0:
        return "–"
    return f"{count / total * 100:.1f}%"


def _container(name: str) -> str:
    return name or "(none)"


def _unaligned_groups(data: ReportData) -> list[tuple[str, int, list[tuple[str, int]]]]:
    """(source, its count, [(container, count)]) over ALL unaligned items, biggest first.

    The counts are the store's aggregates, not the (capped) list: a report listing 200 of
    120k unaligned items still shows every project's and repository's share.
    """
    by_source: dict[str, dict[str, int]] = {}
    for group in data.unaligned_by_group():
        containers = by_source.setdefault(group.source, {})
        name = _container(group.container)
        containers[name] = containers.get(name, 0) + group.count
    groups = [
        (source, sum(containers.values()), sorted(containers.items(), key=lambda kv: (-kv[1], kv[0])))
        for source, containers in by_source.items()
    ]
    groups.sort(key=lambda g: (-g[1], g[0]))
    return groups


def _listed_by_container(items: Iterable[ReportItem]) -> dict[tuple[str, str], list[ReportItem]]:
    """The listed unaligned items under their (source, container) group."""
    listed: dict[tuple[str, str], list[ReportItem]] = {}
    for item in items:
        listed.setdefault((item.source, _container(item.container)), []).append(item)
    return listed


def _showing(shown: int, total: int) -> str:
    """``showing 200 of 120,431``: said whenever a list is shorter than what it stands for."""
    return f"showing {shown:,} of {total:,}"


def _safe_url(url: str) -> str | None:
    """Only http(s) links: a tracker could hand us ``javascript:`` and a report must not run it."""
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return None
    return url.strip() if scheme in ("http", "https") else None


# --------------------------------------------------------------------------- JSON


def _round(value: float | None, digits: int) -> float | None:
    if value is None or math.isnan(value):
        return None
    return round(float(value), digits)


def _bound(value: float | None) -> float | int | None:
    """Start/target as written in the config: ``0`` and ``100`` stay integers."""
    if value is None:
        return None
    return int(value) if abs(value - round(value)) < 1e-9 else round(float(value), 4)


def _json_item(item: ReportItem) -> dict[str, Any]:
    state = item.state if item.state in ("todo", "in_progress", "done") else "todo"
    out: dict[str, Any] = {
        "source": item.source,
        "key": item.key,
        "title": item.title,
        "url": item.url,
        "state": state,
        "container": item.container,
        "kind": item.kind,
    }
    if state != item.state:
        out["state_detail"] = item.state  # the schema's enum has no "unknown"; keep the truth beside it
    if item.points is not None:
        out["points"] = _round(item.points, 2)
    if item.rule:
        out["rule"] = item.rule
    if item.excluded:
        out["excluded"] = True
    return out


def _json_kr(data: ReportData, kr: KeyResultProgress) -> dict[str, Any]:
    detail = _detail(data, kr.id)
    tally = kr.tally
    items: dict[str, Any] = {
        "total": tally.total,
        "done": tally.done,
        "in_progress": tally.in_progress,
        "todo": tally.todo,
        "unknown": tally.unknown,
        "excluded": kr.tally.excluded,
    }
    if tally.points_total or tally.points_done:
        items["points_total"] = _round(tally.points_total, 2)
        items["points_done"] = _round(tally.points_done, 2)
    forecast = detail.forecast
    return {
        "id": kr.id,
        "title": kr.title,
        "metric": kr.metric,
        "start": _bound(kr.start),
        "target": _bound(kr.target),
        "current": _round(kr.current, 2),
        "progress": _round(kr.progress, 4),
        "status": _status_key(kr.status) or None,
        "items": items,
        "stale": kr.stale,
        "last_synced": _iso(kr.last_synced),
        "weight": kr.weight,
        "sources": list(kr.sources),
        "history": [
            {"at": _iso(h.at), "current": _round(h.current, 2), "progress": _round(h.progress, 4)}
            for h in detail.history
        ],
        "forecast": None
        if forecast is None
        else {
            "value": _round(forecast.value, 2),
            "progress": _round(forecast.progress, 4),
            "status": _status_key(forecast.status),
            "method": forecast.method,
            "points_used": forecast.points_used,
        },
        "scope_change": _round(detail.scope_change, 4),
        "change": None if detail.change is None else change_text(detail.change),
        "work_items": [_json_item(i) for i in detail.items],
        "work_items_total": detail.items_total,
    }


def render_json(data: ReportData) -> str:
    """The CONTRACT §4 report (plus additive fields), pretty-printed, ending in a newline."""
    objectives = [
        {
            "id": o.id,
            "title": o.title,
            "parent": o.parent,
            "progress": _round(o.progress, 4),
            "status": _status_key(o.status) or None,
            "owner": o.owner,
            "weight": o.weight,
            "children": list(o.children) or [c.id for c in data.objectives if c.parent == o.id],
            "key_results": [_json_kr(data, kr) for kr in o.key_results],
        }
        for o, _depth in _tree(data.objectives)
    ]
    doc: dict[str, Any] = {
        "cycle": {
            "name": data.cycle_name,
            "start": _start_date(data),
            "end": _end_date(data.cycle_end),
            "expected": _round(min(1.0, max(0.0, data.expected)), 4),
        },
        "generated_at": _iso(data.generated_at),
        "dry_run": data.dry_run,
        "requests": data.requests,
        "objectives": objectives,
        "unaligned": [_json_item(i) for i in data.unaligned],
        "unaligned_summary": {
            "count": data.unaligned_total,
            "shown": len(data.unaligned),
            "total_work_items": data.total_work_items,
            "share": _round(data.unaligned_total / data.total_work_items, 4) if data.total_work_items else None,
            "groups": [
                {"source": g.source, "container": g.container, "count": g.count}
                for g in sorted(data.unaligned_by_group(), key=lambda g: (-g.count, g.source, g.container))
            ],
        },
        "sources": [
            {
                "name": s.name,
                "ok": s.ok,
                "fetched": s.fetched,
                "requests": s.requests,
                "error": s.error,
                "last_synced": _iso(data.source_last_synced.get(s.name)),
                "full": s.full,
                "retired": s.retired,
            }
            for s in data.sources
        ],
        "writes": [
            {"source": w.source, "target": w.target, "kind": w.kind, "value": w.value, "reason": w.reason}
            for w in data.writes
        ],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------- terminal table


def _rich_status(status: Status | str | None, color: bool) -> Text:
    from rich.text import Text

    key = _status_key(status)
    return Text(_status_label(status), style=_STATUS_RICH.get(key, "") if color else "")


def _rich_bar(fraction: float, status: Status | str | None, color: bool, cells: int = 10) -> Text:
    from rich.text import Text

    style = _STATUS_RICH.get(_status_key(status), "") if color else ""
    text = Text(progress_bar_text(fraction, cells), style=style)
    text.append(f" {_pct(fraction):>4}")
    return text


def render_table(data: ReportData, *, color: bool = False, width: int | None = None) -> str:
    """A terminal report drawn with rich; without ``color`` it is plain text (no ANSI escapes)."""
    from rich import box
    from rich.console import Console, Group
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    buf = io.StringIO()
    width = width or 100
    narrow = width < 90  # phones, split panes: value moves under the title, bar shrinks
    cells = 5 if narrow else 10
    console = Console(
        file=buf,
        width=width,
        color_system="standard" if color else None,
        force_terminal=color,
        no_color=not color,
        highlight=False,
        emoji=False,
        markup=False,
        legacy_windows=False,
    )
    dim = "dim" if color else ""
    bold = "bold" if color else ""
    warn = "bold yellow" if color else ""

    head = Text(f"OKR report {data.cycle_name}", style=bold)
    head.append(f"  {_start_date(data)} -> {_end_date(data.cycle_end)}")
    if data.dry_run:
        head.append("  [DRY RUN: nothing written]", style=warn)
    console.print(head)
    console.print(
        Text(
            f"{_pct(data.expected)} of the cycle elapsed · generated {_human_time(data.generated_at)}",
            style=dim,
        )
    )

    table = Table(box=box.SIMPLE_HEAD, expand=True, pad_edge=False, show_edge=False)
    table.add_column("Objective / key result", ratio=1, overflow="fold")
    table.add_column("Progress", no_wrap=True)
    if not narrow:
        table.add_column("Value", overflow="fold", max_width=20)
    table.add_column("Status", no_wrap=True)
    for objective, depth in _tree(data.objectives):
        # Padding (not leading spaces) so wrapped lines keep the tree's indentation.
        label = Text(f"◆ {objective.title}", style=bold)
        label.append(f"  [{objective.id}]", style=dim)
        if objective.owner:
            label.append(f" · {objective.owner}", style=dim)
        value_cell: list[Text] = [] if narrow else [Text("")]
        table.add_row(
            Padding(label, (0, 0, 0, 2 * depth)),
            _rich_bar(objective.progress, objective.status, color, cells),
            *value_cell,
            _rich_status(objective.status, color),
        )
        for kr in objective.key_results:
            head = Text(kr.id, style=bold)
            head.append(f"  {kr.title}")
            lines: list[Padding] = [Padding(head, (0, 0, 0, 2 * depth + 2))]
            notes = _kr_notes(data, kr)
            if narrow:
                notes.insert(0, _value_text(kr))
            for note in notes:
                style = warn if note.startswith("stale") else dim
                lines.append(Padding(Text(note, style=style), (0, 0, 0, 2 * depth + 4)))
            status = _rich_status(kr.status, color)
            if kr.stale:
                status.append("\nSTALE", style=warn)
            value_cell = [] if narrow else [Text(_value_text(kr))]
            table.add_row(Group(*lines), _rich_bar(kr.progress, kr.status, color, cells), *value_cell, status)
    console.print(table)

    count, total = data.unaligned_total, data.total_work_items
    console.print(
        Text(
            f"Unaligned work: {count:,} of {total:,} in-scope items ({_share(count, total)}) match no key result",
            style=bold,
        )
    )
    if count:
        summary = " · ".join(
            f"{source} {n:,} (" + ", ".join(f"{name} {v:,}" for name, v in containers) + ")"
            for source, n, containers in _unaligned_groups(data)
        )
        console.print(Text(summary, style=dim))
    if data.unaligned:
        top = Table(box=box.SIMPLE, show_edge=False, pad_edge=False)
        top.add_column("Source")
        top.add_column("Key", no_wrap=True)
        top.add_column("Title", overflow="fold")
        top.add_column("State", no_wrap=True)
        for item in data.unaligned[:_TOP_UNALIGNED]:
            top.add_row(item.source, item.key, item.title, _STATE_WORDS.get(item.state, item.state))
        console.print(top)
        shown = min(len(data.unaligned), _TOP_UNALIGNED)
        if count > shown:
            console.print(Text(f"… and {count - shown:,} more ({_showing(shown, count)})", style=dim))

    console.print(Text("Sources", style=bold))
    sources = Table(box=box.SIMPLE, show_edge=False, pad_edge=False)
    for name in ("Source", "Status", "Fetched", "Requests", "Last good sync", "Error"):
        sources.add_column(name, overflow="fold", justify="right" if name in ("Fetched", "Requests") else "left")
    for s in data.sources:
        state = (
            Text("ok", style="green" if color else "") if s.ok else Text("FAILED", style="bold red" if color else "")
        )
        sources.add_row(
            s.name,
            state,
            str(s.fetched),
            str(s.requests),
            _human_time(data.source_last_synced.get(s.name)),
            s.error or "",
        )
    console.print(sources)

    if data.writes:
        title = "Planned write-backs (dry run)" if data.dry_run else "Write-backs"
        console.print(Text(title, style=bold))
        writes = Table(box=box.SIMPLE, show_edge=False, pad_edge=False)
        for name in ("Source", "Target", "Kind", "Value", "Reason"):
            writes.add_column(name, overflow="fold")
        for w in data.writes:
            writes.add_row(w.source, w.target, w.kind, write_summary(w.value), w.reason)
        console.print(writes)
    return buf.getvalue()


# --------------------------------------------------------------------------- Markdown

_MD_SPECIAL = re.compile(r"([\\`*_\[\]#|~])")


def _md(text: str) -> str:
    """Tracker text made inert in Markdown: one line, HTML entities, specials backslashed."""
    text = " ".join(str(text).split())
    # "<" is what starts raw HTML; "&" only matters when it spells an entity. A lone ">" is inert
    # mid-line (and no title ever starts a line here), so "37% -> 40%" stays readable in raw text.
    text = re.sub(r"&(?=#?\w+;)", "&amp;", text).replace("<", "&lt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def _md_code(text: str) -> str:
    return f"`{text}`" if "`" not in text and text else _md(text)


def _md_link(label: str, url: str) -> str:
    safe = _safe_url(url)
    if safe is None:
        return _md(label)
    target = safe.replace(" ", "%20").replace("(", "%28").replace(")", "%29").replace("<", "%3C")
    return f"[{_md(label)}]({target})"


def _md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def render_markdown(data: ReportData) -> str:
    """Markdown for an issue or wiki page: the table report's content, with items as links."""
    out: list[str] = [f"# OKR report: {_md(data.cycle_name)}", ""]
    line = (
        f"Cycle {_start_date(data)} → {_end_date(data.cycle_end)} · {_pct(data.expected)} elapsed · "
        f"generated {_iso(data.generated_at)}"
    )
    if data.dry_run:
        line += " · **dry run: nothing written**"
    out += [line, ""]

    out += ["## Objectives", ""]
    for objective, depth in _tree(data.objectives):
        text = (
            f"{'  ' * depth}- **{_md(objective.title)}** ({_md_code(objective.id)}) "
            f"`{progress_bar_text(objective.progress)}` {_pct(objective.progress)} · "
            f"{_status_label(objective.status)}"
        )
        if objective.owner:
            text += f" · owner {_md(objective.owner)}"
        stale = sum(1 for kr in objective.key_results if kr.stale)
        if stale:
            text += f" · ⚠ {stale} stale key result{'s' if stale > 1 else ''}"
        out.append(text)
    out.append("")

    out += ["## Key results", ""]
    for objective, _depth in _tree(data.objectives):
        if not objective.key_results:
            continue
        out += [f"### {_md(objective.title)}", ""]
        rows = []
        for kr in objective.key_results:
            detail = _detail(data, kr.id)
            status = _status_label(kr.status)
            if kr.stale:
                status += f" · ⚠ {_stale_text(kr)}"
            notes = []
            if detail.change is not None:
                notes.append(_md(change_text(detail.change)))
            rows.append(
                [
                    f"**{_md(kr.title)}**<br>{_md_code(kr.id)} · {_md_code(kr.metric)}",
                    f"`{progress_bar_text(kr.progress)}` {_pct(kr.progress)}",
                    _md(_value_text(kr)),
                    status,
                    "<br>".join(notes) or "–",
                    _md(forecast_text(kr, detail.forecast, data.cycle_end)) if detail.forecast else "–",
                    _md(_scope_text(detail.scope_change) or "–"),
                ]
            )
        out += _md_table(["Key result", "Progress", "Current / target", "Status", "Change", "Forecast", "Scope"], rows)
        out.append("")
        for kr in objective.key_results:
            kr_items = _detail(data, kr.id).items
            if not kr_items:
                continue
            out += [
                "<details>",
                f"<summary>{html.escape(kr.id)}: {_plural(_detail(data, kr.id).items_total, 'item')}</summary>",
                "",
            ]
            out += _md_table(
                ["Item", "Title", "State", "Points", "Rule"],
                (
                    [
                        _md_link(i.key, i.url),
                        _md(i.title) + (" *(excluded)*" if i.excluded else ""),
                        _STATE_WORDS.get(i.state, _md(i.state)),
                        _num(i.points) if i.points is not None else "",
                        _md(i.rule),
                    ]
                    for i in kr_items
                ),
            )
            more = _detail(data, kr.id).items_total - len(kr_items)
            if more > 0:
                out += ["", f"… and {more:,} more ({_showing(len(kr_items), len(kr_items) + more)})"]
            out += ["", "</details>", ""]

    count, total = data.unaligned_total, data.total_work_items
    out += [
        "## Unaligned work",
        "",
        f"{count:,} of {total:,} in-scope items ({_share(count, total)} of all work) match no key result.",
        "",
    ]
    if count:
        groups = _unaligned_groups(data)
        group_rows = [
            [_md(source), _md(container), f"{n:,}", _share(n, total)]
            for source, _n, containers in groups
            for container, n in containers
        ]
        out += _md_table(["Source", "Container", "Items", "Share of all work"], group_rows)
        out.append("")
        if len(data.unaligned) < count:
            out += [f"Items listed below: the {len(data.unaligned):,} most recently updated "
                    f"({_showing(len(data.unaligned), count)}).", ""]
        listed = _listed_by_container(data.unaligned)
        for source, n, containers in groups:
            rows = [
                [
                    _md(container),
                    _md_link(i.key, i.url),
                    _md(i.title),
                    _STATE_WORDS.get(i.state, _md(i.state)),
                ]
                for container, _count in containers
                for i in listed.get((source, container), [])
            ]
            if not rows:
                continue
            heading = f"{n:,}" if len(rows) == n else f"{n:,}; {_showing(len(rows), n)}"
            out += [f"### {_md(source)} ({heading})", ""]
            out += _md_table(["Container", "Item", "Title", "State"], rows)
            out.append("")

    out += ["## Sources", ""]
    out += _md_table(
        ["Source", "Status", "Fetched", "Requests", "Last good sync", "Error"],
        (
            [
                _md(s.name),
                "✔ ok" if s.ok else "✖ **failed**",
                str(s.fetched),
                str(s.requests),
                _human_time(data.source_last_synced.get(s.name)),
                _md(s.error or ""),
            ]
            for s in data.sources
        ),
    )
    out.append("")
    if data.writes:
        out += ["## Planned write-backs (dry run)" if data.dry_run else "## Write-backs", ""]
        out += _md_table(
            ["Source", "Target", "Kind", "Value", "Reason"],
            ([_md(w.source), _md(w.target), _md(w.kind), _md(write_summary(w.value)), _md(w.reason)]
             for w in data.writes),
        )
        out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------- HTML

_CSS = """
:root { color-scheme: light; --fg:#1f2328; --muted:#57606a; --line:#d0d7de; --bg:#ffffff; --panel:#f6f8fa;
  --done:#1a4b8c; --on_track:#116329; --at_risk:#7d4e00; --off_track:#a40e26; --not_started:#57606a; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg); line-height: 1.45;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
.wrap { max-width: 1200px; margin: 0 auto; padding: 16px; }
header.top { border-bottom: 1px solid var(--line); margin-bottom: 8px; }
h1 { font-size: 1.6rem; margin: .2em 0; } h2 { font-size: 1.3rem; margin: 1.4em 0 .5em; }
h3 { font-size: 1.1rem; margin: 1.2em 0 .4em; } h4 { font-size: 1rem; margin: 0 0 .3em; }
.muted { color: var(--muted); } code { font-size: .9em; background: var(--panel); padding: 0 .25em;
  border-radius: 4px; overflow-wrap: anywhere; }
a { color: #0550ae; } a:focus-visible { outline: 2px solid #0550ae; outline-offset: 2px; }
.summary { display: flex; flex-wrap: wrap; gap: 8px; margin: 10px 0; padding: 0; list-style: none; }
.summary li { background: var(--panel); border: 1px solid var(--line); border-radius: 6px;
  padding: 6px 10px; }
.summary b { font-size: 1.15rem; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; color: #fff; font-size: .85rem;
  font-weight: 600; white-space: nowrap; background: var(--not_started); }
.badge.done { background: var(--done); } .badge.on_track { background: var(--on_track); }
.badge.at_risk { background: var(--at_risk); } .badge.off_track { background: var(--off_track); }
.badge.failed { background: var(--off_track); } .badge.ok { background: var(--on_track); }
.stale { display: inline-block; background: #fff8c5; color: #3b2300; border: 1px solid #9a6700;
  border-radius: 6px; padding: 1px 8px; font-size: .85rem; }
.meter { display: inline-flex; align-items: center; gap: 6px; white-space: nowrap; }
.bar { display: inline-block; height: 12px; width: 140px; flex: none; background: #eaeef2;
  border: 1px solid #8c959f; border-radius: 6px; overflow: hidden; }
.bar > span { display: block; height: 100%; background: var(--not_started); }
.bar.done > span { background: var(--done); } .bar.on_track > span { background: var(--on_track); }
.bar.at_risk > span { background: #bf8700; } .bar.off_track > span { background: var(--off_track); }
.prog { display: flex; align-items: center; gap: 6px 10px; flex-wrap: wrap; margin: 4px 0; }
.pct { font-variant-numeric: tabular-nums; font-weight: 600; min-width: 3.2em; }
ul.tree, ul.tree ul { list-style: none; margin: 0; padding-left: 0; }
ul.tree ul { padding-left: 22px; border-left: 2px solid var(--line); margin-left: 8px; }
ul.tree .node { padding: 8px 10px; margin: 6px 0; background: var(--panel); border: 1px solid var(--line);
  border-radius: 6px; }
.node .name { font-weight: 600; margin-right: 6px; }
.grid { display: grid; gap: 14px; grid-template-columns: repeat(auto-fill, minmax(min(100%, 520px), 1fr)); }
article.kr { border: 1px solid var(--line); border-radius: 8px; padding: 12px; background: var(--bg);
  min-width: 0; }
article.kr.is-stale { border-color: #9a6700; border-style: dashed; }
.kr .meta { font-size: .85rem; color: var(--muted); margin: 0 0 6px; overflow-wrap: anywhere; }
.kr .facts { margin: 8px 0; padding-left: 18px; } .kr .facts li { margin: 2px 0; }
svg.chart { width: 100%; height: auto; display: block; margin-top: 6px; }
svg.chart text { font: 12px system-ui, "DejaVu Sans", sans-serif; fill: #424a53; }
svg.chart .grid line { stroke: #d8dee4; stroke-width: 1; }
svg.chart .axis { stroke: #6e7781; stroke-width: 1; }
svg.chart .expected { stroke: #6e7781; stroke-width: 1.5; stroke-dasharray: 2 4; fill: none; }
svg.chart .actual { stroke: #0550ae; stroke-width: 2.5; fill: none; stroke-linejoin: round; }
svg.chart .forecast { stroke: #8250df; stroke-width: 2; stroke-dasharray: 7 5; fill: none; }
svg.chart .now { stroke: #bf8700; stroke-width: 1; stroke-dasharray: 3 3; }
svg.chart .last { fill: #0550ae; }
svg.chart .target { stroke: #116329; stroke-width: 1; stroke-dasharray: 1 3; }
.legend { display: flex; flex-wrap: wrap; gap: 12px; font-size: .8rem; color: var(--muted);
  list-style: none; padding: 0; margin: 4px 0 0; }
.legend span { display: inline-block; width: 22px; height: 0; vertical-align: middle; margin-right: 4px; }
.legend .l-actual { border-top: 3px solid #0550ae; } .legend .l-expected { border-top: 2px dotted #6e7781; }
.legend .l-forecast { border-top: 2px dashed #8250df; }
details { margin-top: 8px; } summary { cursor: pointer; color: #0550ae; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top;
  overflow-wrap: break-word; }
td.key, td.nowrap, th.nowrap { white-space: nowrap; }
td.title { overflow-wrap: anywhere; }
th { background: var(--panel); } td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.share { display: inline-block; height: 8px; background: #8c959f; border-radius: 4px; vertical-align: middle;
  margin-right: 6px; }
.notice { background: #ddf4ff; border: 1px solid #54aeff; border-radius: 6px; padding: 6px 10px; }
footer { margin: 24px 0 8px; font-size: .85rem; color: var(--muted); }
@media (max-width: 600px) {
  body { font-size: 14px; } .wrap { padding: 10px; } ul.tree ul { padding-left: 12px; margin-left: 4px; }
  th, td { padding: 4px 5px; } svg.chart text { font-size: 16px; }
  .pts { display: none; }
  table.stack thead { display: none; } table.stack tr { display: block; border-bottom: 1px solid var(--line);
    padding: 4px 0; } table.stack td { display: flex; gap: 8px; border: 0; padding: 2px 5px; text-align: left; }
  table.stack td::before { content: attr(data-label); font-weight: 600; flex: 0 0 8.5em; }
}
@media print { details { display: block; } summary { display: none; } }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _anchor(prefix: str, ident: str) -> str:
    return prefix + "-" + (re.sub(r"[^A-Za-z0-9_-]+", "-", ident).strip("-") or "x")


def _badge(status: Status | str | None) -> str:
    key = _status_key(status) or "none"
    return f'<span class="badge {_e(key)}">{_e(_status_label(status))}</span>'


def _bar(fraction: float, status: Status | str | None, label: str) -> str:
    f = min(1.0, max(0.0, 0.0 if math.isnan(fraction) else fraction))
    now = math.floor(f * 100 + 1e-9)
    key = _status_key(status) or "none"
    return (
        f'<span class="meter"><span class="bar {_e(key)}" role="progressbar" aria-valuemin="0" '
        f'aria-valuemax="100" aria-valuenow="{now}" aria-label="{_e(label)}">'
        f'<span style="width:{f * 100:.1f}%"></span></span><span class="pct">{now}%</span></span>'
    )


def _link(item: ReportItem, css: str) -> str:
    url = _safe_url(item.url)
    if url is None:
        return f"<code>{_e(item.key)}</code>"
    return f'<a class="{css}" href="{_e(url)}">{_e(item.key)}</a>'


def _nice_ceiling(value: float) -> float:
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value - 1e-9:
            return step * power
    return 10 * power


def _burnup_svg(data: ReportData, kr: KeyResultProgress, detail: KeyResultDetail) -> str:
    """A burn-up chart as inline SVG: actual values, the expected line and the forecast."""
    width, height = 520, 230
    left, right, top, bottom = 60, 14, 12, 42
    pw, ph = width - left - right, height - top - bottom
    t0 = _utc(data.cycle_start).timestamp()
    t1 = _utc(data.cycle_end).timestamp()
    span = max(1.0, t1 - t0)
    history = detail.history
    forecast = detail.forecast

    values = [kr.start, kr.target, kr.current, *(h.current for h in history)]
    if forecast is not None:
        values.append(forecast.value)
    values = [v for v in values if v is not None and not math.isnan(v)]
    low = min(0.0, *values)
    high = _nice_ceiling(max(values)) if kr.metric not in _PERCENT_METRICS else max(100.0, *values)
    if high <= low:
        high = low + 1

    def x(moment: datetime) -> float:
        return left + pw * min(1.0, max(0.0, (_utc(moment).timestamp() - t0) / span))

    def y(value: float) -> float:
        return top + ph * (1 - (value - low) / (high - low))

    def fmt(value: float) -> str:
        return f"{value:.1f}"

    uid = _anchor("c", kr.id)
    parts = []
    # grid and y ticks
    parts.append('<g class="grid">')
    ticks = [low + (high - low) * i / 4 for i in range(5)]
    for tick in ticks:
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{fmt(y(tick))}" y2="{fmt(y(tick))}"/>')
    parts.append("</g>")
    for tick in ticks:
        label = _value(kr, tick) if kr.metric in _PERCENT_METRICS else _num(round(tick, 1))
        parts.append(f'<text x="{left - 6}" y="{fmt(y(tick) + 4)}" text-anchor="end">{_e(label)}</text>')
    # axes
    parts.append(f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}"/>')
    parts.append(f'<line class="axis" x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}"/>')
    start_label = _utc(data.cycle_start).strftime("%b %-d")
    end_label = (_utc(data.cycle_end) - timedelta(days=1)).strftime("%b %-d")
    parts.append(f'<text x="{left}" y="{top + ph + 16}" text-anchor="start">{_e(start_label)}</text>')
    parts.append(f'<text x="{left + pw}" y="{top + ph + 16}" text-anchor="end">{_e(end_label)}</text>')
    parts.append(
        f'<text x="{left + pw / 2}" y="{height - 6}" text-anchor="middle">cycle {_e(data.cycle_name)} (time →)</text>'
    )
    # now marker
    now_x = x(data.generated_at)
    parts.append(f'<line class="now" x1="{fmt(now_x)}" y1="{top}" x2="{fmt(now_x)}" y2="{top + ph}"/>')
    parts.append(f'<text x="{fmt(now_x)}" y="{top + ph + 16}" text-anchor="middle">now</text>')
    # target line
    ty = fmt(y(kr.target))
    parts.append(f'<line class="target" x1="{left}" x2="{left + pw}" y1="{ty}" y2="{ty}"/>')
    # expected: start to target across the cycle
    parts.append(f'<line class="expected" x1="{left}" y1="{fmt(y(kr.start))}" x2="{left + pw}" y2="{ty}"/>')
    # forecast from the latest known value to the cycle's end
    if forecast is not None:
        if history:
            fx, fy = x(history[-1].at), y(history[-1].current)
        else:
            fx, fy = now_x, y(kr.current)
        end_y = fmt(y(forecast.value))
        parts.append(f'<line class="forecast" x1="{fmt(fx)}" y1="{fmt(fy)}" x2="{left + pw}" y2="{end_y}"/>')
    points = " ".join(f"{fmt(x(h.at))},{fmt(y(h.current))}" for h in history)
    parts.append(f'<polyline class="actual" data-points="{len(history)}" points="{points}"/>')
    if history:
        parts.append(f'<circle class="last" cx="{fmt(x(history[-1].at))}" cy="{fmt(y(history[-1].current))}" r="3.5"/>')

    # text alternative: the same story in words
    desc = [f"Burn-up of {kr.title} from {_start_date(data)} to {_end_date(data.cycle_end)}."]
    if history:
        desc.append(
            f"{len(history)} syncs; value went from {_value(kr, history[0].current)} to "
            f"{_value(kr, history[-1].current)}."
        )
    else:
        desc.append("No history yet.")
    expected_now = kr.start + (kr.target - kr.start) * min(1.0, max(0.0, data.expected))
    desc.append(f"Expected by now on a straight line: {_value(kr, expected_now)}; target {_value(kr, kr.target)}.")
    if forecast is not None:
        desc.append(f"Forecast at cycle end: {_value(kr, forecast.value)} ({_status_word(forecast.status)}).")
    title = f"Burn-up chart: {kr.title}"
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{uid}-t {uid}-d" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{uid}-t">{_e(title)}</title><desc id="{uid}-d">{_e(" ".join(desc))}</desc>'
        + "".join(parts)
        + "</svg>"
        '<ul class="legend" aria-hidden="true"><li><span class="l-actual"></span>actual</li>'
        '<li><span class="l-expected"></span>expected</li>'
        '<li><span class="l-forecast"></span>forecast</li></ul>'
    )


def _html_kr(data: ReportData, kr: KeyResultProgress) -> str:
    detail = _detail(data, kr.id)
    classes = "kr is-stale" if kr.stale else "kr"
    out = [f'<article class="{classes}" id="{_e(_anchor("kr", kr.id))}">']
    out.append(f"<h4>{_e(kr.title)}</h4>")
    meta = [f"<code>{_e(kr.id)}</code>", _e(kr.metric.replace("_", " "))]
    if kr.weight != 1:
        meta.append(f"weight {_e(_num(kr.weight))}")
    if kr.sources:
        meta.append("from " + _e(", ".join(kr.sources)))
    out.append(f'<p class="meta">{" · ".join(meta)}</p>')
    out.append(
        f'<div class="prog">{_bar(kr.progress, kr.status, f"Progress of {kr.title}")} '
        f"{_badge(kr.status)} <span>{_e(_value_text(kr))}</span></div>"
    )
    facts = []
    if kr.stale:
        facts.append(f'<span class="stale">⚠ {_e(_stale_text(kr))}</span>')
    if detail.change is not None:
        facts.append(f"Change since last sync: {_e(change_text(detail.change))}")
    if detail.forecast is not None:
        facts.append(_e(forecast_text(kr, detail.forecast, data.cycle_end).capitalize()))
    else:
        facts.append("No forecast yet (too few syncs).")
    scope = _scope_text(detail.scope_change)
    if scope:
        facts.append(_e(scope.capitalize()))
    t = kr.tally
    counts = f"{t.done} done, {t.in_progress} in progress, {t.todo} to do"
    if t.unknown:
        counts += f", {t.unknown} unknown"
    if kr.metric == "manual" and not t.total:
        facts.append("Value from manual check-ins")
    else:
        facts.append(f"Items: {t.total} ({counts})")
    out.append('<ul class="facts">' + "".join(f"<li>{f}</li>" for f in facts) + "</ul>")
    out.append(_burnup_svg(data, kr, detail))
    if detail.items:
        out.append(f"<details><summary>Items behind this key result ({detail.items_total:,})</summary>")
        out.append(
            '<div class="scroll"><table><thead><tr><th scope="col">Item</th><th scope="col">Title</th>'
            '<th scope="col">State</th><th scope="col" class="n pts">Points</th></tr></thead><tbody>'
        )
        for item in detail.items:
            title = _e(item.title) + (' <span class="muted">(excluded)</span>' if item.excluded else "")
            out.append(
                f'<tr><td class="key">{_link(item, "item-link")}</td><td class="title">{title}</td>'
                f"<td>{_e(_STATE_WORDS.get(item.state, item.state))}</td>"
                f'<td class="n pts">{_e(_num(item.points)) if item.points is not None else ""}</td></tr>'
            )
        out.append("</tbody></table></div>")
        more = detail.items_total - len(detail.items)
        if more > 0:
            out.append(
                f'<p class="muted">… and {more:,} more ({_showing(len(detail.items), detail.items_total)}; '
                f"<code>okrsync explain {_e(kr.id)}</code> lists them all)</p>"
            )
        out.append("</details>")
    out.append("</article>")
    return "".join(out)


def _html_tree(data: ReportData) -> str:
    by_parent: dict[str | None, list[ObjectiveProgress]] = {}
    ordered = _tree(data.objectives)
    ids = {o.id for o, _ in ordered}
    for o, depth in ordered:
        parent = o.parent if depth > 0 and o.parent in ids else None
        by_parent.setdefault(parent, []).append(o)

    def node(o: ObjectiveProgress) -> str:
        stale = sum(1 for kr in o.key_results if kr.stale)
        kids = by_parent.get(o.id, [])
        extra = []
        if o.key_results or not kids:
            extra.append(_plural(len(o.key_results), "key result"))
        if kids:
            extra.append(_plural(len(kids), "child objective"))
        if o.owner:
            extra.append(f"owner {_e(o.owner)}")
        body = (
            f'<div class="node"><a class="name" href="#{_e(_anchor("obj", o.id))}">{_e(o.title)}</a> '
            f"{_badge(o.status)}"
            + (f' <span class="stale">⚠ {stale} stale</span>' if stale else "")
            + f'<div class="prog">{_bar(o.progress, o.status, f"Progress of {o.title}")}'
            f'<span class="muted">{" · ".join(extra)}</span></div></div>'
        )
        if kids:
            body += "<ul>" + "".join(node(k) for k in kids) + "</ul>"
        return f"<li>{body}</li>"

    return '<ul class="tree">' + "".join(node(o) for o in by_parent.get(None, [])) + "</ul>"


def _html_table(header: Sequence[tuple[str, str]], rows: Iterable[Sequence[str]], *, stack: bool = False) -> str:
    """``header`` as (label, css class); row cells are already-escaped HTML.

    ``stack`` tables turn into one labelled block per row on phones (wide tables stay readable).
    """
    head = "".join(f'<th scope="col" class="{c}">{_e(h)}</th>' for h, c in header)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{c}" data-label="{_e(h)}">{cell}</td>' for cell, (h, c) in zip(row, header, strict=True))
        + "</tr>"
        for row in rows
    )
    css = ' class="stack"' if stack else ""
    return f'<div class="scroll"><table{css}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def render_html(data: ReportData) -> str:
    """One self-contained, accessible HTML page: inline CSS and SVG, nothing loaded by URL."""
    krs = [kr for o in data.objectives for kr in o.key_results]
    counts: dict[str, int] = {}
    for kr in krs:
        counts[_status_key(kr.status)] = counts.get(_status_key(kr.status), 0) + 1
    failed = [s for s in data.sources if not s.ok]
    n_unaligned, total = data.unaligned_total, data.total_work_items

    out: list[str] = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # Enforces the "self-contained" promise in the browser: nothing may be fetched.
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">",
        f"<title>OKR report {_e(data.cycle_name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        '<div class="wrap"><header class="top">',
        f"<h1>OKR report: {_e(data.cycle_name)}</h1>",
        f'<p class="muted">Cycle {_e(_start_date(data))} to {_e(_end_date(data.cycle_end))} · '
        f"{_pct(data.expected)} of the cycle elapsed · generated "
        f'<time datetime="{_e(_iso(data.generated_at))}">{_e(_human_time(data.generated_at))}</time></p>',
    ]
    if data.dry_run:
        out.append('<p class="notice">Dry run: this report shows planned write-backs; nothing was written.</p>')
    summary = [f"<b>{len(data.objectives)}</b> objectives", f"<b>{len(krs)}</b> key results"]
    for key in ("done", "on_track", "at_risk", "off_track", "not_started"):
        if counts.get(key):
            summary.append(f"<b>{counts[key]}</b> {_e(_status_word(key))}")
    stale_krs = sum(1 for kr in krs if kr.stale)
    if stale_krs:
        summary.append(f"<b>{stale_krs}</b> stale")
    summary.append(f"<b>{_share(n_unaligned, total)}</b> of work unaligned")
    if failed:
        summary.append(f"<b>{len(failed)}</b> source{'s' if len(failed) != 1 else ''} failed")
    out.append('<ul class="summary">' + "".join(f"<li>{s}</li>" for s in summary) + "</ul></header><main>")

    out.append('<section aria-labelledby="h-objectives"><h2 id="h-objectives">Objectives</h2>')
    out.append(_html_tree(data))
    out.append("</section>")

    titles = {o.id: o.title for o in data.objectives}
    out.append('<section aria-labelledby="h-krs"><h2 id="h-krs">Key results</h2>')
    for objective, _depth in _tree(data.objectives):
        out.append(f'<section id="{_e(_anchor("obj", objective.id))}">')
        parent = ""
        if objective.parent:
            parent_title = titles.get(objective.parent, objective.parent)
            parent = f' <span class="muted">(under {_e(parent_title)})</span>'
        bar = _bar(objective.progress, objective.status, f"Progress of {objective.title}")
        out.append(f'<h3>{_e(objective.title)}{parent}</h3><div class="prog">{bar} {_badge(objective.status)}</div>')
        if objective.key_results:
            out.append('<div class="grid">' + "".join(_html_kr(data, kr) for kr in objective.key_results) + "</div>")
        else:
            out.append('<p class="muted">No key results of its own; progress rolls up from child objectives.</p>')
        out.append("</section>")
    out.append("</section>")

    out.append('<section aria-labelledby="h-unaligned"><h2 id="h-unaligned">Unaligned work</h2>')
    out.append(
        f"<p>{n_unaligned:,} of {total:,} in-scope items ({_share(n_unaligned, total)} of all work) "
        "match no key result.</p>"
    )
    groups = _unaligned_groups(data) if n_unaligned else []
    if groups:
        biggest = max(n for _, _, containers in groups for _, n in containers)
        rows = []
        for source, _n, containers in groups:
            for container, n in containers:
                # bar length relative to the biggest group; the label gives the share of all work
                share = n / biggest
                rows.append(
                    [
                        _e(source),
                        _e(container),
                        f"{n:,}",
                        f'<span class="share" style="width:{share * 80:.0f}px" aria-hidden="true"></span>'
                        f"{_share(n, total)}",
                    ]
                )
        out.append(_html_table([("Source", ""), ("Container", ""), ("Items", "n"), ("Share of all work", "")], rows))
        if len(data.unaligned) < n_unaligned:
            out.append(
                f'<p class="muted">Items listed below: the {len(data.unaligned):,} most recently updated '
                f"({_showing(len(data.unaligned), n_unaligned)}).</p>"
            )
        listed = _listed_by_container(data.unaligned)
        for source, n, containers in groups:
            shown = [(container, count, listed.get((source, container), [])) for container, count in containers]
            if not any(items for _, _, items in shown):
                continue
            out.append(f"<h3>{_e(source)} ({n:,})</h3>")
            for container, count, items in shown:
                if not items:
                    continue
                label = f"{count:,} unaligned" + ("" if len(items) == count else f", {_showing(len(items), count)}")
                out.append(f"<details><summary>{_e(container)}: {label}</summary>")
                out.append(
                    _html_table(
                        [("Item", "key"), ("Title", "title"), ("State", "")],
                        (
                            [_link(i, "unaligned-link"), _e(i.title), _e(_STATE_WORDS.get(i.state, i.state))]
                            for i in items
                        ),
                    )
                )
                out.append("</details>")
    out.append("</section>")

    out.append('<section aria-labelledby="h-sources"><h2 id="h-sources">Sources</h2>')
    out.append(
        _html_table(
            [
                ("Source", ""),
                ("Status", ""),
                ("Fetched", "n"),
                ("Requests", "n"),
                ("Last good sync", ""),
                ("Error", "title"),
            ],
            (
                [
                    _e(s.name),
                    '<span class="badge ok">✔ ok</span>' if s.ok else '<span class="badge failed">✖ failed</span>',
                    str(s.fetched),
                    str(s.requests),
                    _e(_human_time(data.source_last_synced.get(s.name))),
                    _e(s.error or ""),
                ]
                for s in data.sources
            ),
            stack=True,
        )
    )
    out.append("</section>")

    if data.writes:
        title = "Planned write-backs (dry run)" if data.dry_run else "Write-backs"
        out.append(f'<section aria-labelledby="h-writes"><h2 id="h-writes">{title}</h2>')
        out.append(
            _html_table(
                [("Source", ""), ("Target", ""), ("Kind", ""), ("Value", "title"), ("Reason", "")],
                ([_e(w.source), _e(w.target), _e(w.kind), _e(write_summary(w.value)), _e(w.reason)]
                 for w in data.writes),
                stack=True,
            )
        )
        out.append("</section>")
    out.append(
        f"</main><footer>Generated by okrsync · {data.requests} tracker requests in this pass.</footer>"
        "</div></body></html>\n"
    )
    return "\n".join(out)


def write_summary(value: str, limit: int = 60) -> str:
    """One line for a planned write in a table: a body block's text is long and multi-line."""
    line = " ".join(value.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
