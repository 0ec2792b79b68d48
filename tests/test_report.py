"""Renderers: the JSON contract, and what a person sees in table, Markdown and HTML."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from syncer.errors import ConfigError
from syncer.model import KeyResultChange, ReportData, ReportItem, Status
from syncer.report import (
    change_text,
    progress_bar_text,
    render,
    render_html,
    render_json,
    render_markdown,
    render_table,
)
from tests.report_factory import HISTORY_LEN, make_report

SCHEMA = Path(__file__).resolve().parents[1] / ".." / "shared" / "report.schema.json"
ANSI = re.compile(r"\x1b\[")


def _all_krs(data: ReportData):
    return [kr for o in data.objectives for kr in o.key_results]


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("fraction", "width", "bar"),
    [
        (0.0, 10, "░░░░░░░░░░"),
        (0.4, 10, "▓▓▓▓░░░░░░"),
        (0.999, 10, "▓▓▓▓▓▓▓▓▓░"),
        (1.0, 10, "▓▓▓▓▓▓▓▓▓▓"),
        (1.7, 4, "▓▓▓▓"),
        (-0.2, 4, "░░░░"),
        (float("nan"), 3, "░░░"),
        (0.5, 0, "░"),
    ],
)
def test_progress_bar_text(fraction: float, width: int, bar: str) -> None:
    assert progress_bar_text(fraction, width) == bar


def test_change_text_reads_like_the_contract() -> None:
    change = KeyResultChange("onboarding-revamp", 42.0, 47.0, "%", done_delta=3, added=1, left=1)
    assert change_text(change) == "42% -> 47% (+3 done, +1 added, 1 left)"
    assert change_text(KeyResultChange("x", None, 5.0, "done")) == "new -> 5 done"
    assert change_text(KeyResultChange("x", 16, 18, "done", done_delta=2)) == "16 -> 18 done (+2 done)"
    assert change_text(KeyResultChange("x", 7.5, 7.5, "")) == "7.5 (no change)"


def test_render_dispatches_and_rejects_unknown_formats() -> None:
    data = make_report()
    assert render(data, "json") == render_json(data)
    assert render(data, "md") == render_markdown(data)
    assert render(data, "HTML") == render_html(data)
    assert render(data, "table", width=90) == render_table(data, color=False, width=90)
    with pytest.raises(ConfigError, match="unknown report format 'pdf'"):
        render(data, "pdf")


# --------------------------------------------------------------------------- JSON


def test_json_validates_against_the_contract_schema() -> None:
    if not SCHEMA.is_file():
        pytest.skip(f"shared schema not found at {SCHEMA}")
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    for data in (make_report(), make_report(hostile=True), make_report(history_len=0)):
        doc = json.loads(render_json(data))
        errors = sorted(validator.iter_errors(doc), key=str)
        assert not errors, errors[0]


def test_json_contract_fields() -> None:
    doc = json.loads(render_json(make_report()))
    assert doc["cycle"] == {"name": "2026-Q4", "start": "2026-10-01", "end": "2026-12-31", "expected": 0.5697}
    assert doc["generated_at"] == "2026-11-22T10:00:00Z"
    assert [o["id"] for o in doc["objectives"]] == ["grow", "onboarding", "reliability"]
    grow, onboarding, _ = doc["objectives"]
    assert grow["parent"] is None and grow["children"] == ["onboarding", "reliability"]
    assert onboarding["parent"] == "grow" and onboarding["owner"] == "growth-team"

    revamp = onboarding["key_results"][0]
    assert revamp["id"] == "onboarding-revamp"
    assert (revamp["start"], revamp["target"], revamp["current"]) == (0, 100, 40.0)
    assert revamp["progress"] == 0.4 and revamp["status"] == "at_risk"
    assert revamp["items"] == {
        "total": 10,
        "done": 4,
        "in_progress": 3,
        "todo": 3,
        "unknown": 0,
        "excluded": 1,
    }
    assert revamp["stale"] is False and revamp["last_synced"] == "2026-11-22T09:58:00Z"
    assert revamp["change"] == "37% -> 40% (+1 done, +1 added)"
    assert revamp["scope_change"] == 0.25
    assert revamp["forecast"] == {
        "value": 68.0,
        "progress": 0.68,
        "status": "at_risk",
        "method": "linear",
        "points_used": 12,
    }
    assert len(revamp["history"]) == HISTORY_LEN
    assert revamp["history"][-1] == {"at": "2026-11-22T09:58:00Z", "current": 40.0, "progress": 0.4}
    urls = [i["url"] for i in revamp["work_items"]]
    assert "https://acme.atlassian.net/browse/PLAT-101" in urls
    assert "https://github.com/acme/web/issues/51" in urls

    perf = onboarding["key_results"][2]
    assert perf["stale"] is True and perf["last_synced"] == "2026-11-20T08:00:00Z"
    assert doc["objectives"][2]["key_results"][0]["status"] == "on_track"  # count_open going down

    assert {u["source"] for u in doc["unaligned"]} == {"jira", "github"}
    assert doc["unaligned"][0] == {
        "source": "jira",
        "key": "PLAT-77",
        "title": "Refactor billing cron",
        "url": "https://acme.atlassian.net/browse/PLAT-77",
        "state": "in_progress",
        "container": "PLAT",
        "kind": "issue",
    }
    assert doc["unaligned_summary"] == {
        "count": 9,
        "shown": 9,
        "total_work_items": 140,
        "share": 0.0643,
        "groups": [  # biggest first, then by source and container
            {"source": "jira", "container": "PLAT", "count": 3},
            {"source": "github", "container": "acme/api", "count": 2},
            {"source": "github", "container": "acme/web", "count": 2},
            {"source": "jira", "container": "MOB", "count": 2},
        ],
    }
    failed = [s for s in doc["sources"] if not s["ok"]]
    assert [s["name"] for s in failed] == ["jira-dc"] and "503" in failed[0]["error"]
    assert doc["sources"][0] == {
        "name": "jira",
        "ok": True,
        "fetched": 120,
        "requests": 3,
        "error": None,
        "last_synced": "2026-11-22T09:58:00Z",
        "full": False,
        "retired": 0,
    }
    assert doc["dry_run"] is True and doc["requests"] == 12
    assert doc["writes"][0] == {
        "source": "jira",
        "target": "OKR-12",
        "kind": "field customfield_10100",
        "value": "40",
        "reason": "was 37",
    }


def test_json_rounds_and_keeps_unknown_state_visible() -> None:
    data = make_report()
    odd = ReportItem("github", "acme/web#1", "Odd", "https://github.com/acme/web/issues/1", "unknown")
    kr = data.objectives[0].key_results[0]
    kr = replace(kr, current=36.123456, progress=0.408230456)
    grow = replace(data.objectives[0], key_results=(kr, *data.objectives[0].key_results[1:]))
    data = replace(data, objectives=(grow, *data.objectives[1:]), unaligned=(odd,))
    doc = json.loads(render_json(data))
    nps = doc["objectives"][0]["key_results"][0]
    assert nps["current"] == 36.12 and nps["progress"] == 0.4082
    assert doc["unaligned"][0]["state"] == "todo" and doc["unaligned"][0]["state_detail"] == "unknown"


def test_json_naive_and_offset_datetimes_come_out_as_utc_z() -> None:
    from datetime import timedelta, timezone

    data = make_report()
    data = replace(data, generated_at=datetime(2026, 11, 22, 12, 0, 30, 999, tzinfo=timezone(timedelta(hours=2))))
    assert json.loads(render_json(data))["generated_at"] == "2026-11-22T10:00:30Z"
    data = replace(data, generated_at=datetime(2026, 11, 22, 10, 0))
    assert json.loads(render_json(data))["generated_at"] == "2026-11-22T10:00:00Z"


# --------------------------------------------------------------------------- table


def test_table_is_plain_text_without_color_and_says_everything() -> None:
    data = make_report()
    text = render_table(data, color=False, width=120)
    assert not ANSI.search(text)
    for o in data.objectives:
        assert o.title in text
    for kr in _all_krs(data):
        assert kr.id in text
    assert "on track" in text and "at risk" in text and "done" in text  # status in words
    assert "STALE" in text and "stale: last good sync 2026-11-20 08:00 UTC" in text
    assert "37% -> 40% (+1 done, +1 added)" in text
    assert "▓▓▓▓░░░░░░  40%" in text
    assert "Unaligned work: 9 of 140 in-scope items (6.4%)" in text
    assert "PLAT-77" in text and "acme/web#90" in text
    assert "FAILED" in text and "503 Service Unavailable" in text
    assert "Planned write-backs (dry run)" in text and "OKR-12" in text


def test_table_tree_indents_children_under_parents() -> None:
    lines = render_table(make_report(), color=False, width=140).splitlines()
    grow = next(line for line in lines if "Increase user engagement" in line)
    child = next(line for line in lines if "Make onboarding effortless" in line)
    kr = next(line for line in lines if "onboarding-revamp" in line)
    indent = [len(line) - len(line.lstrip()) for line in (grow, child, kr)]
    assert indent[0] < indent[1] < indent[2]
    assert lines.index(grow) < lines.index(child) < lines.index(kr)


def test_table_with_color_uses_ansi_and_keeps_words() -> None:
    text = render_table(make_report(), color=True, width=120)
    assert ANSI.search(text)
    assert "at risk" in ANSI.sub("", text)


def test_table_narrow_width_still_renders() -> None:
    text = render_table(make_report(), color=False, width=60)
    assert max(len(line) for line in text.splitlines()) <= 60
    assert "perf-points" in text and "18 / 50 done" in text and "FAILED" in text


# --------------------------------------------------------------------------- Markdown


def test_markdown_links_items_and_groups_unaligned() -> None:
    data = make_report()
    md = render_markdown(data)
    assert md.startswith("# OKR report: 2026-Q4")
    assert "- **Increase user engagement and retention** (`grow`) `▓▓▓▓░░░░░░` 48%" in md
    assert "  - **Make onboarding effortless** (`onboarding`)" in md
    for kr in _all_krs(data):
        for item in data.details[kr.id].items:
            assert f"({item.url})" in md
    assert "[PLAT\\-101]" not in md  # hyphens need no escaping
    assert "[PLAT-101](https://acme.atlassian.net/browse/PLAT-101)" in md
    assert "<details>" in md and "<summary>onboarding-revamp: 11 items</summary>" in md
    assert "| jira | PLAT | 3 | 2.1% |" in md
    assert "| github | acme/api | 2 | 1.4% |" in md
    assert "⚠ stale: last good sync 2026-11-20 08:00 UTC" in md
    assert "forecast 68% by 2026-12-31: at risk" in md
    assert "scope \\+25%" in md or "scope +25%" in md
    assert "✖ **failed**" in md


def test_markdown_escapes_tracker_text() -> None:
    md = render_markdown(make_report(hostile=True))
    assert "<script>" not in md
    assert "&lt;script>alert(1)&lt;/script>" in md
    assert "37% -> 40% (+1 done, +1 added)" in md  # readable raw text: ">" needs no escape
    assert not re.search(r"(?<!\\)\]\(javascript:", md)  # the bracket is escaped: no link
    assert "\\| \\*bold\\* \\[x\\]" in md
    assert "Email verification \\| resend flow" in md


def test_markdown_table_rows_have_consistent_columns() -> None:
    md = render_markdown(make_report(hostile=True))
    block: list[str] = []
    for line in [*md.splitlines(), ""]:
        if line.startswith("|"):
            block.append(line)
            continue
        if block:
            widths = {len(re.split(r"(?<!\\)\|", row)) for row in block}
            assert len(widths) == 1, block
            block = []


# --------------------------------------------------------------------------- HTML


class _Dom(HTMLParser):
    """Just enough of a DOM for assertions: tags with attributes, and text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        (self.script_text if self._in_script else self.text).append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())]


