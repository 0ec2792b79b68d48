"""A sandbox GitHub REST API on 127.0.0.1: seeded issues and pull requests, served faithfully.

What makes it faithful enough to test a connector against (shapes follow GitHub's OpenAPI
description; a test validates them against ``../shared/specs/github``):

- ``GET /repos/{o}/{r}/issues`` with ``state/sort/direction/since/per_page (≤ 100)/page/labels/
  milestone``, pull requests in the same list (``pull_request`` key), ``Link`` headers with
  ``next/last/prev/first``, a strong ``ETag`` over the page body and ``If-None-Match`` → 304
  that costs no quota;
- ``x-ratelimit-limit/remaining/used/reset/resource`` on every answer, decremented per non-304
  request; knobs for an exhausted primary limit (403 "API rate limit exceeded") and the secondary
  limit (403 "You have exceeded a secondary rate limit", with or without ``retry-after``);
- tokens (``Authorization: Bearer|token``; 401 "Bad credentials" otherwise), renamed repositories
  (301 to ``/repositories/{id}/…``), transferred issues (301), deleted issues (410), revoked
  repositories (404);
- write endpoints: ``PATCH`` an issue, add/remove labels, ``POST`` an issue.

Data is kept per repository in a list sorted by ``updated_at``, so a page of the list the
connector reads (``state=all&sort=updated``) is O(page) however many issues there are.

Timestamps are relative to ``now`` (the demo looks alive any day) and move forward with a data
clock (``now`` + elapsed time, strictly increasing per mutation) that the ``Date`` header reports.
"""

from __future__ import annotations

import bisect
import email.utils
import hashlib
import math
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from operator import attrgetter
from typing import Any
from urllib.parse import unquote, urlencode

from syncer.model import ItemKind, State, WorkItem
from syncer.sandbox.server import Reply, Request, SandboxServer, encode_json

__all__ = ["GitHubApp", "cycle_of", "start_github_sandbox"]

_DOCS = "https://docs.github.com/rest"
_LIMIT = 5000
_USERS = ("mara-lee", "dan-okafor", "priya-k", "tomasz-w", "ana-b", "lee-chen", "sam-r")
_LABEL_COLORS = {
    "onboarding": ("0e8a16", "New-user journey"),
    "bug": ("d73a4a", "Something isn't working"),
    "customer": ("fbca04", "Reported by a customer"),
    "chore": ("cfd3d7", "Maintenance"),
    "dependencies": ("0366d6", "Dependency updates"),
    "perf": ("5319e7", "Performance"),
}
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def cycle_of(now: datetime) -> tuple[str, date, date]:
    """The calendar quarter containing ``now``: (``2026-Q4``, first day, last day)."""
    quarter = (now.month - 1) // 3 + 1
    start = date(now.year, 3 * (quarter - 1) + 1, 1)
    next_start = date(now.year + 1, 1, 1) if quarter == 4 else date(now.year, 3 * quarter + 1, 1)
    return f"{now.year}-Q{quarter}", start, next_start - timedelta(days=1)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    v = value.astimezone(UTC)
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (v.year, v.month, v.day, v.hour, v.minute, v.second)  # noqa: UP031


def _sec(value: datetime) -> datetime:
    return value.replace(microsecond=0)


@dataclass(slots=True)
class _Issue:
    id: int
    node_id: str
    number: int
    title: str
    body: str | None
    state: str
    state_reason: str | None
    labels: list[str]
    milestone: int | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    user: str
    assignees: list[str] = field(default_factory=list)
    is_pr: bool = False
    merged_at: datetime | None = None
    type: str | None = None
    parent: str | None = None
    """``owner/repo#n`` of the sub-issue parent, if any."""
    comments: int = 0


@dataclass(slots=True)
class _Milestone:
    id: int
    number: int
    title: str
    created_at: datetime
    due_on: datetime | None
    state: str = "open"


@dataclass
class _Repo:
    id: int
    name: str
    """``owner/name`` as created (its current name after a rename)."""
    created_at: datetime
    issues: dict[int, _Issue] = field(default_factory=dict)
    order: list[tuple[datetime, int]] = field(default_factory=list)
    """``(updated_at, number)`` ascending: the index every ``sort=updated`` page is cut from."""
    labels: dict[str, str] = field(default_factory=dict)
    """Lower-case name → name as created."""
    milestones: dict[int, _Milestone] = field(default_factory=dict)
    moved: dict[int, tuple[int, int]] = field(default_factory=dict)
    """Transferred issues: old number → (repository id, new number)."""
    deleted: set[int] = field(default_factory=set)
    next_number: int = 1
    revoked: bool = False

    def index(self, issue: _Issue) -> None:
        bisect.insort(self.order, (issue.updated_at, issue.number))

    def unindex(self, issue: _Issue) -> None:
        at = bisect.bisect_left(self.order, (issue.updated_at, issue.number))
        if at < len(self.order) and self.order[at] == (issue.updated_at, issue.number):
            del self.order[at]


