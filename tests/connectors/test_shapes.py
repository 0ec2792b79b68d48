"""Body shapes (connectors/shapes.py): decoding only the members a connector reads never changes
what its mapping sees.

Two guarantees are checked. Every member path the mappings read, on payloads of every kind the
sandboxes and our fixtures produce, is declared in the connector's shape (recorded by reading
through dicts that note each lookup). And for any issue object, drift included (wrong types,
unknown members), a shaped decode with the HTTP layer's fallback maps to exactly the item a whole
decode maps to.
"""

from __future__ import annotations

import json
import threading
import types
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Union, get_args, get_origin, is_typeddict

import msgspec
import pytest
import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors import github, jira
from connectors.base import ConnectorContext
from connectors.http import HttpClient, HttpPolicy
from connectors.jira import JiraConnector, JiraMeta, JiraSource
from connectors.shapes import BodyShape, Named, list_of, members, object_with_list
from syncer.sandbox.github import GitHubApp
from syncer.sandbox.jira import JiraApp

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BASE = "http://127.0.0.1:9"


# -- recording what a mapping reads ----------------------------------------------------------------


class Recording(dict[str, Any]):
    """A decoded JSON object that notes the path of every member looked up in it."""

    def __init__(self, value: dict[str, Any], path: str, seen: set[str]) -> None:
        super().__init__({k: _record(v, f"{path}.{k}", seen) for k, v in value.items()})
        self.path, self.seen = path, seen

    def get(self, key: Any, default: Any = None) -> Any:
        self.seen.add(f"{self.path}.{key}")
        return super().get(key, default)

    def __getitem__(self, key: Any) -> Any:
        self.seen.add(f"{self.path}.{key}")
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.seen.add(f"{self.path}.{key}")
        return super().__contains__(key)


def _record(value: Any, path: str, seen: set[str]) -> Any:
    if isinstance(value, dict):
        return Recording(value, path, seen)
    if isinstance(value, list):
        return [_record(v, f"{path}[]", seen) for v in value]
    return value


def declared(shape: Any, path: str = "$") -> set[str]:
    """Every member path a shape type keeps (``Any`` keeps its whole subtree: its path only)."""
    found: set[str] = set()
    if is_typeddict(shape):
        for name, inner in shape.__annotations__.items():
            found.add(f"{path}.{name}")
            found |= declared(inner, f"{path}.{name}")
    elif get_origin(shape) in (Union, types.UnionType):
        for inner in get_args(shape):
            found |= declared(inner, path)
    elif get_origin(shape) is list:
        found |= declared(get_args(shape)[0], f"{path}[]")
    return found


def read_paths(raw: dict[str, Any], use: Callable[[dict[str, Any]], object]) -> set[str]:
    seen: set[str] = set()
    use(Recording(raw, "$", seen))
    return seen


def whole_then_shaped(shape: BodyShape, body: bytes) -> Any:
    """What ``HttpClient`` hands a connector: the shaped decode, or the whole one when it does not fit."""
    try:
        return shape(body)
    except ValueError:
        return msgspec.json.decode(body)


# -- GitHub ----------------------------------------------------------------------------------------


def github_payloads() -> list[dict[str, Any]]:
    app = GitHubApp(scenario="demo")
    rendered = [app._render(BASE, repo, issue) for repo in app.repos.values() for issue in repo.issues.values()]
    fixture = json.loads((FIXTURES / "github" / "issues_mixed.json").read_text(encoding="utf-8"))
    return rendered + [raw for raw in fixture if isinstance(raw, dict)]


def map_github(raw: dict[str, Any]) -> object:
    github._high_water(None, [raw], None)  # what a first page's scan reads of its newest issue
    github._parse_time(raw.get("updated_at"))  # the scan's own age test before mapping
    return github.to_work_item(raw, "github", repo="acme/web")


def test_github_mapping_reads_only_declared_members_of_every_kind_of_issue() -> None:
    payloads = github_payloads()
    kinds = {(("pull_request" in raw), raw.get("state"), bool(raw.get("milestone")), bool(raw.get("labels")))
             for raw in payloads}
    assert len(payloads) >= 40 and len(kinds) >= 6  # issues and PRs, open and closed, with and without both
    allowed = declared(github.ISSUE_MEMBERS)
    for raw in payloads:
        assert read_paths(raw, map_github) <= allowed, raw.get("html_url")


