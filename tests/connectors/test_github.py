"""The GitHub connector against canned answers (``responses``): paging, gate, limits, mapping, writes."""

from __future__ import annotations

import copy
import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from responses import registries

from connectors import plugins
from connectors.base import ConnectorContext, utc_now
from connectors.github import GitHubConnector, GitHubRule, GitHubSource, replace_block, to_work_item
from connectors.http import HttpPolicy
from syncer.errors import AuthError, RateLimitedError, TransientError, VisibilityLostError
from syncer.model import ItemKind, Page, PlannedWrite, State

BASE = "https://ghe.example.test/api/v3"
TOKEN = "ghp_unit-test-token-value"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "github"
DATE = "Mon, 23 Nov 2026 12:00:00 GMT"


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def connector(
    repos: tuple[str, ...] = ("acme/web",), sleep: Sleeps | None = None, **policy: Any
) -> GitHubConnector:
    config = GitHubSource(type="github", url=BASE, token=TOKEN, repos=repos, overlap="5m")
    context = ConnectorContext(
        policy=HttpPolicy(jitter=0.0, **policy), stop=threading.Event(), now=utc_now, sleep=sleep or Sleeps()
    )
    built = plugins()["github"].build("github", config, context)
    assert isinstance(built, GitHubConnector)
    return built


def raw_issue(number: int, updated: str, repo: str = "acme/web", **extra: Any) -> dict[str, Any]:
    """A list item with the fields the connector reads, shaped like GitHub's."""
    item: dict[str, Any] = {
        "url": f"{BASE}/repos/{repo}/issues/{number}",
        "repository_url": f"{BASE}/repos/{repo}",
        "html_url": f"https://ghe.example.test/{repo}/issues/{number}",
        "id": 9000 + number,
        "node_id": f"I_node{repo.replace('/', '_')}{number}",
        "number": number,
        "title": f"Issue {number}",
        "labels": [],
        "state": "open",
        "state_reason": None,
        "milestone": None,
        "assignee": None,
        "created_at": "2026-10-01T00:00:00Z",
        "updated_at": updated,
        "closed_at": None,
    }
    item.update(extra)
    return item


def stamps(count: int, start_minute: int = 59, hour: int = 11) -> list[str]:
    """``count`` distinct descending timestamps (newest first), one second apart."""
    out = []
    for i in range(count):
        seconds = hour * 3600 + start_minute * 60 + 59 - i
        out.append(f"2026-11-23T{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}Z")
    return out


def listing_url(repo: str = "acme/web") -> str:
    return f"{BASE}/repos/{repo}/issues"


def query(call_index: int) -> dict[str, list[str]]:
    return parse_qs(urlsplit(str(responses.calls[call_index].request.url)).query)


def sent_json(call_index: int) -> Any:
    return json.loads(responses.calls[call_index].request.body or b"null")


def cursor_of(pages: list[Page]) -> Any:
    return pages[-1].cursor


def run(c: GitHubConnector, cursor: Any = None, *, full: bool = False, census: bool = False,
        rules: list[GitHubRule] | None = None) -> list[Page]:
    return list(c.fetch(cursor, full=full, census=census, rules=rules or []))


def items_of(pages: list[Page]) -> list[Any]:
    return [item for page in pages for item in page.items]


# -- listing ---------------------------------------------------------------------------------