def _dom(html_text: str) -> _Dom:
    dom = _Dom()
    dom.feed(html_text)
    return dom


def test_html_is_self_contained() -> None:
    page = render_html(make_report())
    dom = _dom(page)
    assert page.startswith("<!doctype html>")
    assert dom.find("html")[0]["lang"] == "en"
    assert dom.find("meta", name="viewport")
    assert not dom.find("script") and not dom.find("link") and not dom.find("img") and not dom.find("iframe")
    assert not [a for _, a in dom.tags if "src" in a]
    assert "url(" not in page and "@import" not in page
    csp = dom.find("meta", **{"http-equiv": "Content-Security-Policy"})
    assert csp and "default-src 'none'" in csp[0]["content"]


def test_html_headings_are_in_order() -> None:
    dom = _dom(render_html(make_report()))
    levels = [int(t[1]) for t, _ in dom.tags if re.fullmatch(r"h[1-6]", t)]
    assert levels[0] == 1 and levels.count(1) == 1
    for before, after in zip(levels, levels[1:], strict=False):
        assert after <= before + 1, levels


def test_html_charts_have_one_vertex_per_history_point_and_text_alternatives() -> None:
    data = make_report()
    page = render_html(data)
    dom = _dom(page)
    lines = dom.find("polyline")
    assert len(lines) == len(_all_krs(data))
    for line in lines:
        assert line["class"] == "actual"
        assert line["data-points"] == str(HISTORY_LEN)
        assert len(line["points"].split()) == HISTORY_LEN
    svgs = dom.find("svg")
    assert all(s["role"] == "img" and s["aria-labelledby"] for s in svgs)
    assert len(dom.find("line", **{"class": "expected"})) == len(_all_krs(data))
    forecasts = sum(1 for kr in _all_krs(data) if data.details[kr.id].forecast is not None)
    assert len(dom.find("line", **{"class": "forecast"})) == forecasts
    text = " ".join(dom.text)
    assert "Burn-up chart: Ship the onboarding revamp" in text
    assert "30 syncs; value went from 0% to 40%" in text