def test_github_shaped_pages_map_to_the_same_items_and_hold_far_less() -> None:
    payloads = github_payloads()
    body = json.dumps(payloads).encode()
    shaped = github._ISSUE_LIST(body)
    assert [map_github(r) for r in shaped] == [map_github(r) for r in payloads]
    assert len(msgspec.json.encode(shaped)) < len(body) / 3
    merged = next(r for r in shaped if isinstance(r.get("pull_request"), dict) and r["pull_request"])
    assert set(merged["pull_request"]) == {"merged_at"}  # nested objects keep their declared members


# -- Jira ------------------------------------------------------------------------------------------


def jira_connector() -> JiraConnector:
    source = JiraSource(type="jira", url=BASE, auth={"pat": "p" * 12}, scope="project = X")
    context = ConnectorContext(policy=HttpPolicy(), stop=threading.Event(), now=lambda: datetime.now(UTC))
    return JiraConnector("jira", source, context)


def jira_meta(connector: JiraConnector, app: JiraApp) -> JiraMeta:
    fields = app.field_list()
    epic = next((str(f["id"]) for f in fields if str(f.get("name", "")).casefold() == "epic link"), None)
    return JiraMeta(cloud=app.flavour == "cloud", points_fields=connector._points_fields(fields), epic_link_field=epic)


def jira_payloads() -> list[tuple[JiraMeta, tuple[str, ...], dict[str, Any]]]:
    connector = jira_connector()
    out: list[tuple[JiraMeta, tuple[str, ...], dict[str, Any]]] = []
    for flavour in ("cloud", "datacenter"):
        app = JiraApp(flavour=flavour)
        meta = jira_meta(connector, app)
        wanted = connector._fields(meta)
        api = "3" if flavour == "cloud" else "2"
        out += [(meta, wanted, app.render(issue, wanted, BASE, api)) for issue in app.issues.values()]
    for name, meta in (
        ("cloud_search_page.json", JiraMeta(cloud=True, points_fields=("customfield_10016",), epic_link_field=None)),
        ("dc_search_page.json", JiraMeta(cloud=False, points_fields=("customfield_10002",),
                                         epic_link_field="customfield_10008")),
    ):
        page = json.loads((FIXTURES / "jira" / name).read_text(encoding="utf-8"))
        out += [(meta, connector._fields(meta), raw) for raw in page["issues"]]
    return out


def map_jira(connector: JiraConnector, meta: JiraMeta) -> Callable[[dict[str, Any]], object]:
    def use(raw: dict[str, Any]) -> object:
        scan = jira._Scan({"10001": 0})
        scan.already_seen(raw)  # an incremental scan's test of a re-read version
        scan.note_items([raw])
        return connector.to_item(raw, meta), scan.updates, scan.max_updated_ms

    return use


def test_jira_mapping_reads_only_declared_members_on_cloud_and_data_center() -> None:
    connector = jira_connector()
    payloads = jira_payloads()
    kinds = {(m.cloud, r["fields"].get("issuetype", {}).get("name"), bool(r["fields"].get("parent")))
             for m, _, r in payloads}
    assert len(payloads) >= 60 and len(kinds) >= 6  # epics, stories, sub-tasks, with and without parents
    assert any(m.epic_link_field for m, _, _ in payloads) and any(m.points_fields for m, _, _ in payloads)
    for meta, wanted, raw in payloads:
        allowed = declared(jira.issue_members(wanted))
        assert read_paths(raw, map_jira(connector, meta)) <= allowed, raw.get("key")


def test_jira_shaped_answers_map_to_the_same_items_and_keep_the_paging_members() -> None:
    connector = jira_connector()
    for meta, wanted, raw in jira_payloads():
        body = json.dumps({"issues": [raw], "nextPageToken": "abc", "isLast": False, "total": 7,
                           "names": {"x": {"y": [1, 2]}}}).encode()
        shaped = jira._issues_shape(wanted)(body)
        assert {k: v for k, v in shaped.items() if k != "issues"} == {
            "nextPageToken": "abc", "isLast": False, "total": 7, "names": {"x": {"y": [1, 2]}}}
        use = map_jira(connector, meta)
        assert use(shaped["issues"][0]) == use(raw), raw.get("key")
        assert "self" not in shaped["issues"][0] and "expand" not in shaped["issues"][0]


# -- drift: any issue object, whatever its members hold --------------------------------------------

