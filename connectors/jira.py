"""Jira Cloud and Jira Server/Data Center: config, match rules, write-back targets, connector.

The config and rule models come first (they are pure and used by ``okrsync validate`` and the
progress core); the connector that talks to Jira follows.
"""

from __future__ import annotations

import base64
import email.utils
import functools
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, model_validator

from connectors.base import ConnectorContext, ConnectorPlugin, PublishConfig, RuleConfig, SourceConfig
from connectors.http import HttpClient, StatusError
from connectors.shapes import BodyShape, Named, members, object_with_list
from syncer.config import Duration
from syncer.errors import CompatibilityError, SourceError, TransientError, VisibilityLostError
from syncer.model import ItemKind, Page, PlannedWrite, State, WorkItem

log = logging.getLogger("okrsync.jira")

__all__ = [
    "PLUGIN",
    "JiraAuth",
    "JiraConnector",
    "JiraMeta",
    "JiraPublish",
    "JiraRule",
    "JiraSource",
    "parse_jira_time",
]


class JiraAuth(BaseModel):
    """Cloud: ``email`` + API ``token`` (Basic). Data Center: ``pat`` (Bearer)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    email: str | None = None
    token: str | None = None
    pat: str | None = None

    @model_validator(mode="after")
    def _one_scheme(self) -> JiraAuth:
        if self.pat and (self.email or self.token):
            raise ValueError("auth: give either email + token (Cloud) or pat (Data Center), not both")
        if not self.pat and not (self.email and self.token):
            raise ValueError("auth: needs email and token (Cloud) or pat (Data Center)")
        return self


class JiraSource(SourceConfig):
    """A Jira site (Cloud, or a Server/Data Center base URL)."""

    type: Literal["jira"]
    url: str
    auth: JiraAuth
    scope: str
    """JQL for the work watched for unaligned items, e.g. ``project in (PLAT, MOB)``."""
    story_points_field: str = "auto"
    excluded_resolutions: tuple[str, ...] = ("Won't Do", "Duplicate", "Cannot Reproduce")
    overlap: Duration = timedelta(minutes=10)
    timeout: Duration = timedelta(seconds=30)
    page_size: int = 100

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.auth.token, self.auth.pat) if s)


class JiraRule(RuleConfig):
    """Which Jira issues count for a key result. Keys are AND-ed."""

    epic: str | None = None
    """Children of this epic (team-managed ``parent`` and company-managed Epic Link alike)."""
    parent: str | None = None
    """Every descendant of this issue at any depth (evaluated by Jira)."""
    jql: str | None = None
    """Issues this JQL returns now (evaluated by Jira with an ids-only search)."""
    labels: tuple[str, ...] = ()
    project: str | None = None
    issue_type: str | None = None
    component: str | None = None
    fix_version: str | None = None

    def needs_members(self) -> bool:
        return bool(self.jql or self.parent)

    def index_key(self) -> tuple[str, str] | None:
        """The one item value this rule requires, for ``syncer.matching``'s rule index: an
        item whose epic or project differs is not tried against it at all."""
        if self.epic:
            return ("parent_upper", self.epic.upper())
        if self.project:
            return ("container_upper", self.project.upper())
        return None

    def predicate(self) -> Callable[[WorkItem, Mapping[str, frozenset[str]]], bool]:
        """``matches`` with the rule's values normalised once (``match_item`` calls it for
        every item of a full sync: 200k items x 20 rules)."""
        source = self.source
        epic = self.epic.upper() if self.epic else None
        fingerprint = self.fingerprint() if self.needs_members() else None
        labels = frozenset(self.labels)
        project = self.project.upper() if self.project else None
        issue_type = self.issue_type.casefold() if self.issue_type else None
        component = self.component or None
        fix_version = self.fix_version or None
        empty: frozenset[str] = frozenset()

        def test(item: WorkItem, members: Mapping[str, frozenset[str]]) -> bool:
            if item.source != source or item.kind is ItemKind.SUBTASK:
                return False
            if epic is not None and (item.parent_key or "").upper() != epic:
                return False
            if fingerprint is not None and item.id not in members.get(fingerprint, empty):
                return False
            if labels and not labels.issubset(item.labels):
                return False
            if project is not None and item.container.upper() != project:
                return False
            if issue_type is not None and item.issue_type.casefold() != issue_type:
                return False
            if component is not None and component not in item.components:
                return False
            return fix_version is None or fix_version in item.fix_versions

        return test

    def matches(self, item: WorkItem, members: Mapping[str, frozenset[str]]) -> bool:
        if item.source != self.source or item.kind is ItemKind.SUBTASK:
            return False
        if self.epic and (item.parent_key or "").upper() != self.epic.upper():
            return False
        if self.needs_members() and item.id not in members.get(self.fingerprint(), frozenset()):
            return False
        if self.labels and not set(self.labels) <= set(item.labels):
            return False
        if self.project and item.container.upper() != self.project.upper():
            return False
        if self.issue_type and item.issue_type.casefold() != self.issue_type.casefold():
            return False
        if self.component and self.component not in item.components:
            return False
        return not (self.fix_version and self.fix_version not in item.fix_versions)


class JiraPublish(PublishConfig):
    """Write a key result's progress to a Jira issue: a number ``field`` or a ``comment``."""

    issue: str
    field: str | None = None
    comment: bool = False

    @model_validator(mode="after")
    def _one_target(self) -> JiraPublish:
        if bool(self.field) == bool(self.comment):
            raise ValueError("publish: give exactly one of `field: <field id>` or `comment: true`")
        return self

    def target(self) -> str:
        return f"{self.issue}:{self.field or 'comment'}"


