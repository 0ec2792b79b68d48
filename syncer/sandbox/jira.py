"""A sandbox Jira (Cloud or Data Center) on 127.0.0.1: seeded data, a JQL subset, faithful paging.

It serves what okrsync's Jira connector sends, in the shapes the official OpenAPI description
gives (a test validates the answers against ``../shared/specs/jira``): ``serverInfo``, ``myself``,
``field``, ``statuscategory``, Cloud's ``search/jql`` (``nextPageToken``, no ``total``; 5 000 ids
or 100 issues per page), the old ``search`` (410 on Cloud, offset paging with ``total`` and a
10 000 result window on Data Center), ``issue/bulkfetch`` (1 000 when shaped, else 100), issue
GET/PUT (moved keys resolve) and comments. Basic auth (Cloud) and Bearer PATs (Data Center).

The account's time zone is America/New_York and timestamps are rendered in it, so a connector
that sends zone-less JQL date literals is caught; epoch-millisecond literals work as in Jira.
Search answers are computed once per (query, data version) and paged from that list, so each page
request is O(page) even for the 100k-issue benchmark. ``lag`` makes a change visible to search
only after that many seconds (Jira Cloud search is eventually consistent); direct GETs see it at once.

Knobs (``control(action, body)``, or ``POST /_sandbox/<action>``): ``update``, ``create``,
``delete``, ``move``, ``revoke``, ``restore``, ``lag``, ``reset``, ``clock`` (advance the clock).
"""

from __future__ import annotations

import base64
import bisect
import copy
import email.utils
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from syncer.model import ItemKind, State, WorkItem
from syncer.sandbox.server import Reply, Request, SandboxServer

__all__ = ["BENCH_PROJECTS", "JiraApp", "JqlError", "start_jira_sandbox"]

ACCOUNT_ZONE = ZoneInfo("America/New_York")
EPIC_LINK = "customfield_10014"
STORY_POINTS = "customfield_10016"
STORY_POINT_ESTIMATE = "customfield_10028"
OKR_PROGRESS = "customfield_10100"
DEFAULT_USERS = {"demo@example.com": "sandbox-token"}
DEFAULT_PAT = "sandbox-pat"

_CATEGORIES = {
    "new": {"id": 2, "key": "new", "colorName": "blue-gray", "name": "To Do"},
    "indeterminate": {"id": 4, "key": "indeterminate", "colorName": "yellow", "name": "In Progress"},
    "done": {"id": 3, "key": "done", "colorName": "green", "name": "Done"},
}
_STATUSES = {
    "To Do": ("10000", "new"),
    "In Progress": ("3", "indeterminate"),
    "In Review": ("10001", "indeterminate"),
    "Done": ("10002", "done"),
    "Won't Do": ("10003", "done"),
}
_TYPES = {
    "Epic": ("10000", 1),
    "Story": ("10001", 0),
    "Bug": ("10002", 0),
    "Task": ("10003", 0),
    "Sub-task": ("10004", -1),
}
_RESOLUTIONS = {"Done": "10000", "Won't Do": "10001", "Duplicate": "10002", "Cannot Reproduce": "10003"}
_PROJECTS = {
    "PLAT": ("10000", "Platform", False, STORY_POINTS),
    "MOB": ("10001", "Mobile", True, STORY_POINT_ESTIMATE),
    "OKR": ("10002", "OKRs", False, STORY_POINTS),
}
BENCH_PROJECTS = ("PLAT", "MOB", *(f"BEN{i:02d}" for i in range(3, 21)))
"""The bench scenario's projects, in order: ``projects=N`` spreads issues over the first N."""
for _index, _key in enumerate(BENCH_PROJECTS[2:], start=3):
    # Alternate company-managed (Story Points) and team-managed (Story point estimate) projects.
    _PROJECTS[_key] = (str(10100 + _index), f"Bench {_index:02d}", _index % 2 == 0,
                       STORY_POINT_ESTIMATE if _index % 2 == 0 else STORY_POINTS)
_NOT_AUTHENTICATED = {
    "errorMessages": ["You are not authenticated. Authentication required to perform this operation."],
    "errors": {},
}
_GONE = {
    "errorMessages": [
        "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
        "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
    ],
    "errors": {},
}
_NO_ISSUE = {"errorMessages": ["Issue does not exist or you do not have permission to see it."], "errors": {}}


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


@dataclass
class Issue:
    """One sandbox issue. ``epic`` is the epic's id (team-managed ``parent`` or Epic Link)."""

    id: int
    key: str
    project: str
    summary: str
    type: str
    status: str
    created: datetime
    updated: datetime
    category: str = "new"
    resolution: str | None = None
    resolved: datetime | None = None
    category_changed: datetime | None = None
    labels: list[str] = field(default_factory=list)
    components: list[str] = field(default_factory=list)
    fix_versions: list[str] = field(default_factory=list)
    epic: int | None = None
    parent: int | None = None
    points: float | None = None
    okr_progress: float | None = None
    old_keys: list[str] = field(default_factory=list)
    comments: list[dict[str, Any]] = field(default_factory=list)

    @property
    def subtask(self) -> bool:
        return self.type == "Sub-task"


class JqlError(ValueError):
    """A query the sandbox (like Jira) refuses: answered as a 400 with Jira's error shape."""


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _round_ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=(moment.microsecond // 1000) * 1000)


def jira_time(moment: datetime | None) -> str | None:
    """``2026-11-02T05:15:30.000-0500``: Jira's format, in the account's zone."""
    if moment is None:
        return None
    local = moment.astimezone(ACCOUNT_ZONE)
    offset = local.utcoffset()
    minutes = int(offset.total_seconds()) // 60 if offset is not None else 0
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    # %-formatting, not strftime: the sandbox renders 4-5 of these per issue on the bench's cores
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03d%s%02d%02d" % (  # noqa: UP031
        local.year, local.month, local.day, local.hour, local.minute, local.second, local.microsecond // 1000,
        sign, hours, minutes,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# JQL subset
# ---------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<op>!=|>=|<=|!~|=|>|<|~)|(?P<punct>[(),])|(?P<word>[^\s"'(),=!<>~]+))"""
)
_FIELD_ALIASES = {
    "project": "project",
    "key": "key",
    "issuekey": "key",
    "issue": "key",
    "id": "key",
    "labels": "labels",
    "label": "labels",
    "component": "component",
    "components": "component",
    "issuetype": "issuetype",
    "type": "issuetype",
    "status": "status",
    "statuscategory": "statuscategory",
    "resolution": "resolution",
    "parent": "parent",
    "epic link": "epic",
    f"cf[{EPIC_LINK.split('_')[1]}]": "epic",
    "fixversion": "fixversion",
    "updated": "updated",
    "updateddate": "updated",
    "created": "created",
    "createddate": "created",
    "resolved": "resolved",
    "resolutiondate": "resolved",
    "summary": "summary",
}
_SORTABLE = {"updated", "created", "key", "id", "resolved", "issuekey", "rank"}

Predicate = Callable[[Issue], bool]


def _narrowed(predicate: Predicate, *, floor: int | None = None, ids: frozenset[int] | None = None) -> Predicate:
    """Remember on ``predicate`` what an index can tell about it, as Jira's does: the smallest
    ``updated`` (epoch ms) of any issue it selects, and the only ids it can select (``id in
    (…)``, ``key = X``). ``JiraApp.search_ids`` starts from those issues instead of testing all
    of them: at 100k issues each new query took 1-2.4 s, which the bench counted as okrsync's
    wall time (``updated >=`` the cursor, then each JQL rule ``AND id in (…changed ids…)``)."""
    if floor is not None:
        setattr(predicate, "updated_floor", floor)  # noqa: B010 - a function attribute, mypy-safe
    if ids is not None:
        setattr(predicate, "only_ids", ids)  # noqa: B010
    return predicate