class GitHubApp:
    """The sandbox GitHub: an ``App`` for ``SandboxServer`` (``handle``) with ``control`` knobs.

    ``scenario="demo"``: repos ``acme/web``, ``acme/api``, ``acme/okrs`` with about 40 issues and
    10 pull requests (see ``_seed_demo``). ``scenario="bench"``: ``size`` issues and pull requests
    spread over ``repos`` (default ten ``bench/repo-NN``).
    """

    def __init__(
        self,
        scenario: str = "demo",
        size: int = 0,
        repos: Iterable[str] | None = None,
        now: datetime | None = None,
        seed: int = 1,
        tokens: Iterable[str] = ("tok",),
        rate_limit: int = _LIMIT,
    ) -> None:
        if scenario not in ("demo", "bench"):
            raise ValueError(f"unknown scenario {scenario!r} (demo or bench)")
        self.scenario = scenario
        self.size = size
        self.seed = seed
        self.bench_repos = tuple(repos) if repos is not None else tuple(f"bench/repo-{i:02d}" for i in range(10))
        self.now = _sec((now or datetime.now(UTC)).astimezone(UTC))
        self.tokens = set(tokens)
        self.rate_limit = rate_limit
        self.base_url = ""
        """The server's URL (set by ``start_github_sandbox``): ``truth()`` builds ``html_url`` from it."""
        self._t0 = time.monotonic()
        self._last = self.now
        self._lock = threading.RLock()
        self.cycle_name, self.cycle_start, self.cycle_end = cycle_of(self.now)
        self._load()

    # -- seeding ----------------------------------------------------------------------------

    def _load(self) -> None:
        """(Re)build the data from the seed; quota and knobs back to normal."""
        self._random = random.Random(self.seed)
        self.repos: dict[str, _Repo] = {}
        self._by_id: dict[int, _Repo] = {}
        self._aliases: dict[str, int] = {}
        self._next_id = 1_000_000_000
        self._quota_remaining = self.rate_limit
        self._quota_reset = time.time() + 3600
        self._secondary: dict[str, Any] = {}
        self._version = 0
        """Bumped by every mutation: invalidates cached aggregates (milestone counts)."""
        self._counts: dict[tuple[int, int], tuple[int, int, int]] = {}
        self._encoded: OrderedDict[tuple[int, int], tuple[tuple[Any, ...], bytes]] = OrderedDict()
        """Listed issues' JSON by (repository id, number), with what it was rendered from."""
        if self.scenario == "demo":
            self._seed_demo()
        else:
            self._seed_bench(self.size, self.bench_repos)

    def _wall(self) -> datetime:
        return _sec(self.now + timedelta(seconds=time.monotonic() - self._t0))

    def _stamp(self) -> datetime:
        """A mutation time: the data clock, strictly after every earlier mutation."""
        stamp = max(self._wall(), self._last + timedelta(seconds=1))
        self._last = stamp
        return stamp

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _node_id(self, prefix: str) -> str:
        return prefix + "_kwDO" + "".join(self._random.choice(_ALPHABET) for _ in range(12))

    def _add_repo(self, name: str, created_at: datetime) -> _Repo:
        repo = _Repo(id=self._new_id(), name=name, created_at=created_at)
        self.repos[name.lower()] = repo
        self._by_id[repo.id] = repo
        return repo

    def _add_label(self, repo: _Repo, name: str) -> str:
        return repo.labels.setdefault(name.lower(), name)

    def _add_milestone(self, repo: _Repo, title: str) -> _Milestone:
        for existing in repo.milestones.values():
            if existing.title == title:
                return existing
        number = len(repo.milestones) + 1
        due = datetime.combine(self.cycle_end, datetime.min.time(), UTC) + timedelta(hours=7)
        milestone = _Milestone(self._new_id(), number, title, _sec(self.now - timedelta(days=80)), due)
        repo.milestones[number] = milestone
        return milestone

    def _put(self, repo: _Repo, issue: _Issue) -> _Issue:
        self._version += 1
        repo.issues[issue.number] = issue
        repo.next_number = max(repo.next_number, issue.number + 1)
        for label in issue.labels:
            self._add_label(repo, label)
        repo.index(issue)
        return issue

    def _seed_demo(self) -> None:
        rng = self._random
        hi = self.now - timedelta(hours=1)
        q_start = datetime.combine(self.cycle_start, datetime.min.time(), UTC)
        lo = min(q_start, hi - timedelta(days=1))
        created_floor = lo - timedelta(days=45)

        def between(a: datetime, b: datetime) -> datetime:
            return _sec(a + (b - a) * rng.random()) if b > a else _sec(a)

        def make(
            repo: _Repo,
            title: str,
            labels: list[str],
            *,
            state: str = "open",
            reason: str | None = None,
            milestone: bool = False,
            pr: bool = False,
            merged: bool = False,
            assignee: bool = False,
            body: str | None = None,
            old: bool = False,
            number: int | None = None,
            issue_type: str | None = None,
        ) -> _Issue:
            if old:  # closed in an earlier quarter and not touched since
                created = between(created_floor - timedelta(days=60), created_floor)
                closed: datetime | None = between(created, created_floor)
                updated = closed
            else:
                created = between(created_floor, lo + (hi - lo) / 2)
                closed = between(max(created, lo), hi) if state == "closed" else None
                updated = between(closed or created, hi)
            ms = self._add_milestone(repo, self.cycle_name).number if milestone else None
            issue = _Issue(
                id=self._new_id(),
                node_id=self._node_id("PR" if pr else "I"),
                number=number or repo.next_number,
                title=title,
                body=body if body is not None else f"{title}.\n\nSee the discussion in the team channel.",
                state=state,
                state_reason=(reason or ("completed" if state == "closed" and not pr else None)),
                labels=labels,
                milestone=ms,
                created_at=created,
                updated_at=updated or created,
                closed_at=closed,
                user=rng.choice(_USERS),
                assignees=[rng.choice(_USERS)] if assignee else [],
                is_pr=pr,
                merged_at=closed if pr and merged else None,
                type=issue_type,
                comments=rng.randint(0, 9),
            )
            return self._put(repo, issue)

        start = self.now - timedelta(days=400)
        web = self._add_repo("acme/web", start)
        api = self._add_repo("acme/api", start)
        okrs = self._add_repo("acme/okrs", start)
        for repo in (web, api):
            for label in _LABEL_COLORS:
                self._add_label(repo, label)
            self._add_milestone(repo, self.cycle_name)
        for label in ("objective", "okr"):
            self._add_label(okrs, label)

        # acme/web: the onboarding revamp (8 issues, 3 done), customer bugs, PRs, unaligned work.
        onboarding = [
            ("Onboarding: welcome checklist on first login", "closed"),
            ("Onboarding: shorten the sign-up form to three fields", "closed"),
            ("Onboarding: guided tour of the dashboard", "closed"),
            ("Onboarding: sample project for new workspaces", "open"),
            ("Onboarding: invite teammates step", "open"),
            ("Onboarding: progress bar in the setup wizard", "open"),
            ("Onboarding: empty states with next actions", "open"),
            ("Onboarding: email nudge after 3 idle days", "open"),
        ]
        for i, (title, state) in enumerate(onboarding):
            make(web, title, ["onboarding"], state=state, assignee=i == 3, issue_type="Feature")
        web_bugs = [
            ("Checkout fails when the cart has 50+ items", "closed", None),
            ("Date picker shows the wrong week start for de-DE", "closed", None),
            ("Invoice PDF cuts off long company names", "closed", None),
            ("Session expires during long form entry", "open", "reopened"),
            ("Search results flicker on Safari", "open", None),
        ]
        for title, state, reason in web_bugs:
            make(web, title, ["bug", "customer"], state=state, reason=reason, milestone=True, issue_type="Bug")
        make(web, "Old: broken avatar upload", ["bug"], state="closed", old=True)
        make(web, "Old: typo on pricing page", [], state="closed", old=True)
        make(web, "Old: footer links 404", ["bug"], state="closed", old=True)
        make(web, "Refactor the design-token build", [])
        make(web, "Try the new bundler in CI", [])
        make(web, "Rotate the staging TLS certificate", ["chore"])
        web_prs = [
            ("Add the welcome checklist component", ["onboarding"], True, True),
            ("Sign-up form: drop the company field", ["onboarding"], True, True),
            ("Fix checkout pagination for large carts", ["bug"], True, True),
            ("Locale-aware week start in the date picker", [], True, True),
            ("Guided tour: first draft", ["onboarding"], False, False),
            ("Experiment: server-side rendering for the dashboard", [], True, False),
        ]
        for title, labels, closed, merged in web_prs:
            make(web, title, labels, state="closed" if closed else "open", pr=True, merged=merged)

        # acme/api: customer bugs (one closed as not planned), perf, unaligned, PRs.
        api_bugs = [
            ("Webhook retries flood the customer endpoint", "closed", None),
            ("Rate-limit headers missing on 429", "closed", None),
            ("CSV export drops rows with emoji", "closed", None),
            ("Support SAML for the legacy tenant", "closed", "not_planned"),
            ("Pagination returns duplicates under load", "open", None),
            ("Timezone offset wrong in audit log", "open", None),
            ("Bulk update times out for 10k records", "open", None),
        ]
        for title, state, reason in api_bugs:
            make(api, title, ["bug", "customer"], state=state, reason=reason, milestone=True, issue_type="Bug")
        make(api, "Cache the permission lookup per request", ["perf"])
        make(api, "Cut p95 of /search below 300 ms", ["perf"], assignee=True)
        make(api, "Document the internal metrics endpoint", [])
        make(api, "Remove the v1 auth fallback", [], state="closed")
        make(api, "Bump the ORM to the next minor", ["dependencies"])
        make(api, "Old: flaky integration test", ["bug"], state="closed", old=True)
        make(api, "Old: stale OpenAPI examples", [], state="closed", old=True)
        make(api, "Old: log noise on startup", [], state="closed", old=True)
        moved = make(api, "Onboarding: import contacts from CSV", ["onboarding"], issue_type="Feature")
        api_prs = [
            ("Retry webhooks with backoff", ["bug"], True, True),
            ("Add rate-limit headers to 429 answers", [], True, True),
            ("Stream CSV exports", [], False, False),
            ("Parallel bulk update", ["perf"], False, False),
        ]
        for title, labels, closed, merged in api_prs:
            make(api, title, labels, state="closed" if closed else "open", pr=True, merged=merged)
        # The import issue was filed against the API and moved to the web app (same node id).
        self._transfer(api, moved.number, web, stamp=between(moved.updated_at, hi))

        # acme/okrs: where progress is published (#4 has other text around the marked block).
        quarter = self.cycle_name.split("-")[1]
        make(okrs, "Objective: grow engagement and retention", ["objective"])
        make(okrs, "Objective: make onboarding effortless", ["objective"])
        make(okrs, "Objective: fewer customer-facing bugs", ["objective"])
        make(
            okrs,
            f"{quarter} OKR progress",
            ["okr"],
            number=4,
            body=(
                f"Progress of our {quarter} OKRs, updated by okrsync.\r\n\r\n"
                "Owners: please comment below rather than editing the block — it is rewritten.\r\n\r\n"
                "Résumé: see the planning doc ✨\r\n"
            ),
        )
        make(okrs, "Retro notes for last quarter", [], state="closed")

    def _seed_bench(self, size: int, names: tuple[str, ...]) -> None:
        rng = self._random
        hi = self.now - timedelta(hours=1)
        span = 180 * 86400
        repos = [self._add_repo(name, self.now - timedelta(days=800)) for name in names]
        label_names = list(_LABEL_COLORS)
        for repo in repos:
            for label in label_names:
                self._add_label(repo, label)
            self._add_milestone(repo, self.cycle_name)
        # Creation order = number order; updated_at afterwards.
        for n in range(size):
            repo = repos[n % len(repos)]
            created = _sec(hi - timedelta(seconds=span * (1 - n / max(size, 1)) + rng.random() * 3600))
            updated = _sec(created + (hi - created) * rng.random() ** 3)
            is_pr = rng.random() < 0.15
            closed = rng.random() < 0.6
            reason: str | None = None
            merged_at = None
            if closed and not is_pr:
                roll = rng.random()
                reason = "completed" if roll < 0.85 else ("not_planned" if roll < 0.95 else "duplicate")
            if closed and is_pr and rng.random() < 0.8:
                merged_at = updated
            labels = rng.sample(label_names, rng.choice((0, 1, 1, 2, 3)))
            self._put(
                repo,
                _Issue(
                    id=self._new_id(),
                    node_id=f"{'PR' if is_pr else 'I'}_kwDOBENCH{n:09d}",
                    number=repo.next_number,
                    title=f"Bench item {n}",
                    body=None,
                    state="closed" if closed else "open",
                    state_reason=reason,
                    labels=labels,
                    milestone=1 if rng.random() < 0.4 else None,
                    created_at=created,
                    updated_at=updated,
                    closed_at=updated if closed else None,
                    user=_USERS[n % len(_USERS)],
                    is_pr=is_pr,
                    merged_at=merged_at,
                ),
            )

    # -- mutations --------------------------------------------------------------------------

    def _touch(self, repo: _Repo, issue: _Issue, stamp: datetime | None = None) -> None:
        self._version += 1
        repo.unindex(issue)
        issue.updated_at = stamp or self._stamp()
        repo.index(issue)

    def _set_state(
        self, issue: _Issue, state: str | None, reason: str | None, merged: bool | None, stamp: datetime
    ) -> None:
        if state is None and reason is None and merged is None:
            return
        if state == "open":
            was_closed = issue.state == "closed"
            issue.state, issue.closed_at = "open", None
            issue.state_reason = "reopened" if was_closed and not issue.is_pr else None
            issue.merged_at = None
        elif state == "closed" or reason is not None or merged:
            if issue.state != "closed":
                issue.closed_at = stamp
            issue.state = "closed"
            if issue.is_pr:
                issue.merged_at = issue.closed_at if merged else None
                issue.state_reason = None
            else:
                issue.state_reason = reason or "completed"

    def _transfer(self, source: _Repo, number: int, target: _Repo, stamp: datetime | None = None) -> _Issue:
        issue = source.issues.pop(number)
        source.unindex(issue)
        title = source.milestones[issue.milestone].title if issue.milestone in source.milestones else None
        issue.number = target.next_number
        issue.milestone = next((m.number for m in target.milestones.values() if m.title == title), None)
        self._put(target, issue)
        source.moved[number] = (target.id, issue.number)
        self._touch(target, issue, stamp)
        return issue

    _ACTIONS = frozenset(
        {"reset", "quota", "secondary", "revoke", "restore", "rename_repo", "update", "create", "delete", "transfer"}
    )

    def control(self, action: str, body: Any) -> Any:
        """Mutate data or inject rate limits (``POST /_sandbox/<action>`` over HTTP).

        Unknown action → ``KeyError`` (404 over HTTP); a missing argument, unknown repository or
        issue → ``ValueError`` (400).
        """
        if action not in self._ACTIONS:
            raise KeyError(action)
        try:
            return self._control(action, dict(body or {}))
        except KeyError as exc:
            raise ValueError(f"{action}: missing argument or no such issue: {exc}") from None

    def _control(self, action: str, args: dict[str, Any]) -> Any:
        with self._lock:
            if action == "reset":
                self._load()
                return {"ok": True}
            if action == "quota":
                self.rate_limit = int(args.get("limit", self.rate_limit))
                self._quota_remaining = int(args.get("remaining", self.rate_limit))
                self._quota_reset = time.time() + float(args.get("reset_in", 3600))
                return {"remaining": self._quota_remaining}
            if action == "secondary":
                self._secondary = {
                    "times": int(args.get("times", 1)),
                    "retry_after": args.get("retry_after"),
                    "status": int(args.get("status", 403)),
                }
                return {"ok": True}
            if action == "revoke":
                self._repo(args["repo"]).revoked = True
                return {"ok": True}
            if action == "restore":
                for repo in self.repos.values():
                    if "repo" not in args or repo is self._repo(args["repo"]):
                        repo.revoked = False
                return {"ok": True}
            if action == "rename_repo":
                repo = self._repo(args["repo"])
                target = str(args["to"])
                del self.repos[repo.name.lower()]
                self._aliases[repo.name.lower()] = repo.id
                repo.name = target
                self.repos[target.lower()] = repo
                return {"id": repo.id, "name": repo.name}
            if action == "update":
                repo = self._repo(args["repo"])
                issue = repo.issues[int(args["number"])]
                self._update(repo, issue, args)
                return self._summary(repo, issue)
            if action == "create":
                repo = self._repo(args["repo"])
                issue = self._create(repo, args)
                return self._summary(repo, issue)
            if action == "delete":
                repo = self._repo(args["repo"])
                number = int(args["number"])
                issue = repo.issues.pop(number)
                repo.unindex(issue)
                repo.deleted.add(number)
                self._version += 1
                return {"deleted": issue.node_id}
            if action == "transfer":
                source = self._repo(args["repo"])
                issue = self._transfer(source, int(args["number"]), self._repo(args["to"]))
                return self._summary(self._repo(args["to"]), issue)
        raise AssertionError(f"unhandled sandbox action {action}")  # pragma: no cover

    def _repo(self, name: str) -> _Repo:
        key = str(name).lower()
        if key in self.repos:
            return self.repos[key]
        if key in self._aliases:
            return self._by_id[self._aliases[key]]
        raise ValueError(f"no repository {name!r} in the sandbox")

    def _update(self, repo: _Repo, issue: _Issue, args: dict[str, Any]) -> None:
        stamp = self._stamp()
        if "title" in args:
            issue.title = str(args["title"])
        if "body" in args:
            issue.body = args["body"]
        if "labels" in args:
            issue.labels = [self._add_label(repo, str(x)) for x in args["labels"]]
        if "milestone" in args:
            title = args["milestone"]
            issue.milestone = self._add_milestone(repo, str(title)).number if title else None
        if "type" in args:
            issue.type = args["type"]
        if "parent" in args:
            issue.parent = args["parent"]
        self._set_state(issue, args.get("state"), args.get("state_reason"), args.get("merged"), stamp)
        self._touch(repo, issue, stamp)

    def _create(self, repo: _Repo, args: dict[str, Any]) -> _Issue:
        stamp = self._stamp()
        is_pr = bool(args.get("pull_request", False))
        issue = _Issue(
            id=self._new_id(),
            node_id=self._node_id("PR" if is_pr else "I"),
            number=repo.next_number,
            title=str(args.get("title", "New issue")),
            body=args.get("body"),
            state="open",
            state_reason=None,
            labels=[],
            milestone=None,
            created_at=stamp,
            updated_at=stamp,
            closed_at=None,
            user=str(args.get("user", _USERS[0])),
            is_pr=is_pr,
        )
        self._put(repo, issue)
        rest = {k: v for k, v in args.items() if k in ("labels", "milestone", "state", "state_reason", "merged",
                                                      "type", "parent")}
        if rest:
            self._update(repo, issue, rest)
        return issue

    def _summary(self, repo: _Repo, issue: _Issue) -> dict[str, Any]:
        return {
            "repo": repo.name,
            "number": issue.number,
            "node_id": issue.node_id,
            "key": f"{repo.name.lower()}#{issue.number}",
            "updated_at": _iso(issue.updated_at),
        }

    # -- truth ------------------------------------------------------------------------------

    def truth(
        self, source: str = "github", repos: Iterable[str] | None = None, in_scope: Iterable[str] | None = None
    ) -> list[WorkItem]:
        """The items okrsync should hold for ``repos`` (default: every visible repository).

        Computed from the sandbox's own records, not through any connector. ``in_scope`` names
        the configured repositories (default: all of ``repos``); others carry ``in_scope=False``.
        """
        with self._lock:
            chosen = [self._repo(r) for r in repos] if repos is not None else list(self.repos.values())
            scope = {self._repo(r).id for r in in_scope} if in_scope is not None else {r.id for r in chosen}
            items: list[WorkItem] = []
            for repo in chosen:
                if repo.revoked:
                    continue
                for issue in repo.issues.values():
                    items.append(self._truth_item(source, repo, issue, repo.id in scope))
            return items

    def _truth_item(self, source: str, repo: _Repo, issue: _Issue, in_scope: bool) -> WorkItem:
        excluded = False
        done_at = None
        if issue.state == "open":
            state = State.TODO
        elif issue.is_pr:
            state, excluded, done_at = State.DONE, issue.merged_at is None, issue.merged_at
        else:
            excluded = issue.state_reason in ("not_planned", "duplicate")
            state, done_at = State.DONE, (None if excluded else issue.closed_at)
        name = repo.name.lower()
        milestone = repo.milestones.get(issue.milestone) if issue.milestone else None
        return WorkItem(
            source=source,
            id=issue.node_id,
            key=f"{name}#{issue.number}",
            title=issue.title,
            url=f"{self.base_url}/{repo.name}/{'pull' if issue.is_pr else 'issues'}/{issue.number}",
            kind=ItemKind.PULL_REQUEST if issue.is_pr else ItemKind.ISSUE,
            state=state,
            updated_at=issue.updated_at,
            container=name,
            issue_type=issue.type or "",
            created_at=issue.created_at,
            done_at=done_at,
            excluded=excluded,
            resolution=issue.state_reason,
            labels=tuple(issue.labels),
            milestone=milestone.title if milestone else None,
            parent_key=issue.parent.lower() if issue.parent else None,
            in_scope=in_scope,
        )

    # -- HTTP -------------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        with self._lock:
            if not self.base_url:  # served without start_github_sandbox: learn our URL from the Host header
                self.base_url = self._base(request)
            reply = self._route(request)
            reply.headers.setdefault("Date", email.utils.format_datetime(self._wall(), usegmt=True))
            reply.headers.setdefault("X-GitHub-Api-Version-Selected", "2022-11-28")
            return reply

    def _base(self, request: Request) -> str:
        host = next((v for k, v in request.headers.items() if k.lower() == "host"), "127.0.0.1")
        return f"http://{host}"

    def _authorized(self, request: Request) -> bool:
        value = next((v for k, v in request.headers.items() if k.lower() == "authorization"), "")
        scheme, _, token = value.partition(" ")
        return scheme.lower() in ("bearer", "token") and token.strip() in self.tokens

    def _limits(self, spend: bool) -> dict[str, str]:
        if time.time() >= self._quota_reset:
            self._quota_remaining = self.rate_limit
            self._quota_reset = time.time() + 3600
        if spend and self._quota_remaining > 0:
            self._quota_remaining -= 1
        return {
            "x-ratelimit-limit": str(self.rate_limit),
            "x-ratelimit-remaining": str(self._quota_remaining),
            "x-ratelimit-used": str(self.rate_limit - self._quota_remaining),
            "x-ratelimit-reset": str(int(math.ceil(self._quota_reset))),
            "x-ratelimit-resource": "core",
        }

    @property
    def quota_remaining(self) -> int:
        return self._quota_remaining

    def _route(self, request: Request) -> Reply:
        parts = [unquote(p) for p in request.path.strip("/").split("/") if p]
        if len(parts) == 4 and parts[0] not in ("repos", "repositories") and parts[2] in ("issues", "pull"):
            return self._html(parts)
        if not self._authorized(request):
            return Reply(401, {"message": "Bad credentials", "documentation_url": _DOCS, "status": "401"})
        if parts == ["rate_limit"]:
            return self._rate_limit()
        self._limits(spend=False)  # a passed reset refills the quota first
        if self._quota_remaining <= 0:
            return Reply(
                403,
                {
                    "message": "API rate limit exceeded for user ID 1. If you reach out to GitHub Support "
                    "for help, please include the request ID 0000:0000:0000000:0000000:00000000.",
                    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
                    "status": "403",
                },
                self._limits(spend=False),
            )
        if self._secondary.get("times", 0) > 0:
            self._secondary["times"] -= 1
            headers = self._limits(spend=False)
            if self._secondary.get("retry_after") is not None:
                headers["retry-after"] = str(self._secondary["retry_after"])
            return Reply(
                self._secondary.get("status", 403),
                {
                    "message": "You have exceeded a secondary rate limit. Please wait a few minutes before "
                    "you try again. If you reach out to GitHub Support for help, please include the "
                    "request ID 0000:0000:0000000:0000000:00000000.",
                    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
                    "#about-secondary-rate-limits",
                    "status": str(self._secondary.get("status", 403)),
                },
                headers,
            )
        reply = self._dispatch(request, parts)
        reply.headers.update(self._limits(spend=reply.status != 304))
        return reply

    def _dispatch(self, request: Request, parts: list[str]) -> Reply:
        base = self._base(request)
        if parts == ["user"] and request.method == "GET":
            return Reply(200, self._user(base, "okrsync-bot", private=True))
        if len(parts) >= 2 and parts[0] == "repositories" and parts[1].isdigit():
            repo = self._by_id.get(int(parts[1]))
            rest = parts[2:]
            if repo is None:
                return _not_found()
        elif len(parts) >= 3 and parts[0] == "repos":
            key = f"{parts[1]}/{parts[2]}".lower()
            rest = parts[3:]
            if key not in self.repos:
                if key in self._aliases:
                    return self._moved(base, f"/repositories/{self._aliases[key]}", rest, request)
                return _not_found()
            repo = self.repos[key]
        else:
            return _not_found()
        if repo.revoked:
            return _not_found()
        return self._repo_route(request, base, repo, rest)

    def _repo_route(self, request: Request, base: str, repo: _Repo, rest: list[str]) -> Reply:
        method = request.method
        if not rest and method == "GET":
            return Reply(200, self._repository(base, repo))
        if rest == ["issues"] and method == "GET":
            return self._list(request, base, repo)
        if rest == ["issues"] and method == "POST":
            payload = request.json() or {}
            issue = self._create(repo, payload)
            return Reply(201, self._render(base, repo, issue))
        if rest == ["labels"] and method == "GET":
            return self._paged(request, base, [self._label(base, repo, n) for n in repo.labels.values()])
        if rest == ["milestones"] and method == "GET":
            return self._paged(request, base, [self._milestone(base, repo, m) for m in repo.milestones.values()])
        if len(rest) >= 2 and rest[0] == "issues" and rest[1].isdigit():
            number = int(rest[1])
            if number in repo.moved:
                target_id, new_number = repo.moved[number]
                return self._moved(base, f"/repositories/{target_id}", ["issues", str(new_number), *rest[2:]],
                                   request)
            if number in repo.deleted:
                return Reply(410, {"message": "This issue was deleted", "documentation_url": _DOCS,
                                   "status": "410"})
            found = repo.issues.get(number)
            if found is None:
                return _not_found()
            return self._issue_route(request, base, repo, found, rest[2:])
        return _not_found()

    def _issue_route(self, request: Request, base: str, repo: _Repo, issue: _Issue, rest: list[str]) -> Reply:
        method = request.method
        if not rest and method == "GET":
            return self._conditional(request, self._render(base, repo, issue), {})
        if not rest and method == "PATCH":
            payload = request.json() or {}
            args: dict[str, Any] = {}
            for name in ("title", "body", "state", "state_reason", "labels"):
                if name in payload:
                    args[name] = payload[name]
            if "labels" in args:
                args["labels"] = [x["name"] if isinstance(x, dict) else x for x in args["labels"]]
            if "milestone" in payload:
                number = payload["milestone"]
                args["milestone"] = repo.milestones[int(number)].title if number else None
            self._update(repo, issue, args)
            return Reply(200, self._render(base, repo, issue))
        if rest == ["labels"] and method == "GET":
            return Reply(200, [self._label(base, repo, n) for n in issue.labels])
        if rest == ["labels"] and method == "POST":
            payload = request.json()
            names = payload.get("labels", []) if isinstance(payload, dict) else payload
            added = [self._add_label(repo, str(n)) for n in names or []]
            known = {n.lower() for n in issue.labels}
            new = [n for n in added if n.lower() not in known]
            if new:
                issue.labels = issue.labels + new
                self._touch(repo, issue)
            return Reply(200, [self._label(base, repo, n) for n in issue.labels])
        if len(rest) == 2 and rest[0] == "labels" and method == "DELETE":
            name = rest[1].lower()
            if name not in {n.lower() for n in issue.labels}:
                return Reply(404, {"message": "Label does not exist", "documentation_url": _DOCS, "status": "404"})
            issue.labels = [n for n in issue.labels if n.lower() != name]
            self._touch(repo, issue)
            return Reply(200, [self._label(base, repo, n) for n in issue.labels])
        return _not_found()

    def _moved(self, base: str, prefix: str, rest: list[str], request: Request) -> Reply:
        query = urlencode([(k, v) for k, vs in request.query.items() for v in vs])
        location = f"{base}{prefix}" + ("/" + "/".join(rest) if rest else "") + (f"?{query}" if query else "")
        return Reply(
            301,
            {"message": "Moved Permanently", "url": location, "documentation_url": _DOCS},
            {"Location": location},
        )

    # -- listing ----------------------------------------------------------------------------

    def _list(self, request: Request, base: str, repo: _Repo) -> Reply:
        state = request.arg("state", "open") or "open"
        sort = request.arg("sort", "created") or "created"
        direction = request.arg("direction", "desc") or "desc"
        try:
            per_page = min(100, max(1, int(request.arg("per_page", "30") or 30)))
            page = max(1, int(request.arg("page", "1") or 1))
            since = _parse(request.arg("since"))
        except ValueError as exc:
            return Reply(422, {"message": "Validation Failed", "errors": [str(exc)], "documentation_url": _DOCS,
                               "status": "422"})
        labels = [x.strip().lower() for x in (request.arg("labels") or "").split(",") if x.strip()]
        milestone = request.arg("milestone")
        if state not in ("open", "closed", "all") or sort not in ("created", "updated", "comments") or (
            direction not in ("asc", "desc")
        ):
            return Reply(422, {"message": "Validation Failed", "documentation_url": _DOCS, "status": "422"})
        start = (page - 1) * per_page
        if sort == "updated" and state == "all" and not labels and milestone is None:
            # The connector's query: cut the page straight out of the updated_at index.
            order = repo.order
            floor = bisect.bisect_left(order, (since, -1)) if since else 0
            total = len(order) - floor
            if direction == "desc":
                hi = len(order) - start
                keys = order[max(floor, hi - per_page) : max(floor, hi)][::-1]
            else:
                keys = order[floor + start : min(len(order), floor + start + per_page)]
            chosen = [repo.issues[number] for _, number in keys]
        else:
            matching = [i for i in repo.issues.values() if self._keep(repo, i, state, since, labels, milestone)]
            if sort == "updated":
                matching.sort(key=lambda i: (i.updated_at, i.number))
            elif sort == "comments":
                matching.sort(key=lambda i: (i.comments, i.number))
            else:
                matching.sort(key=lambda i: i.number)
            if direction == "desc":
                matching.reverse()
            total = len(matching)
            chosen = matching[start : start + per_page]
        if page == 1:  # the gate: asked again every pass
            parts = [self._encoded_issue(base, repo, issue) for issue in chosen]
        else:  # a full pass's deeper pages: asked once a census
            parts = [self._issue_json(base, repo, issue) for issue in chosen]
        payload = b"[" + b",".join(parts) + b"]"
        headers = {}
        link = _link(base, request, page, per_page, total)
        if link:
            headers["Link"] = link
        return self._conditional(request, payload, headers)

    def _encoded_issue(self, base: str, repo: _Repo, issue: _Issue) -> bytes:
        """``_render`` as JSON, kept while nothing it is rendered from changes.

        A real server's rendering costs the client nothing; this one shares the bench machine's
        two cores with okrsync. Each 1% pass asks for every repository's newest 100 issues (the
        ETag gate), of which ~90 are the same as the pass before: rendering and encoding them again
        took 1.8 s of the sandbox's CPU per pass at 200k issues (bench/RESULTS.md). The key holds
        every input of ``_render``: the issue's fields, its repository's, its milestone's with the
        counts, and the URL base, so a changed input can only miss, never serve stale bytes."""
        milestone = repo.milestones.get(issue.milestone) if issue.milestone else None
        key = (
            base, repo.name, repo.created_at, _values(issue),
            None if milestone is None else (_values(milestone), self._milestone_counts(repo, milestone.number)),
        )
        slot = (repo.id, issue.number)
        kept = self._encoded.get(slot)
        if kept is not None and kept[0] == key:
            self._encoded.move_to_end(slot)
            return kept[1]
        encoded = self._issue_json(base, repo, issue)
        self._encoded[slot] = (key, encoded)
        self._encoded.move_to_end(slot)
        if len(self._encoded) > _ENCODED_MAX:
            self._encoded.popitem(last=False)
        return encoded

    def _issue_json(self, base: str, repo: _Repo, issue: _Issue) -> bytes:
        """One listed issue as the page's JSON array holds it (no spaces, as ``_conditional``)."""
        return encode_json(self._render(base, repo, issue))

    def _keep(
        self, repo: _Repo, issue: _Issue, state: str, since: datetime | None, labels: list[str], milestone: str | None
    ) -> bool:
        if state != "all" and issue.state != state:
            return False
        if since is not None and issue.updated_at < since:
            return False
        if labels and not set(labels) <= {n.lower() for n in issue.labels}:
            return False
        if milestone is None:
            return True
        if milestone == "*":
            return issue.milestone is not None
        if milestone == "none":
            return issue.milestone is None
        return milestone.isdigit() and issue.milestone == int(milestone)

    def _paged(self, request: Request, base: str, rows: list[dict[str, Any]]) -> Reply:
        per_page = min(100, max(1, int(request.arg("per_page", "30") or 30)))
        page = max(1, int(request.arg("page", "1") or 1))
        headers = {}
        link = _link(base, request, page, per_page, len(rows))
        if link:
            headers["Link"] = link
        return self._conditional(request, rows[(page - 1) * per_page : page * per_page], headers)

    def _conditional(self, request: Request, body: Any, headers: dict[str, str]) -> Reply:
        """A strong ETag over the exact body bytes; ``If-None-Match`` that matches → 304 (free).
        ``body`` is sent as JSON, or as it is when already encoded (``bytes``)."""
        payload = body if isinstance(body, bytes) else encode_json(body)
        etag = '"' + hashlib.sha256(payload).hexdigest()[:40] + '"'
        headers = {
            **headers,
            "ETag": etag,
            "Cache-Control": "private, max-age=60, s-maxage=60",
            "Vary": "Accept, Authorization, Cookie, X-GitHub-OTP",
        }
        sent = next((v for k, v in request.headers.items() if k.lower() == "if-none-match"), None)
        if sent is not None:
            offered = {tag.strip().removeprefix("W/") for tag in sent.split(",")}
            if etag in offered or "*" in offered:
                headers.pop("Link", None)  # GitHub sends no Link on a 304
                return Reply(304, None, headers)
        headers["Content-Type"] = "application/json; charset=utf-8"
        return Reply(200, payload, headers)

    # -- rendering (shapes from GitHub's OpenAPI description) -------------------------------

    def _user(self, base: str, login: str, private: bool = False) -> dict[str, Any]:
        uid = 1000 + (_USERS.index(login) if login in _USERS else 99)
        api = f"{base}/users/{login}"
        user: dict[str, Any] = {
            "login": login,
            "id": uid,
            "node_id": f"U_kgDO{uid:08d}",
            "avatar_url": f"{base}/_avatars/{login}.png",
            "gravatar_id": "",
            "url": api,
            "html_url": f"{base}/{login}",
            "followers_url": f"{api}/followers",
            "following_url": f"{api}/following{{/other_user}}",
            "gists_url": f"{api}/gists{{/gist_id}}",
            "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/subscriptions",
            "organizations_url": f"{api}/orgs",
            "repos_url": f"{api}/repos",
            "events_url": f"{api}/events{{/privacy}}",
            "received_events_url": f"{api}/received_events",
            "type": "User",
            "site_admin": False,
        }
        if private:
            created = _iso(self.now - timedelta(days=900))
            user.update({
                "name": "okrsync bot", "company": None, "blog": "", "location": None, "email": None,
                "hireable": None, "bio": None, "public_repos": 0, "public_gists": 0, "followers": 0,
                "following": 0, "created_at": created, "updated_at": created, "private_gists": 0,
                "total_private_repos": 0, "owned_private_repos": 0, "disk_usage": 0, "collaborators": 0,
                "two_factor_authentication": True,
            })
        return user

    def _label(self, base: str, repo: _Repo, name: str) -> dict[str, Any]:
        color, description = _LABEL_COLORS.get(name.lower(), ("ededed", None))
        digest = int(hashlib.sha1(f"{repo.id}/{name.lower()}".encode()).hexdigest()[:8], 16)
        return {
            "id": digest,
            "node_id": f"LA_kwDO{digest:010d}",
            "url": f"{base}/repos/{repo.name}/labels/{name}",
            "name": name,
            "color": color,
            "default": name.lower() == "bug",
            "description": description,
        }

    def _milestone_counts(self, repo: _Repo, number: int) -> tuple[int, int]:
        """(open, closed) issues in a milestone, cached until the data changes (pages stay O(page))."""
        key = (repo.id, number)
        cached = self._counts.get(key)
        if cached is None or cached[0] != self._version:
            issues = [i.state for i in repo.issues.values() if i.milestone == number]
            cached = (self._version, issues.count("open"), issues.count("closed"))
            self._counts[key] = cached
        return cached[1], cached[2]

    def _milestone(self, base: str, repo: _Repo, milestone: _Milestone) -> dict[str, Any]:
        open_count, closed_count = self._milestone_counts(repo, milestone.number)
        return {
            "url": f"{base}/repos/{repo.name}/milestones/{milestone.number}",
            "html_url": f"{base}/{repo.name}/milestone/{milestone.number}",
            "labels_url": f"{base}/repos/{repo.name}/milestones/{milestone.number}/labels",
            "id": milestone.id,
            "node_id": f"MI_kwDO{milestone.id}",
            "number": milestone.number,
            "title": milestone.title,
            "description": f"Work planned for {milestone.title}",
            "creator": self._user(base, _USERS[0]),
            "open_issues": open_count,
            "closed_issues": closed_count,
            "state": milestone.state,
            "created_at": _iso(milestone.created_at),
            "updated_at": _iso(milestone.created_at),
            "closed_at": None,
            "due_on": _iso(milestone.due_on),
        }

    def _render(self, base: str, repo: _Repo, issue: _Issue) -> dict[str, Any]:
        api = f"{base}/repos/{repo.name}/issues/{issue.number}"
        html = f"{base}/{repo.name}/{'pull' if issue.is_pr else 'issues'}/{issue.number}"
        assignees = [self._user(base, a) for a in issue.assignees]
        milestone = repo.milestones.get(issue.milestone) if issue.milestone else None
        payload: dict[str, Any] = {
            "url": api,
            "repository_url": f"{base}/repos/{repo.name}",
            "labels_url": f"{api}/labels{{/name}}",
            "comments_url": f"{api}/comments",
            "events_url": f"{api}/events",
            "html_url": html,
            "id": issue.id,
            "node_id": issue.node_id,
            "number": issue.number,
            "title": issue.title,
            "user": self._user(base, issue.user),
            "labels": [self._label(base, repo, n) for n in issue.labels],
            "state": issue.state,
            "locked": False,
            "assignee": assignees[0] if assignees else None,
            "assignees": assignees,
            "milestone": self._milestone(base, repo, milestone) if milestone else None,
            "comments": issue.comments,
            "created_at": _iso(issue.created_at),
            "updated_at": _iso(issue.updated_at),
            "closed_at": _iso(issue.closed_at),
            "author_association": "MEMBER",
            "type": None,
            "active_lock_reason": None,
            "sub_issues_summary": {"total": 0, "completed": 0, "percent_completed": 0},
            "body": issue.body,
            "closed_by": None,
            "reactions": {
                "url": f"{api}/reactions", "total_count": 0, "+1": 0, "-1": 0, "laugh": 0, "hooray": 0,
                "confused": 0, "heart": 0, "rocket": 0, "eyes": 0,
            },
            "timeline_url": f"{api}/timeline",
            "performed_via_github_app": None,
            "state_reason": issue.state_reason,
        }
        if issue.type:
            payload["type"] = {
                "id": 1, "node_id": f"IT_kwDO{issue.type}", "name": issue.type, "description": None,
                "color": "blue", "created_at": _iso(repo.created_at), "updated_at": _iso(repo.created_at),
                "is_enabled": True,
            }
        if issue.parent:
            owner_repo, _, number = issue.parent.partition("#")
            payload["parent_issue_url"] = f"{base}/repos/{owner_repo}/issues/{number}"
        if issue.is_pr:
            pulls = f"{base}/repos/{repo.name}/pulls/{issue.number}"
            payload["draft"] = False
            payload["pull_request"] = {
                "url": pulls,
                "html_url": html,
                "diff_url": f"{html}.diff",
                "patch_url": f"{html}.patch",
                "merged_at": _iso(issue.merged_at),
            }
        return payload

    def _repository(self, base: str, repo: _Repo) -> dict[str, Any]:
        owner, name = repo.name.split("/", 1)
        api = f"{base}/repos/{repo.name}"
        owner_user = self._user(base, owner)
        owner_user["type"] = "Organization"
        templated = {
            "archive_url": "/{archive_format}{/ref}", "assignees_url": "/assignees{/user}",
            "blobs_url": "/git/blobs{/sha}", "branches_url": "/branches{/branch}",
            "collaborators_url": "/collaborators{/collaborator}", "comments_url": "/comments{/number}",
            "commits_url": "/commits{/sha}", "compare_url": "/compare/{base}...{head}",
            "contents_url": "/contents/{+path}", "contributors_url": "/contributors",
            "deployments_url": "/deployments", "downloads_url": "/downloads", "events_url": "/events",
            "forks_url": "/forks", "git_commits_url": "/git/commits{/sha}", "git_refs_url": "/git/refs{/sha}",
            "git_tags_url": "/git/tags{/sha}", "hooks_url": "/hooks",
            "issue_comment_url": "/issues/comments{/number}", "issue_events_url": "/issues/events{/number}",
            "issues_url": "/issues{/number}", "keys_url": "/keys{/key_id}",
            "labels_url": "/labels{/name}", "languages_url": "/languages", "merges_url": "/merges",
            "milestones_url": "/milestones{/number}",
            "notifications_url": "/notifications{?since,all,participating}", "pulls_url": "/pulls{/number}",
            "releases_url": "/releases{/id}", "stargazers_url": "/stargazers", "statuses_url": "/statuses/{sha}",
            "subscribers_url": "/subscribers", "subscription_url": "/subscription", "tags_url": "/tags",
            "teams_url": "/teams", "trees_url": "/git/trees{/sha}",
        }
        created = _iso(repo.created_at)
        open_count = sum(1 for i in repo.issues.values() if i.state == "open")
        payload: dict[str, Any] = {k: api + v for k, v in templated.items()}
        payload.update({
            "id": repo.id, "node_id": f"R_kgDO{repo.id}", "name": name, "full_name": repo.name,
            "owner": owner_user, "private": True, "html_url": f"{base}/{repo.name}",
            "description": f"{name} at {owner}", "fork": False, "url": api,
            "clone_url": f"{base}/{repo.name}.git", "git_url": f"git://sandbox/{repo.name}.git",
            "ssh_url": f"git@sandbox:{repo.name}.git", "svn_url": f"{base}/{repo.name}", "mirror_url": None,
            "homepage": None, "language": "Python", "forks": 0, "forks_count": 0, "stargazers_count": 0,
            "watchers": 0, "watchers_count": 0, "size": 1024, "default_branch": "main",
            "open_issues": open_count, "open_issues_count": open_count, "has_issues": True,
            "has_projects": False, "has_wiki": False, "has_pages": False, "has_discussions": False,
            "archived": False, "disabled": False, "license": None, "pushed_at": created,
            "created_at": created, "updated_at": created, "network_count": 0, "subscribers_count": 1,
            "visibility": "private",
        })
        return payload

    def _rate_limit(self) -> Reply:
        limits = self._limits(spend=False)
        core = {
            "limit": self.rate_limit,
            "remaining": self._quota_remaining,
            "reset": int(limits["x-ratelimit-reset"]),
            "used": self.rate_limit - self._quota_remaining,
            "resource": "core",
        }
        search = {"limit": 30, "remaining": 30, "reset": core["reset"], "used": 0, "resource": "search"}
        return Reply(200, {"resources": {"core": core, "search": search}, "rate": core}, limits)

    def _html(self, parts: list[str]) -> Reply:
        """A tiny page behind each item's ``html_url``, so demo report links lead somewhere."""
        repo = self.repos.get(f"{parts[0]}/{parts[1]}".lower())
        issue = repo.issues.get(int(parts[3])) if repo and len(parts) == 4 and parts[3].isdigit() else None
        if repo is None or issue is None:
            return Reply(404, "<html><body><h1>404</h1></body></html>", {"Content-Type": "text/html"})
        import html as _h

        state = issue.state + (f" ({issue.state_reason})" if issue.state_reason else "")
        page = (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{_h.escape(issue.title)}</title></head>"
            f"<body><p>sandbox GitHub · {_h.escape(repo.name)}</p><h1>{_h.escape(issue.title)} "
            f"#{issue.number}</h1><p>{_h.escape(state)} · labels: {_h.escape(', '.join(issue.labels))}</p>"
            f"<pre>{_h.escape(issue.body or '')}</pre></body></html>"
        )
        return Reply(200, page.encode(), {"Content-Type": "text/html; charset=utf-8"})

    def issues(self, repo: str) -> Iterator[dict[str, Any]]:
        """Raw-ish view of one repository's issues for tests (number, title, body, labels, state)."""
        with self._lock:
            for issue in self._repo(repo).issues.values():
                yield {
                    "number": issue.number, "node_id": issue.node_id, "title": issue.title, "body": issue.body,
                    "labels": list(issue.labels), "state": issue.state, "state_reason": issue.state_reason,
                    "updated_at": issue.updated_at, "is_pr": issue.is_pr,
                }


