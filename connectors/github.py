"""GitHub (github.com and Enterprise Server): config, match rules, write-back targets, connector.

The config and rule models come first (they are pure and used by ``okrsync validate`` and the
progress core); the connector that talks to GitHub follows.
"""

from __future__ import annotations

import email.utils
import functools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote

from pydantic import field_validator

from connectors.base import ConnectorContext, ConnectorPlugin, PublishConfig, RuleConfig, SourceConfig
from connectors.http import HttpClient
from connectors.shapes import Named, list_of, members
from syncer.config import Duration
from syncer.errors import CompatibilityError, TransientError, VisibilityLostError
from syncer.model import ItemKind, Page, PlannedWrite, State, WorkItem

__all__ = [
    "PLUGIN",
    "GitHubConnector",
    "GitHubPublish",
    "GitHubRule",
    "GitHubSource",
    "replace_block",
    "to_work_item",
]

_REPO = re.compile(r"^[\w.-]+/[\w.-]+$")
_ISSUE_REF = re.compile(r"^[\w.-]+/[\w.-]+#\d+$")


class GitHubSource(SourceConfig):
    """A GitHub API base (``https://api.github.com`` or ``https://ghe.example.com/api/v3``)."""

    type: Literal["github"]
    url: str = "https://api.github.com"
    token: str
    repos: tuple[str, ...]
    """The repositories watched for unaligned items (``owner/name``)."""
    overlap: Duration = timedelta(minutes=5)
    timeout: Duration = timedelta(seconds=30)

    @field_validator("repos")
    @classmethod
    def _repo_names(cls, repos: tuple[str, ...]) -> tuple[str, ...]:
        bad = [r for r in repos if not _REPO.match(r)]
        if bad:
            raise ValueError(f"repos: {', '.join(bad)} is not owner/name")
        return repos

    def secrets(self) -> tuple[str, ...]:
        return (self.token,) if self.token else ()


@functools.lru_cache(maxsize=4096)
def folded_labels(labels: tuple[str, ...]) -> frozenset[str]:
    """An item's labels casefolded, for the label rules' subset test. Items share a few label
    combinations, and every label rule asked for the same set per item (200k items x each
    label rule in a full sync): ~170 ns a test built each time, ~50 through this cache."""
    return frozenset(x.casefold() for x in labels)


class GitHubRule(RuleConfig):
    """Which GitHub issues or pull requests count for a key result. Keys are AND-ed."""

    repo: str | None = None
    labels: tuple[str, ...] = ()
    """All of these labels must be present (compared case-insensitively, as GitHub does)."""
    milestone: str | None = None
    """Milestone title."""
    type: Literal["issue", "pull_request", "any"] = "issue"
    parent: str | None = None
    """Sub-issues of this issue, written ``owner/repo#number``."""

    def index_key(self) -> tuple[str, str] | None:
        """The one item value this rule requires, for ``syncer.matching``'s rule index: an
        item of another repository is not tried against it at all."""
        return ("container_casefold", self.repo.casefold()) if self.repo else None

    def predicate(self) -> Callable[[WorkItem, Mapping[str, frozenset[str]]], bool]:
        """``matches`` with the rule's values normalised once (``match_item`` calls it for
        every item of a full sync: 200k items x 20 rules)."""
        source = self.source
        want_pr = {"issue": False, "pull_request": True}.get(self.type)
        repo = self.repo.casefold() if self.repo else None
        labels = frozenset(x.casefold() for x in self.labels)
        milestone = self.milestone or None
        parent = self.parent.casefold() if self.parent else None

        def test(item: WorkItem, members: Mapping[str, frozenset[str]]) -> bool:
            if item.source != source:
                return False
            if want_pr is not None and (item.kind is ItemKind.PULL_REQUEST) is not want_pr:
                return False
            if repo is not None and item.container.casefold() != repo:
                return False
            if labels:
                try:
                    folded = folded_labels(item.labels) if item.labels else frozenset()
                except TypeError:  # labels in a list (a plugin's model slip): fold them here
                    folded = frozenset(x.casefold() for x in item.labels)
                if not labels.issubset(folded):
                    return False
            if milestone is not None and item.milestone != milestone:
                return False
            return parent is None or (item.parent_key or "").casefold() == parent

        return test

    def matches(self, item: WorkItem, members: Mapping[str, frozenset[str]]) -> bool:
        if item.source != self.source:
            return False
        is_pr = item.kind is ItemKind.PULL_REQUEST
        if (self.type == "issue" and is_pr) or (self.type == "pull_request" and not is_pr):
            return False
        if self.repo and item.container.casefold() != self.repo.casefold():
            return False
        if self.labels and not {x.casefold() for x in self.labels} <= {x.casefold() for x in item.labels}:
            return False
        if self.milestone and item.milestone != self.milestone:
            return False
        return not (self.parent and (item.parent_key or "").casefold() != self.parent.casefold())