def _floor_of(predicate: Predicate) -> int | None:
    floor = getattr(predicate, "updated_floor", None)
    return floor if isinstance(floor, int) else None


def _only_of(predicate: Predicate) -> frozenset[int] | None:
    ids = getattr(predicate, "only_ids", None)
    return ids if isinstance(ids, frozenset) else None


@dataclass
class Query:
    predicate: Predicate
    order: list[tuple[str, bool]]


class _Parser:
    """Recursive descent over JQL: OR < AND < NOT < (…) | clause, then ORDER BY."""

    def __init__(self, text: str, app: JiraApp) -> None:
        self.text = text
        self.app = app
        self.tokens: list[tuple[str, str]] = []
        position = 0
        stripped = text.rstrip()
        while position < len(stripped):
            match = _TOKEN.match(stripped, position)
            if not match or match.end() == position:
                raise JqlError(
                    f"Error in the JQL Query: The character '{stripped[position]}' is a reserved "
                    f"JQL character. (line 1, character {position + 1})"
                )
            kind = match.lastgroup or "word"
            self.tokens.append((kind, match.group(kind)))
            position = match.end()
        self.index = 0

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        at = self.index + offset
        return self.tokens[at] if at < len(self.tokens) else None

    def word_is(self, *words: str, offset: int = 0) -> bool:
        token = self.peek(offset)
        return token is not None and token[0] == "word" and token[1].casefold() in words

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise JqlError("Error in the JQL Query: Expecting either a value, list or function but got end of query.")
        self.index += 1
        return token

    def parse(self) -> Query:
        predicate: Predicate = lambda issue: True  # noqa: E731 - an empty query selects everything
        if self.peek() is not None and not self.word_is("order"):
            predicate = self.or_expr()
        order: list[tuple[str, bool]] = []
        if self.word_is("order"):
            self.take()
            if not self.word_is("by"):
                raise JqlError("Error in the JQL Query: Expecting 'by' after 'order'.")
            self.take()
            while True:
                kind, name = self.take()
                if name.casefold() not in _SORTABLE:
                    raise JqlError(f"Error in the JQL Query: Field '{name}' does not support sorting.")
                ascending = True
                if self.word_is("asc", "desc"):
                    ascending = self.take()[1].casefold() == "asc"
                order.append((name.casefold(), ascending))
                if self.peek() == ("punct", ","):
                    self.take()
                    continue
                break
        if self.peek() is not None:
            raise JqlError(f"Error in the JQL Query: Expecting operator but got '{self.peek()[1]}'.")  # type: ignore[index]
        return Query(predicate, order)

    def or_expr(self) -> Predicate:
        parts = [self.and_expr()]
        while self.word_is("or"):
            self.take()
            parts.append(self.and_expr())
        if len(parts) == 1:
            return parts[0]
        floors = [_floor_of(p) for p in parts]
        either = [f for f in floors if f is not None]
        sets = [_only_of(p) for p in parts]
        union = frozenset().union(*(x for x in sets if x is not None)) if all(x is not None for x in sets) else None
        return _narrowed(lambda issue: any(p(issue) for p in parts),
                         floor=min(either) if len(either) == len(floors) else None, ids=union)

    def and_expr(self) -> Predicate:
        parts = [self.not_expr()]
        while self.word_is("and"):
            self.take()
            parts.append(self.not_expr())
        if len(parts) == 1:
            return parts[0]
        floors = [f for f in (_floor_of(p) for p in parts) if f is not None]
        sets = [x for x in (_only_of(p) for p in parts) if x is not None]
        both = frozenset.intersection(*sets) if sets else None
        return _narrowed(lambda issue: all(p(issue) for p in parts), floor=max(floors) if floors else None, ids=both)

    def not_expr(self) -> Predicate:
        if self.word_is("not"):
            self.take()
            inner = self.not_expr()
            return lambda issue: not inner(issue)
        if self.peek() == ("punct", "("):
            self.take()
            inner = self.or_expr()
            if self.peek() != ("punct", ")"):
                raise JqlError("Error in the JQL Query: Expecting ')' before the end of the query.")
            self.take()
            return inner
        return self.clause()

    def clause(self) -> Predicate:
        kind, raw_name = self.take()
        name = raw_name[1:-1] if kind == "str" else raw_name
        canonical = _FIELD_ALIASES.get(name.casefold())
        if kind not in ("word", "str") or canonical is None:
            raise JqlError(
                f"Error in the JQL Query: Field '{name}' does not exist or you do not have permission to view it."
            )
        op = self.operator(name)
        if op in ("is", "is not"):
            if not self.word_is("empty", "null"):
                raise JqlError(f"Error in the JQL Query: Expecting EMPTY after '{op}'.")
            self.take()
            getter = self.app.getter(canonical)
            empty = op == "is"
            return lambda issue: (not getter(issue)) == empty
        values = self.values() if op in ("in", "not in") else [self.value()]
        return self.app.compile_clause(canonical, name, op, values)

    def operator(self, name: str) -> str:
        token = self.take()
        if token[0] == "op":
            return token[1]
        word = token[1].casefold()
        if word in ("in", "is"):
            return word
        if word == "not" and self.word_is("in"):
            self.take()
            return "not in"
        if word == "is" and self.word_is("not"):
            self.take()
            return "is not"
        raise JqlError(f"Error in the JQL Query: Expecting operator but got '{token[1]}' after '{name}'.")

    def values(self) -> list[str]:
        if self.peek() != ("punct", "("):
            return [self.value()]
        self.take()
        out = [self.value()]
        while self.peek() == ("punct", ","):
            self.take()
            out.append(self.value())
        if self.peek() != ("punct", ")"):
            raise JqlError("Error in the JQL Query: Expecting ',' or ')' in the list of values.")
        self.take()
        return out

    def value(self) -> str:
        kind, text = self.take()
        if kind == "str":
            return re.sub(r"\\(.)", r"\1", text[1:-1])
        if kind != "word":
            raise JqlError(f"Error in the JQL Query: Expecting a value but got '{text}'.")
        if text.casefold() in ("and", "or", "order"):
            raise JqlError(f"Error in the JQL Query: Expecting a value but got '{text}'.")
        return text


# ---------------------------------------------------------------------------------------------
# The app
# ---------------------------------------------------------------------------------------------


@dataclass
class _UpdatedIndex:
    """``JiraApp._updated_since``'s index: ``(updated ms, id)`` ascending, and per issue what its
    entry was made from (``updated`` ms, the ``updated`` object, the project)."""

    frame: tuple[Any, ...]
    version: int
    entries: dict[int, tuple[int, datetime, str]]
    order: list[tuple[int, int]]