_ENCODED_MAX = 20_000
"""Issues whose JSON the sandbox keeps (~3 KB each): twice every gate page of the 200k bench."""


def _values(record: Any) -> tuple[Any, ...]:
    """A sandbox record's fields as a tuple (lists copied as tuples), for ``_encoded_issue``."""
    getter = _GETTERS.get(type(record))
    if getter is None:
        getter = _GETTERS[type(record)] = attrgetter(*(f.name for f in fields(record)))
    return tuple(tuple(value) if isinstance(value, list) else value for value in getter(record))


_GETTERS: dict[type, attrgetter[Any]] = {}


def _not_found() -> Reply:
    return Reply(404, {"message": "Not Found", "documentation_url": _DOCS, "status": "404"})


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _link(base: str, request: Request, page: int, per_page: int, total: int) -> str:
    """``Link`` with first/prev/next/last, carrying every query parameter of the request."""
    last = max(1, math.ceil(total / per_page))
    params = [(k, v) for k, vs in request.query.items() if k not in ("page", "per_page") for v in vs]

    def url(n: int) -> str:
        return f"{base}{request.path}?" + urlencode([*params, ("per_page", str(per_page)), ("page", str(n))])

    links = []
    if page > 1:
        links += [f'<{url(page - 1)}>; rel="prev"', f'<{url(1)}>; rel="first"']
    if page < last:
        links += [f'<{url(page + 1)}>; rel="next"', f'<{url(last)}>; rel="last"']
    return ", ".join(links)


def start_github_sandbox(
    scenario: str = "demo",
    size: int = 0,
    now: datetime | None = None,
    seed: int = 1,
    repos: Iterable[str] | None = None,
    tokens: Iterable[str] = ("tok",),
) -> tuple[SandboxServer, GitHubApp]:
    """Start a sandbox GitHub on 127.0.0.1 (a free port); the caller stops the server."""
    app = GitHubApp(scenario=scenario, size=size, repos=repos, now=now, seed=seed, tokens=tokens)
    server = SandboxServer(app, seed=seed).start()
    app.base_url = server.url
    return server, app