def test_html_chart_points_follow_the_values() -> None:
    """The actual line climbs (SVG y falls) as the value rises, and spans the elapsed time."""
    dom = _dom(render_html(make_report()))
    line = next(p for p in dom.find("polyline"))  # nps: 30 -> 36.5
    pairs = [tuple(map(float, p.split(","))) for p in line["points"].split()]
    assert pairs[-1][1] < pairs[0][1]
    assert pairs[0][0] < pairs[-1][0]
    xs = [x for x, _ in pairs]
    assert xs == sorted(xs)


def test_html_empty_history_still_renders_a_chart() -> None:
    dom = _dom(render_html(make_report(history_len=0)))
    assert all(p["data-points"] == "0" and p["points"] == "" for p in dom.find("polyline"))


def test_html_links_every_item_and_shows_status_in_words() -> None:
    data = make_report()
    page = render_html(data)
    dom = _dom(page)
    links = [a["href"] for a in dom.find("a", **{"class": "item-link"})]
    expected = [i.url for kr in _all_krs(data) for i in data.details[kr.id].items]
    assert links == expected
    unaligned = [a["href"] for a in dom.find("a", **{"class": "unaligned-link"})]
    assert sorted(unaligned) == sorted(i.url for i in data.unaligned)
    text = " ".join(dom.text)
    assert "▲ at risk" in text and "● on track" in text and "✔ done" in text
    assert "stale: last good sync 2026-11-20 08:00 UTC" in text
    assert "✖ failed" in text
    bars = dom.find("span", role="progressbar")
    assert len(bars) == 2 * len(data.objectives) + len(_all_krs(data))
    assert {"aria-valuenow", "aria-label"} <= set(bars[0])
    assert "6.4% of all work" in text or "(6.4% of all work)" in text
    assert "Planned write-backs (dry run)" in text


