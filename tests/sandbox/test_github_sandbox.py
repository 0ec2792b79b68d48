"""The GitHub connector against the sandbox GitHub over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from connectors.base import ConnectorContext, utc_now
from connectors.github import GitHubConnector, GitHubRule, GitHubSource
from connectors.http import HttpPolicy, StatusError
from syncer.errors import AuthError, RateLimitedError, VisibilityLostError
from syncer.model import ItemKind, Page, PlannedWrite, State, WorkItem
from syncer.sandbox.github import GitHubApp, start_github_sandbox
from syncer.sandbox.server import Fault, SandboxServer

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SCOPE = ("acme/web", "acme/api")
OKRS_RULE = GitHubRule(source="github", repo="acme/okrs")
COMPARED = [name for name in WorkItem._fields if name not in ("status_name", "unknown_fields", "points")]


@pytest.fixture
def sandbox() -> Iterator[tuple[SandboxServer, GitHubApp]]:
    server, app = start_github_sandbox(now=NOW)
    try:
        yield server, app
    finally:
        server.stop()


def connect(server: SandboxServer, repos: tuple[str, ...] = SCOPE, token: str = "tok", **policy: Any
            ) -> GitHubConnector:
    config = GitHubSource(type="github", url=server.url, token=token, repos=repos, overlap="5m")
    sleeps: list[float] = []
    context = ConnectorContext(policy=HttpPolicy(jitter=0.0, **policy), stop=threading.Event(), now=utc_now,
                               sleep=sleeps.append)
    c = GitHubConnector("github", config, context)
    c.sleeps = sleeps  # type: ignore[attr-defined]
    return c


def run(c: GitHubConnector, cursor: Any = None, *, full: bool = False, census: bool = False) -> list[Page]:
    return list(c.fetch(cursor, full=full, census=census, rules=[OKRS_RULE]))


def items_of(pages: list[Page]) -> dict[str, WorkItem]:
    return {item.id: item for page in pages for item in page.items}


def view(item: WorkItem) -> dict[str, Any]:
    return {name: getattr(item, name) for name in COMPARED}


def truth(app: GitHubApp) -> dict[str, WorkItem]:
    return {i.id: i for i in app.truth(repos=(*SCOPE, "acme/okrs"), in_scope=SCOPE)}


# -- the official schemas -----------------------------------------------------------------------

SPECS = Path(__file__).resolve().parents[2] / ".." / "shared" / "specs" / "github" / "api.github.com.subset.json"


_DOC_ONLY = ("nullable", "example", "examples", "discriminator", "xml", "externalDocs", "deprecated")


def _schema(node: Any) -> Any:
    """OpenAPI 3.0 schema → JSON Schema: ``nullable`` becomes ``anyOf [..., null]``; doc-only keys go."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties"):
            out[key] = {name: _schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = _schema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [_schema(sub) for sub in value]
        elif key in _DOC_ONLY or key.startswith("x-"):
            continue
        else:
            out[key] = value
    return {"anyOf": [out, {"type": "null"}]} if node.get("nullable") is True else out


class SpecValidator:
    """Validates a sandbox answer against the 200 (or error) response schema of a spec path."""

    def __init__(self, spec: dict[str, Any]) -> None:
        from referencing import Registry
        from referencing.jsonschema import DRAFT202012

        self.spec = spec
        root = {"components": {"schemas": {k: _schema(v) for k, v in spec["components"]["schemas"].items()}}}
        self.registry = Registry().with_resource("urn:github", DRAFT202012.create_resource(root))

    def response_schema(self, path: str, method: str, status: str) -> dict[str, Any]:
        response = self.spec["paths"][path][method]["responses"][status]
        if "$ref" in response:
            response = self.spec["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
        schema: dict[str, Any] = response["content"]["application/json"]["schema"]
        return schema

    def errors(self, body: Any, path: str, method: str = "get", status: str = "200") -> list[str]:
        from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

        schema = _schema(self.response_schema(path, method, status))
        text = json.dumps(schema).replace('"#/components', '"urn:github#/components')
        schema = {"$id": "urn:check", **json.loads(text)}
        validator = Draft202012Validator(schema, registry=self.registry)
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"[:300] for e in validator.iter_errors(body)]


@pytest.fixture
def spec() -> SpecValidator:
    if not SPECS.exists():
        pytest.skip(f"the official GitHub description is not beside the checkout ({SPECS.resolve()})")
    return SpecValidator(json.loads(SPECS.read_text(encoding="utf-8")))


def api(server: SandboxServer, path: str, token: str = "tok", **params: Any) -> requests.Response:
    return requests.get(f"{server.url}{path}", params=params, timeout=10,
                        headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"})


def test_sandbox_answers_match_the_official_schemas(sandbox: tuple[SandboxServer, GitHubApp],
                                                    spec: SpecValidator) -> None:
    server, app = sandbox
    app.control("create", {"repo": "acme/web", "title": "Child", "parent": "acme/web#1", "type": "Task"})
    listing = api(server, "/repos/acme/web/issues", state="all", per_page=100).json()
    assert len(listing) > 20 and any("pull_request" in x for x in listing)
    assert any(x.get("parent_issue_url") for x in listing) and any(x["milestone"] for x in listing)
    checks = [
        (listing, "/repos/{owner}/{repo}/issues", "get", "200"),
        (api(server, "/repos/acme/okrs/issues/4").json(), "/repos/{owner}/{repo}/issues/{issue_number}", "get",
         "200"),
        (api(server, "/repos/acme/web/labels").json(), "/repos/{owner}/{repo}/labels", "get", "200"),
        (api(server, "/repos/acme/web/milestones").json(), "/repos/{owner}/{repo}/milestones", "get", "200"),
        (api(server, "/repos/acme/web").json(), "/repos/{owner}/{repo}", "get", "200"),
        (api(server, "/rate_limit").json(), "/rate_limit", "get", "200"),
        (api(server, "/user").json(), "/user", "get", "200"),
        (api(server, "/repos/acme/nope/issues").json(), "/repos/{owner}/{repo}/issues", "get", "404"),
    ]
    problems = {path: spec.errors(body, path, method, status)[:5] for body, path, method, status in checks}
    assert problems == {path: [] for _, path, _, _ in checks}
    assert spec.errors([{"id": "not a number"}], "/repos/{owner}/{repo}/issues"), "the validator can fail"


# -- HTTP behaviour of the sandbox ------------------------------------------------------------------


def test_listing_pages_links_etags_and_rate_headers(sandbox: tuple[SandboxServer, GitHubApp]) -> None:
    server, app = sandbox
    first = api(server, "/repos/acme/web/issues", state="all", sort="updated", direction="desc", per_page=10)
    assert first.status_code == 200 and len(first.json()) == 10
    assert first.links["next"]["url"].endswith("page=2") and first.links["last"]["url"].endswith("page=3")
    updated = [x["updated_at"] for x in first.json()]
    assert updated == sorted(updated, reverse=True)
    remaining = int(first.headers["x-ratelimit-remaining"])
    assert first.headers["x-ratelimit-resource"] == "core" and first.headers["x-ratelimit-limit"] == "5000"
    again = requests.get(first.url, timeout=10, headers={"Authorization": "token tok",
                                                         "If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.content == b""
    assert int(again.headers["x-ratelimit-remaining"]) == remaining, "a 304 costs no quota"
    third = requests.get(first.links["last"]["url"], timeout=10, headers={"Authorization": "token tok"})
    total = len(app.truth(repos=["acme/web"]))
    assert total == 26
    assert len(third.json()) == total - 20 and "next" not in third.links
    assert int(third.headers["x-ratelimit-remaining"]) == remaining - 1
    big = api(server, "/repos/acme/web/issues", state="all", per_page=500)
    assert len(big.json()) == total, "per_page above 100 is capped, not refused"
    opened = api(server, "/repos/acme/web/issues")
    assert {x["state"] for x in opened.json()} == {"open"}, "state defaults to open"
    bugs = api(server, "/repos/acme/web/issues", state="all", labels="bug,customer", milestone="1").json()
    assert len(bugs) == 5
    since = api(server, "/repos/acme/web/issues", state="all", sort="updated", since=updated[2]).json()
    assert [x["updated_at"] for x in since] == updated[:3], "since is inclusive"
    bad = api(server, "/repos/acme/web/issues", token="nope")
    assert bad.status_code == 401 and bad.json()["message"] == "Bad credentials"


def test_quota_and_secondary_knobs(sandbox: tuple[SandboxServer, GitHubApp]) -> None:
    server, app = sandbox
    app.control("quota", {"remaining": 1, "reset_in": 600})
    assert api(server, "/repos/acme/web/issues").status_code == 200
    out = api(server, "/repos/acme/web/issues")
    assert out.status_code == 403 and "API rate limit exceeded" in out.json()["message"]
    assert out.headers["x-ratelimit-remaining"] == "0"
    assert api(server, "/rate_limit").json()["resources"]["core"]["remaining"] == 0
    app.control("quota", {"remaining": 100})
    app.control("secondary", {"times": 1, "retry_after": 30})
    limited = api(server, "/repos/acme/web/issues")
    assert limited.status_code == 403 and limited.headers["retry-after"] == "30"
    assert "secondary rate limit" in limited.json()["message"]
    assert api(server, "/repos/acme/web/issues").status_code == 200


# -- the connector over HTTP ----------------------------------------------------------------------


def test_full_fetch_equals_the_sandbox_truth(sandbox: tuple[SandboxServer, GitHubApp]) -> None:
    server, app = sandbox
    c = connect(server)
    pages = run(c, full=True)
    got = items_of(pages)
    expected = truth(app)
    assert {k: view(v) for k, v in got.items()} == {k: view(v) for k, v in expected.items()}
    assert pages[-1].census == frozenset(expected)
    assert c.requests == c.quota_requests == 3, "one page per repository (each holds < 100 items)"
    assert all(not i.unknown_fields for i in got.values())
    kinds = [(i.kind, i.state, i.excluded) for i in got.values()]
    assert kinds.count((ItemKind.PULL_REQUEST, State.DONE, True)) == 1, "the closed unmerged PR"
    assert kinds.count((ItemKind.PULL_REQUEST, State.DONE, False)) == 6


def test_idle_incremental_pass_spends_zero_quota(sandbox: tuple[SandboxServer, GitHubApp]) -> None:
    server, app = sandbox
    c = connect(server)
    cursor = run(c, full=True)[-1].cursor
    server.clear_log()
    quota_before = app.quota_remaining
    requests_before, charged_before = c.requests, c.quota_requests
    pages = run(c, cursor)
    assert items_of(pages) == {}
    assert c.requests - requests_before == 3
    assert c.quota_requests - charged_before == 0
    assert app.quota_remaining == quota_before
    assert [(r.status, r.conditional) for r in server.requests()] == [(304, True)] * 3
    assert pages[-1].cursor == cursor


def test_incremental_returns_exactly_the_changed_items(sandbox: tuple[SandboxServer, GitHubApp]) -> None:
    server, app = sandbox
    c = connect(server)
    cursor = run(c, full=True)[-1].cursor
    closed = app.control("update", {"repo": "acme/web", "number": 5, "state": "closed"})
    relabel = app.control("update", {"repo": "acme/api", "number": 2, "labels": ["bug", "customer", "perf"]})
    reopened = app.control("update", {"repo": "acme/web", "number": 1, "state": "open"})
    created = app.control("create", {"repo": "acme/web", "title": "New customer bug", "labels": ["bug"]})
    not_planned = app.control("update", {"repo": "acme/api", "number": 5, "state": "closed",
                                         "state_reason": "not_planned"})
    before = c.quota_requests
    pages = run(c, cursor)
    got = items_of(pages)
    changed = {x["node_id"] for x in (closed, relabel, reopened, created, not_planned)}
    assert set(got) == changed
    expected = truth(app)
    assert {k: view(v) for k, v in got.items()} == {k: view(expected[k]) for k in changed}
    assert got[reopened["node_id"]].state is State.TODO and got[reopened["node_id"]].resolution == "reopened"
    assert got[closed["node_id"]].done_at is not None
    assert got[not_planned["node_id"]].excluded
    assert c.quota_requests - before == 2, "web and api changed (one page each); okrs answered 304"
    # And once more: idle again.
    before = c.quota_requests
    assert items_of(run(c, pages[-1].cursor)) == {} and c.quota_requests == before


def test_a_transfer_keeps_one_item_with_the_new_key(sandbox: tuple[SandboxServer, GitHubApp]) -> None:
    server, app = sandbox
    c = connect(server)
    first = run(c, full=True)
    before = items_of(first)
    issue = next(i for i in before.values() if i.key == "acme/api#3")
    moved = app.control("transfer", {"repo": "acme/api", "number": 3, "to": "acme/web"})
    pages = run(c, first[-1].cursor)
    got = items_of(pages)
    assert list(got) == [issue.id]
    assert got[issue.id].key == moved["key"] and got[issue.id].container == "acme/web"
    census = run(c, pages[-1].cursor, census=True)
    assert census[-1].census == frozenset(truth(app)) and issue.id in (census[-1].census or ())
    old = requests.get(f"{server.url}/repos/acme/api/issues/3", timeout=10,
                       headers={"Authorization": "Bearer tok"})
    assert old.history and old.history[0].status_code == 301 and old.json()["node_id"] == issue.id


def test_a_deleted_issue_leaves_the_census(sandbox: tuple[SandboxServer, GitHubApp]) -> None:
    server, app = sandbox
    c = connect(server)
    first = run(c, full=True)
    gone = next(i for i in items_of(first).values() if i.key == "acme/web#2")
    app.control("delete", {"repo": "acme/web", "number": 2})
    census = run(c, first[-1].cursor, census=True)
    assert census[-1].census is not None and gone.id not in census[-1].census
    assert census[-1].census == frozenset(truth(app))
    assert c.http.request("GET", "repos/acme/web/issues/2", accept=(410,)).status == 410


def test_a_revoked_repo_is_visibility_lost_and_comes_back(sandbox: tuple[SandboxServer, GitHubApp]) -> None:
    server, app = sandbox
    c = connect(server)
    cursor = run(c, full=True)[-1].cursor
    app.control("revoke", {"repo": "acme/api"})
    with pytest.raises(VisibilityLostError, match="acme/api"):
        run(c, cursor, census=True)
    app.control("restore", {"repo": "acme/api"})
    assert run(c, cursor)[-1].cursor == cursor


def test_a_renamed_repo_is_followed(sandbox: tuple[SandboxServer, GitHubApp]) -> None:
    server, app = sandbox
    c = connect(server)
    cursor = run(c, full=True)[-1].cursor
    app.control("rename_repo", {"repo": "acme/web", "to": "acme/webapp"})
    pages = run(c, cursor, census=True)
    got = items_of(pages)
    assert {i.container for i in got.values() if i.in_scope} == {"acme/webapp", "acme/api"}
    assert pages[-1].census == frozenset(i.id for i in app.truth())
    cursor = pages[-1].cursor
    assert cursor is not None and set(cursor["repos"]) == {"acme/web", "acme/api", "acme/okrs"}
    # The ETag gate works through the redirect: If-None-Match travels to the new location.
    before = c.quota_requests
    assert items_of(run(c, cursor)) == {} and c.quota_requests == before
    assert [r.status for r in server.requests(path="/repositories/")][-1] == 304


def test_bad_token_is_an_auth_error(sandbox: tuple[SandboxServer, GitHubApp]) -> None:
    server, _ = sandbox
    c = connect(server, token="wrong-token-value")
    with pytest.raises(AuthError) as raised:
        c.check()
    assert "Bad credentials" in str(raised.value) and "wrong-token-value" not in str(raised.value)


def test_exhausted_quota_past_the_deadline_stops_cleanly(sandbox: tuple[SandboxServer, GitHubApp]) -> None:
    server, app = sandbox
    c = connect(server, deadline=30.0)
    cursor = run(c, full=True)[-1].cursor
    app.control("update", {"repo": "acme/web", "number": 5, "state": "closed"})
    app.control("quota", {"remaining": 0, "reset_in": 1800})
    pages: list[Page] = []
    with pytest.raises(RateLimitedError):
        for page in c.fetch(cursor, full=False, census=False, rules=[OKRS_RULE]):
            pages.append(page)
    assert all(p.cursor is None for p in pages)


def test_secondary_limit_and_truncated_pages_are_retried(sandbox: tuple[SandboxServer, GitHubApp]) -> None:
    server, app = sandbox
    c = connect(server)
    app.control("secondary", {"times": 1, "retry_after": 2})
    server.inject(Fault(kind="truncate", path="/repos/acme/api/issues", keep=50))
    pages = run(c, full=True)
    assert set(items_of(pages)) == set(truth(app))
    assert c.sleeps == [2.0, 1.0]  # type: ignore[attr-defined]
    assert c.requests == 5


def test_body_block_write_back_is_idempotent_and_touches_nothing_else(
    sandbox: tuple[SandboxServer, GitHubApp],
) -> None:
    server, app = sandbox
    c = connect(server)
    original = next(x for x in app.issues("acme/okrs") if x["number"] == 4)["body"]
    assert "\r\n" in original and "✨" in original and "okrsync:start" not in original
    c.publish(PlannedWrite("github", "acme/okrs#4:body", "body_block", "**NPS** 40% · on track"))
    body = next(x for x in app.issues("acme/okrs") if x["number"] == 4)["body"]
    assert body.startswith(original)
    assert body[len(original):] == "\r\n<!-- okrsync:start -->\r\n**NPS** 40% · on track\r\n<!-- okrsync:end -->"
    server.clear_log()
    c.publish(PlannedWrite("github", "acme/okrs#4:body", "body_block", "**NPS** 40% · on track"))
    assert [r.method for r in server.requests()] == ["GET"], "unchanged: no PATCH"
    c.publish(PlannedWrite("github", "acme/okrs#4:body", "body_block", "**NPS** 47%"))
    after = next(x for x in app.issues("acme/okrs") if x["number"] == 4)["body"]
    assert after == original + "\r\n<!-- okrsync:start -->\r\n**NPS** 47%\r\n<!-- okrsync:end -->"
    assert [r.method for r in server.requests()] == ["GET", "GET", "PATCH"]


def test_label_write_back(sandbox: tuple[SandboxServer, GitHubApp]) -> None:
    server, app = sandbox
    c = connect(server)
    c.publish(PlannedWrite("github", "acme/web#10", "add_label", "okr-unaligned"))
    labels = next(x for x in app.issues("acme/web") if x["number"] == 10)["labels"]
    assert "okr-unaligned" in labels
    c.publish(PlannedWrite("github", "acme/web#10", "remove_label", "okr-unaligned"))
    c.publish(PlannedWrite("github", "acme/web#10", "remove_label", "okr-unaligned"))  # 404: already gone
    assert "okr-unaligned" not in next(x for x in app.issues("acme/web") if x["number"] == 10)["labels"]
    with pytest.raises(StatusError):
        c.publish(PlannedWrite("github", "acme/web#999", "add_label", "x"))


def test_demo_data_shape() -> None:
    app = GitHubApp(now=NOW)
    items = app.truth()
    issues = [i for i in items if i.kind is ItemKind.ISSUE]
    prs = [i for i in items if i.kind is ItemKind.PULL_REQUEST]
    assert (len(issues), len(prs)) == (40, 10)
    bugs = [i for i in issues if {"bug", "customer"} <= set(i.labels) and i.milestone == "2026-Q4"]
    assert len(bugs) == 12
    done = [i for i in bugs if i.state is State.DONE and not i.excluded]
    assert len(done) == 6 and all(datetime(2026, 10, 1, tzinfo=UTC) <= (i.done_at or NOW) < NOW for i in done)
    assert sum(i.excluded for i in bugs) == 1 and sum(i.resolution == "reopened" for i in bugs) == 1
    onboarding = [i for i in issues if "onboarding" in i.labels and i.container == "acme/web"]
    assert len(onboarding) == 9, "eight filed in web, one transferred from api"
    assert max(i.updated_at for i in items) <= NOW
    assert GitHubApp(now=NOW).truth() == items, "deterministic for a seed"


# -- request counts at scale -----------------------------------------------------------------------


def test_bench_request_counts_5000_issues_over_10_repos() -> None:
    server, app = start_github_sandbox(scenario="bench", size=5000, now=NOW)
    try:
        repos = tuple(f"bench/repo-{i:02d}" for i in range(10))
        c = connect(server, repos=repos)
        full = list(c.fetch(None, full=True, census=False, rules=[]))
        assert len(items_of(full)) == 5000 and (c.requests, c.quota_requests) == (50, 50)
        rng = random.Random(7)
        for number in rng.sample(range(1, 501), 50):  # 1% changed, over the 10 repositories
            app.control("update", {"repo": repos[number % 10], "number": number, "title": f"changed {number}"})
        r0, q0 = c.requests, c.quota_requests
        incremental = list(c.fetch(full[-1].cursor, full=False, census=False, rules=[]))
        assert len(items_of(incremental)) == 50
        touched = len({i.container for i in items_of(incremental).values()})
        assert (c.requests - r0, c.quota_requests - q0) == (10, touched)
        r1, q1 = c.requests, c.quota_requests
        idle = list(c.fetch(incremental[-1].cursor, full=False, census=False, rules=[]))
        assert items_of(idle) == {} and (c.requests - r1, c.quota_requests - q1) == (10, 0)
    finally:
        server.stop()


def _listings(app: GitHubApp, query: dict[str, list[str]], host: str = "127.0.0.1:1") -> dict[str, bytes]:
    """Every repository's listing page as the sandbox sends it (no HTTP: the app's own handler)."""
    from syncer.sandbox.server import Request

    found = {}
    headers = {"Authorization": "Bearer tok", "Host": host}
    for name in sorted({repo.name for repo in app.repos.values()}):
        reply = app.handle(Request("GET", f"/repos/{name}/issues", query, headers, b""))
        assert reply.status == 200, (name, reply.status)
        found[name] = reply.encoded()[0]
    return found


def test_kept_issue_json_is_never_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    # The sandbox keeps listed issues' JSON (the bench's gate pages shared its two cores with
    # okrsync). After every kind of change, the pages it sends with what it kept are byte for
    # byte the pages it renders from nothing, and what did not change is not rendered again.
    app = GitHubApp(now=NOW)
    rendered: list[int] = []
    real = GitHubApp._render

    def counting(self: GitHubApp, base: str, repo: Any, issue: Any) -> dict[str, Any]:
        rendered.append(issue.number)
        return real(self, base, repo, issue)

    monkeypatch.setattr(GitHubApp, "_render", counting)
    gate = {"state": ["all"], "sort": ["updated"], "direction": ["desc"], "per_page": ["100"]}
    other = {"state": ["all"], "per_page": ["7"], "labels": ["bug"]}  # page 1 too: kept as well
    rnd = random.Random(5)
    for step in range(60):
        repo = rnd.choice(sorted({r.name for r in app.repos.values()}))
        numbers = sorted(app._repo(repo).issues)
        number = rnd.choice(numbers)
        milestone = next(iter(app._repo(repo).milestones.values()), None)
        change = rnd.choice([
            {"title": f"retitled {step}"}, {"body": f"body {step}"},
            {"labels": rnd.sample(["bug", "feature", "ux"], 2)},
            {"state": "closed"}, {"state": "open"}, {"milestone": milestone.title if milestone else None},
            {"milestone": None}, {"type": "Bug"}, {"parent": f"{repo}#{numbers[0]}"},
        ])
        kind = rnd.random()
        if kind < 0.70:
            app.control("update", {"repo": repo, "number": number, **change})
        elif kind < 0.80:
            app.control("create", {"repo": repo, "title": f"new {step}", **change})
        elif kind < 0.87:
            app.control("delete", {"repo": repo, "number": number})
        elif kind < 0.95:
            targets = [r.name for r in app.repos.values() if r.name != repo]
            app.control("transfer", {"repo": repo, "number": number, "to": rnd.choice(targets)})
        else:
            app.control("rename_repo", {"repo": repo, "to": f"{repo}-{step}"})
        for query in (gate, other):
            host = rnd.choice(["127.0.0.1:1", "localhost:2"])  # the URLs inside follow the Host
            warm = _listings(app, query, host)
            app._encoded.clear()
            assert _listings(app, query, host) == warm, (step, change, host)
    _listings(app, gate)
    rendered.clear()
    pages = _listings(app, gate)
    assert rendered == []  # nothing changed since: every listed issue came from what was kept
    assert sum(page.count(b'"number":') for page in pages.values()) > 40