@responses.activate(registry=registries.OrderedRegistry)
def test_link_paging_follows_next_exactly_and_one_request_per_page_no_n_plus_one() -> None:
    times = stamps(250)
    page2 = f"{BASE}/repositories/77/issues?state=all&sort=updated&direction=desc&per_page=100&page=2"
    page3 = f"{BASE}/repositories/77/issues?state=all&sort=updated&direction=desc&per_page=100&page=3"
    links = {"url": "u", "html_url": "h", "diff_url": "d", "patch_url": "p", "merged_at": None}
    pr: dict[str, Any] = {"pull_request": links}
    body = [raw_issue(1000 - i, t, **(pr if i % 3 == 0 else {})) for i, t in enumerate(times)]
    responses.add("GET", listing_url(), json=body[:100], headers={"Link": f'<{page2}>; rel="next"', "ETag": '"e1"',
                                                              "Date": DATE})
    responses.add("GET", page2, json=body[100:200], headers={"Link": f'<{page3}>; rel="next"'})
    responses.add("GET", page3, json=body[200:])
    c = connector()
    pages = run(c, full=True)
    got = items_of(pages)
    assert len(got) == 250
    # The N+1 trap: reading pull_request, repository, labels... of 250 listed items costs nothing.
    assert len(responses.calls) == 3 == c.requests
    assert {i.kind for i in got} == {ItemKind.ISSUE, ItemKind.PULL_REQUEST}
    assert sum(i.kind is ItemKind.PULL_REQUEST for i in got) == 84
    first = query(0)
    assert first == {"state": ["all"], "sort": ["updated"], "direction": ["desc"], "per_page": ["100"]}
    assert responses.calls[1].request.url == page2
    assert responses.calls[2].request.url == page3
    headers = responses.calls[0].request.headers
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Accept"] == "application/vnd.github+json"
    assert headers["X-GitHub-Api-Version"] == "2022-11-28"
    last = pages[-1]
    assert last.census == frozenset(i.id for i in got)
    assert last.cursor == {"v": 1, "base": BASE, "repos": {"acme/web": {"since": "2026-11-23T12:00:00Z",
                                                                          "etag": '"e1"'}}}
    assert all(p.cursor is None for p in pages[:-1])


@responses.activate(registry=registries.OrderedRegistry)
def test_a_cursor_without_etag_sends_since_minus_overlap() -> None:
    responses.add("GET", listing_url(), json=[raw_issue(5, "2026-11-23T11:00:00Z")], headers={"Date": DATE})
    c = connector()
    cursor = {"v": 1, "base": BASE, "repos": {"acme/web": {"since": "2026-11-23T10:00:00Z", "etag": None}}}
    pages = run(c, cursor)
    assert query(0)["since"] == ["2026-11-23T09:55:00Z"]
    assert "If-None-Match" not in responses.calls[0].request.headers
    assert [i.key for i in items_of(pages)] == ["acme/web#5"]
    assert cursor_of(pages)["repos"]["acme/web"]["since"] == "2026-11-23T12:00:00Z"
    assert pages[-1].census is None


@responses.activate(registry=registries.OrderedRegistry)
def test_etag_gate_second_pass_is_one_conditional_request_per_repo_and_free() -> None:
    repos = ("acme/web", "acme/api")
    for repo in repos:
        responses.add("GET", listing_url(repo), json=[raw_issue(1, "2026-11-20T00:00:00Z", repo)],
                      headers={"ETag": f'"tag-{repo}"', "Date": DATE})
    c = connector(repos)
    cursor = run(c, full=True)[-1].cursor
    for repo in repos:
        responses.add("GET", listing_url(repo), status=304, headers={"ETag": f'"tag-{repo}"'})
    before = c.requests, c.quota_requests
    pages = run(c, cursor)
    assert c.requests - before[0] == 2, "exactly one request per repository"
    assert c.quota_requests - before[1] == 0, "304s cost no quota"
    assert [responses.calls[i].request.headers["If-None-Match"] for i in (2, 3)] == ['"tag-acme/web"',
                                                                                    '"tag-acme/api"']
    assert all("since" not in query(i) for i in (2, 3)), "the gated URL is fixed, so its ETag is stable"
    assert items_of(pages) == []
    assert pages[-1].cursor == cursor