class JiraApp:
    """A sandbox Jira site. Thread-safe: the server handles requests on several threads."""

    def __init__(
        self,
        flavour: str = "cloud",
        scenario: str = "demo",
        size: int = 0,
        now: datetime | None = None,
        seed: int = 1,
        users: dict[str, str] | None = None,
        pat: str | None = DEFAULT_PAT,
        *,
        lag: float = 0.0,
        deployment_type: bool = True,
        search_window: int = 10_000,
        projects: int = 2,
    ) -> None:
        if flavour not in ("cloud", "datacenter"):
            raise ValueError("flavour is cloud or datacenter")
        self.flavour = flavour
        self.scenario = scenario
        self.size = size
        self.seed = seed
        self.users = dict(DEFAULT_USERS if users is None else users)
        self.pat = pat
        self.deployment_type = deployment_type
        self.search_window = search_window
        if not 1 <= projects <= len(BENCH_PROJECTS):
            raise ValueError(f"projects is 1..{len(BENCH_PROJECTS)}")
        self.projects = projects
        """How many of ``BENCH_PROJECTS`` the bench scenario spreads its issues over."""
        self._start = _round_ms((now or datetime.now(UTC)).astimezone(UTC))
        self._started_at = time.monotonic()
        self._offset = timedelta(0)
        self._lock = threading.RLock()
        self.lag = lag
        self._generate()

    @property
    def cloud(self) -> bool:
        return self.flavour == "cloud"

    # -- clock ------------------------------------------------------------------------------

    def clock(self) -> datetime:
        """The site's time: ``now`` at creation plus real elapsed time (plus ``clock`` advances)."""
        elapsed = timedelta(seconds=time.monotonic() - self._started_at)
        return _round_ms(self._start + elapsed + self._offset)

    # -- data -------------------------------------------------------------------------------

    def _generate(self) -> None:
        self.issues: dict[int, Issue] = {}
        self.by_key: dict[str, int] = {}
        self.counters: dict[str, int] = {}
        self.revoked: set[str] = set()
        self.deleted: set[int] = set()
        self.shadows: dict[int, tuple[datetime, Issue | None]] = {}
        self.version = 0
        self._cache: dict[str, tuple[int, list[int]]] = {}
        self._by_updated: _UpdatedIndex | None = None
        self._next_id = 10001
        rng = random.Random(self.seed)
        if self.scenario == "bench":
            self._bench(rng)
        else:
            self._demo(rng)

    def _add(self, issue: Issue) -> Issue:
        self.issues[issue.id] = issue
        self.by_key[issue.key.upper()] = issue.id
        number = int(issue.key.rsplit("-", 1)[1])
        self.counters[issue.project] = max(self.counters.get(issue.project, 0), number)
        return issue

    def _new(
        self,
        key: str,
        summary: str,
        type_: str,
        status: str,
        created: datetime,
        *,
        done: datetime | None = None,
        updated: datetime | None = None,
        resolution: str | None = None,
        **extra: Any,
    ) -> Issue:
        category = _STATUSES[status][1]
        if category == "done" and resolution is None:
            resolution = "Won't Do" if status == "Won't Do" else "Done"
        last = max(x for x in (created, done, updated) if x is not None)
        issue = Issue(
            id=self._next_id,
            key=key,
            project=key.split("-")[0],
            summary=summary,
            type=type_,
            status=status,
            category=category,
            created=_round_ms(created),
            updated=_round_ms(updated or last),
            resolution=resolution if category == "done" else None,
            resolved=_round_ms(done) if done and category == "done" else None,
            category_changed=_round_ms(done or created),
            **extra,
        )
        self._next_id += 1
        return self._add(issue)

    def _demo(self, rng: random.Random) -> None:
        now = self._start
        quarter = datetime(now.year, 3 * ((now.month - 1) // 3) + 1, 1, tzinfo=UTC)
        hi = now - timedelta(hours=1)
        lo = quarter if hi - quarter > timedelta(hours=2) else hi - timedelta(days=1)

        def in_quarter() -> datetime:
            return lo + (hi - lo) * rng.uniform(0.05, 0.95)

        def before_quarter() -> datetime:
            return quarter - timedelta(days=rng.uniform(5, 30))

        def created() -> datetime:
            return quarter - timedelta(days=rng.uniform(10, 60))

        def touched() -> datetime:
            return lo + (hi - lo) * rng.uniform(0.0, 1.0)

        plat1 = self._new("PLAT-1", "Onboarding revamp", "Epic", "In Progress", created(), updated=touched())
        plat2 = self._new("PLAT-2", "Checkout performance", "Epic", "In Progress", created(), updated=touched())
        onboarding = [
            ("Redesign the welcome screen", "Story", "Done", 3),
            ("Email verification without leaving the app", "Story", "Done", 5),
            ("Fix double submit on the sign-up form", "Bug", "Done", 1),
            ("Progressive profile questions", "Story", "Done", 8),
            ("Guided tour for first project", "Story", "In Progress", 5),
            ("Social sign-in with Google", "Story", "In Review", 3),
            ("Password rules shown inline", "Story", "In Progress", 2),
            ("Invite teammates step", "Story", "To Do", 5),
            ("Localise onboarding copy", "Story", "To Do", 3),
            ("Animated mascot on every step", "Story", "Won't Do", 8),
        ]
        number = 3
        children: list[Issue] = []
        for title, type_, status, points in onboarding:
            done = in_quarter() if _STATUSES[status][1] == "done" else None
            children.append(
                self._new(
                    f"PLAT-{number}",
                    title,
                    type_,
                    status,
                    created(),
                    done=done,
                    updated=None if done else touched(),
                    epic=plat1.id,
                    points=float(points),
                    components=["Web"],
                    fix_versions=["2026.11"] if done else [],
                )
            )
            number += 1
        for parent, title, status in ((children[0], "Copy review", "Done"), (children[4], "Tour analytics", "To Do")):
            done = in_quarter() if status == "Done" else None
            self._new(
                f"PLAT-{number}",
                title,
                "Sub-task",
                status,
                created(),
                done=done,
                updated=None if done else touched(),
                parent=parent.id,
            )
            number += 1
        perf = [
            ("Cache product prices at the edge", "Done", 5, "q"),
            ("Lazy-load the payment widget", "Done", 3, "q"),
            ("Cut checkout bundle size by 30%", "Done", 8, "q"),
            ("Index orders by customer", "Done", 2, "q"),
            ("Profile the cart service", "Done", 3, "before"),
            ("Parallelise tax and shipping quotes", "In Progress", 5, ""),
            ("Load test checkout at 5x traffic", "In Progress", 3, ""),
            ("Remove the legacy coupon lookup", "To Do", 2, ""),
        ]
        for title, status, points, when in perf:
            done = in_quarter() if when == "q" else (before_quarter() if when == "before" else None)
            self._new(
                f"PLAT-{number}",
                title,
                "Story",
                status,
                created(),
                done=done,
                updated=None if done else touched(),
                epic=plat2.id,
                points=float(points),
                labels=["perf"],
                components=["API"],
            )
            number += 1
        unaligned = [
            ("Upgrade the ORM", "Task", "In Progress", ["chore"]),
            ("Rotate staging certificates", "Task", "To Do", ["chore"]),
            ("Admin page shows wrong totals", "Bug", "In Progress", []),
            ("Export invoices as CSV", "Story", "To Do", []),
            ("Dark mode for the dashboard", "Story", "In Review", []),
            ("Archive old audit logs", "Task", "Done", []),
        ]
        for index, (title, type_, status, labels) in enumerate(unaligned):
            done = (before_quarter() if index == 5 else in_quarter()) if status == "Done" else None
            self._new(
                f"PLAT-{number}",
                title,
                type_,
                status,
                created(),
                done=done,
                updated=None if done else touched(),
                labels=list(labels),
                points=float(rng.choice((1, 2, 3))),
            )
            number += 1
        mob1 = self._new("MOB-1", "Mobile onboarding", "Epic", "In Progress", created(), updated=touched())
        mobile = [
            ("Biometric login", "Done", 5),
            ("Push permission primer", "Done", 3),
            ("Offline first launch", "In Progress", 8),
            ("Deep links from the invite email", "In Progress", 3),
            ("Tablet layout for onboarding", "To Do", 5),
            ("Skip button on every step", "Done", 1),
        ]
        mob_numbers = [2, 3, 4, 5, 6, 8]
        for (title, status, points), num in zip(mobile, mob_numbers, strict=True):
            done = in_quarter() if status == "Done" else None
            self._new(
                f"MOB-{num}",
                title,
                "Story",
                status,
                created(),
                done=done,
                updated=None if done else touched(),
                epic=mob1.id,
                points=float(points),
            )
        moved = self._new(
            "MOB-7",
            "Reduce app start time",
            "Story",
            "In Progress",
            created(),
            updated=touched(),
            labels=["perf"],
            points=5.0,
        )
        mob_perf = [
            ("Image decoding off the main thread", "Done", 3, "q"),
            ("Trim the startup dependency graph", "Done", 5, "q"),
            ("Smaller JSON payloads for the feed", "Done", 2, "q"),
            ("Prefetch the home screen", "Done", 3, "before"),
            ("Frame drops on the product list", "In Progress", 5, ""),
            ("Measure cold start on old devices", "To Do", 2, ""),
        ]
        for num, (title, status, points, when) in enumerate(mob_perf, start=9):
            done = in_quarter() if when == "q" else (before_quarter() if when == "before" else None)
            self._new(
                f"MOB-{num}",
                title,
                "Story",
                status,
                created(),
                done=done,
                updated=None if done else touched(),
                labels=["perf"],
                points=float(points),
            )
        for num, (title, status) in enumerate(
            (("Crash on Android 9 share sheet", "In Progress"), ("Update the app store screenshots", "To Do")), start=15
        ):
            self._new(
                f"MOB-{num}", title, "Bug" if num == 15 else "Task", status, created(), updated=touched(), points=2.0
            )
        # The moved issue: MOB-7 became PLAT-40 (same id, the old key still resolves).
        self._move(moved, "PLAT", number=40, when=touched())
        self._new("OKR-12", "NPS reaches 45", "Task", "In Progress", created(), updated=touched())
        self.counters["OKR"] = 12

    def _bench(self, rng: random.Random) -> None:
        now = self._start
        quarter = datetime(now.year, 3 * ((now.month - 1) // 3) + 1, 1, tzinfo=UTC)
        hi = now - timedelta(hours=1)
        span = max((hi - quarter).total_seconds(), 86400.0)
        keys = BENCH_PROJECTS[: self.projects]
        epics: dict[str, list[int]] = {key: [] for key in keys}
        statuses = list(_STATUSES)
        for index in range(self.size):
            project = keys[index % len(keys)]
            number = self.counters.get(project, 0) + 1
            created = quarter - timedelta(days=30) + timedelta(seconds=rng.uniform(0, span))
            if (index // len(keys)) % 25 == 0:  # every project's 25th issue is an epic
                issue = self._new(
                    f"{project}-{number}", f"Bench epic {number}", "Epic", "In Progress", created, updated=created
                )
                epics[project].append(issue.id)
                continue
            status = statuses[rng.randrange(len(statuses))]
            moment = created + timedelta(seconds=rng.uniform(0, max(1.0, (hi - created).total_seconds())))
            done = moment if _STATUSES[status][1] == "done" else None
            self._new(
                f"{project}-{number}",
                f"Bench issue {number}",
                "Story",
                status,
                created,
                done=done,
                updated=moment,
                epic=rng.choice(epics[project]) if epics[project] and rng.random() < 0.7 else None,
                points=float(rng.choice((1, 2, 3, 5, 8))) if rng.random() < 0.8 else None,
                labels=["perf"] if rng.random() < 0.1 else [],
            )

    def _move(self, issue: Issue, project: str, *, number: int | None = None, when: datetime | None = None) -> None:
        if project not in _PROJECTS:
            raise ValueError(f"unknown project {project}")
        number = number if number is not None else self.counters.get(project, 0) + 1
        issue.old_keys.append(issue.key)
        issue.key = f"{project}-{number}"
        issue.project = project
        issue.epic = None
        self.by_key[issue.key.upper()] = issue.id
        self.counters[project] = max(self.counters.get(project, 0), number)
        issue.updated = _round_ms(when or self.clock())
        self.version += 1  # search caches and the updated index are stale now

    # -- lookups ----------------------------------------------------------------------------

    def find(self, ref: str) -> Issue | None:
        """An issue by id or key (old keys of moved issues resolve), if visible."""
        ref = ref.strip()
        issue_id = int(ref) if ref.isdigit() else self.by_key.get(ref.upper())
        issue = self.issues.get(issue_id) if issue_id is not None else None
        if issue is None or issue.id in self.deleted or issue.project in self.revoked:
            return None
        return issue

    def _visible(self) -> Iterable[Issue]:
        """What search sees: live issues, or their earlier version while a change lags."""
        moment = self.clock()
        for issue in self.issues.values():
            shadow = self.shadows.get(issue.id)
            seen: Issue | None = issue
            if shadow is not None:
                if moment < shadow[0]:
                    seen = shadow[1]
                else:
                    del self.shadows[issue.id]
            if seen is None or seen.id in self.deleted or seen.project in self.revoked:
                continue
            yield seen

    # -- JQL --------------------------------------------------------------------------------

    def getter(self, name: str) -> Callable[[Issue], list[Any]]:
        """The values of a JQL field on an issue (a list; empty means EMPTY)."""
        getters: dict[str, Callable[[Issue], list[Any]]] = {
            "project": lambda i: [i.project],
            "key": lambda i: [i.id],
            "labels": lambda i: list(i.labels),
            "component": lambda i: list(i.components),
            "fixversion": lambda i: list(i.fix_versions),
            "issuetype": lambda i: [i.type],
            "status": lambda i: [i.status],
            "statuscategory": lambda i: [i.category],
            "resolution": lambda i: [i.resolution] if i.resolution else [],
            "parent": lambda i: [p] if (p := self.parent_id(i)) is not None else [],
            "epic": lambda i: [i.epic] if i.epic is not None and not i.subtask else [],
            "updated": lambda i: [_ms(i.updated)],
            "created": lambda i: [_ms(i.created)],
            "resolved": lambda i: [_ms(i.resolved)] if i.resolved else [],
            "summary": lambda i: [i.summary],
        }
        return getters[name]

    def parent_id(self, issue: Issue) -> int | None:
        """JQL/REST ``parent``: the sub-task's parent; on Cloud also the epic (team- and company-managed)."""
        if issue.parent is not None:
            return issue.parent
        return issue.epic if self.cloud else None

    def compile_clause(self, name: str, raw_name: str, op: str, values: list[str]) -> Predicate:
        getter = self.getter(name)
        if name in ("updated", "created", "resolved"):
            stamps = [self._time_literal(v, raw_name) for v in values]
            compare: dict[str, Callable[[int, int], bool]] = {
                "=": lambda a, b: a == b,
                "!=": lambda a, b: a != b,
                ">=": lambda a, b: a >= b,
                "<=": lambda a, b: a <= b,
                ">": lambda a, b: a > b,
                "<": lambda a, b: a < b,
            }
            if op not in compare:
                raise JqlError(
                    f"Error in the JQL Query: The operator '{op}' is not supported by the '{raw_name}' field."
                )
            fn, bound = compare[op], stamps[0]
            floor = {">=": bound, ">": bound + 1, "=": bound}.get(op) if name == "updated" else None
            return _narrowed(lambda issue: any(fn(v, bound) for v in getter(issue)), floor=floor)
        if op in (">", "<", ">=", "<=", "~", "!~"):
            if name == "summary" and op in ("~", "!~"):
                needle = values[0].casefold()
                hit: Predicate = lambda issue: needle in issue.summary.casefold()  # noqa: E731
                return hit if op == "~" else (lambda issue: not hit(issue))
            raise JqlError(f"Error in the JQL Query: The operator '{op}' is not supported by the '{raw_name}' field.")
        wanted = {self._normalise(name, raw_name, v) for v in values}
        if name in ("key", "parent", "epic"):
            wanted.discard(None)
        if op in ("=", "in"):
            hit = lambda issue: any(v in wanted for v in self._norm_all(name, getter(issue)))  # noqa: E731
            return _narrowed(hit, ids=frozenset(wanted) if name == "key" else None)
        return lambda issue: not any(v in wanted for v in self._norm_all(name, getter(issue)))

    def _norm_all(self, name: str, values: list[Any]) -> list[Any]:
        if name in ("key", "parent", "epic", "updated", "created", "resolved"):
            return values
        return [str(v).casefold() for v in values]

    def _normalise(self, name: str, raw_name: str, value: str) -> Any:
        if name == "project":
            key = value.upper()
            by_id = {pid: k for k, (pid, *_rest) in _PROJECTS.items()}
            by_name = {v[1].upper(): k for k, v in _PROJECTS.items()}
            key = by_id.get(value, by_name.get(key, key))
            if key not in _PROJECTS or key in self.revoked:
                raise JqlError(f"Error in the JQL Query: The value '{value}' does not exist for the field 'project'.")
            return key.casefold()
        if name in ("key", "parent", "epic"):
            # Like Jira, a key or an id of an issue that does not exist (or was deleted) is an error.
            found = self.find(value)
            if found is None:
                raise JqlError(
                    f"Error in the JQL Query: An issue with key '{value}' does not exist for field '{raw_name}'."
                )
            return found.id
        if name == "statuscategory":
            for key, category in _CATEGORIES.items():
                if value.casefold() in (key, str(category["name"]).casefold(), str(category["id"])):
                    return key
            raise JqlError(f"Error in the JQL Query: The value '{value}' does not exist for the field '{raw_name}'.")
        if name == "resolution" and value.casefold() == "unresolved":
            return None
        return value.casefold()

    def _time_literal(self, value: str, raw_name: str) -> int:
        if re.fullmatch(r"-?\d{9,}", value):
            return int(value)  # epoch milliseconds: zone-free
        for fmt in ("%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d"):
            try:
                parsed = datetime.strptime(value, fmt)
            except ValueError:
                continue
            return _ms(parsed.replace(tzinfo=ACCOUNT_ZONE))  # zone-less: the account's zone
        raise JqlError(
            f"Error in the JQL Query: Date value '{value}' for field '{raw_name}' is invalid. "
            "Valid formats include: 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', "
            "or a period format e.g. '-5d', '4w 2d'."
        )

    def search_ids(self, jql: str) -> list[int]:
        """The ids a JQL query selects, in its order; cached per (query, data version)."""
        with self._lock:
            cached = self._cache.get(jql)
            if cached is not None and cached[0] == self.version and not self.shadows:
                return cached[1]
            query = _Parser(jql, self).parse()
            floor, only = _floor_of(query.predicate), _only_of(query.predicate)
            pool: Iterable[Issue] = self._visible()
            if self.shadows:
                pass  # lagging changes: search sees earlier versions, so every issue is tested
            elif only is not None:
                found = (self.issues.get(i) for i in only)
                pool = [i for i in found
                        if i is not None and i.id not in self.deleted and i.project not in self.revoked]
            elif floor is not None:
                pool = self._updated_since(floor)
            hits = [i for i in pool if query.predicate(i)]
            keys: list[tuple[str, bool]] = query.order or [("id", True)]
            for name, ascending in reversed(keys):
                hits.sort(key=self._sort_key(name), reverse=not ascending)
            ids = [i.id for i in hits]
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[jql] = (self.version, ids)
            return ids

    def _updated_since(self, floor: int) -> list[Issue]:
        """Visible issues updated at or after ``floor`` (epoch ms), from a sorted index (no
        shadows: the caller checks).

        The index follows the data instead of being sorted again after every change: each
        issue's entry remembers the ``updated`` object and project it was made from, and a
        change of either (every change assigns a new ``updated``) moves just that entry. Sorting
        all 100k bench issues again took ~0.4 s of the sandbox's CPU per 1% pass, on the two
        cores okrsync is measured on (bench/RESULTS.md). A deletion, a revoked or restored
        project rebuilds it whole."""
        frame = (len(self.deleted), tuple(sorted(self.revoked)))
        kept = self._by_updated
        if kept is None or kept.frame != frame:
            entries = {i.id: (_ms(i.updated), i.updated, i.project) for i in self._visible()}
            kept = self._by_updated = _UpdatedIndex(frame, self.version, entries,
                                                    sorted((ms, issue_id) for issue_id, (ms, _, _) in entries.items()))
        elif kept.version != self.version:
            self._follow(kept)
        start = bisect.bisect_left(kept.order, (floor, -1))
        return [self.issues[issue_id] for _, issue_id in kept.order[start:]]

    def _follow(self, kept: _UpdatedIndex) -> None:
        """Move the entries of issues changed since ``kept`` was last brought up to date."""
        entries, order = kept.entries, kept.order
        for issue in self.issues.values():
            entry = entries.get(issue.id)
            if entry is not None and entry[1] is issue.updated and entry[2] == issue.project:
                continue
            if entry is not None:
                del order[bisect.bisect_left(order, (entry[0], issue.id))]
                del entries[issue.id]
            if issue.id not in self.deleted and issue.project not in self.revoked:
                entry = entries[issue.id] = (_ms(issue.updated), issue.updated, issue.project)
                bisect.insort(order, (entry[0], issue.id))
        kept.version = self.version

    @staticmethod
    def _sort_key(name: str) -> Callable[[Issue], Any]:
        if name == "updated":
            return lambda i: (i.updated, i.id)
        if name == "created":
            return lambda i: (i.created, i.id)
        if name == "resolved":
            return lambda i: (i.resolved or datetime.min.replace(tzinfo=UTC), i.id)
        return lambda i: i.id

    # -- rendering --------------------------------------------------------------------------

    def field_list(self) -> list[dict[str, Any]]:
        """``GET /field``: a few system fields and the custom fields the demo uses."""

        def system(fid: str, name: str, type_: str, items: str | None = None) -> dict[str, Any]:
            schema: dict[str, Any] = {"type": type_, "system": fid}
            if items:
                schema["items"] = items
            return {
                "id": fid,
                "key": fid,
                "name": name,
                "custom": False,
                "orderable": True,
                "navigable": True,
                "searchable": True,
                "clauseNames": [fid],
                "schema": schema,
            }

        def custom(fid: str, name: str, type_: str, plugin: str) -> dict[str, Any]:
            number = int(fid.split("_")[1])
            return {
                "id": fid,
                "key": fid,
                "name": name,
                "custom": True,
                "orderable": True,
                "navigable": True,
                "searchable": True,
                "clauseNames": [f"cf[{number}]", name],
                "schema": {"type": type_, "custom": plugin, "customId": number},
            }

        fields = [
            system("summary", "Summary", "string"),
            system("status", "Status", "status"),
            system("issuetype", "Issue Type", "issuetype"),
            system("project", "Project", "project"),
            system("labels", "Labels", "array", "string"),
            system("components", "Components", "array", "component"),
            system("fixVersions", "Fix versions", "array", "version"),
            system("resolution", "Resolution", "resolution"),
            system("resolutiondate", "Resolved", "datetime"),
            system("created", "Created", "datetime"),
            system("updated", "Updated", "datetime"),
            custom(EPIC_LINK, "Epic Link", "any", "com.pyxis.greenhopper.jira:gh-epic-link"),
            custom(STORY_POINTS, "Story Points", "number", "com.atlassian.jira.plugin.system.customfieldtypes:float"),
            custom(OKR_PROGRESS, "OKR progress", "number", "com.atlassian.jira.plugin.system.customfieldtypes:float"),
        ]
        if self.cloud:
            fields.insert(0, system("parent", "Parent", "issuelink"))
            fields.insert(0, system("statuscategorychangedate", "Status Category Changed", "datetime"))
            fields.append(
                custom(
                    STORY_POINT_ESTIMATE,
                    "Story point estimate",
                    "number",
                    "com.pyxis.greenhopper.jira:jsw-story-points",
                )
            )
        return fields

    def _self(self, base: str, api: str, path: str) -> str:
        return f"{base}/rest/api/{api}/{path}"

    def render(self, issue: Issue, fields: Sequence[str] | None, base: str, api: str) -> dict[str, Any]:
        """An issue as Jira sends it, with only the requested fields (``None``: every navigable one)."""
        out: dict[str, Any] = {
            "expand": "operations,versionedRepresentations,editmeta,changelog,renderedFields",
            "id": str(issue.id),
            "self": self._self(base, api, f"issue/{issue.id}"),
            "key": issue.key,
        }
        everything = fields is None or any(f in ("*all", "*navigable") for f in fields)
        wanted = set(fields or ())
        if not everything and wanted <= {"id", "key"}:
            return {"id": str(issue.id)} if "key" not in wanted else {"id": str(issue.id), "key": issue.key}
        values = self._fields(issue, base, api)
        out["fields"] = {k: v for k, v in values.items() if everything or k in wanted}
        return out

    def _fields(self, issue: Issue, base: str, api: str) -> dict[str, Any]:
        project_id, project_name, team_managed, points_field = _PROJECTS[issue.project]
        type_id, level = _TYPES[issue.type]
        status_id, category = _STATUSES.get(issue.status, ("1", issue.category))
        category = issue.category
        cat = _CATEGORIES.get(category, {"id": 1, "key": category, "colorName": "medium-gray", "name": "No Category"})
        issuetype: dict[str, Any] = {
            "self": self._self(base, api, f"issuetype/{type_id}"),
            "id": type_id,
            "description": "",
            "iconUrl": f"{base}/images/icons/issuetypes/{issue.type.lower()}.svg",
            "name": issue.type,
            "subtask": issue.subtask,
            "avatarId": 10300 + int(type_id) % 100,
        }
        if self.cloud:
            issuetype["hierarchyLevel"] = level
            issuetype["entityId"] = f"5f9c{type_id}-sandbox"
        project: dict[str, Any] = {
            "self": self._self(base, api, f"project/{project_id}"),
            "id": project_id,
            "key": issue.project,
            "name": project_name,
            "projectTypeKey": "software",
        }
        if self.cloud:
            project["simplified"] = team_managed
        values: dict[str, Any] = {
            "summary": issue.summary,
            "status": {
                "self": self._self(base, api, f"status/{status_id}"),
                "description": "",
                "iconUrl": f"{base}/images/icons/statuses/generic.png",
                "name": issue.status,
                "id": status_id,
                "statusCategory": {"self": self._self(base, api, f"statuscategory/{cat['id']}"), **cat},
            },
            "issuetype": issuetype,
            "project": project,
            "labels": list(issue.labels),
            "components": [
                {"self": self._self(base, api, f"component/{100 + n}"), "id": str(100 + n), "name": name}
                for n, name in enumerate(issue.components)
            ],
            "fixVersions": [
                {
                    "self": self._self(base, api, f"version/{200 + n}"),
                    "id": str(200 + n),
                    "name": name,
                    "archived": False,
                    "released": False,
                }
                for n, name in enumerate(issue.fix_versions)
            ],
            "resolution": (
                {
                    "self": self._self(base, api, f"resolution/{_RESOLUTIONS.get(issue.resolution, '1')}"),
                    "id": _RESOLUTIONS.get(issue.resolution, "1"),
                    "description": "",
                    "name": issue.resolution,
                }
                if issue.resolution
                else None
            ),
            "resolutiondate": jira_time(issue.resolved),
            "created": jira_time(issue.created),
            "updated": jira_time(issue.updated),
            STORY_POINTS: issue.points if points_field == STORY_POINTS or not self.cloud else None,
            OKR_PROGRESS: issue.okr_progress,
        }
        if self.cloud:
            values["statuscategorychangedate"] = jira_time(issue.category_changed)
            values[STORY_POINT_ESTIMATE] = issue.points if points_field == STORY_POINT_ESTIMATE else None
        parent_id = self.parent_id(issue)
        parent = self.issues.get(parent_id) if parent_id is not None else None
        if parent is not None:
            values["parent"] = {
                "id": str(parent.id),
                "key": parent.key,
                "self": self._self(base, api, f"issue/{parent.id}"),
                "fields": {
                    "summary": parent.summary,
                    "status": {"name": parent.status},
                    "issuetype": {"name": parent.type, "subtask": parent.subtask},
                },
            }
        epic = self.issues.get(issue.epic) if issue.epic is not None else None
        if not (self.cloud and team_managed):
            values[EPIC_LINK] = epic.key if epic is not None and not issue.subtask else None
        return values

    # -- HTTP -------------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        with self._lock:
            reply = self._route(request)
        reply.headers.setdefault("Date", email.utils.format_datetime(self.clock(), usegmt=True))
        return reply

    def _route(self, request: Request) -> Reply:
        match = re.fullmatch(r"/rest/api/(2|3|latest)/(.+?)/?", request.path)
        if not match:
            return Reply(404, {"errorMessages": ["Not found"], "errors": {}})
        api, rest = match.group(1), match.group(2)
        if api == "latest":
            api = "2"
        if api == "3" and not self.cloud:
            return Reply(404, {"message": "null for uri: " + request.path, "status-code": 404})
        base = "http://" + request.headers.get("Host", "127.0.0.1")
        if rest == "serverInfo" and request.method == "GET":
            return Reply(200, self.server_info(base))
        if not self._authorised(request):
            return Reply(401, _NOT_AUTHENTICATED, {"WWW-Authenticate": 'Basic realm="protected-area"'})
        if rest == "myself":
            return Reply(200, self.myself(base, api))
        if rest == "field":
            return Reply(200, self.field_list())
        if rest == "statuscategory":
            return Reply(
                200,
                [
                    {"self": self._self(base, api, f"statuscategory/{c['id']}"), **c}
                    for c in [
                        {"id": 1, "key": "undefined", "colorName": "medium-gray", "name": "No Category"},
                        *_CATEGORIES.values(),
                    ]
                ],
            )
        try:
            if rest == "search/jql" and self.cloud and request.method in ("GET", "POST"):
                return self._search_jql(request, base, api)
            if rest == "search" and request.method in ("GET", "POST"):
                if self.cloud:
                    return Reply(410, _GONE)
                return self._search_offset(request, base, api)
            if rest == "issue/bulkfetch" and self.cloud and request.method == "POST":
                return self._bulkfetch(request, base, api)
        except JqlError as exc:
            return Reply(400, {"errorMessages": [str(exc)], "errors": {}})
        issue_match = re.fullmatch(r"issue/([^/]+)(/comment)?", rest)
        if issue_match:
            return self._issue(request, issue_match.group(1), bool(issue_match.group(2)), base, api)
        return Reply(404, {"errorMessages": ["Not found"], "errors": {}})

    def _authorised(self, request: Request) -> bool:
        header = next((v for k, v in request.headers.items() if k.lower() == "authorization"), "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                user, _, secret = base64.b64decode(value).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return self.users.get(user) == secret and bool(secret)
        if scheme.lower() == "bearer" and not self.cloud:
            return bool(self.pat) and value == self.pat
        return False

    def server_info(self, base: str) -> dict[str, Any]:
        info: dict[str, Any] = {
            "baseUrl": base,
            "buildDate": "2026-10-20T03:12:44.000+0000",
            "buildNumber": 100300 if self.cloud else 9120002,
            "scmInfo": "3c1dc0e9a7b0f3d4c9c01bd1a2b3c4d5e6f70811",
            "serverTime": jira_time(self.clock()),
            "serverTitle": "Sandbox Jira",
            "version": "1001.0.0-SNAPSHOT" if self.cloud else "9.12.2",
            "versionNumbers": [1001, 0, 0] if self.cloud else [9, 12, 2],
        }
        if self.cloud:
            info["serverTimeZone"] = "America/New_York"
        if self.deployment_type:
            info["deploymentType"] = "Cloud" if self.cloud else "Server"
        return info

    def myself(self, base: str, api: str) -> dict[str, Any]:
        email_address = next(iter(self.users), "demo@example.com")
        if self.cloud:
            return {
                "self": self._self(base, api, "user?accountId=5b10ac8d82e05b22cc7d4ef5"),
                "accountId": "5b10ac8d82e05b22cc7d4ef5",
                "accountType": "atlassian",
                "emailAddress": email_address,
                "displayName": "Sandbox Demo",
                "active": True,
                "timeZone": "America/New_York",
                "locale": "en_US",
            }
        return {
            "self": self._self(base, api, "user?username=demo"),
            "key": "JIRAUSER10000",
            "name": "demo",
            "emailAddress": email_address,
            "displayName": "Sandbox Demo",
            "active": True,
            "timeZone": "America/New_York",
            "locale": "en_US",
        }

    @staticmethod
    def _params(request: Request) -> dict[str, Any]:
        if request.method == "POST":
            body = request.json() or {}
            if not isinstance(body, dict):
                raise JqlError("Error in the JQL Query: the request body is not a JSON object.")
            return body
        params: dict[str, Any] = {k: v[0] for k, v in request.query.items()}
        if "fields" in request.query:
            params["fields"] = [f for value in request.query["fields"] for f in value.split(",") if f]
        return params

    @staticmethod
    def _field_names(params: dict[str, Any], default: list[str] | None) -> list[str] | None:
        fields = params.get("fields")
        if fields is None:
            return default
        if isinstance(fields, str):
            fields = [f for f in fields.split(",") if f]
        return [str(f).strip() for f in fields]

    def _search_jql(self, request: Request, base: str, api: str) -> Reply:
        params = self._params(request)
        jql = str(params.get("jql") or "")
        fields = self._field_names(params, ["id"])
        ids_only = fields is not None and set(fields) <= {"id", "key"}
        cap = 5000 if ids_only else 100
        try:
            size = max(1, min(int(params.get("maxResults", 50)), cap))
        except (TypeError, ValueError):
            return Reply(400, {"errorMessages": ["maxResults must be a number."], "errors": {}})
        token = params.get("nextPageToken")
        if token:
            try:
                cache_jql, offset = _decode_token(str(token))
            except ValueError:
                return Reply(
                    400, {"errorMessages": ["The provided next page token is invalid or expired."], "errors": {}}
                )
            if cache_jql != jql:
                return Reply(
                    400, {"errorMessages": ["The provided next page token is invalid or expired."], "errors": {}}
                )
        else:
            offset = 0
        if not jql.strip() or _unbounded(jql):
            return Reply(
                400,
                {
                    "errorMessages": [
                        "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."
                    ],
                    "errors": {},
                },
            )
        ids = self.search_ids(jql)
        chunk = ids[offset : offset + size]
        body: dict[str, Any] = {
            "issues": [self.render(self.issues[i], fields, base, api) for i in chunk],
            "isLast": offset + size >= len(ids),
        }
        if offset + size < len(ids):
            body["nextPageToken"] = _encode_token(jql, offset + size)
        return Reply(200, body)

    def _search_offset(self, request: Request, base: str, api: str) -> Reply:
        params = self._params(request)
        jql = str(params.get("jql") or "")
        fields = self._field_names(params, None)
        try:
            start = max(0, int(params.get("startAt", 0)))
            size = max(0, min(int(params.get("maxResults", 50)), 1000))
        except (TypeError, ValueError):
            return Reply(400, {"errorMessages": ["startAt and maxResults must be numbers."], "errors": {}})
        if start + size > self.search_window:
            return Reply(
                400,
                {
                    "errorMessages": [
                        "Search limit exceeded. The maximum allowed value of startAt + maxResults is "
                        f"{self.search_window}; narrow the query (jira.search.platform.max.result.window)."
                    ],
                    "errors": {},
                },
            )
        ids = self.search_ids(jql)
        chunk = ids[start : start + size]
        return Reply(
            200,
            {
                "expand": "schema,names",
                "startAt": start,
                "maxResults": size,
                "total": len(ids),
                "issues": [self.render(self.issues[i], fields, base, api) for i in chunk],
            },
        )

    def _bulkfetch(self, request: Request, base: str, api: str) -> Reply:
        body = request.json() or {}
        refs = body.get("issueIdsOrKeys") if isinstance(body, dict) else None
        if not isinstance(refs, list) or not refs:
            return Reply(400, {"errorMessages": ["issueIdsOrKeys must not be empty."], "errors": {}})
        fields = self._field_names(body, None)
        shaped = bool(fields) and not any(f.startswith("*") for f in fields or []) and len(fields or []) <= 100
        limit = 1000 if shaped else 100
        if len(refs) > limit:
            return Reply(
                400,
                {
                    "errorMessages": [f"The number of issue IDs or keys requested must not exceed {limit}."],
                    "errors": {},
                },
            )
        found: dict[int, Issue] = {}
        for ref in refs:
            issue = self.find(str(ref))
            if issue is not None and self._search_visible(issue):
                found[issue.id] = issue
        return Reply(
            200,
            {
                "issueErrors": [],
                "issues": [self.render(found[i], fields, base, api) for i in sorted(found)],
            },
        )

    def _search_visible(self, issue: Issue) -> bool:
        shadow = self.shadows.get(issue.id)
        return shadow is None or self.clock() >= shadow[0] or shadow[1] is not None

    def _issue(self, request: Request, ref: str, comment: bool, base: str, api: str) -> Reply:
        issue = self.find(ref)
        if issue is None:
            return Reply(404, _NO_ISSUE)
        if comment:
            if request.method == "GET":
                return Reply(
                    200, {"startAt": 0, "maxResults": 50, "total": len(issue.comments), "comments": issue.comments}
                )
            if request.method != "POST":
                return Reply(405, {"errorMessages": ["Method not allowed"], "errors": {}})
            body = (request.json() or {}).get("body")
            if (api == "3" and not (isinstance(body, dict) and body.get("type") == "doc")) or (
                api == "2" and not isinstance(body, str)
            ):
                return Reply(400, {"errorMessages": [], "errors": {"comment": "Comment body is not valid."}})
            self._touch(issue)
            entry = {
                "id": str(20000 + len(issue.comments)),
                "body": body,
                "created": jira_time(self.clock()),
                "self": self._self(base, api, f"issue/{issue.id}/comment/{20000 + len(issue.comments)}"),
            }
            issue.comments.append(entry)
            return Reply(201, entry)
        if request.method == "GET":
            fields = self._field_names(self._params(request), None)
            return Reply(200, self.render(issue, fields, base, api))
        if request.method == "PUT":
            return self._edit(issue, request.json() or {})
        return Reply(405, {"errorMessages": ["Method not allowed"], "errors": {}})

    def _edit(self, issue: Issue, body: dict[str, Any]) -> Reply:
        """``PUT /issue``: validate everything first, then apply (Jira edits are all or nothing)."""
        errors: dict[str, str] = {}
        sets: dict[str, Any] = {}
        label_ops: list[tuple[str, Any]] = []
        for fid, value in (body.get("fields") or {}).items():
            if fid in (OKR_PROGRESS, STORY_POINTS, STORY_POINT_ESTIMATE):
                if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                    errors[fid] = "Operation value must be a number"
                    continue
                sets["okr_progress" if fid == OKR_PROGRESS else "points"] = None if value is None else float(value)
            elif fid == "summary" and isinstance(value, str):
                sets["summary"] = value
            elif fid == "labels" and isinstance(value, list):
                sets["labels"] = [str(x) for x in value]
            else:
                errors[fid] = f"Field '{fid}' cannot be set. It is not on the appropriate screen, or unknown."
        for fid, operations in (body.get("update") or {}).items():
            if fid != "labels" or not isinstance(operations, list):
                errors[fid] = f"Field '{fid}' cannot be set. It is not on the appropriate screen, or unknown."
                continue
            for operation in operations:
                label_ops.extend((operation or {}).items())
        if errors:
            return Reply(400, {"errorMessages": [], "errors": errors})
        self._touch(issue)
        for attr, value in sets.items():
            setattr(issue, attr, value)
        for verb, label in label_ops:
            if verb == "add" and label not in issue.labels:
                issue.labels.append(str(label))
            elif verb == "remove" and label in issue.labels:
                issue.labels.remove(label)
            elif verb == "set":
                issue.labels = [str(x) for x in label]
        return Reply(204)

    # -- mutations --------------------------------------------------------------------------

    def _touch(self, issue: Issue | None, *, created: bool = False) -> None:
        """Record a change: bump ``updated``, keep the old version for search while ``lag`` runs."""
        self.version += 1
        if issue is None:
            return
        if self.lag > 0 and issue.id not in self.shadows:
            self.shadows[issue.id] = (
                self.clock() + timedelta(seconds=self.lag),
                None if created else copy.deepcopy(issue),
            )
        issue.updated = self.clock()

    def control(self, action: str, body: Any) -> Any:
        """The sandbox knobs; unknown actions raise ``KeyError`` (the server answers 404)."""
        body = body or {}
        with self._lock:
            if action == "update":
                return self._update(body)
            if action == "create":
                return self._create(body)
            if action == "delete":
                issue = self._need(body)
                self.deleted.add(issue.id)
                self._touch(None)
                return {"deleted": issue.key}
            if action == "move":
                issue = self._need(body)
                self._touch(issue)
                self._move(issue, str(body["project"]).upper(), when=issue.updated)
                return {"id": str(issue.id), "key": issue.key}
            if action == "revoke":
                self.revoked.add(str(body["project"]).upper())
                self._touch(None)
                return {"revoked": sorted(self.revoked)}
            if action == "restore":
                project = body.get("project")
                self.revoked = set() if not project else self.revoked - {str(project).upper()}
                self._touch(None)
                return {"revoked": sorted(self.revoked)}
            if action == "lag":
                self.lag = float(body.get("seconds", 0))
                return {"lag": self.lag}
            if action == "clock":
                self._offset += timedelta(seconds=float(body.get("advance", 0)))
                return {"now": self.clock().isoformat()}
            if action == "reset":
                self._generate()
                return {"issues": len(self.issues)}
        raise KeyError(action)

    def _need(self, body: dict[str, Any]) -> Issue:
        issue = self.find(str(body.get("key", "")))
        if issue is None:
            raise ValueError(f"no visible issue {body.get('key')!r}")
        return issue

    def _update(self, body: dict[str, Any]) -> dict[str, Any]:
        issue = self._need(body)
        self._touch(issue)
        now = issue.updated
        if "status" in body or "statusCategory" in body:
            status = str(body.get("status") or issue.status)
            category = str(body.get("statusCategory") or _STATUSES.get(status, ("", issue.category))[1])
            if category != issue.category:
                issue.category_changed = now
            issue.status, issue.category = status, category
            if category == "done":
                issue.resolution = body.get("resolution") or ("Won't Do" if status == "Won't Do" else "Done")
                issue.resolved = now
            else:
                issue.resolution, issue.resolved = None, None
        elif "resolution" in body:
            issue.resolution = body["resolution"]
        if "labels" in body:
            issue.labels = [str(x) for x in body["labels"]]
        if "points" in body:
            issue.points = None if body["points"] is None else float(body["points"])
        if "summary" in body:
            issue.summary = str(body["summary"])
        if "epic" in body:
            epic = self.find(str(body["epic"])) if body["epic"] else None
            issue.epic = epic.id if epic else None
        return {"id": str(issue.id), "key": issue.key, "updated": jira_time(issue.updated)}

    def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        project = str(body.get("project", "PLAT")).upper()
        if project not in _PROJECTS:
            raise ValueError(f"unknown project {project}")
        status = str(body.get("status", "To Do"))
        if status not in _STATUSES:
            raise ValueError(f"unknown status {status}")
        now = self.clock()
        epic = self.find(str(body["epic"])) if body.get("epic") else None
        parent = self.find(str(body["parent"])) if body.get("parent") else None
        issue = self._new(
            f"{project}-{self.counters.get(project, 0) + 1}",
            str(body.get("summary", "New issue")),
            str(body.get("type", "Sub-task" if parent else "Story")),
            status,
            now,
            done=now if _STATUSES[status][1] == "done" else None,
            updated=now,
            labels=[str(x) for x in body.get("labels", [])],
            points=None if body.get("points") is None else float(body["points"]),
            epic=epic.id if epic else None,
            parent=parent.id if parent else None,
        )
        self.version += 1
        if self.lag > 0:
            self.shadows[issue.id] = (self.clock() + timedelta(seconds=self.lag), None)
        return {"id": str(issue.id), "key": issue.key}

    # -- truth ------------------------------------------------------------------------------

    def truth(
        self,
        source: str = "jira",
        base_url: str = "",
        excluded: Iterable[str] = ("Won't Do", "Duplicate", "Cannot Reproduce"),
    ) -> list[WorkItem]:
        """What okrsync should hold for this site, computed from the sandbox's own data."""
        skip = {r.casefold() for r in excluded}
        items: list[WorkItem] = []
        with self._lock:
            for issue in self.issues.values():
                if issue.id in self.deleted or issue.project in self.revoked:
                    continue
                state = {"new": State.TODO, "indeterminate": State.IN_PROGRESS, "done": State.DONE}.get(
                    issue.category, State.UNKNOWN
                )
                parent_id = self.parent_id(issue)
                parent_key: str | None = None
                if parent_id is not None:
                    parent_key = self.issues[parent_id].key
                elif issue.epic is not None:
                    parent_key = self.issues[issue.epic].key  # Data Center: the Epic Link (a key)
                if issue.type == "Epic":
                    kind = ItemKind.EPIC
                elif issue.subtask:
                    kind = ItemKind.SUBTASK
                else:
                    kind = ItemKind.ISSUE
                items.append(
                    WorkItem(
                        source=source,
                        id=str(issue.id),
                        key=issue.key,
                        title=issue.summary,
                        url=f"{base_url.rstrip('/')}/browse/{issue.key}",
                        kind=kind,
                        state=state,
                        updated_at=issue.updated,
                        container=issue.project,
                        issue_type=issue.type,
                        created_at=issue.created,
                        done_at=(issue.resolved or issue.category_changed) if state is State.DONE else None,
                        excluded=bool(issue.resolution and issue.resolution.casefold() in skip),
                        resolution=issue.resolution,
                        points=issue.points,
                        labels=tuple(issue.labels),
                        components=tuple(issue.components),
                        fix_versions=tuple(issue.fix_versions),
                        parent_key=parent_key,
                        parent_id=str(parent_id) if parent_id is not None else None,
                        status_name=issue.status,
                    )
                )
        return items


def _encode_token(jql: str, offset: int) -> str:
    raw = f"{offset}:{jql}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str) -> tuple[str, int]:
    padded = token + "=" * (-len(token) % 4)
    try:
        offset, _, jql = base64.urlsafe_b64decode(padded).decode().partition(":")
        return jql, int(offset)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("bad token") from exc


def _unbounded(jql: str) -> bool:
    """Cloud's enhanced search refuses a query with no restriction at all (only ORDER BY)."""
    return re.fullmatch(r"\s*(order\s+by\b.*)?", jql, flags=re.IGNORECASE | re.DOTALL) is not None


def start_jira_sandbox(
    scenario: str = "demo",
    size: int = 0,
    now: datetime | None = None,
    seed: int = 1,
    *,
    flavour: str = "cloud",
    **options: Any,
) -> tuple[SandboxServer, JiraApp]:
    """A started sandbox Jira on 127.0.0.1 (a free port); stop it with ``server.stop()``."""
    app = JiraApp(flavour=flavour, scenario=scenario, size=size, now=now, seed=seed, **options)
    server = SandboxServer(app, seed=seed).start()
    return server, app


def quarter_bounds(moment: datetime) -> tuple[date, date]:
    """The calendar quarter holding ``moment`` (first day, last day): the demo's cycle."""
    first = date(moment.year, 3 * ((moment.month - 1) // 3) + 1, 1)
    nxt = date(first.year + (first.month + 2) // 12, (first.month + 2) % 12 + 1, 1)
    return first, nxt - timedelta(days=1)