class GitHubPublish(PublishConfig):
    """Show a key result's progress in a marked block of an issue's body (``owner/repo#number``)."""

    issue: str

    @field_validator("issue")
    @classmethod
    def _issue_ref(cls, issue: str) -> str:
        if not _ISSUE_REF.match(issue):
            raise ValueError(f"issue: {issue!r} is not owner/repo#number")
        return issue

    def target(self) -> str:
        return f"{self.issue}:body"


# --------------------------------------------------------------------------------------------
# The connector.
#
# Why plain requests (through ``connectors.http.HttpClient``) rather than PyGithub for listing
# (research §J facts 47-50): PyGithub builds listed issues lazily, so reading
# ``issue.pull_request``, ``issue.repository``, ``issue.closed_by`` or ``issue.raw_data`` costs
# one extra GET per listed issue (N+1); it pages by 30 unless told otherwise; its default
# ``GithubRetry`` retries 5xx ten times with no backoff and ignores a 429 without Retry-After;
# and its paginated lists cannot send ``If-None-Match``, so the zero-quota ETag gate below is
# impossible through it. The REST calls we need are five, so the raw JSON is read here, in one
# place, and never leaves this module.
# --------------------------------------------------------------------------------------------

_API_VERSION = "2022-11-28"
_MARK_START = "<!-- okrsync:start -->"
_MARK_END = "<!-- okrsync:end -->"
_PAGE = 100
_MAX_PAGES = 100_000
"""Bound on pages followed for one repository (10M issues): a server looping its Link is a bug."""
_GATE_QUERY: dict[str, str | int] = {"state": "all", "sort": "updated", "direction": "desc", "per_page": _PAGE}
"""The fixed first-page URL of every repository: no ``since``, so the URL and its ETag are stable."""
ISSUE_MEMBERS = members("GitHubIssue", {
    "node_id": Any, "id": Any, "number": Any, "repository_url": Any, "html_url": Any, "title": Any,
    "state": Any, "state_reason": Any, "created_at": Any, "updated_at": Any, "closed_at": Any,
    "labels": list[Named | str | None] | None, "milestone": members("Milestone", {"title": Any}) | None,
    "type": Named | None, "pull_request": members("PullRequest", {"merged_at": Any}) | None,
    "parent_issue_url": Any,
})  # fmt: skip
"""What ``_scan_repo`` and ``to_work_item`` read of a listed issue: nothing else is decoded."""
_ISSUE_LIST = list_of(ISSUE_MEMBERS)
_EXCLUDED_REASONS = {"not_planned", "duplicate"}
_DONE_REASONS = {"completed", None}
_REPO_URL = re.compile(r"/repos/([^/]+)/([^/]+?)/?$")
_ISSUE_URL = re.compile(r"/repos/([^/]+)/([^/]+)/issues/(\d+)/?$")
_KEY = re.compile(r"^([\w.-]+/[\w.-]+)#(\d+)(?::.*)?$")


@dataclass
class _RepoScan:
    """What one repository's scan produced: the next cursor entry and the ids it saw."""

    since: str | None
    etag: str | None
    ids: set[str] = field(default_factory=set)