@responses.activate(registry=registries.OrderedRegistry)
def test_a_changed_repo_reads_only_down_to_since_minus_overlap() -> None:
    # Page 1 of the fixed URL: two items changed after the cursor, then older ones: stop there.
    body = [raw_issue(9, "2026-11-23T11:30:00Z"), raw_issue(8, "2026-11-23T09:58:00Z"),
            raw_issue(7, "2026-11-22T00:00:00Z")]
    nxt = f"{BASE}/repos/acme/web/issues?page=2"
    responses.add("GET", listing_url(), json=body, headers={"ETag": '"new"', "Link": f'<{nxt}>; rel="next"',
                                                           "Date": DATE})
    c = connector()
    cursor = {"v": 1, "base": BASE, "repos": {"acme/web": {"since": "2026-11-23T10:00:00Z", "etag": '"old"'}}}
    pages = run(c, cursor)
    assert len(responses.calls) == 1, "items older than since: no next page"
    assert responses.calls[0].request.headers["If-None-Match"] == '"old"'
    # 09:58 is inside the 5 minute overlap (inclusive), 2026-11-22 is not.
    assert [i.key for i in items_of(pages)] == ["acme/web#9", "acme/web#8"]
    assert cursor_of(pages)["repos"]["acme/web"] == {"since": "2026-11-23T12:00:00Z", "etag": '"new"'}


@responses.activate(registry=registries.OrderedRegistry)
def test_older_issues_on_a_changed_page_are_not_mapped(monkeypatch: pytest.MonkeyPatch) -> None:
    # A changed repository's page holds up to 100 issues, most of them older than the cursor:
    # they are judged by their own updated_at, not mapped and thrown away (90% of the work).
    import connectors.github as github

    mapped: list[Any] = []
    real = github.to_work_item

    def counting(raw: Any, *args: Any, **kwargs: Any) -> Any:
        mapped.append(raw["number"])
        return real(raw, *args, **kwargs)

    monkeypatch.setattr(github, "to_work_item", counting)
    body = [raw_issue(9, "2026-11-23T11:30:00Z"), raw_issue(8, "2026-11-22T00:00:00Z"),
            {**raw_issue(7, "2026-11-21T00:00:00Z"), "updated_at": None}]  # no stamp: mapped, falls back
    responses.add("GET", listing_url(), json=body, headers={"ETag": '"new"', "Date": DATE})
    cursor = {"v": 1, "base": BASE, "repos": {"acme/web": {"since": "2026-11-23T10:00:00Z", "etag": '"old"'}}}
    pages = run(connector(), cursor)
    assert [i.key for i in items_of(pages)] == ["acme/web#9"]
    assert mapped == [9, 7]


@responses.activate(registry=registries.OrderedRegistry)
def test_more_than_a_page_changed_follows_links_until_older_items() -> None:
    times = stamps(150)
    nxt = f"{BASE}/repositories/7/issues?page=2"
    last = f"{BASE}/repositories/7/issues?page=3"
    body = [raw_issue(500 - i, t) for i, t in enumerate(times)]
    old = raw_issue(1, "2026-01-01T00:00:00Z")
    responses.add("GET", listing_url(), json=body[:100], headers={"ETag": '"x"', "Link": f'<{nxt}>; rel="next"'})
    responses.add("GET", nxt, json=[*body[100:], old], headers={"Link": f'<{last}>; rel="next"'})
    c = connector()
    cursor = {"v": 1, "base": BASE, "repos": {"acme/web": {"since": "2026-11-23T09:00:00Z", "etag": '"y"'}}}
    pages = run(c, cursor)
    assert len(responses.calls) == 2
    assert len(items_of(pages)) == 150
    # No Date header: the cursor is the newest updated_at (a server timestamp, never the local clock).
    assert cursor_of(pages)["repos"]["acme/web"]["since"] == times[0]


@responses.activate(registry=registries.OrderedRegistry)
def test_an_item_repeated_by_offset_paging_is_yielded_once() -> None:
    nxt = f"{BASE}/repositories/7/issues?page=2"
    first = [raw_issue(2, "2026-11-23T11:00:00Z"), raw_issue(1, "2026-11-23T10:00:00Z")]
    responses.add("GET", listing_url(), json=first, headers={"Link": f'<{nxt}>; rel="next"'})
    responses.add("GET", nxt, json=[raw_issue(1, "2026-11-23T10:00:00Z")])
    pages = run(connector(), full=True)
    assert [i.key for i in items_of(pages)] == ["acme/web#2", "acme/web#1"]
    assert pages[-1].census is not None and len(pages[-1].census) == 2