_KEYS = ("name", "title", "key", "id", "merged_at", "statusCategory", "subtask", "hierarchyLevel", "url")
_WORDS = ("", "open", "closed", "completed", "not_planned", "done", "new", "Epic",
          "2026-11-02T09:15:31.120+0000", "2026-11-02T09:15:31Z", "https://x/repos/a/b")
_leaf = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
         | st.sampled_from(_WORDS) | st.text(max_size=6))
_json = st.recursive(_leaf, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.sampled_from(_KEYS), inner, max_size=4), max_leaves=12)


def _object(known: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from((*known, "user", "body", "extra")), _json, max_size=len(known) + 2)


_GITHUB_KNOWN = tuple(github.ISSUE_MEMBERS.__annotations__)
_JIRA_META = JiraMeta(cloud=False, points_fields=("customfield_10002",), epic_link_field="customfield_10008")
_JIRA_WANTED = JiraConnector._fields(jira_connector(), _JIRA_META)


def _outcome(use: Callable[[], object]) -> object:
    try:
        return use()
    except Exception as exc:  # the same failure either way counts as the same outcome
        return type(exc)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=_object(_GITHUB_KNOWN))
def test_any_github_issue_maps_the_same_shaped_or_whole(raw: dict[str, Any]) -> None:
    body = json.dumps([raw]).encode()
    got = whole_then_shaped(github._ISSUE_LIST, body)[0]
    assert _outcome(lambda: map_github(got)) == _outcome(lambda: map_github(json.loads(body)[0]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(top=_object(("id", "key", "fields")), fields=_object(_JIRA_WANTED))
def test_any_jira_issue_maps_the_same_shaped_or_whole(top: dict[str, Any], fields: dict[str, Any]) -> None:
    raw = {**top, "fields": fields} if "fields" not in top or fields else top
    body = json.dumps({"issues": [raw], "total": 1}).encode()
    got = whole_then_shaped(jira._issues_shape(_JIRA_WANTED), body)
    use = map_jira(jira_connector(), _JIRA_META)
    assert got["total"] == 1
    assert _outcome(lambda: use(got["issues"][0])) == _outcome(lambda: use(json.loads(body)["issues"][0]))


# -- the helpers and the HTTP layer ----------------------------------------------------------------

Item = members("Item", {"name": Any, "tags": list[Named | str | None] | None})


def test_shapes_keep_declared_members_and_refuse_what_does_not_fit() -> None:
    shape = list_of(Item)
    assert shape(b'[{"name": {"deep": [1]}, "tags": [{"name": "a", "color": "f00"}, "b", null], "x": 1}, {}]') == [
        {"name": {"deep": [1]}, "tags": [{"name": "a"}, "b", None]}, {}]
    for body in (b'[{"tags": [3]}]', b'{"message": "Not Found"}', b"[1]", b'[{"name": NaN}]'):
        with pytest.raises(ValueError):
            shape(body)
    page = object_with_list("issues", Item)
    got = page(b'{"issues": [{"name": 1, "y": 2}], "next": {"a": [1]}}')
    assert got == {"issues": [{"name": 1}], "next": {"a": [1]}}
    with pytest.raises(ValueError):
        page(b'{"issues": {"name": 1}}')


@responses.activate
def test_the_http_layer_decodes_through_a_shape_and_falls_back_to_the_whole_answer() -> None:
    client = HttpClient(source="github", base_url=f"{BASE}/api", headers={}, secrets=(), policy=HttpPolicy())
    responses.add("GET", f"{BASE}/api/fits", body=b'[{"name": "a", "colour": "red"}]', content_type="application/json")
    responses.add("GET", f"{BASE}/api/drift", body=b'[{"name": "a", "tags": 7}]', content_type="application/json")
    responses.add("GET", f"{BASE}/api/nan", body=b'[{"name": NaN, "x": 1}]', content_type="application/json")
    shape = list_of(Item)
    assert client.request("GET", "fits", shape=shape).json_body == [{"name": "a"}]
    assert client.request("GET", "drift", shape=shape).json_body == [{"name": "a", "tags": 7}]
    nan = client.request("GET", "nan", shape=shape).json_body
    assert nan[0]["x"] == 1 and nan[0]["name"] != nan[0]["name"]
    assert client.request("GET", "fits", parse_json=True).json_body == [{"name": "a", "colour": "red"}]
    assert client.request_count == 4 and len(responses.calls) == 4  # no answer asked for twice