class GitHubConnector:
    """One GitHub source: lists issues and pull requests per repository, gated by ETags.

    Cursor (opaque to run_once)::

        {"v": 1, "base": "<api base>", "repos": {"acme/web": {"since": "<iso>", "etag": "<etag>"}}}

    ``since`` is a server timestamp (the first page's ``Date`` header, or the newest
    ``updated_at`` seen if that is later or absent); ``etag`` is the ETag of the repository's fixed
    first page. An idle repository costs one conditional request and no quota (a 304).
    """

    def __init__(self, name: str, config: GitHubSource, context: ConnectorContext) -> None:
        self.name = name
        self.config = config
        token = config.token
        policy = replace(context.policy, timeout=config.timeout.total_seconds())
        self.http = HttpClient(
            source=name,
            base_url=config.url,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": _API_VERSION,
            },
            secrets=config.secrets(),
            policy=policy,
            ca_bundle=config.ca_bundle,
            session=context.session,
            sleep=context.sleep,
            stop=context.stop,
        )
        self._uncharged = 0
        """Requests GitHub does not charge to the primary limit (``GET /rate_limit``)."""

    # -- counters ---------------------------------------------------------------------------

    @property
    def requests(self) -> int:
        """Requests sent so far (retries and 304s included)."""
        return self.http.request_count

    @property
    def quota_requests(self) -> int:
        """Requests that cost primary quota: authenticated 304s are free on GitHub."""
        return self.http.request_count - self.http.not_modified - self._uncharged

    # -- check ------------------------------------------------------------------------------

    def check(self) -> None:
        """``GET /rate_limit``: proves the token without spending primary quota."""
        before = self.http.request_count
        self.http.get_json("rate_limit")
        self._uncharged += self.http.request_count - before

    # -- fetch ------------------------------------------------------------------------------

    def fetch(
        self,
        cursor: Mapping[str, Any] | None,
        *,
        full: bool,
        census: bool,
        rules: Sequence[RuleConfig],
    ) -> Iterator[Page]:
        """Yield one page per listing page; the last page carries the cursor (and the census).

        Every repository is scanned serially. ``full`` or ``census`` lists every repository from
        the top (the listing is the cheapest id census GitHub offers: there is no ids-only REST
        endpoint); otherwise each repository is gated by ``If-None-Match`` and read only down to
        ``since − overlap``. A repository answering 404/403/410 as a whole is reported as
        visibility lost after the others were read; nothing is retired then (no census, no cursor).
        """
        previous = self._repo_cursors(cursor)
        repos = self._repos(rules)
        seen: dict[str, datetime] = {}
        scans: dict[str, _RepoScan] = {}
        lost: list[str] = []
        whole = full or census
        for repo, in_scope in repos:
            prior = None if full else previous.get(repo)
            scan = _RepoScan(since=prior.get("since") if prior else None, etag=prior.get("etag") if prior else None)
            try:
                yield from self._scan_repo(repo, in_scope, prior, whole, scan, seen)
            except _RepoGone as gone:
                lost.append(f"{repo} ({gone.reason})")
                continue
            scans[repo] = scan
        if lost:
            raise VisibilityLostError(
                self.name, f"repository not visible any more: {', '.join(lost)}; nothing was retired"
            )
        new_cursor: dict[str, Any] = {
            "v": 1,
            "base": self.http.base_url,
            "repos": {repo: {"since": s.since, "etag": s.etag} for repo, s in scans.items()},
        }
        ids = frozenset(i for s in scans.values() for i in s.ids) if whole else None
        yield Page(items=(), cursor=new_cursor, census=ids)

    def _repo_cursors(self, cursor: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
        """The per-repository cursor entries, or nothing if the cursor is foreign or malformed."""
        if not isinstance(cursor, Mapping) or cursor.get("base") not in (None, self.http.base_url):
            return {}
        repos = cursor.get("repos")
        if not isinstance(repos, Mapping):
            return {}
        return {str(k).lower(): dict(v) for k, v in repos.items() if isinstance(v, Mapping)}

    def _repos(self, rules: Sequence[RuleConfig]) -> list[tuple[str, bool]]:
        """Configured repositories (in scope), then those only a rule names (out of scope)."""
        ordered: dict[str, bool] = {}
        for repo in self.config.repos:
            ordered.setdefault(repo.lower(), True)
        for rule in rules:
            named = getattr(rule, "repo", None)
            if isinstance(named, str) and _REPO.match(named) and rule.source == self.name:
                ordered.setdefault(named.lower(), False)
        return list(ordered.items())

    def _scan_repo(
        self,
        repo: str,
        in_scope: bool,
        prior: Mapping[str, Any] | None,
        whole: bool,
        scan: _RepoScan,
        seen: dict[str, datetime],
    ) -> Iterator[Page]:
        """List one repository newest-first, stopping at ``since − overlap`` unless ``whole``."""
        since = _parse_time(prior.get("since")) if prior else None
        threshold = since - self.config.overlap if since is not None and not whole else None
        etag = prior.get("etag") if prior and not whole else None
        path = f"repos/{repo}/issues"
        params: dict[str, str | int] | None = dict(_GATE_QUERY)
        headers: dict[str, str] = {}
        if threshold is not None and not etag:
            # A cursor without an ETag (a server or proxy that sends none): let GitHub filter.
            params = {**_GATE_QUERY, "since": _format_time(threshold)}
        elif etag:
            headers["If-None-Match"] = str(etag)
        url: str | None = path
        first = True
        for _ in range(_MAX_PAGES):
            if url is None:
                return
            response = self.http.request(
                "GET", url, params=params, headers=headers, shape=_ISSUE_LIST, accept=(403, 404, 410)
            )
            if response.status in (403, 404, 410):
                raise _RepoGone(_gone_reason(response.status))
            if response.not_modified:
                return  # nothing changed: cursor entry and ETag stay as they were, no quota spent
            body = response.json_body
            if not isinstance(body, list):
                raise TransientError(self.name, f"{repo}: the issue list is not a JSON array")
            if first:
                # After a ``since`` query this ETag belongs to another URL: the next pass's gate then
                # answers 200 once (what the ``since`` query would have cost) and stores the right one.
                scan.etag = response.headers.get("ETag") or None
                scan.since = _high_water(response.headers.get("Date"), body, scan.since)
                first = False
            items: list[WorkItem] = []
            older = False
            for raw in body:
                if not isinstance(raw, dict):
                    continue
                if threshold is not None:
                    # Newest first: a changed repository's page is mostly older issues. Judge them
                    # by their own timestamp before mapping (90 of 100 mapped for nothing before).
                    stamp = _parse_time(raw.get("updated_at"))
                    if stamp is not None and stamp < threshold:
                        older = True
                        continue
                item = to_work_item(raw, self.name, repo=repo, in_scope=in_scope)
                if item is None:
                    continue
                if threshold is not None and item.updated_at < threshold:
                    older = True
                    continue
                scan.ids.add(item.id)
                before = seen.get(item.id)
                if before is not None and before >= item.updated_at:
                    continue  # offset paging repeats an item updated mid-scan
                seen[item.id] = item.updated_at
                items.append(item)
            if items:
                yield Page(items=tuple(items))
            if older:
                return
            url = response.next_link()
            params, headers = None, {}
        raise TransientError(self.name, f"{repo}: more than {_MAX_PAGES} pages; the Link header loops")

    # -- publish ----------------------------------------------------------------------------

    def publish(self, write: PlannedWrite) -> None:
        """One write-back: the marked body block, or one label added or removed."""
        repo, number = _parse_key(write.target)
        issue = f"repos/{repo}/issues/{number}"
        if write.kind == "body_block":
            current = self.http.get_json(issue)
            body = current.get("body") if isinstance(current, dict) else None
            new_body = replace_block(body if isinstance(body, str) else "", write.value)
            if new_body != (body or ""):
                self.http.request("PATCH", self._same_host(current, issue), json_body={"body": new_body})
        elif write.kind == "add_label":
            self.http.request("POST", f"{issue}/labels", json_body={"labels": [write.value]})
        elif write.kind == "remove_label":
            # 404: the label is already off the issue (or never existed): the goal is met.
            self.http.request("DELETE", f"{issue}/labels/{quote(write.value, safe='')}", accept=(404,))
        else:
            raise CompatibilityError(self.name, f"GitHub cannot carry out a {write.kind!r} write")

    def _same_host(self, payload: Any, fallback: str) -> str:
        """The issue's own API URL (it follows a transfer) if it is on our API base, else ``fallback``."""
        url = payload.get("url") if isinstance(payload, dict) else None
        if isinstance(url, str) and url.startswith(self.http.base_url + "/"):
            return url
        return fallback


class _RepoGone(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _gone_reason(status: int) -> str:
    reasons = {403: "HTTP 403: access refused", 404: "HTTP 404: not found", 410: "HTTP 410: issues disabled"}
    return reasons[status]


# -- mapping (pure) ------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_work_item(raw: Mapping[str, Any], source: str, *, repo: str, in_scope: bool = True) -> WorkItem | None:
    """Map one issue or pull request of ``/repos/{o}/{r}/issues`` to a ``WorkItem``.

    Never raises on odd payloads: a value we cannot interpret is named in ``unknown_fields``
    (and the state becomes ``unknown`` when it is the state itself). Only an item with neither
    ``node_id`` nor ``id`` (nothing to identify it by) is skipped (``None``).
    """
    unknown: list[str] = []
    node_id = raw.get("node_id")
    raw_id = raw.get("id")
    if isinstance(node_id, str) and node_id:
        item_id = node_id
    elif isinstance(raw_id, int | str) and str(raw_id):
        item_id = str(raw_id)
        unknown.append("node_id")
    else:
        return None
    container = _container(raw.get("repository_url")) or repo.lower()
    number = raw.get("number")
    if not isinstance(number, int):
        unknown.append("number")
    key = f"{container}#{number if isinstance(number, int) else '?'}"
    pr = raw.get("pull_request")
    is_pr = "pull_request" in raw
    kind = ItemKind.PULL_REQUEST if is_pr else ItemKind.ISSUE
    updated_at = _parse_time(raw.get("updated_at"))
    created_at = _parse_time(raw.get("created_at"))
    closed_at = _parse_time(raw.get("closed_at"))
    if updated_at is None:
        unknown.append("updated_at")
        updated_at = created_at or _EPOCH
    state_value = raw.get("state")
    reason = raw.get("state_reason")
    if reason is not None and not isinstance(reason, str):
        reason = repr(reason)  # drift (a list, a number): no known reason matches it, so state unknown
    done_at: datetime | None = None
    excluded = False
    if state_value == "open":
        state = State.TODO
        status_name = "open"
    elif state_value == "closed" and is_pr:
        merged_at = _parse_time(pr.get("merged_at")) if isinstance(pr, dict) else None
        if merged_at is not None:
            state, done_at, status_name = State.DONE, merged_at, "merged"
        else:
            # Closed without merging: the work was dropped, like an issue closed as not planned.
            state, excluded, status_name = State.DONE, True, "closed (unmerged)"
    elif state_value == "closed" and reason in _DONE_REASONS:
        state, done_at, status_name = State.DONE, closed_at, "closed (completed)"
        if closed_at is None:
            unknown.append("closed_at")
    elif state_value == "closed" and reason in _EXCLUDED_REASONS:
        state, excluded, status_name = State.DONE, True, f"closed ({reason})"
    elif state_value == "closed":
        state, status_name = State.UNKNOWN, f"closed ({reason})"
        unknown.append("state_reason")
    else:
        state, status_name = State.UNKNOWN, str(state_value)
        unknown.append("state")
    labels = _labels(raw.get("labels"), unknown)
    milestone = raw.get("milestone")
    milestone_title = milestone.get("title") if isinstance(milestone, dict) else None
    if milestone is not None and not isinstance(milestone_title, str):
        unknown.append("milestone")
        milestone_title = None
    issue_type = raw.get("type")
    type_name = issue_type.get("name") if isinstance(issue_type, dict) else None
    title = raw.get("title")
    url = raw.get("html_url")
    return WorkItem(  # by position, in ``WorkItem._fields`` order (see ``syncer.model.WorkItem``)
        source,
        item_id,  # id
        key,
        title if isinstance(title, str) else "",  # title
        url if isinstance(url, str) else "",  # url
        kind,
        state,
        updated_at,
        container,
        type_name if isinstance(type_name, str) else "",  # issue_type
        created_at,
        done_at,
        excluded,
        reason if isinstance(reason, str) else None,  # resolution
        None,  # points: GitHub has none
        labels,
        (),  # components: GitHub has none
        milestone_title,  # milestone
        (),  # fix_versions: GitHub has none
        _issue_key(raw.get("parent_issue_url")),  # parent_key
        None,  # parent_id: linked by key afterwards (Store.link_parents)
        status_name,
        in_scope,
        tuple(unknown),  # unknown_fields
    )


def _labels(value: Any, unknown: list[str]) -> tuple[str, ...]:
    """Label names; the schema allows plain strings as well as label objects."""
    if value is None:
        return ()
    if not isinstance(value, list):
        unknown.append("labels")
        return ()
    names: list[str] = []
    for label in value:
        name = label.get("name") if isinstance(label, dict) else label
        if isinstance(name, str):
            names.append(name)
        elif "labels" not in unknown:
            unknown.append("labels")
    return tuple(names)


def _container(repository_url: Any) -> str | None:
    """``owner/repo`` (lower-case) from ``repository_url``: the repo the issue is in *now*."""
    return _repo_of(repository_url) if isinstance(repository_url, str) else None


@functools.lru_cache(maxsize=1024)
def _repo_of(repository_url: str) -> str | None:
    """Every issue of a page names the same repository URL: parsed once, not 100k times."""
    found = _REPO_URL.search(repository_url)
    return f"{found.group(1)}/{found.group(2)}".lower() if found else None


def _issue_key(url: Any) -> str | None:
    """``owner/repo#n`` from an issue API URL (``parent_issue_url`` of a sub-issue)."""
    if not isinstance(url, str):
        return None
    found = _ISSUE_URL.search(url)
    return f"{found.group(1)}/{found.group(2)}#{found.group(3)}".lower() if found else None


def _parse_key(target: str) -> tuple[str, int]:
    """``acme/okrs#4`` (or ``acme/okrs#4:body`` as ``GitHubPublish.target()`` writes it)."""
    found = _KEY.match(target.strip())
    if not found:
        raise ValueError(f"not a GitHub issue reference (owner/repo#number): {target!r}")
    return found.group(1), int(found.group(2))


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _format_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _high_water(date_header: str | None, body: list[Any], previous: str | None) -> str | None:
    """The next ``since``: the server's ``Date`` of the first page, or the newest ``updated_at``
    on it when that is later (a skewed front end) or there is no usable ``Date``. Never the local
    clock, and never behind the previous value."""
    candidates: list[datetime] = []
    if date_header:
        try:
            stamped = email.utils.parsedate_to_datetime(date_header)
        except (TypeError, ValueError):
            stamped = None
        if stamped is not None:
            candidates.append(stamped if stamped.tzinfo else stamped.replace(tzinfo=UTC))
    for raw in body[:1] if body else []:
        updated = _parse_time(raw.get("updated_at")) if isinstance(raw, dict) else None
        if updated is not None:
            candidates.append(updated)
    old = _parse_time(previous)
    if old is not None:
        candidates.append(old)
    return _format_time(max(candidates)) if candidates else previous


def replace_block(body: str, content: str) -> str:
    """``body`` with the text between the okrsync markers replaced by ``content``.

    The block is appended (after a blank line) when the markers are absent. Everything outside
    the block is kept byte for byte: line endings (the block uses the body's own: CRLF if the
    body has CRLF), unicode, trailing text. With a stray start marker and no end, the block is
    appended rather than swallowing the text after the stray marker.
    """
    newline = "\r\n" if "\r\n" in body else "\n"
    inner = newline.join(content.strip("\r\n").splitlines())
    block = f"{_MARK_START}{newline}{inner}{newline}{_MARK_END}"
    end = body.find(_MARK_END)
    start = body.rfind(_MARK_START, 0, end) if end != -1 else -1
    if start != -1 and end != -1:
        return body[:start] + block + body[end + len(_MARK_END) :]
    if not body:
        return block
    if body.endswith(newline * 2):
        separator = ""
    elif body.endswith(newline):
        separator = newline
    else:
        separator = newline * 2
    return body + separator + block


def _connector_factory(name: str, config: SourceConfig, context: ConnectorContext) -> GitHubConnector:
    if not isinstance(config, GitHubSource):
        raise TypeError(f"{name}: not a GitHub source config")
    return GitHubConnector(name, config, context)


PLUGIN = ConnectorPlugin(
    type="github",
    source_model=GitHubSource,
    rule_model=GitHubRule,
    publish_model=GitHubPublish,
    factory=_connector_factory,
)