@responses.activate
def test_rule_repos_outside_scope_are_fetched_out_of_scope_and_counted_in_the_census() -> None:
    responses.add("GET", listing_url("acme/web"), json=[raw_issue(1, "2026-11-20T00:00:00Z")])
    responses.add("GET", listing_url("acme/okrs"), json=[raw_issue(4, "2026-11-20T00:00:00Z", "acme/okrs")])
    rules = [GitHubRule(source="github", repo="Acme/OKRs"), GitHubRule(source="other", repo="x/y"),
             GitHubRule(source="github", repo="acme/WEB", labels=("a",))]
    pages = run(connector(), full=True, rules=rules)
    scope = {i.key: i.in_scope for i in items_of(pages)}
    assert scope == {"acme/web#1": True, "acme/okrs#4": False}
    assert len(responses.calls) == 2, "x/y belongs to another source; acme/WEB is the configured repo"
    assert set(cursor_of(pages)["repos"]) == {"acme/web", "acme/okrs"}
    assert pages[-1].census is not None and len(pages[-1].census) == 2


@responses.activate
def test_an_issue_transferred_between_two_listed_repos_is_one_item_with_its_new_key() -> None:
    moved = raw_issue(30, "2026-11-23T11:00:00Z", "acme/web", node_id="I_same")
    responses.add("GET", listing_url("acme/web"), json=[moved])
    responses.add("GET", listing_url("acme/api"), json=[raw_issue(2, "2026-11-01T00:00:00Z", "acme/api")])
    pages = run(connector(("acme/web", "acme/api")), full=True)
    same = [i for i in items_of(pages) if i.id == "I_same"]
    assert [i.key for i in same] == ["acme/web#30"]
    assert "I_same" in (pages[-1].census or ())


@responses.activate
def test_a_renamed_repo_is_followed_through_its_301() -> None:
    new = f"{BASE}/repositories/42/issues?state=all&sort=updated&direction=desc&per_page=100"
    responses.add("GET", listing_url("acme/old"), status=301, headers={"Location": new},
                  json={"message": "Moved Permanently", "url": new})
    responses.add("GET", f"{BASE}/repositories/42/issues",
                  json=[raw_issue(3, "2026-11-20T00:00:00Z", "acme/new")])
    pages = run(connector(("acme/old",)), full=True)
    assert [(i.key, i.container, i.in_scope) for i in items_of(pages)] == [("acme/new#3", "acme/new", True)]
    assert set(cursor_of(pages)["repos"]) == {"acme/old"}


@responses.activate
@pytest.mark.parametrize("status", [404, 403, 410])
def test_a_vanished_repo_is_visibility_lost_after_the_others_are_read(status: int) -> None:
    responses.add("GET", listing_url("acme/gone"), status=status, json={"message": "Not Found"})
    responses.add("GET", listing_url("acme/web"), json=[raw_issue(1, "2026-11-20T00:00:00Z")])
    c = connector(("acme/gone", "acme/web"))
    pages: list[Page] = []
    with pytest.raises(VisibilityLostError, match="acme/gone"):
        for page in c.fetch(None, full=True, census=True, rules=[]):
            pages.append(page)
    assert [i.key for i in items_of(pages)] == ["acme/web#1"]
    assert all(p.cursor is None and p.census is None for p in pages), "nothing retired, cursor unchanged"


# -- errors and rate limits ----------------------------------------------------------------------


@responses.activate
def test_401_is_an_auth_error_without_the_token() -> None:
    responses.add("GET", listing_url(), status=401,
                  json={"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"})
    with pytest.raises(AuthError) as raised:
        run(connector(), full=True)
    assert "Bad credentials" in str(raised.value)
    assert TOKEN not in str(raised.value)
    assert len(responses.calls) == 1, "never retried"


@responses.activate
def test_check_uses_rate_limit_which_costs_no_quota() -> None:
    responses.add("GET", f"{BASE}/rate_limit", json={"resources": {}, "rate": {}})
    c = connector()
    c.check()
    assert (c.requests, c.quota_requests) == (1, 0)