def test_html_escapes_everything_from_trackers() -> None:
    data = make_report(hostile=True)
    page = render_html(data)
    assert "<script>" not in page
    dom = _dom(page)
    assert not dom.find("script")
    text = "".join(dom.text)
    assert "<script>alert(1)</script>" in text  # shown as text, not run
    assert all(not a.get("href", "").startswith("javascript:") for _, a in dom.tags)


def test_html_refuses_non_http_links() -> None:
    data = make_report()
    evil = ReportItem("github", "acme/web#666", "Evil", "javascript:alert(1)", "todo", container="acme/web")
    data = replace(data, unaligned=(evil,))
    page = render_html(data)
    assert "javascript:alert" not in page
    assert "<code>acme/web#666</code>" in page


def test_renderers_cope_with_an_empty_report() -> None:
    data = ReportData(
        cycle_name="empty",
        cycle_start=datetime(2026, 1, 1, tzinfo=UTC),
        cycle_end=datetime(2026, 4, 1, tzinfo=UTC),
        expected=0.0,
        generated_at=datetime(2025, 12, 20, tzinfo=UTC),
        objectives=(),
        details={},
        unaligned=(),
        total_work_items=0,
        sources=(),
    )
    for fmt in ("table", "json", "markdown", "html"):
        assert render(data, fmt)
    assert json.loads(render_json(data))["cycle"]["end"] == "2026-03-31"
    assert "0 of 0 in-scope items" in render_table(data)


def test_objective_parent_cycle_is_shown_not_dropped() -> None:
    data = make_report()
    a, b, c = data.objectives
    data = replace(data, objectives=(replace(a, parent="reliability"), b, c))
    doc = json.loads(render_json(data))
    assert sorted(o["id"] for o in doc["objectives"]) == ["grow", "onboarding", "reliability"]
    assert "Increase user engagement" in render_html(data)


def test_status_none_renders_as_no_value() -> None:
    data = make_report()
    kr = replace(data.objectives[0].key_results[0], status=None)  # type: ignore[arg-type]
    grow = replace(data.objectives[0], key_results=(kr, *data.objectives[0].key_results[1:]))
    data = replace(data, objectives=(grow, *data.objectives[1:]))
    assert json.loads(render_json(data))["objectives"][0]["key_results"][0]["status"] is None
    assert "no value" in render_table(data, width=120)
    assert Status.AT_RISK.value == "at_risk"


