"""The Jira connector against canned HTTP answers (``responses``): paging, flavour, cursor, faults."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
import responses
from responses import matchers, registries

from connectors.base import ConnectorContext
from connectors.http import HttpPolicy
from connectors.jira import JiraConnector, JiraRule, JiraSource
from syncer.errors import AuthError, CompatibilityError, SourceError, TransientError, VisibilityLostError
from syncer.model import Page, PlannedWrite, State

CLOUD = "https://acme.atlassian.net"
DC = "https://jira.acme.internal"
TOKEN = "cloud-api-token-1234"
PAT = "dc-personal-token-5678"

FIELDS = [
    {"id": "summary", "name": "Summary", "custom": False, "schema": {"type": "string", "system": "summary"}},
    {"id": "customfield_10016", "name": "Story Points", "custom": True,
     "schema": {"type": "number", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:float"}},
    {"id": "customfield_10028", "name": "Story point estimate", "custom": True,
     "schema": {"type": "number", "custom": "com.pyxis.greenhopper.jira:jsw-story-points"}},
]


def issue(n: int, updated: str = "2026-11-02T10:15:30.000+0100", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "summary": f"Issue {n}",
        "status": {"name": "In Progress", "statusCategory": {"id": 4, "key": "indeterminate", "name": "In Progress"}},
        "issuetype": {"name": "Story", "subtask": False, "hierarchyLevel": 0},
        "project": {"id": "10000", "key": "PLAT"},
        "labels": [],
        "updated": updated,
        "created": "2026-10-01T09:00:00.000+0200",
    }
    base.update(fields)
    return {"id": str(10000 + n), "key": f"PLAT-{n}", "fields": base}


def make(url: str = CLOUD, *, pat: bool = False, state: dict[str, Any] | None = None,
         sleeps: list[float] | None = None, **config: Any) -> JiraConnector:
    auth = {"pat": PAT} if pat else {"email": "bot@acme.com", "token": TOKEN}
    source = JiraSource(type="jira", url=url, auth=auth, scope=config.pop("scope", "project in (PLAT, MOB)"), **config)
    context = ConnectorContext(
        policy=HttpPolicy(attempts=4, jitter=0.0),
        stop=threading.Event(),
        now=lambda: datetime.now(UTC),
        sleep=(sleeps.append if sleeps is not None else (lambda s: None)),
        state=state if state is not None else {},
    )
    return JiraConnector("jira", source, context)


def meta(url: str = CLOUD, deployment: str | None = "Cloud", fields: list[dict[str, Any]] | None = None) -> None:
    info: dict[str, Any] = {"baseUrl": url, "serverTime": "2026-11-23T10:00:00.000+0000", "version": "1001.0.0"}
    if deployment:
        info["deploymentType"] = deployment
    responses.add("GET", f"{url}/rest/api/2/serverInfo", json=info)
    api = "3" if deployment == "Cloud" else "2"
    responses.add("GET", f"{url}/rest/api/{api}/field", json=FIELDS if fields is None else fields)


def bodies(path: str) -> list[dict[str, Any]]:
    return [json.loads(c.request.body) for c in responses.calls if c.request.url.split("?")[0].endswith(path)]


def collect(pages: list[Page]) -> list[str]:
    return [item.key for page in pages for item in page.items]


CURSOR = {"updated_ms": 1_795_000_000_000}


@responses.activate
def test_token_paging_keeps_going_after_a_short_page_and_stops_only_without_a_token() -> None:
    meta()
    search = f"{CLOUD}/rest/api/3/search/jql"
    responses.add("POST", search, json={"issues": [issue(1), issue(2)], "nextPageToken": "t1", "isLast": False})
    responses.add("POST", search, json={"issues": [issue(3)], "nextPageToken": "t2"})  # short page, token: go on
    responses.add("POST", search, json={"issues": [issue(4)]})  # no token, no isLast: the end
    connector = make()
    pages = list(connector.fetch(CURSOR, full=False, census=False, rules=[]))
    assert collect(pages) == ["PLAT-1", "PLAT-2", "PLAT-3", "PLAT-4"]
    sent = bodies("/search/jql")
    assert [b.get("nextPageToken") for b in sent] == [None, "t1", "t2"]
    assert connector.requests == 2 + 3  # serverInfo + field, then three pages


@responses.activate
def test_offset_paging_on_data_center_reads_what_came_back_not_what_was_asked() -> None:
    meta(DC, deployment="Server")
    search = f"{DC}/rest/api/2/search"
    for start in (0, 2, 4):
        chunk = [issue(n) for n in range(start + 1, min(start + 3, 6))]
        responses.add("POST", search, json={"startAt": start, "maxResults": 2, "total": 5, "issues": chunk})
    connector = make(DC, pat=True)
    pages = list(connector.fetch(CURSOR, full=False, census=False, rules=[]))
    assert collect(pages) == [f"PLAT-{n}" for n in range(1, 6)]
    assert [b["startAt"] for b in bodies("/rest/api/2/search")] == [0, 2, 4]
    assert responses.calls[0].request.headers["Authorization"] == f"Bearer {PAT}"


@responses.activate
def test_data_center_restarts_past_the_offset_window_from_the_last_sort_value() -> None:
    meta(DC, deployment="Server")
    search = f"{DC}/rest/api/2/search"
    stamps = ["2026-11-02T10:00:00.000+0000", "2026-11-02T11:00:00.000+0000", "2026-11-02T12:00:00.000+0000"]
    page1 = [issue(1, stamps[0]), issue(2, stamps[1])]
    responses.add("POST", search, json={"startAt": 0, "maxResults": 2, "total": 3, "issues": page1})
    page2 = [issue(2, stamps[1]), issue(3, stamps[2])]
    responses.add("POST", search, json={"startAt": 0, "maxResults": 2, "total": 2, "issues": page2})
    connector = make(DC, pat=True)
    connector.dc_window = 2
    pages = list(connector.fetch(CURSOR, full=False, census=False, rules=[]))
    assert collect(pages) == ["PLAT-1", "PLAT-2", "PLAT-3"]  # PLAT-2 read twice, yielded once
    second = bodies("/rest/api/2/search")[1]
    floor = int(datetime(2026, 11, 2, 11, tzinfo=UTC).timestamp() * 1000)
    assert second["startAt"] == 0 and f"AND updated >= {floor} ORDER BY" in second["jql"]


@pytest.mark.parametrize(
    ("deployment", "probe", "endpoint"),
    [
        ("Cloud", None, "/rest/api/3/search/jql"),
        ("Server", None, "/rest/api/2/search"),
        ("DataCenter", None, "/rest/api/2/search"),
        (None, 200, "/rest/api/3/search/jql"),
        (None, 404, "/rest/api/2/search"),
    ],
)
@responses.activate
def test_flavour_comes_from_server_info_or_a_probe_never_the_host(
    deployment: str | None, probe: int | None, endpoint: str
) -> None:
    url = "https://jira.example.org"  # neither host name says what it is
    info: dict[str, Any] = {"baseUrl": url, "version": "x"}
    if deployment:
        info["deploymentType"] = deployment
    responses.add("GET", f"{url}/rest/api/2/serverInfo", json=info)
    if probe is not None:
        responses.add("GET", f"{url}/rest/api/3/search/jql", status=probe, json={"issues": []})
    cloud = endpoint.endswith("/jql")
    responses.add("GET", f"{url}/rest/api/{'3' if cloud else '2'}/field", json=FIELDS)
    responses.add("POST", f"{url}{endpoint}", json={"issues": [], "total": 0, "startAt": 0})
    state: dict[str, Any] = {}
    list(make(url, state=state).fetch(CURSOR, full=False, census=False, rules=[]))
    assert responses.calls[-1].request.url == f"{url}{endpoint}"
    assert state["jira_meta"]["cloud"] is cloud


@responses.activate
def test_metadata_is_cached_in_state_so_an_idle_pass_is_one_request() -> None:
    meta()
    responses.add("POST", f"{CLOUD}/rest/api/3/search/jql", json={"issues": [], "isLast": True})
    state: dict[str, Any] = {}
    list(make(state=state).fetch(CURSOR, full=False, census=False, rules=[]))
    again = make(state=state)
    pages = list(again.fetch(CURSOR, full=False, census=False, rules=[JiraRule(source="jira", jql="labels = x")]))
    assert again.requests == 1 and again.quota_requests == 1
    assert pages[-1].cursor is not None and pages[-1].cursor["updated_ms"] == CURSOR["updated_ms"]


@responses.activate
def test_cursor_is_an_epoch_ms_literal_minus_overlap_and_moves_to_the_server_clock_at_scan_start() -> None:
    meta()
    responses.add(
        "POST",
        f"{CLOUD}/rest/api/3/search/jql",
        json={"issues": [issue(1, "2026-11-23T06:00:00.000-0500")]},
        headers={"Date": "Mon, 23 Nov 2026 12:00:00 GMT"},
    )
    pages = list(make(overlap="10m").fetch(CURSOR, full=False, census=False, rules=[]))
    jql = bodies("/search/jql")[0]["jql"]
    assert f"updated >= {CURSOR['updated_ms'] - 600_000}" in jql
    assert "'" not in jql and "ORDER BY updated ASC" in jql
    # The server's Date (less its one-second resolution), not the newest update (11:00): the
    # next window starts at 11:49:59, so the 11:00 issue is not re-read (research §3 fault 11).
    start = int(datetime(2026, 11, 23, 12, 0, tzinfo=UTC).timestamp() * 1000) - 1000
    assert pages[-1].cursor == {"updated_ms": start, "recent": {}}


@responses.activate
def test_cursor_never_passes_the_server_clock_at_scan_start() -> None:
    meta()
    responses.add(
        "POST",
        f"{CLOUD}/rest/api/3/search/jql",
        json={"issues": [issue(1, "2026-11-23T13:00:00.000+0000")]},  # updated while we paged
        headers={"Date": "Mon, 23 Nov 2026 12:00:00 GMT"},
    )
    pages = list(make().fetch(CURSOR, full=False, census=False, rules=[]))
    assert pages[-1].cursor is not None
    assert pages[-1].cursor["updated_ms"] == int(datetime(2026, 11, 23, 12, tzinfo=UTC).timestamp() * 1000) - 1000


@responses.activate
def test_after_a_burst_the_pass_after_next_reads_one_empty_page() -> None:
    """The cursor follows the server clock at each scan's start, so a burst leaves the overlap
    window once a pass has started more than ``overlap`` after it (with ``max(updated)`` it stayed
    inside every later window and each idle pass re-read it page by page)."""
    meta()
    search = f"{CLOUD}/rest/api/3/search/jql"
    burst = [issue(n, "2026-11-23T11:59:00.000+0000") for n in range(1, 4)]
    responses.add("POST", search, json={"issues": burst}, headers={"Date": "Mon, 23 Nov 2026 12:00:00 GMT"})
    responses.add("POST", search, json={"issues": burst}, headers={"Date": "Mon, 23 Nov 2026 12:15:00 GMT"})
    responses.add("POST", search, json={"issues": []}, headers={"Date": "Mon, 23 Nov 2026 12:30:00 GMT"})
    state: dict[str, Any] = {}
    cursor: Any = CURSOR
    got: list[list[str]] = []
    for _ in range(3):
        connector = make(state=state, overlap="10m")
        pages = list(connector.fetch(cursor, full=False, census=False, rules=[]))
        cursor = pages[-1].cursor
        got.append(collect(pages))
    assert got == [["PLAT-1", "PLAT-2", "PLAT-3"], [], []]  # the re-read burst is no change

    def ms(h: int, m: int, s: int) -> int:
        return int(datetime(2026, 11, 23, h, m, s, tzinfo=UTC).timestamp() * 1000)

    windows = [b["jql"].split("updated >= ")[1].split(" ")[0] for b in bodies("/search/jql")]
    assert windows == [str(CURSOR["updated_ms"] - 600_000), str(ms(11, 49, 59)), str(ms(12, 4, 59))]
    assert connector.requests == 1  # the third pass: one request, past the burst
    assert cursor == {"updated_ms": ms(12, 29, 59), "recent": {}}


@responses.activate
def test_an_item_re_read_through_the_overlap_is_not_a_change() -> None:
    meta()
    stamp = "2026-11-23T06:00:00.000-0500"
    ms = int(datetime(2026, 11, 23, 11, tzinfo=UTC).timestamp() * 1000)
    responses.add("POST", f"{CLOUD}/rest/api/3/search/jql", json={"issues": [issue(1, stamp), issue(2, stamp)]})
    cursor = {"updated_ms": ms, "recent": {"10001": ms}}
    pages = list(make().fetch(cursor, full=False, census=False, rules=[JiraRule(source="jira", jql="labels = x")]))
    assert collect(pages) == ["PLAT-2"]
    assert len(responses.calls) == 3 + 1  # meta x2, search, members of the one changed id
    assert "id in (10002)" in bodies("/search/jql")[-1]["jql"]


@responses.activate
def test_401_is_an_auth_error_without_the_secret() -> None:
    responses.add("GET", f"{CLOUD}/rest/api/2/serverInfo", status=401,
                  json={"errorMessages": [f"token {TOKEN} is not valid"], "errors": {}})
    with pytest.raises(AuthError) as caught:
        list(make().fetch(CURSOR, full=False, census=False, rules=[]))
    assert TOKEN not in str(caught.value)
    assert "401" in str(caught.value)


@responses.activate
def test_410_on_the_old_search_is_a_compatibility_error_not_retried() -> None:
    meta(CLOUD, deployment="Server")  # a proxy hiding the real flavour
    responses.add("POST", f"{CLOUD}/rest/api/2/search", status=410, json={"errorMessages": [
        "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API."], "errors": {}})
    with pytest.raises(CompatibilityError, match="search/jql"):
        list(make().fetch(CURSOR, full=False, census=False, rules=[]))
    assert len(bodies("/rest/api/2/search")) == 1


@pytest.mark.parametrize(
    ("headers", "floor"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": "0"}, 0.5),
        ({"X-RateLimit-Reset": "2099-01-01T00:00:00Z"}, 3600.0),
        ({}, 60.0),
    ],
)
@responses.activate(registry=registries.OrderedRegistry)
def test_429_waits_at_least_what_jira_asks_then_succeeds(headers: dict[str, str], floor: float) -> None:
    meta()
    search = f"{CLOUD}/rest/api/3/search/jql"
    responses.add("POST", search, status=429, headers=headers, json={"errorMessages": ["Rate limit exceeded."]})
    responses.add("POST", search, json={"issues": [issue(1)]})
    sleeps: list[float] = []
    connector = make(sleeps=sleeps)
    pages = list(connector.fetch(CURSOR, full=False, census=False, rules=[]))
    assert collect(pages) == ["PLAT-1"]
    assert len(sleeps) == 1 and sleeps[0] >= floor
    assert connector.requests == 4


@responses.activate(registry=registries.OrderedRegistry)
def test_truncated_json_is_retried_and_never_half_read() -> None:
    meta()
    search = f"{CLOUD}/rest/api/3/search/jql"
    responses.add("POST", search, body='{"issues":[{"id":"10001","key":"PLAT-1","fie', status=200)
    responses.add("POST", search, json={"issues": [issue(1)]})
    connector = make(sleeps=[])
    assert collect(list(connector.fetch(CURSOR, full=False, census=False, rules=[]))) == ["PLAT-1"]
    assert connector.requests == 4


@responses.activate
def test_truncated_json_every_time_is_a_transient_error_and_no_cursor() -> None:
    meta()
    responses.add("POST", f"{CLOUD}/rest/api/3/search/jql", body='{"issues":[', status=200)
    got: list[Page] = []
    with pytest.raises(TransientError):
        for page in make(sleeps=[]).fetch(CURSOR, full=False, census=False, rules=[]):
            got.append(page)
    assert all(page.cursor is None for page in got)


@responses.activate
def test_schema_drift_becomes_unknown_not_a_crash() -> None:
    meta()
    drifted = [
        issue(1, parent=None, status={"name": "Parked", "statusCategory": {"key": "paused", "id": 9}}),
        {"id": "10002", "key": "PLAT-2", "fields": {"summary": "bare"}},
        issue(3, status=None, issuetype=None, customfield_10016="lots", labels=None, updated="yesterday"),
    ]
    responses.add("POST", f"{CLOUD}/rest/api/3/search/jql", json={"issues": drifted})
    items = [i for p in make().fetch(CURSOR, full=False, census=False, rules=[]) for i in p.items]
    assert [i.state for i in items] == [State.UNKNOWN] * 3
    assert items[0].unknown_fields == ("statusCategory=paused",) and items[0].parent_key is None
    assert {"statusCategory", "issuetype", "updated", "project"} <= set(items[1].unknown_fields)
    assert items[1].container == "PLAT"
    assert items[2].points is None and "customfield_10016" in items[2].unknown_fields


@responses.activate
def test_full_cloud_pass_is_id_pages_plus_bulkfetch_and_no_request_per_item() -> None:
    meta()
    ids = [{"id": str(10000 + n)} for n in range(1, 2501)]
    search = f"{CLOUD}/rest/api/3/search/jql"
    responses.add("POST", search, json={"issues": ids, "isLast": True})
    bulk = f"{CLOUD}/rest/api/3/issue/bulkfetch"
    for start in (0, 1000, 2000):
        chunk = [issue(n) for n in range(start + 1, min(start + 1001, 2501))]
        responses.add("POST", bulk, json={"issues": chunk, "issueErrors": []})
    connector = make()
    pages = list(connector.fetch(None, full=True, census=False, rules=[]))
    assert len(collect(pages)) == 2500
    assert pages[-1].census is not None and len(pages[-1].census) == 2500
    # 2 metadata + ⌈2500/5000⌉ id page + ⌈2500/1000⌉ bulkfetch calls
    assert connector.requests == 2 + 1 + 3
    sent = bodies("/issue/bulkfetch")
    assert [len(b["issueIdsOrKeys"]) for b in sent] == [1000, 1000, 500]
    assert "*all" not in sent[0]["fields"] and "customfield_10028" in sent[0]["fields"]
    assert bodies("/search/jql")[0] == {
        "jql": "(project in (PLAT, MOB)) ORDER BY created ASC", "fields": ["id"], "maxResults": 5000}


@responses.activate
def test_a_full_cloud_pass_fetches_in_the_stores_key_order_whatever_order_the_search_lists() -> None:
    meta()
    # Creation order is not id order (an import, a migration): ids of different lengths, and an
    # id outside the scope (a rule's selection) that falls between the scope's.
    scope = ["10010", "9", "10002", "100000", "10002"]
    outside = ["10005"]

    def search(request: Any) -> tuple[int, dict[str, str], str]:
        found = outside if "NOT" in json.loads(request.body)["jql"] else scope
        return 200, {}, json.dumps({"issues": [{"id": i} for i in found], "isLast": True})

    responses.add_callback("POST", f"{CLOUD}/rest/api/3/search/jql", callback=search)
    responses.add("POST", f"{CLOUD}/rest/api/3/issue/bulkfetch", json={"issues": [], "issueErrors": []})
    rule = JiraRule(source="jira", labels=("perf",))
    pages = list(make().fetch(None, full=True, census=False, rules=[rule]))
    # The store keys items by the id as text, so that is the order its B-trees grow in.
    assert bodies("/issue/bulkfetch")[0]["issueIdsOrKeys"] == ["100000", "10002", "10005", "10010", "9"]
    assert pages[-1].census == frozenset({"9", "10002", "10010", "100000"})


@responses.activate
def test_a_full_pass_evaluates_jql_rules_before_the_items_and_only_once() -> None:
    meta()
    members = {"(labels = perf) ORDER BY created ASC": [10002, 10003]}

    def search(request: Any) -> tuple[int, dict[str, str], str]:
        jql = json.loads(request.body)["jql"]
        found = members.get(jql, [10001, 10002, 10003] if "NOT" not in jql else [])
        return 200, {}, json.dumps({"issues": [{"id": str(n)} for n in found], "isLast": True})

    responses.add_callback("POST", f"{CLOUD}/rest/api/3/search/jql", callback=search)
    responses.add("POST", f"{CLOUD}/rest/api/3/issue/bulkfetch",
                  json={"issues": [issue(n) for n in (1, 2, 3)], "issueErrors": []})
    rule = JiraRule(source="jira", jql="labels = perf")
    pages = list(make().fetch(None, full=True, census=False, rules=[rule]))
    # The sync matches each item once against these sets: they come before any item.
    assert pages[0].items == () and pages[0].members == {rule.fingerprint(): frozenset({"10002", "10003"})}
    assert pages[0].members_scope is None
    assert collect(pages[1:]) == ["PLAT-1", "PLAT-2", "PLAT-3"]
    assert all(not page.members for page in pages[1:])
    assert pages[-1].census == frozenset({"10001", "10002", "10003"})
    asked = [b["jql"] for b in bodies("/search/jql")]
    rule_query = "(labels = perf) ORDER BY created ASC"
    assert asked.count(rule_query) == 1 and asked[0] == rule_query


@responses.activate
def test_bulkfetch_falls_back_to_100_when_the_site_refuses_1000() -> None:
    meta()
    responses.add("POST", f"{CLOUD}/rest/api/3/search/jql",
                  json={"issues": [{"id": str(10000 + n)} for n in range(1, 151)]})
    bulk = f"{CLOUD}/rest/api/3/issue/bulkfetch"
    responses.add("POST", bulk, status=400, json={"errorMessages": ["too many"], "errors": {}})
    responses.add("POST", bulk, json={"issues": [issue(n) for n in range(1, 101)]})
    responses.add("POST", bulk, json={"issues": [issue(n) for n in range(101, 151)]})
    state: dict[str, Any] = {}
    pages = list(make(state=state).fetch(None, full=True, census=False, rules=[]))
    assert len(collect(pages)) == 150 and state["jira_bulk"] == 100


@responses.activate
def test_a_vanished_scope_project_is_visibility_lost() -> None:
    meta()
    responses.add("POST", f"{CLOUD}/rest/api/3/search/jql", status=400, json={
        "errorMessages": ["Error in the JQL Query: The value 'MOB' does not exist for the field 'project'."],
        "errors": {}})
    with pytest.raises(VisibilityLostError, match="MOB"):
        list(make().fetch(None, full=True, census=False, rules=[]))


@responses.activate
def test_rules_outside_the_scope_ride_on_the_one_incremental_query() -> None:
    meta()
    responses.add("POST", f"{CLOUD}/rest/api/3/search/jql", json={"issues": [
        issue(1), {**issue(2), "key": "OPS-2", "fields": {**issue(2)["fields"], "project": {"key": "OPS"}}}]})
    rules = [JiraRule(source="jira", epic="PLAT-1"), JiraRule(source="jira", labels=("a", "b")),
             JiraRule(source="jira", project="MOB"), JiraRule(source="other", jql="x = y")]
    items = [i for p in make().fetch(CURSOR, full=False, census=False, rules=rules) for i in p.items]
    jql = bodies("/search/jql")[0]["jql"]
    assert jql.startswith('((project in (PLAT, MOB)) OR (parent = "PLAT-1") OR (labels = "a" AND labels = "b"))')
    assert "MOB\"" not in jql and "x = y" not in jql
    assert [(i.key, i.in_scope) for i in items] == [("PLAT-1", True), ("OPS-2", False)]


@responses.activate
def test_story_points_auto_reads_every_candidate_and_explicit_ids_override() -> None:
    meta()
    responses.add("POST", f"{CLOUD}/rest/api/3/search/jql", json={"issues": [
        issue(1, customfield_10016=3), issue(2, customfield_10028=5.5), issue(3)]})
    items = [i for p in make().fetch(CURSOR, full=False, census=False, rules=[]) for i in p.items]
    assert [i.points for i in items] == [3.0, 5.5, None]


@responses.activate
def test_a_missing_story_points_field_names_the_instance() -> None:
    meta(fields=FIELDS[:1])
    connector = make(story_points_field="customfield_99999")
    with pytest.raises(SourceError, match=r"customfield_99999 does not exist on https://acme\.atlassian\.net"):
        connector.check()
    responses.calls.reset()
    needy = make(state={})
    needy.needs_points = True
    with pytest.raises(SourceError, match=r"no story points field found on https://acme\.atlassian\.net"):
        needy.check()


@responses.activate
def test_publish_writes_a_number_a_comment_and_labels() -> None:
    meta()
    put = f"{CLOUD}/rest/api/3/issue/OKR-12"
    responses.add("PUT", put, status=204, match=[matchers.json_params_matcher({"fields": {"customfield_10100": 47.0}})])
    responses.add("POST", f"{put}/comment", status=201, json={"id": "1"})
    responses.add("PUT", put, status=204, match=[matchers.json_params_matcher({"update": {"labels": [{"add": "x"}]}})])
    responses.add("PUT", put, status=204,
                  match=[matchers.json_params_matcher({"update": {"labels": [{"remove": "x"}]}})])
    connector = make()
    connector.publish(PlannedWrite(source="jira", target="OKR-12:customfield_10100", kind="field", value="47"))
    connector.publish(PlannedWrite(source="jira", target="OKR-12:comment", kind="comment", value="NPS 47%"))
    connector.publish(PlannedWrite(source="jira", target="OKR-12", kind="add_label", value="x"))
    connector.publish(PlannedWrite(source="jira", target="OKR-12", kind="remove_label", value="x"))
    comment = bodies("/issue/OKR-12/comment")[0]["body"]
    assert comment["type"] == "doc" and comment["content"][0]["content"][0]["text"] == "NPS 47%"
    assert connector.http.writes == 4


@responses.activate
def test_data_center_comments_are_plain_strings_on_v2() -> None:
    meta(DC, deployment="Server")
    responses.add("POST", f"{DC}/rest/api/2/issue/OKR-12/comment", status=201, json={"id": "1"})
    make(DC, pat=True).publish(PlannedWrite(source="jira", target="OKR-12:comment", kind="comment", value="47%"))
    assert bodies("/issue/OKR-12/comment") == [{"body": "47%"}]