@responses.activate(registry=registries.OrderedRegistry)
def test_primary_limit_waits_for_the_reset_then_continues() -> None:
    reset = int(datetime.now(UTC).timestamp()) + 40
    responses.add("GET", listing_url(), status=403,
                  json={"message": "API rate limit exceeded for user ID 1."},
                  headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)})
    responses.add("GET", listing_url(), json=[raw_issue(1, "2026-11-20T00:00:00Z")])
    sleeps = Sleeps()
    pages = run(connector(sleep=sleeps), full=True)
    assert len(items_of(pages)) == 1
    assert len(sleeps.waits) == 1 and 30 <= sleeps.waits[0] <= 41


@responses.activate
def test_primary_limit_past_the_deadline_stops_cleanly_without_a_cursor() -> None:
    reset = int(datetime.now(UTC).timestamp()) + 2400
    responses.add("GET", listing_url("acme/api"), status=403,
                  json={"message": "API rate limit exceeded for user ID 1."},
                  headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)})
    responses.add("GET", listing_url("acme/web"), json=[raw_issue(1, "2026-11-20T00:00:00Z")])
    pages: list[Page] = []
    with pytest.raises(RateLimitedError) as raised:
        for page in connector(("acme/web", "acme/api"), deadline=60.0).fetch(None, full=False, census=False,
                                                                            rules=[]):
            pages.append(page)
    assert raised.value.resume_at is not None
    assert all(p.cursor is None for p in pages)


@responses.activate(registry=registries.OrderedRegistry)
@pytest.mark.parametrize(("headers", "floor"), [({"retry-after": "7"}, 7.0), ({}, 60.0)])
def test_secondary_limit_honours_retry_after_or_waits_a_minute(headers: dict[str, str], floor: float) -> None:
    responses.add("GET", listing_url(), status=403, headers=headers,
                  json={"message": "You have exceeded a secondary rate limit. Please wait a few minutes."})
    responses.add("GET", listing_url(), json=[raw_issue(1, "2026-11-20T00:00:00Z")])
    sleeps = Sleeps()
    c = connector(sleep=sleeps)
    assert len(items_of(run(c, full=True))) == 1
    assert sleeps.waits == [floor]
    assert c.requests == 2


@responses.activate(registry=registries.OrderedRegistry)
def test_truncated_json_is_retried_then_read() -> None:
    responses.add("GET", listing_url(), body='[{"id": 1, "node_id": "I_', content_type="application/json")
    responses.add("GET", listing_url(), json=[raw_issue(1, "2026-11-20T00:00:00Z")])
    pages = run(connector(), full=True)
    assert len(items_of(pages)) == 1
    assert len(responses.calls) == 2


@responses.activate
def test_truncated_json_every_time_is_a_transient_error_without_cursor() -> None:
    responses.add("GET", listing_url(), body='[{"id": 1', content_type="application/json")
    with pytest.raises(TransientError):
        run(connector(attempts=3), full=True)
    assert len(responses.calls) == 3


@responses.activate
def test_a_foreign_cursor_is_ignored_and_the_repo_read_in_full() -> None:
    responses.add("GET", listing_url(), json=[raw_issue(1, "2020-01-01T00:00:00Z")])
    cursor = {"v": 1, "base": "https://api.github.com", "repos": {"acme/web": {"since": "2026-11-23T00:00:00Z",
                                                                             "etag": '"e"'}}}
    pages = run(connector(), cursor)
    assert len(items_of(pages)) == 1
    assert "If-None-Match" not in responses.calls[0].request.headers


# -- mapping (recorded-shape fixtures) -----------------------------------------------------------


def mixed() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((FIXTURES / "issues_mixed.json").read_text(encoding="utf-8"))
    return data


def by_number() -> dict[int, Any]:
    out = {}
    for raw in mixed():
        item = to_work_item(raw, "github", repo="acme/web")
        assert item is not None
        out[raw["number"]] = item
    return out


