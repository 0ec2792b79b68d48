"""Field mapping from Jira-shaped payloads (our own fixtures, modelled on real Cloud and DC answers)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.base import ConnectorContext
from connectors.http import HttpPolicy
from connectors.jira import JiraConnector, JiraMeta, JiraSource, parse_jira_time
from syncer.model import ItemKind, State

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "jira"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def connector(url: str) -> JiraConnector:
    source = JiraSource(type="jira", url=url, auth={"pat": "p" * 12}, scope="project = X")
    context = ConnectorContext(policy=HttpPolicy(), stop=threading.Event(), now=lambda: datetime.now(UTC))
    return JiraConnector("jira", source, context)


def test_cloud_team_managed_story_and_epic() -> None:
    page = load("cloud_search_page.json")
    meta = JiraMeta(cloud=True, points_fields=("customfield_10016", "customfield_10028"), epic_link_field=None)
    jira = connector("https://acme.atlassian.net/")
    story, epic = (jira.to_item(raw, meta) for raw in page["issues"])

    assert story.id == "20417" and story.key == "APP-231"
    assert story.url == "https://acme.atlassian.net/browse/APP-231"
    assert story.kind is ItemKind.ISSUE and story.state is State.DONE and not story.excluded
    assert story.points == 5.0  # team-managed "Story point estimate"
    assert (story.parent_key, story.parent_id) == ("APP-200", "20400")
    assert story.container == "APP" and story.labels == ("onboarding", "mobile")
    # resolutiondate is null: the done date is the status-category change, in UTC
    assert story.done_at == datetime(2026, 11, 2, 9, 15, 30, tzinfo=UTC)
    assert story.updated_at == datetime(2026, 11, 2, 9, 15, 31, 120000, tzinfo=UTC)
    assert story.created_at == datetime(2026, 10, 20, 7, 2, 34, 255000, tzinfo=UTC)
    assert story.unknown_fields == ()

    assert epic.kind is ItemKind.EPIC and epic.state is State.IN_PROGRESS and epic.done_at is None
    assert epic.components == ("iOS",) and epic.fix_versions == ("2026.11",) and epic.points is None
    assert epic.status_name == "In Progress" and epic.issue_type == "Epic"


def test_data_center_epic_link_sub_task_and_wont_do() -> None:
    page = load("dc_search_page.json")
    fields = load("field_list_dc.json")
    jira = connector("https://jira.acme.internal")
    meta = JiraMeta(cloud=False, points_fields=jira._points_fields(fields), epic_link_field="customfield_10008")
    assert meta.points_fields == ("customfield_10002",)
    bug, sub = (jira.to_item(raw, meta) for raw in page["issues"])

    assert bug.excluded and bug.resolution == "Won't Do" and bug.state is State.DONE
    assert bug.done_at == datetime(2026, 11, 9, 21, 40, tzinfo=UTC)
    assert (bug.parent_key, bug.parent_id) == ("PAY-12", None)  # company-managed Epic Link: a key
    assert bug.points == 3.0 and bug.fix_versions == ("4.2",) and bug.components == ("Gateway",)

    assert sub.kind is ItemKind.SUBTASK and sub.state is State.TODO
    assert (sub.parent_key, sub.parent_id) == ("PAY-77", "48213")
    assert sub.points is None and sub.unknown_fields == ("customfield_10002",)  # "a lot" is no number


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-02T10:15:30.000+0100", datetime(2026, 11, 2, 9, 15, 30, tzinfo=UTC)),
        ("2026-11-02T10:15:30.123-0500", datetime(2026, 11, 2, 15, 15, 30, 123000, tzinfo=UTC)),
        ("2026-11-02T10:15:30Z", datetime(2026, 11, 2, 10, 15, 30, tzinfo=UTC)),
        ("2026-11-02T10:15:30", None),  # no zone: refuse rather than guess
        ("", None),
        (None, None),
    ],
)
def test_jira_times_become_aware_utc(text: str | None, expected: datetime | None) -> None:
    assert parse_jira_time(text) == expected


def test_a_scan_notes_the_same_versions_whether_or_not_it_skips_the_old_ones_unparsed() -> None:
    # note_items skips, without parsing, an update dated two days before the floor's UTC day:
    # for any offset and spelling it must remember exactly what parsing every one remembered.
    from datetime import timedelta, timezone

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from connectors import jira as jira_module

    start = datetime(2026, 11, 20, 0, 30, tzinfo=UTC)
    offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))

    def spelled(moment: datetime, style: int) -> str:
        if style == 0:  # Jira's own: 2026-11-02T10:15:30.000+0100
            return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}" + moment.strftime("%z")
        if style == 1:
            return moment.isoformat()
        return " " + moment.isoformat() if style == 2 else moment.strftime("%Y%m%dT%H%M%S%z")

    updates = st.tuples(st.integers(-5 * 24 * 60, 60), offsets, st.integers(0, 3)).map(
        lambda t: spelled((start + timedelta(minutes=t[0])).astimezone(t[1]), t[2])
    )

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.one_of(updates, st.none(), st.just("garbage"), st.just("")), max_size=30), st.booleans())
    def check(texts: list[str | None], members_first: bool) -> None:
        issues = [{"id": str(n), "fields": {"updated": text}} for n, text in enumerate(texts)]
        scan = jira_module._Scan(overlap_ms=10 * 60_000)
        scan.start_ms, scan.members_first = jira_module._ms(start), members_first
        scan.note_items(issues)
        floor = scan.start_ms - jira_module._DATE_RESOLUTION_MS - scan.overlap_ms
        ceiling = scan.start_ms - jira_module._DATE_RESOLUTION_MS if members_first else None
        expected = {}
        for issue in issues:
            when = parse_jira_time(issue["fields"]["updated"])
            if when is not None:
                ms = jira_module._ms(when)
                if ms >= floor and (ceiling is None or ms < ceiling):
                    expected[issue["id"]] = ms
        assert scan.updates == expected

    check()
    # Without the server's clock nothing is skipped: the newest update is the cursor then.
    scan = jira_module._Scan()
    scan.note_items([{"id": "1", "fields": {"updated": "2020-01-01T00:00:00.000+0000"}}])
    assert scan.max_updated_ms == jira_module._ms(datetime(2020, 1, 1, tzinfo=UTC))
    assert scan.updates == {"1": scan.max_updated_ms}


def test_id_order_is_numeric_for_issue_ids_and_total_for_any_text() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from connectors.jira import _id_order

    @settings(max_examples=300, deadline=None)
    @given(st.sets(st.one_of(st.integers(0, 10**12).map(str), st.text(max_size=6))))
    def check(ids: set[str]) -> None:
        ordered = _id_order(ids)
        assert ordered == sorted(ids, key=lambda x: (len(x), x))
        digits = [i for i in ordered if i.isdigit() and i.isascii() and (i == "0" or not i.startswith("0"))]
        assert [int(i) for i in digits] == sorted(int(i) for i in digits)

    check()


def test_every_field_of_a_mapped_issue_lands_in_its_own_place() -> None:
    # to_item builds the WorkItem by position (keywords cost ~0.8 us an item): a field added to
    # or moved in WorkItem must not shift the values into their neighbours unnoticed.
    raw = {
        "id": "9001", "key": "ABC-7",
        "fields": {
            "summary": "the title", "issuetype": {"name": "Story", "subtask": False, "hierarchyLevel": 0},
            "status": {"name": "Shipped", "statusCategory": {"key": "done"}},
            "resolution": {"name": "Fixed"}, "updated": "2026-11-02T10:15:30.000+0000",
            "created": "2026-10-01T08:00:00.000+0000", "resolutiondate": "2026-11-01T12:00:00.000+0000",
            "customfield_10016": 3, "labels": ["lab"], "components": [{"name": "comp"}],
            "fixVersions": [{"name": "v9"}], "parent": {"id": "8000", "key": "ABC-1"}, "project": {"key": "ABC"},
        },
    }
    meta = JiraMeta(cloud=True, points_fields=("customfield_10016",), epic_link_field=None)
    item = connector("https://acme.atlassian.net").to_item(raw, meta, in_scope=False)
    assert item._asdict() == {
        "source": "jira", "id": "9001", "key": "ABC-7", "title": "the title",
        "url": "https://acme.atlassian.net/browse/ABC-7", "kind": ItemKind.ISSUE, "state": State.DONE,
        "updated_at": datetime(2026, 11, 2, 10, 15, 30, tzinfo=UTC), "container": "ABC", "issue_type": "Story",
        "created_at": datetime(2026, 10, 1, 8, tzinfo=UTC), "done_at": datetime(2026, 11, 1, 12, tzinfo=UTC),
        "excluded": False, "resolution": "Fixed", "points": 3.0, "labels": ("lab",), "components": ("comp",),
        "milestone": None, "fix_versions": ("v9",), "parent_key": "ABC-1", "parent_id": "8000",
        "status_name": "Shipped", "in_scope": False, "unknown_fields": (),
    }
    raw["fields"]["resolution"] = {"name": "won't do"}  # the config's "Won't Do", compared case-insensitively
    assert connector("https://acme.atlassian.net").to_item(raw, meta).excluded