# ---------------------------------------------------------------------------------------------
# The connector
#
# Plain requests through ``connectors.http.HttpClient`` rather than the pycontribs ``jira``
# package: its ResilientSession has no timeout by default, retries only 429/503 (and can retry
# before a long Retry-After), and ``enhanced_search_issues`` fetches a single page unless told
# otherwise (research §I facts 41-45). Owning the paging loop is also what lets us stop only
# when ``nextPageToken`` is absent, never on a short page or a missing ``total``.
#
# Request floors (research §2), N issues in scope, k changed since the cursor:
#   Cloud full pass   ⌈N/5000⌉ id-only searches (the census) + ⌈N/1000⌉ bulkfetch calls
#   DC full pass      ⌈N/1000⌉ offset pages (restarted by keyset under the 10 000 window)
#   incremental       max(1, ⌈k/100⌉) searches, ONE query over scope and rule selections
#   idle incremental  exactly 1 request once the metadata is cached in ``context.state``
# ---------------------------------------------------------------------------------------------

_BASE_FIELDS = (
    "summary",
    "status",
    "issuetype",
    "project",
    "labels",
    "components",
    "fixVersions",
    "parent",
    "resolution",
    "resolutiondate",
    "created",
    "updated",
    "statuscategorychangedate",
)
_POINTS_NAMES = ("story points", "story point estimate")
_POINTS_SCHEMA = "com.pyxis.greenhopper.jira:jsw-story-points"
_EPIC_LINK_SCHEMA = "com.pyxis.greenhopper.jira:gh-epic-link"
_STATE_BY_CATEGORY = {"new": State.TODO, "indeterminate": State.IN_PROGRESS, "done": State.DONE}
_ID_PAGE_CLOUD = 5000
_ID_PAGE_DC = 1000
_DC_PAGE = 1000
_BULK = 1000
_IN_BATCH = 1000
_MAX_PAGES = 100_000
_PARENT_DEPTH = 5
_TREE_KEY = "jira_parent_tree"
"""Connector state, per ``parent`` rule fingerprint as of the last successful pass: ``tree``, every
descendant (widens the rule's clause), and ``members``, those the rule matched (all stored then)."""
_RECENT_CAP = 2000
_DATE_RESOLUTION_MS = 1000
"""An HTTP ``Date`` is whole seconds, stamped after the query ran."""
_META_KEY = "jira_meta"
_SIMPLE_SCOPE = re.compile(r"^\s*project\s*(?:=\s*\"?([\w-]+)\"?|in\s*\(([^()]*)\))\s*$", re.IGNORECASE)
_LOST = ("does not exist for the field 'project'", "do not have permission", "does not exist or you")


@dataclass(frozen=True)
class JiraMeta:
    """Slow-changing facts about a site, cached in ``context.state`` between passes."""

    cloud: bool
    points_fields: tuple[str, ...]
    epic_link_field: str | None
    points_names: tuple[str, ...] = ()

    @property
    def api(self) -> str:
        return "3" if self.cloud else "2"