def test_mapping_of_issues_and_pull_requests() -> None:
    items = by_number()
    reopened = items[112]
    assert (reopened.state, reopened.excluded, reopened.kind) == (State.TODO, False, ItemKind.ISSUE)
    assert reopened.id == "I_kwDOHkWeb0112"
    assert reopened.key == "acme/web#112" and reopened.container == "acme/web"
    assert reopened.url == "https://github.com/Acme/Web/issues/112"
    assert reopened.labels == ("bug", "customer") and reopened.milestone == "2026-Q4"
    assert reopened.resolution == "reopened"
    merged = items[111]
    assert (merged.kind, merged.state, merged.excluded) == (ItemKind.PULL_REQUEST, State.DONE, False)
    assert merged.done_at == datetime(2026, 11, 21, 10, 59, 58, tzinfo=UTC)
    unmerged = items[110]
    assert (unmerged.kind, unmerged.excluded, unmerged.done_at) == (ItemKind.PULL_REQUEST, True, None)
    not_planned = items[109]
    assert (not_planned.excluded, not_planned.done_at, not_planned.resolution) == (True, None, "not_planned")
    completed = items[108]
    assert (completed.state, completed.excluded) == (State.DONE, False)
    assert completed.done_at == datetime(2026, 11, 18, 7, 30, tzinfo=UTC)
    assert completed.issue_type == "Bug"
    assert items[107].excluded and items[107].resolution == "duplicate"
    sub = items[106]
    assert sub.labels == ("onboarding",), "labels may come as plain strings"
    assert sub.parent_key == "acme/okrs#2" and sub.milestone is None
    legacy = items[105]
    assert (legacy.state, legacy.excluded) == (State.DONE, False), "closed with a null reason = completed"
    assert legacy.done_at == datetime(2021, 3, 2, 10, tzinfo=UTC)
    assert all(not items[n].unknown_fields for n in (112, 111, 110, 109, 108, 107, 106, 105))


def test_schema_drift_is_reported_not_raised() -> None:
    items = by_number()
    drift = items[104]
    assert drift.state is State.UNKNOWN and "state_reason" in drift.unknown_fields
    sparse = items[103]
    assert sparse.id == "3101103" and sparse.key == "acme/web#103"
    assert sparse.state is State.TODO and sparse.labels == () and sparse.milestone is None
    assert set(sparse.unknown_fields) == {"node_id", "updated_at", "milestone"}
    assert sparse.updated_at == datetime(2026, 10, 13, 10, tzinfo=UTC)
    odd = to_work_item({"id": 5, "state": "locked", "labels": "bug", "number": "x"}, "github", repo="a/b")
    assert odd is not None and odd.state is State.UNKNOWN
    assert {"state", "labels", "number"} <= set(odd.unknown_fields)
    assert odd.container == "a/b"
    assert to_work_item({"title": "no identity"}, "github", repo="a/b") is None


def test_rules_match_the_mapped_items() -> None:
    items = by_number()
    bugs = GitHubRule(source="github", labels=("Bug", "customer"), milestone="2026-Q4")
    assert sorted(n for n, i in items.items() if bugs.matches(i, {})) == [108, 109, 112]
    prs = GitHubRule(source="github", repo="acme/web", type="pull_request")
    assert sorted(n for n, i in items.items() if prs.matches(i, {})) == [110, 111]
    child = GitHubRule(source="github", parent="acme/okrs#2")
    assert [n for n, i in items.items() if child.matches(i, {})] == [106]


# -- write-back ------------------------------------------------------------------------------------


def test_replace_block_touches_nothing_else() -> None:
    body = "Intro ✨\r\n\r\n<!-- okrsync:start -->\r\nold\r\n<!-- okrsync:end -->\r\n\r\nTail – résumé\r\n"
    new = replace_block(body, "**42%** done\nnext line")
    assert new == ("Intro ✨\r\n\r\n<!-- okrsync:start -->\r\n**42%** done\r\nnext line\r\n<!-- okrsync:end -->"
                   "\r\n\r\nTail – résumé\r\n")
    assert replace_block(new, "**42%** done\nnext line") == new
    assert replace_block("", "x") == "<!-- okrsync:start -->\nx\n<!-- okrsync:end -->"
    assert replace_block("text", "x") == "text\n\n<!-- okrsync:start -->\nx\n<!-- okrsync:end -->"
    assert replace_block("text\n", "x") == "text\n\n<!-- okrsync:start -->\nx\n<!-- okrsync:end -->"
    # A stray start marker without an end must not swallow the text after it.
    stray = "a <!-- okrsync:start --> keep me"
    once = replace_block(stray, "x")
    assert once.startswith(stray) and replace_block(once, "x") == once
    assert replace_block(once, "y").startswith(stray)