def test_hostile_titles_never_break_html_structure() -> None:
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies

    @hypothesis.settings(max_examples=15, deadline=None)
    @hypothesis.given(title=st.text(min_size=1, max_size=40))
    def check(title: str) -> None:
        data = make_report(history_len=2)
        item = ReportItem("jira", "PLAT-1", title, "https://acme.atlassian.net/browse/PLAT-1", "todo", "PLAT")
        data = replace(data, unaligned=(item,))
        dom = _dom(render_html(data))
        assert not dom.find("script")
        assert len(dom.find("a", **{"class": "unaligned-link"})) == 1

    check()


# --------------------------------------------------------------------------- capped lists (issue 7)


def _capped(shown: int = 4, total: int = 120_431) -> ReportData:
    """The standard report as a big store hands it over: ``shown`` unaligned items listed out of
    ``total``, the per-container counts from SQL (one container has no listed item at all)."""
    from syncer.model import UnalignedGroup

    data = make_report()
    groups = (
        UnalignedGroup("jira", "PLAT", 70_000),
        UnalignedGroup("github", "acme/web", 40_000),
        UnalignedGroup("jira", "MOB", 10_000),
        UnalignedGroup("github", "acme/ops", total - 120_000),  # nothing of it is listed
    )
    return replace(
        data, unaligned=data.unaligned[:shown], unaligned_count=total, unaligned_groups=groups,
        total_work_items=240_862,
    )


def test_json_of_a_capped_list_keeps_the_contract_and_counts_all() -> None:
    data = _capped()
    doc = json.loads(render_json(data))
    assert len(doc["unaligned"]) == 4 and doc["unaligned"][0]["key"] == "PLAT-77"
    summary = doc["unaligned_summary"]
    assert (summary["count"], summary["shown"], summary["total_work_items"]) == (120_431, 4, 240_862)
    assert summary["share"] == 0.5
    assert summary["groups"][0] == {"source": "jira", "container": "PLAT", "count": 70_000}
    assert sum(g["count"] for g in summary["groups"]) == 120_431
    if SCHEMA.is_file():
        jsonschema = pytest.importorskip("jsonschema")
        schema = json.loads(SCHEMA.read_text())
        errors = list(jsonschema.Draft202012Validator(schema).iter_errors(doc))
        assert not errors, errors[0]


def test_table_says_how_many_of_all_unaligned_items_it_shows() -> None:
    text = render_table(_capped(), width=200)
    assert "Unaligned work: 120,431 of 240,862 in-scope items (50.0%) match no key result" in text
    assert "… and 120,427 more (showing 4 of 120,431)" in text
    assert "jira 80,000 (PLAT 70,000, MOB 10,000)" in text  # groups from the counts, not the 4 listed
    assert "github 40,431 (acme/web 40,000, acme/ops 431)" in text
    full = render_table(make_report(), width=200)
    assert "showing" not in full  # 9 unaligned, all shown


def test_markdown_and_html_show_every_group_and_say_showing_n_of_m() -> None:
    data = _capped()
    md = render_markdown(data)
    assert "120,431 of 240,862 in-scope items (50.0% of all work) match no key result." in md
    assert "| github | acme/ops | 431 | 0.2% |" in md  # a group with no listed item still counts
    assert "| jira | PLAT | 70,000 | 29.1% |" in md
    assert "(showing 4 of 120,431)" in md
    assert "### jira (80,000; showing 4 of 80,000)" in md
    assert "### github" not in md  # none of github's items is among the 4 listed
    page = render_html(data)
    dom = _dom(page)
    text = " ".join(dom.text)
    assert "showing 4 of 120,431" in text
    assert "PLAT: 70,000 unaligned, showing 3 of 70,000" in text
    assert "acme/ops" in text and "431" in text
    assert len(dom.find("a", **{"class": "unaligned-link"})) == 4
    assert "showing" not in render_markdown(make_report())


def test_item_lists_behind_a_key_result_say_and_n_more() -> None:
    data = make_report()
    revamp = data.details["onboarding-revamp"]
    capped = replace(data, details={**data.details, "onboarding-revamp": replace(revamp, item_count=2345)})
    md = render_markdown(capped)
    assert "<summary>onboarding-revamp: 2,345 items</summary>" in md
    assert "… and 2,334 more (showing 11 of 2,345)" in md
    text = " ".join(_dom(render_html(capped)).text)
    assert "Items behind this key result (2,345)" in text
    assert "… and 2,334 more (showing 11 of 2,345;" in text
    assert json.loads(render_json(capped))["objectives"][1]["key_results"][0]["work_items_total"] == 2345
    assert "more (showing" not in render_markdown(data)