def parse_jira_time(value: Any) -> datetime | None:
    """Jira's ``2026-11-02T10:15:30.000+0100`` (or ISO with a colon / ``Z``) as aware UTC."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")
        except ValueError:
            return None
    if parsed.tzinfo is None:
        return None
    return parsed.astimezone(UTC)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _id_order(ids: Iterable[str]) -> list[str]:
    """Jira issue ids (digit strings) in numeric order: shorter first, then by text. Sorted by
    text, then (stably) by length: 0.05 s for 100k ids, a ``(len, text)`` key took 0.21 s."""
    return sorted(sorted(ids), key=len)


def _days_before(ms: int, days: int) -> str:
    """``YYYY-MM-DD`` of the UTC day ``days`` before the one holding ``ms``."""
    return (datetime.fromtimestamp(ms / 1000, UTC).date() - timedelta(days=days)).isoformat()


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class JiraConnector:
    """One Jira site (Cloud or Server/Data Center), seen from ``run_once``."""

    def __init__(self, name: str, config: JiraSource, context: ConnectorContext) -> None:
        self.name = name
        self.config = config
        self.context = context
        self.state: dict[str, Any] = context.state if context.state is not None else {}
        self.needs_points = False
        """Set by the caller when a key result of this source uses a points metric: then a site
        without a story points field is an error instead of items with ``points=None``."""
        self.dc_window = 10_000
        """Offset limit of a Server/DC search (``max_result_window``); queries restart past it."""
        auth = config.auth
        secrets = list(config.secrets())
        if auth.pat:
            headers = {"Authorization": f"Bearer {auth.pat}"}
        else:
            basic = base64.b64encode(f"{auth.email}:{auth.token}".encode()).decode()
            headers = {"Authorization": f"Basic {basic}"}
            secrets.append(basic)
        self.http = HttpClient(
            source=name,
            base_url=config.url,
            headers=headers,
            secrets=tuple(secrets),
            policy=replace(context.policy, timeout=config.timeout.total_seconds()),
            ca_bundle=config.ca_bundle,
            session=context.session,
            sleep=context.sleep,
            stop=context.stop,
        )
        self.base = config.url.rstrip("/")
        self._simple_scope = _scope_projects(config.scope)
        self._excluded_resolutions = frozenset(r.casefold() for r in config.excluded_resolutions)
        """Compared case-insensitively for every resolved issue (the config is frozen)."""

    # -- counters ---------------------------------------------------------------------------

    @property
    def requests(self) -> int:
        return self.http.request_count

    @property
    def quota_requests(self) -> int:
        return self.http.request_count - self.http.not_modified

    # -- metadata ---------------------------------------------------------------------------

    def check(self) -> None:
        """Credentials and flavour: one ``myself`` call (plus the metadata when not cached)."""
        meta = self.meta()
        self.http.get_json(f"rest/api/{meta.api}/myself")

    def meta(self) -> JiraMeta:
        """Flavour and field ids, from ``context.state`` when an earlier pass found them."""
        cached = self.state.get(_META_KEY)
        if (
            isinstance(cached, dict)
            and cached.get("url") == self.base
            and cached.get("sp") == (self.config.story_points_field)
        ):
            meta = JiraMeta(
                cloud=bool(cached.get("cloud")),
                points_fields=tuple(cached.get("points") or ()),
                epic_link_field=cached.get("epic_link"),
            )
        else:
            meta = self._discover()
            self.state[_META_KEY] = {
                "url": self.base,
                "sp": self.config.story_points_field,
                "cloud": meta.cloud,
                "points": list(meta.points_fields),
                "epic_link": meta.epic_link_field,
            }
        if not meta.points_fields and self.needs_points:
            raise SourceError(
                self.name,
                f"no story points field found on {self.base}; set story_points_field to a field id",
            )
        return meta

    def _discover(self) -> JiraMeta:
        info = self.http.get_json("rest/api/2/serverInfo")
        deployment = info.get("deploymentType") if isinstance(info, dict) else None
        if isinstance(deployment, str) and deployment:
            cloud = deployment.casefold() == "cloud"
        else:
            # The Cloud OpenAPI example has no deploymentType: ask the server whether it has the
            # Cloud-only enhanced search instead of guessing from the host name.
            probe = self.http.request(
                "GET",
                "rest/api/3/search/jql",
                params={"jql": "created is EMPTY", "maxResults": 1, "fields": "id"},
                accept=(400, 404, 405),
            )
            cloud = probe.status == 200
        fields = self.http.get_json(f"rest/api/{'3' if cloud else '2'}/field")
        if not isinstance(fields, list):
            raise TransientError(self.name, "the field list is not a list")
        points = self._points_fields(fields)
        epic_link = None
        for item in fields:
            if not isinstance(item, dict):
                continue
            custom = str(_obj(item.get("schema")).get("custom") or "")
            if custom == _EPIC_LINK_SCHEMA or str(item.get("name", "")).casefold() == "epic link":
                epic_link = str(item.get("id"))
                break
        return JiraMeta(cloud=cloud, points_fields=points, epic_link_field=epic_link)

    def _points_fields(self, fields: list[Any]) -> tuple[str, ...]:
        wanted = self.config.story_points_field
        ids = {str(f.get("id")) for f in fields if isinstance(f, dict)}
        if wanted != "auto":
            if wanted not in ids:
                raise SourceError(
                    self.name,
                    f"story_points_field {wanted} does not exist on {self.base}; "
                    "set story_points_field to one of the site's field ids or auto",
                )
            return (wanted,)
        # A field list that drifted (an entry without an id, a schema that is not an object) is
        # read for what it holds, never allowed to crash discovery.
        usable = [f for f in fields if isinstance(f, dict) and f.get("id") is not None]
        by_schema = [str(f["id"]) for f in usable if _obj(f.get("schema")).get("custom") == _POINTS_SCHEMA]
        by_name = [str(f["id"]) for f in usable if str(f.get("name", "")).casefold() in _POINTS_NAMES]
        # Every candidate is read: company-managed "Story Points" and team-managed
        # "Story point estimate" live side by side on one site; an item takes the first set.
        return tuple(dict.fromkeys(by_name + by_schema))

    # -- fetch ------------------------------------------------------------------------------

    def fetch(
        self,
        cursor: Mapping[str, Any] | None,
        *,
        full: bool,
        census: bool,
        rules: Sequence[RuleConfig],
    ) -> Iterator[Page]:
        meta = self.meta()
        jira_rules = [r for r in rules if isinstance(r, JiraRule) and r.source == self.name]
        extra = self._extra_clause(jira_rules, meta)
        parents = [r for r in jira_rules if r.parent]
        remembered = self._remembered_trees()
        # Members of the current parent rules that an earlier pass stored (a removed or edited
        # rule has another fingerprint: its old members are not taken as stored for the new one).
        stored = {i for r in parents for i in remembered.get(r.fingerprint(), {}).get("members", [])}
        fallback: Callable[[], str | None] | None = None
        forgot: list[bool] = []  # the remembered tree was dropped: this pass walks it again
        if remembered and parents:

            def fallback() -> str | None:
                # Jira rejects a query naming an issue it no longer has (a deleted descendant); a
                # rejection for another reason fails again without the tree and is raised then.
                self.state.pop(_TREE_KEY, None)
                forgot.append(True)
                log.info("%s: Jira rejected a query carrying remembered parent trees; reading without them",
                         self.name)
                return self._extra_clause(jira_rules, meta)

        scope = f"({self.config.scope})"
        old_ms = _cursor_ms(cursor)
        overlap_ms = int(self.config.overlap.total_seconds() * 1000)
        # Items re-read only because of the overlap window (same id, same ``updated``) are not
        # changes: remembering them in the cursor keeps an idle pass at one request.
        recent = _cursor_recent(cursor)
        scan = _Scan(recent, overlap_ms)
        if old_ms is None:
            full = True
        whole = full or census
        jql_rules = [r for r in jira_rules if r.jql and not r.parent]
        if whole and jql_rules:
            # A whole pass evaluates its JQL rules before it reads the items, so the sync matches
            # each item once against the new sets. Evaluated after them (as an incremental pass
            # must: it asks only about the changed ids), the 22k members of a 200k-issue sync were
            # read back from the store and matched again: ~1.3 s of its CPU.
            fresh = {r.fingerprint(): frozenset(self._ids(f"({r.jql})", scan)) for r in jql_rules}
            # An issue updated from here on may have joined or left a rule after its query: it
            # must count as a change next pass (which asks the rules about its changes again),
            # not as a version already read.
            scan.members_first = True
            yield Page(members=fresh, members_scope=None)
        changed: set[str] = set()
        census_ids: frozenset[str] | None = None

        fetched: set[str] = set()  # ids a whole pass read (for the descendants it still lacks)
        if full:
            holder: list[frozenset[str]] = []
            # No ``changed`` set here: a whole pass re-evaluates every rule (100k ids saved at 200k).
            for page in self._full(meta, scope, extra, scan, holder, fallback):
                if parents:
                    fetched.update(item.id for item in page.items)
                yield page
            census_ids = holder[0]
        else:
            assert old_ms is not None
            since = old_ms - overlap_ms

            def changes(extra: str | None, answered: list[bool]) -> Iterator[Page]:
                where = f"({scope} OR {extra})" if extra else scope
                batch: list[dict[str, Any]] = []
                for issues in self._search(f"{where} AND updated >= {since}", self._fields(meta), scan,
                                           sort="updated", guard=True):
                    answered.append(True)
                    batch.extend(i for i in issues if not scan.already_seen(i))
                    if len(batch) >= 1000:
                        yield self._page(batch, meta, scan, extra is not None)
                        batch = []
                if batch:
                    yield self._page(batch, meta, scan, extra is not None)

            for page in _or_without_tree(changes, extra, fallback):
                changed.update(item.id for item in page.items)
                yield page
            if census:
                census_ids = frozenset(self._ids(scope, scan, guard=True))

        members: dict[str, frozenset[str]] = {}
        if parents and (whole or changed or forgot):
            tree: dict[str, frozenset[str]] = {}
            walked: dict[str, frozenset[str]] = {}
            for rule in parents:
                below = self._descendants(rule.parent or "", meta, scan)
                walked[rule.fingerprint()] = below
                if rule.jql and below:
                    below &= frozenset(self._ids(f"({rule.jql})", scan))
                tree[rule.fingerprint()] = below
            # Descendants neither the scope nor the rule clauses brought (below the direct
            # children, outside the scope, not yet in the remembered tree): fetched by id, so
            # every member of a ``parent`` rule is stored and counted.
            read = fetched if full else changed | stored
            missing = _id_order(set().union(*tree.values()) - read)
            # A whole pass read the entire scope, so what it lacks lies outside it.
            for page in self._pages_by_id(missing, meta, scan, outside=full):
                changed.update(item.id for item in page.items)
                yield page
            self.state[_TREE_KEY] = {
                fp: {"tree": sorted(walked[fp]), "members": sorted(tree[fp])} for fp in tree
            }  # only the current rules: a removed rule's tree is forgotten
            # Descendant sets are always complete (members_scope None), so they travel on their
            # own page; the JQL sets below may be partial (only the changed ids).
            yield Page(members=tree, members_scope=None)
        if not whole and changed:
            for rule in jql_rules:
                members[rule.fingerprint()] = frozenset(self._ids_among(f"({rule.jql})", changed, scan))
        new_ms = scan.cursor_ms(old_ms)
        yield Page(
            cursor={"updated_ms": new_ms, "recent": scan.recent_after(new_ms - overlap_ms)},
            census=census_ids,
            members=members,
            members_scope=None if whole else frozenset(changed),
        )

    def _full(
        self,
        meta: JiraMeta,
        scope: str,
        extra: str | None,
        scan: _Scan,
        census: list[frozenset[str]],
        fallback: Callable[[], str | None] | None,
    ) -> Iterator[Page]:
        """Everything in scope (plus rule selections outside it); the scope's ids go to ``census``."""
        if meta.cloud:
            in_scope = self._ids(scope, scan, guard=True)

            def outside_ids(extra: str | None, answered: list[bool]) -> Iterator[list[str]]:
                yield self._ids(f"({extra}) AND NOT {scope}", scan) if extra else []

            outside = [i for ids in _or_without_tree(outside_ids, extra, fallback) for i in ids]
            inside = frozenset(in_scope)
            census.append(inside)
            # Fetched in the store's key order, not the census's creation order: the keys of
            # items, matches and members begin with the id (text), so their B-trees then grow at
            # their ends instead of taking rows all over. Where creation dates do not follow ids
            # (imports, migrations, the bench's sandbox) a 100k-item first load wrote 38k WAL
            # frames in creation order and 11.5k in id order; write_page 2.2-2.4 -> 1.8-1.95 s
            # CPU (bench/RESULTS.md). Any order costs the same requests.
            yield from self._bulk_pages(sorted(inside.union(outside)), inside, meta, scan)
            return
        # Data Center: the paged search with fields is the census as well.
        seen: set[str] = set()
        for issues in self._search(scope, self._fields(meta), scan, sort="created", guard=True):
            mapped = [self.to_item(i, meta) for i in issues]
            seen.update(i.id for i in mapped)
            yield Page(items=tuple(mapped))
        census.append(frozenset(seen))

        def outside_pages(extra: str | None, answered: list[bool]) -> Iterator[Page]:
            if not extra:
                return
            for issues in self._search(f"({extra}) AND NOT {scope}", self._fields(meta), scan, sort="created"):
                answered.append(True)
                yield Page(items=tuple(self.to_item(i, meta, in_scope=False) for i in issues))

        yield from _or_without_tree(outside_pages, extra, fallback)

    def _bulk_pages(self, ids: list[str], census: frozenset[str], meta: JiraMeta, scan: _Scan) -> Iterator[Page]:
        for issues in self._bulk_raw(ids, meta, scan):
            page = Page(items=tuple(self.to_item(i, meta, in_scope=str(i.get("id")) in census) for i in issues))
            del issues  # 1 000 raw issues (~15 MB decoded) must not live on through the next request
            yield page

    def _bulk_raw(self, ids: list[str], meta: JiraMeta, scan: _Scan) -> Iterator[list[dict[str, Any]]]:
        """Raw issues by id, ``jira_bulk`` (1 000, or 100 where the site refuses 1 000) per request."""
        size = int(self.state.get("jira_bulk", _BULK))
        index = 0
        while index < len(ids):
            chunk = ids[index : index + size]
            try:
                body = self.http.request(
                    "POST",
                    "rest/api/3/issue/bulkfetch",
                    json_body={"issueIdsOrKeys": chunk, "fields": list(self._fields(meta))},
                    shape=_issues_shape(self._fields(meta)),
                ).json_body
            except StatusError as exc:
                if exc.status == 400 and size > 100:
                    size = 100  # the site does not grant 1 000 for this field list
                    self.state["jira_bulk"] = size
                    continue
                raise
            issues = body.get("issues") if isinstance(body, dict) else None
            if not isinstance(issues, list) or not all(isinstance(i, dict) for i in issues):
                raise TransientError(self.name, "bulkfetch answered without a list of issue objects")
            scan.note_items(issues)
            del body
            yield issues
            del issues  # released before the next answer is decoded: one answer in memory, not two
            index += len(chunk)

    def _page(self, issues: list[dict[str, Any]], meta: JiraMeta, scan: _Scan, mixed: bool) -> Page:
        unique = list({str(i.get("id")): i for i in issues}.values())
        if not mixed:
            return Page(items=tuple(self.to_item(i, meta) for i in unique))
        if self._simple_scope is not None:
            projects = self._simple_scope
            items = []
            for raw in unique:
                item = self.to_item(raw, meta)
                items.append(_replace_scope(item, item.container.upper() in projects))
            return Page(items=tuple(items))
        inside = set(self._ids_among(f"({self.config.scope})", {str(i.get("id")) for i in unique}, scan))
        return Page(items=tuple(self.to_item(i, meta, in_scope=str(i.get("id")) in inside) for i in unique))

    def _remembered_trees(self) -> dict[str, dict[str, list[str]]]:
        """``_TREE_KEY`` from the connector state; anything malformed is ignored (walked again)."""
        raw = self.state.get(_TREE_KEY)
        if not isinstance(raw, dict):
            return {}
        found: dict[str, dict[str, list[str]]] = {}
        for fp, entry in raw.items():
            if isinstance(entry, dict) and all(isinstance(entry.get(k), list) for k in ("tree", "members")):
                found[str(fp)] = {k: [str(i) for i in entry[k]] for k in ("tree", "members")}
        return found

    def _pages_by_id(self, ids: Sequence[str], meta: JiraMeta, scan: _Scan, *, outside: bool) -> Iterator[Page]:
        """These issues, read by id (bulkfetch on Cloud, ``id in (…)`` searches on Data Center),
        each marked in or out of the scope (``outside``: known to be out, no scope query)."""
        for start in range(0, len(ids), _IN_BATCH):
            chunk = list(ids[start : start + _IN_BATCH])
            if meta.cloud:
                raws = [raw for page in self._bulk_raw(chunk, meta, scan) for raw in page]
            else:
                where = f"id in ({', '.join(chunk)})"
                raws = [raw for page in self._search(where, self._fields(meta), scan, sort="created") for raw in page]
            if raws and outside:
                yield Page(items=tuple(self.to_item(i, meta, in_scope=False) for i in raws))
            elif raws:
                yield self._page(raws, meta, scan, True)

    def _fields(self, meta: JiraMeta) -> tuple[str, ...]:
        extra = list(meta.points_fields)
        if meta.epic_link_field:
            extra.append(meta.epic_link_field)
        return _BASE_FIELDS + tuple(extra)

    # -- rules ------------------------------------------------------------------------------

    def _extra_clause(self, rules: Sequence[JiraRule], meta: JiraMeta) -> str | None:
        """JQL selecting what the rules may pick outside the scope, or None when nothing can."""
        clauses: list[str] = []
        for rule in rules:
            if self._simple_scope is not None and rule.project and rule.project.upper() in self._simple_scope:
                continue  # confined to a project the scope already covers
            clause = self.rule_clause(rule, meta)
            if clause:
                clauses.append(f"({clause})")
        return " OR ".join(clauses) if clauses else None

    def rule_clause(self, rule: JiraRule, meta: JiraMeta) -> str | None:
        """A JQL clause for what ``rule`` selects (descendants of ``parent``: its direct children)."""
        parts: list[str] = []
        if rule.epic:
            key = _quote(rule.epic)
            if meta.epic_link_field and not meta.cloud:
                parts.append(f'(parent = {key} OR "Epic Link" = {key})')
            else:
                parts.append(f"parent = {key}")
        if rule.parent:
            # The remembered tree widens the clause to every known descendant's children, so an
            # incremental pass sees changes (and new children) at any depth outside the scope.
            below = self._remembered_trees().get(rule.fingerprint(), {}).get("tree", [])
            if below and len(below) < _IN_BATCH:
                refs = ", ".join([_quote(rule.parent), *below])
                parent = f"parent in ({refs})"
                if meta.epic_link_field and not meta.cloud:
                    parent = f'({parent} OR "Epic Link" in ({refs}))'
                parts.append(parent)
            else:
                parts.append(f"parent = {_quote(rule.parent)}")
        if rule.jql:
            parts.append(f"({rule.jql})")
        parts.extend(f"labels = {_quote(label)}" for label in rule.labels)
        if rule.project:
            parts.append(f"project = {_quote(rule.project)}")
        if rule.issue_type:
            parts.append(f"issuetype = {_quote(rule.issue_type)}")
        if rule.component:
            parts.append(f"component = {_quote(rule.component)}")
        if rule.fix_version:
            parts.append(f"fixVersion = {_quote(rule.fix_version)}")
        return " AND ".join(parts) if parts else None

    def _descendants(self, root: str, meta: JiraMeta, scan: _Scan) -> frozenset[str]:
        """Every issue below ``root`` at any depth (bounded), level by level with id-only searches."""
        found: set[str] = set()
        level = [root]
        for _ in range(_PARENT_DEPTH):
            if not level:
                break
            nxt: list[str] = []
            for start in range(0, len(level), _IN_BATCH):
                refs = ", ".join(_quote(x) for x in level[start : start + _IN_BATCH])
                clause = f"parent in ({refs})"
                if meta.epic_link_field and not meta.cloud:
                    clause = f'({clause} OR "Epic Link" in ({refs}))'
                nxt.extend(i for i in self._ids(clause, scan) if i not in found)
            found.update(nxt)
            level = list(dict.fromkeys(nxt))
        return frozenset(found)

    # -- searching --------------------------------------------------------------------------

    def _ids(self, jql: str, scan: _Scan, *, guard: bool = False) -> list[str]:
        ids: list[str] = []
        for issues in self._search(jql, None, scan, sort="created", guard=guard):
            ids.extend(str(i.get("id")) for i in issues if i.get("id") is not None)
        return list(dict.fromkeys(ids))

    def _ids_among(self, jql: str, among: set[str], scan: _Scan) -> list[str]:
        ordered = _id_order(among)
        found: list[str] = []
        for start in range(0, len(ordered), _IN_BATCH):
            chunk = ", ".join(ordered[start : start + _IN_BATCH])
            found.extend(self._ids(f"{jql} AND id in ({chunk})", scan))
        return found

    def _search(
        self,
        where: str,
        fields: tuple[str, ...] | None,
        scan: _Scan,
        *,
        sort: str,
        guard: bool = False,
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of raw issues; ``fields=None`` is an id-only search. ``guard``: a 400 saying the
        scope's project is gone is a lost visibility, not a config error."""
        meta = self.meta()
        try:
            if meta.cloud:
                yield from self._search_cloud(where, fields, scan, sort)
            else:
                yield from self._search_dc(where, fields, scan, sort)
        except StatusError as exc:
            if exc.status == 410:
                raise CompatibilityError(self.name, f"Jira removed this search endpoint: {exc.message}") from None
            if exc.status == 400 and guard and any(m in exc.body for m in _LOST):
                raise VisibilityLostError(self.name, f"the scope is no longer visible ({exc.message})") from None
            if exc.status == 400:
                raise QueryRejectedError(self.name, f"Jira rejected a query: {exc.message}") from None
            raise

    def _search_cloud(
        self, where: str, fields: tuple[str, ...] | None, scan: _Scan, sort: str
    ) -> Iterator[list[dict[str, Any]]]:
        body: dict[str, Any] = {
            "jql": f"{where} ORDER BY {sort} ASC",
            "fields": list(fields) if fields else ["id"],
            "maxResults": self.config.page_size if fields else _ID_PAGE_CLOUD,
        }
        seen_tokens: set[str] = set()
        for _ in range(_MAX_PAGES):
            response = self.http.request(
                "POST", "rest/api/3/search/jql", json_body=body, shape=_issues_shape(tuple(body["fields"]))
            )
            scan.note_response(response.headers)
            data = response.json_body
            if not isinstance(data, dict) or not isinstance(data.get("issues", []), list):
                raise TransientError(self.name, "a search page without an issues list")
            issues = [i for i in data.get("issues") or [] if isinstance(i, dict)]
            if fields:
                scan.note_items(issues)
            yield issues
            token = data.get("nextPageToken")
            # Never infer the end from a short page: only a missing token (or isLast) ends it.
            if not token or data.get("isLast") is True:
                return
            if token in seen_tokens:
                raise TransientError(self.name, "the search repeated a page token")
            seen_tokens.add(token)
            body["nextPageToken"] = token
        raise TransientError(self.name, "the search did not end within the page bound")

    def _search_dc(
        self, where: str, fields: tuple[str, ...] | None, scan: _Scan, sort: str
    ) -> Iterator[list[dict[str, Any]]]:
        wanted = list(fields) if fields else ["id", sort]
        if sort not in wanted:
            wanted.append(sort)
        seen: set[str] = set()
        floor: int | None = None
        start = 0
        for _ in range(_MAX_PAGES):
            bound = f" AND {sort} >= {floor}" if floor is not None else ""
            page_size = _DC_PAGE if fields else _ID_PAGE_DC
            body: dict[str, Any] = {
                "jql": f"{where}{bound} ORDER BY {sort} ASC",
                "startAt": start,
                "maxResults": page_size,
                "fields": wanted,
            }
            response = self.http.request(
                "POST", "rest/api/2/search", json_body=body, shape=_issues_shape(tuple(wanted))
            )
            scan.note_response(response.headers)
            data = response.json_body
            if not isinstance(data, dict) or not isinstance(data.get("issues", []), list):
                raise TransientError(self.name, "a search page without an issues list")
            issues = [i for i in data.get("issues") or [] if isinstance(i, dict)]
            fresh = [i for i in issues if str(i.get("id")) not in seen]
            seen.update(str(i.get("id")) for i in issues)
            if fields:
                scan.note_items(fresh)
            if fresh:
                yield fresh
            total = data.get("total")
            start += len(issues)
            if not issues or not isinstance(total, int) or start >= total:
                return
            if start + page_size > self.dc_window:
                # Past the offset window: restart from the last sort value seen (keyset slicing).
                last = parse_jira_time((issues[-1].get("fields") or {}).get(sort))
                new_floor = _ms(last) if last else None
                if new_floor is None or new_floor == floor:
                    raise SourceError(self.name, f"more than {self.dc_window} issues share one {sort} time")
                floor, start = new_floor, 0
        raise TransientError(self.name, "the search did not end within the page bound")

    # -- mapping ----------------------------------------------------------------------------

    def to_item(self, raw: Mapping[str, Any], meta: JiraMeta, *, in_scope: bool = True) -> WorkItem:
        """One raw issue as a ``WorkItem``; drift becomes ``unknown_fields``, never an exception."""
        unknown: list[str] = []
        fields = raw.get("fields") if isinstance(raw.get("fields"), dict) else {}
        assert isinstance(fields, dict)
        key = str(raw.get("key") or "")
        issuetype = _obj(fields.get("issuetype"))
        status = _obj(fields.get("status"))
        category = _obj(status.get("statusCategory"))
        cat_key = category.get("key")
        state = _STATE_BY_CATEGORY.get(cat_key) if isinstance(cat_key, str) else None
        if state is None:
            state = State.UNKNOWN
            unknown.append(f"statusCategory={cat_key}" if cat_key else "statusCategory")
        type_name = str(issuetype.get("name") or "")
        if issuetype.get("subtask") is True:
            kind = ItemKind.SUBTASK
        elif issuetype.get("hierarchyLevel") == 1 or type_name.casefold() == "epic":
            kind = ItemKind.EPIC
        else:
            kind = ItemKind.ISSUE
        if not issuetype.keys() & _TYPE_READ:  # judged by what is read of it, as a shaped answer holds
            unknown.append("issuetype")
        resolution = _obj(fields.get("resolution")).get("name")
        resolution = str(resolution) if resolution else None
        excluded = bool(resolution and resolution.casefold() in self._excluded_resolutions)
        updated = parse_jira_time(fields.get("updated"))
        if updated is None:
            unknown.append("updated")
            updated = datetime.fromtimestamp(0, UTC)
        done_at = None
        if state is State.DONE:
            done_at = parse_jira_time(fields.get("resolutiondate")) or parse_jira_time(
                fields.get("statuscategorychangedate")
            )
        points: float | None = None
        for field_id in meta.points_fields:
            value = fields.get(field_id)
            if value is None:
                continue
            if isinstance(value, int | float) and not isinstance(value, bool):
                points = float(value)
            else:
                try:
                    points = float(str(value))
                except ValueError:
                    unknown.append(field_id)
            break
        parent = _obj(fields.get("parent"))
        parent_key = str(parent.get("key")) if parent.get("key") else None
        parent_id = str(parent.get("id")) if parent.get("id") else None
        if parent_key is None and meta.epic_link_field:
            link = fields.get(meta.epic_link_field)
            if isinstance(link, str) and link:
                parent_key = link
            elif isinstance(link, dict) and link.get("key"):
                parent_key, parent_id = str(link["key"]), str(link.get("id") or "") or None
        project = _obj(fields.get("project"))
        container = str(project.get("key") or (key.rsplit("-", 1)[0] if "-" in key else ""))
        if "key" not in project:
            unknown.append("project")
        return WorkItem(  # by position, in ``WorkItem._fields`` order (see ``syncer.model.WorkItem``)
            self.name,  # source
            str(raw.get("id") or ""),  # id
            key,
            str(fields.get("summary") or ""),  # title
            f"{self.base}/browse/{key}",  # url
            kind,
            state,
            updated,  # updated_at
            container,
            type_name,  # issue_type
            parse_jira_time(fields.get("created")),  # created_at
            done_at,
            excluded,
            resolution,
            points,
            _names(fields.get("labels")),  # labels
            _names(fields.get("components")),  # components
            None,  # milestone: Jira has none
            _names(fields.get("fixVersions")),  # fix_versions
            parent_key,
            parent_id,
            str(status.get("name") or ""),  # status_name
            in_scope,
            tuple(unknown),  # unknown_fields
        )

    # -- write-back -------------------------------------------------------------------------

    def publish(self, write: PlannedWrite) -> None:
        """One write: a number field, a comment, or a label added/removed."""
        meta = self.meta()
        issue, _, field_id = write.target.partition(":")
        path = f"rest/api/{meta.api}/issue/{issue}"
        if write.kind == "field":
            if not field_id or field_id == "comment":
                raise SourceError(self.name, f"a field write needs ISSUE:FIELD, got {write.target}")
            try:
                number: float | str = float(write.value)
            except ValueError:
                number = write.value
            self._write("PUT", path, {"fields": {field_id: number}})
        elif write.kind == "comment":
            body: Any = write.value
            if meta.cloud:
                body = {
                    "type": "doc",
                    "version": 1,
                    "content": [{"type": "paragraph", "content": [{"type": "text", "text": write.value}]}],
                }
            self._write("POST", f"{path}/comment", {"body": body})
        elif write.kind in ("add_label", "remove_label"):
            verb = "add" if write.kind == "add_label" else "remove"
            self._write("PUT", path, {"update": {"labels": [{verb: write.value}]}})
        else:
            raise SourceError(self.name, f"Jira cannot carry out a {write.kind!r} write")

    def _write(self, method: str, path: str, body: Mapping[str, Any]) -> None:
        try:
            # A comment POSTed twice is two comments: never resend it after a 5xx or a timeout.
            self.http.request(method, path, json_body=body, idempotent=method != "POST")
        except StatusError as exc:
            if exc.status == 404:
                raise SourceError(self.name, f"write-back target not found: {exc.message}") from None
            raise


class _Scan:
    """What one pass learned about time: the server clock at its first answer, the newest update."""

    def __init__(self, recent: Mapping[str, int] | None = None, overlap_ms: int = 0) -> None:
        self.overlap_ms = overlap_ms
        self.start_ms: int | None = None
        self.max_updated_ms: int | None = None
        self.previous: dict[str, int] = dict(recent or {})
        self.updates: dict[str, int] = {}
        self.members_first = False
        """The rules' member sets were read before the items (a whole pass): versions newer than
        the scan's start are then not remembered as read (``note_items``)."""

    def already_seen(self, raw: Mapping[str, Any]) -> bool:
        """The previous pass read this very version (re-read only because of the overlap)."""
        fields = raw.get("fields")
        when = parse_jira_time(fields.get("updated")) if isinstance(fields, dict) else None
        return when is not None and self.previous.get(str(raw.get("id"))) == _ms(when)

    def recent_after(self, floor_ms: int) -> dict[str, int]:
        """Versions inside the next overlap window (bounded: beyond the cap they count as changes)."""
        merged = {**self.previous, **self.updates}
        kept = sorted(((ms, i) for i, ms in merged.items() if ms >= floor_ms), reverse=True)[:_RECENT_CAP]
        return {i: ms for ms, i in kept}

    def note_response(self, headers: Mapping[str, str]) -> None:
        if self.start_ms is not None:
            return
        value = headers.get("Date")
        if not value:
            return
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        self.start_ms = _ms(when)

    def note_items(self, issues: Sequence[Mapping[str, Any]]) -> None:
        # Only versions that can fall inside the next overlap window are remembered: a full pass
        # at 200k otherwise kept (and finally sorted) 100k entries for the ~none it needs.
        floor = self.start_ms - _DATE_RESOLUTION_MS - self.overlap_ms if self.start_ms is not None else None
        # After members-first rule queries, a version from the scan's start on may postdate
        # them: the next pass must see it as a change and ask the rules about it.
        ceiling = self.start_ms - _DATE_RESOLUTION_MS if self.members_first and self.start_ms is not None else None
        # With the server's clock known, the newest update is not needed (``cursor_ms``), and an
        # update whose own date is two days before the floor's UTC date is before the floor
        # whatever its offset: not parsed (a full pass's 100k, ~1 us each, nearly all old).
        old = _days_before(floor, 2) if floor is not None else None
        for raw in issues:
            fields = raw.get("fields")
            text = fields.get("updated") if isinstance(fields, dict) else None
            if old is not None and isinstance(text, str) and text[4:5] == "-" and text[:10] < old:
                continue
            when = parse_jira_time(text)
            if when is not None:
                ms = _ms(when)
                if (floor is None or ms >= floor) and (ceiling is None or ms < ceiling):
                    self.updates[str(raw.get("id"))] = ms
                if self.max_updated_ms is None or ms > self.max_updated_ms:
                    self.max_updated_ms = ms

    def cursor_ms(self, old: int | None) -> int:
        """The server's clock when the scan started (research §3 fault 11: the high-water mark is
        taken before the scan; the next query subtracts the overlap), less the ``Date`` header's
        one-second resolution so it is never ahead of what the scan's first query saw. Not
        ``max(updated)``: after a burst that would keep the burst inside every later overlap
        window, and each idle pass would re-read it page by page. Without a ``Date`` header,
        the newest update seen. Never behind the old cursor."""
        if self.start_ms is not None:
            candidate: int | None = self.start_ms - _DATE_RESOLUTION_MS
        else:
            candidate = self.max_updated_ms
        if candidate is None:
            candidate = old if old is not None else 0
        return max(candidate, old or 0)


def _cursor_ms(cursor: Mapping[str, Any] | None) -> int | None:
    if not cursor:
        return None
    value = cursor.get("updated_ms")
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _cursor_recent(cursor: Mapping[str, Any] | None) -> dict[str, int]:
    recent = cursor.get("recent") if cursor else None
    if not isinstance(recent, dict):
        return {}
    return {str(k): int(v) for k, v in recent.items() if isinstance(v, int) and not isinstance(v, bool)}


def _scope_projects(scope: str) -> frozenset[str] | None:
    """The project keys of a scope written ``project = X`` / ``project in (A, B)``; else None."""
    match = _SIMPLE_SCOPE.match(scope)
    if not match:
        return None
    raw = match.group(1) or match.group(2) or ""
    keys = [k.strip().strip('"').upper() for k in raw.split(",") if k.strip()]
    return frozenset(keys) if keys and all(re.fullmatch(r"[\w-]+", k) for k in keys) else None


class QueryRejectedError(SourceError):
    """Jira answered 400 to a query (bad JQL, or a value it does not have)."""


_T = TypeVar("_T")


def _or_without_tree(
    run: Callable[[str | None, list[bool]], Iterator[_T]],
    extra: str | None,
    fallback: Callable[[], str | None] | None,
) -> Iterator[_T]:
    """``run(extra)``; if Jira rejects its first request and ``extra`` carries a remembered parent
    tree (``fallback`` given), once more with the plain clause. ``run`` appends to its list when
    an answer arrived: after that, a rejection is not the tree's doing and is raised as is."""
    answered: list[bool] = []
    try:
        yield from run(extra, answered)
    except QueryRejectedError:
        if fallback is None or answered:
            raise
        yield from run(fallback(), [])


def _replace_scope(item: WorkItem, in_scope: bool) -> WorkItem:
    return item if item.in_scope == in_scope else item._replace(in_scope=in_scope)


_TYPE_READ = frozenset({"name", "subtask", "hierarchyLevel"})
_FIELD_SHAPES: dict[str, Any] = {
    "status": members("Status", {"name": Any, "statusCategory": members("StatusCategory", {"key": Any}) | None}) | None,
    "issuetype": members("IssueType", dict.fromkeys(sorted(_TYPE_READ), Any)) | None,
    "project": members("Project", {"key": Any}) | None,
    "resolution": Named | None,
    "parent": members("Parent", {"id": Any, "key": Any}) | None,
    "components": list[Named | str | None] | None,
    "fixVersions": list[Named | str | None] | None,
}
"""What ``to_item`` reads of the fields that are objects; any other field is kept whole."""


def issue_members(field_ids: tuple[str, ...]) -> Any:
    """What the connector reads of an issue asked for ``field_ids``: its id, key and those fields."""
    fields = members("JiraFields", {name: _FIELD_SHAPES.get(name, Any) for name in field_ids})
    return members("JiraIssue", {"id": Any, "key": Any, "fields": fields | None})


@functools.lru_cache(maxsize=32)
def _issues_shape(field_ids: tuple[str, ...]) -> BodyShape:
    """A search or bulkfetch answer asked for ``field_ids`` with each issue decoded to
    ``issue_members`` (``connectors.shapes``); the rest of the answer is kept whole. An issue
    object is ~2 KB of JSON, of which the mapping reads ~300 bytes."""
    return object_with_list("issues", issue_members(field_ids))


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    out: list[str] = []
    for entry in value:
        if isinstance(entry, str):
            out.append(entry)
        elif isinstance(entry, dict) and entry.get("name"):
            out.append(str(entry["name"]))
    return tuple(out)


def _connector_factory(name: str, config: SourceConfig, context: ConnectorContext) -> JiraConnector:
    if not isinstance(config, JiraSource):
        raise TypeError(f"{name}: not a Jira source config")
    return JiraConnector(name, config, context)


PLUGIN = ConnectorPlugin(
    type="jira",
    source_model=JiraSource,
    rule_model=JiraRule,
    publish_model=JiraPublish,
    factory=_connector_factory,
)