@responses.activate
def test_publish_body_block_patches_only_the_body_and_only_when_changed() -> None:
    issue = json.loads((FIXTURES / "issue_okrs_4.json").read_text(encoding="utf-8"))
    issue["url"] = f"{BASE}/repos/acme/okrs/issues/4"
    responses.add("GET", f"{BASE}/repos/acme/okrs/issues/4", json=issue)
    responses.add("PATCH", f"{BASE}/repos/acme/okrs/issues/4", json=issue)
    c = connector()
    c.publish(PlannedWrite("github", "acme/okrs#4:body", "body_block", "KR nps: 40%"))
    patch = responses.calls[1].request
    sent = json.loads(patch.body or b"null")
    assert list(sent) == ["body"]
    assert sent["body"] == issue["body"].replace("old numbers", "KR nps: 40%")
    # The same value again: one GET, no PATCH.
    unchanged = copy.deepcopy(issue)
    unchanged["body"] = sent["body"]
    responses.replace("GET", f"{BASE}/repos/acme/okrs/issues/4", json=unchanged)
    c.publish(PlannedWrite("github", "acme/okrs#4", "body_block", "KR nps: 40%"))
    assert [call.request.method for call in responses.calls] == ["GET", "PATCH", "GET"]


@responses.activate
def test_publish_labels_add_and_remove_with_404_as_already_gone() -> None:
    responses.add("POST", f"{BASE}/repos/acme/web/issues/7/labels", json=[{"name": "okr-unaligned"}])
    responses.add("DELETE", f"{BASE}/repos/acme/web/issues/7/labels/okr%20unaligned", status=404,
                  json={"message": "Label does not exist"})
    c = connector()
    c.publish(PlannedWrite("github", "acme/web#7", "add_label", "okr-unaligned"))
    assert sent_json(0) == {"labels": ["okr-unaligned"]}
    c.publish(PlannedWrite("github", "acme/web#7", "remove_label", "okr unaligned"))
    assert responses.calls[1].request.method == "DELETE"


def test_publish_rejects_a_bad_target() -> None:
    with pytest.raises(ValueError, match="owner/repo#number"):
        connector().publish(PlannedWrite("github", "OKR-12", "body_block", "x"))


def test_every_field_of_a_mapped_issue_lands_in_its_own_place() -> None:
    # to_work_item builds the WorkItem by position (keywords cost ~0.8 us an item): a field added
    # to or moved in WorkItem must not shift the values into their neighbours unnoticed.
    raw = raw_issue(
        7, "2026-11-02T10:15:30Z", state="closed", state_reason="completed", closed_at="2026-11-01T12:00:00Z",
        labels=[{"name": "Lab"}], milestone={"title": "M1"}, type={"name": "Bug"},
        parent_issue_url=f"{BASE}/repos/acme/okrs/issues/2",
    )
    item = to_work_item(raw, "gh", repo="acme/web", in_scope=False)
    assert item is not None
    assert item._asdict() == {
        "source": "gh", "id": "I_nodeacme_web7", "key": "acme/web#7", "title": "Issue 7",
        "url": "https://ghe.example.test/acme/web/issues/7", "kind": ItemKind.ISSUE, "state": State.DONE,
        "updated_at": datetime(2026, 11, 2, 10, 15, 30, tzinfo=UTC), "container": "acme/web", "issue_type": "Bug",
        "created_at": datetime(2026, 10, 1, tzinfo=UTC), "done_at": datetime(2026, 11, 1, 12, tzinfo=UTC),
        "excluded": False, "resolution": "completed", "points": None, "labels": ("Lab",), "components": (),
        "milestone": "M1", "fix_versions": (), "parent_key": "acme/okrs#2", "parent_id": None,
        "status_name": "closed (completed)", "in_scope": False, "unknown_fields": (),
    }
