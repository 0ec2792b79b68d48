"""Plain data shared by every layer: what connectors produce and what the core computes.

Nothing here does I/O. Connectors turn tracker JSON into ``WorkItem``; the pure core
(``matching``, ``progress``) turns items into ``Tally`` and ``KeyResultProgress``; the store
persists them; reports render them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

__all__ = [
    "Forecast",
    "HistoryPoint",
    "ItemKind",
    "KeyResultChange",
    "KeyResultDetail",
    "ReportData",
    "ReportItem",
    "KeyResultProgress",
    "ObjectiveProgress",
    "Page",
    "PlannedWrite",
    "SourceOutcome",
    "State",
    "Status",
    "Tally",
    "UnalignedGroup",
    "UnalignedSummary",
    "WorkItem",
]


class State(enum.StrEnum):
    """Where an item stands. ``unknown`` marks a status the tracker sent that we could not map."""

    TODO = "todo"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    UNKNOWN = "unknown"


class ItemKind(enum.StrEnum):
    """What an item is, as far as counting goes (epics, sub-tasks and PRs are special)."""

    ISSUE = "issue"
    EPIC = "epic"
    SUBTASK = "subtask"
    PULL_REQUEST = "pull_request"


class Status(enum.StrEnum):
    """Health of a key result or objective against the elapsed share of the cycle."""

    NOT_STARTED = "not_started"
    ON_TRACK = "on_track"
    AT_RISK = "at_risk"
    OFF_TRACK = "off_track"
    DONE = "done"


class WorkItem(NamedTuple):
    """One issue or pull request, normalised. Every connector produces exactly this.

    ``id`` is the tracker's stable id (Jira issue id, GitHub issue node id), so a moved Jira
    issue or a transferred GitHub issue stays one item; ``key`` is the human key it has now
    (``PLAT-12``, ``acme/web#5``). ``container`` is the Jira project key or the GitHub
    ``owner/repo``. ``parent_key``/``parent_id`` point at the epic or parent issue (Jira
    ``parent`` or company-managed Epic Link; GitHub sub-issue parent). ``excluded`` is true for
    items closed as won't do / not planned / duplicate: they count in neither done nor total.
    ``unknown_fields`` names values the tracker sent that we could not interpret (schema drift):
    the item is still stored and reported, never dropped.

    Immutable, and a named tuple rather than a frozen dataclass: a full sync builds 200k of
    them, and a frozen dataclass sets its 24 fields one ``object.__setattr__`` at a time
    (2.9 us per item against 0.7). Change a copy with ``item._replace(field=value)``.
    """

    source: str
    id: str
    key: str
    title: str
    url: str
    kind: ItemKind
    state: State
    updated_at: datetime
    container: str
    issue_type: str = ""
    created_at: datetime | None = None
    done_at: datetime | None = None
    excluded: bool = False
    resolution: str | None = None
    points: float | None = None
    labels: tuple[str, ...] = ()
    components: tuple[str, ...] = ()
    milestone: str | None = None
    fix_versions: tuple[str, ...] = ()
    parent_key: str | None = None
    parent_id: str | None = None
    status_name: str = ""
    in_scope: bool = True
    unknown_fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Page:
    """One batch from a connector, committed to the store in one transaction.

    ``cursor`` is the connector's opaque resume state to commit together with these items, or
    ``None`` to leave the stored cursor as it is (a cursor only moves when the scan it covers
    has completed, so a crash never leaves it ahead of the data). ``census`` lists the ids a
    full pass or census observed (used to retire items that are gone); ``members`` maps a rule
    fingerprint to the ids the tracker says match it (JQL and parent rules, evaluated
    server-side).
    """

    items: tuple[WorkItem, ...] = ()
    cursor: Mapping[str, Any] | None = None
    members: Mapping[str, frozenset[str]] = field(default_factory=dict)
    members_scope: frozenset[str] | None = None
    """The ids over which ``members`` was evaluated; ``None`` means every id (a full replace).
    An incremental pass re-evaluates JQL rules only for the items that changed, so the new set
    of a rule is (stored set − members_scope) ∪ members[fingerprint]."""
    census: frozenset[str] | None = None
    """On the last page of a full pass or census: every id in the source's scope right now."""


@dataclass(frozen=True, slots=True)
class Tally:
    """What a key result's number is made of: counts by state and story points.

    ``done_in_cycle`` / ``points_done_in_cycle`` count only items that became done inside
    the cycle (for ``count_done`` and ``sum_points_done``). Excluded items are not in here.
    """

    total: int = 0
    done: int = 0
    in_progress: int = 0
    todo: int = 0
    unknown: int = 0
    points_total: float = 0.0
    points_done: float = 0.0
    done_in_cycle: int = 0
    points_done_in_cycle: float = 0.0
    unestimated: int = 0
    excluded: int = 0
    """Items the key result selects that were closed as won't do / not planned / duplicate."""
    listed: int = 0
    """Every live item the key result selects, excluded ones and sub-tasks too: the length of
    its item list in a report (``Store.kr_items``), counted by the same aggregate as the rest."""

    @property
    def open(self) -> int:
        return self.total - self.done


@dataclass(frozen=True, slots=True)
class KeyResultProgress:
    """A key result's computed state at one moment."""

    id: str
    objective_id: str
    title: str
    metric: str
    start: float
    target: float
    current: float
    progress: float
    status: Status
    tally: Tally
    weight: float = 1.0
    stale: bool = False
    last_synced: datetime | None = None
    sources: tuple[str, ...] = ()
    item_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ObjectiveProgress:
    """An objective with its rolled-up progress (weighted mean of KRs and child objectives)."""

    id: str
    title: str
    parent: str | None
    progress: float
    status: Status
    key_results: tuple[KeyResultProgress, ...]
    owner: str | None = None
    weight: float = 1.0
    children: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PlannedWrite:
    """A write-back the pass intends to make (or made): printed by ``--dry-run``."""

    source: str
    target: str
    kind: str
    """``field`` | ``comment`` | ``body_block`` | ``add_label`` | ``remove_label``."""
    value: str
    reason: str = ""
    item_id: str | None = None
    """For label writes: the stable id of the item labelled (kept in the store)."""


@dataclass(slots=True)
class SourceOutcome:
    """How one source fared in a pass (feeds the report's ``sources`` list and the metrics)."""

    name: str
    ok: bool = True
    fetched: int = 0
    requests: int = 0
    error: str | None = None
    retired: int = 0
    full: bool = False
    resume_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One stored snapshot of a key result (one per pass)."""

    at: datetime
    current: float
    progress: float
    total: int = 0
    done: int = 0


@dataclass(frozen=True, slots=True)
class Forecast:
    """Where a key result is heading by the cycle's end, from its recent pace."""

    value: float
    progress: float
    status: Status
    method: str
    points_used: int


@dataclass(frozen=True, slots=True)
class KeyResultChange:
    """What moved since the previous pass: ``onboarding-revamp: 42% -> 47% (+3 done, +1 added, 1 left)``."""

    kr_id: str
    before: float | None
    after: float
    unit: str
    done_delta: int = 0
    added: int = 0
    left: int = 0


@dataclass(frozen=True, slots=True)
class ReportItem:
    """An item as a report shows it (behind a key result, or unaligned)."""

    source: str
    key: str
    title: str
    url: str
    state: str
    container: str = ""
    points: float | None = None
    kind: str = "issue"
    rule: str = ""
    excluded: bool = False


@dataclass(frozen=True, slots=True)
class KeyResultDetail:
    """Everything a report shows for one key result beyond its progress."""

    history: tuple[HistoryPoint, ...] = ()
    forecast: Forecast | None = None
    scope_change: float | None = None
    """(total now - total at the cycle's first snapshot) / that first total, for percent metrics."""
    items: tuple[ReportItem, ...] = ()
    change: KeyResultChange | None = None
    item_count: int | None = None
    """Items behind the key result when ``items`` is capped (``None``: ``items`` is all of them)."""

    @property
    def items_total(self) -> int:
        """How many items there are in all, shown or not ("showing 100 of 2,345")."""
        return len(self.items) if self.item_count is None else max(self.item_count, len(self.items))


@dataclass(frozen=True, slots=True)
class UnalignedGroup:
    """Unaligned items of one source and container (Jira project, GitHub repository)."""

    source: str
    container: str
    count: int


@dataclass(frozen=True, slots=True)
class UnalignedSummary:
    """SQL aggregates over ALL unaligned items, so a report can list a few and still count all."""

    count: int
    groups: tuple[UnalignedGroup, ...] = ()
    total_work_items: int | None = None
    """Candidates matched or not (the share's denominator), when computed in the same query."""


@dataclass(frozen=True, slots=True)
class ReportData:
    """The whole report, ready to render in any format."""

    cycle_name: str
    cycle_start: datetime
    cycle_end: datetime
    """Exclusive: the end date + 1 day, 00:00 UTC."""
    expected: float
    generated_at: datetime
    objectives: tuple[ObjectiveProgress, ...]
    details: Mapping[str, KeyResultDetail]
    unaligned: tuple[ReportItem, ...]
    total_work_items: int
    """In-scope items that could be unaligned (the denominator of the unaligned share)."""
    sources: tuple[SourceOutcome, ...]
    source_last_synced: Mapping[str, datetime | None] = field(default_factory=dict)
    writes: tuple[PlannedWrite, ...] = ()
    dry_run: bool = False
    requests: int = 0
    unaligned_count: int | None = None
    """All unaligned items when ``unaligned`` is capped (``None``: the list is all of them)."""
    unaligned_groups: tuple[UnalignedGroup, ...] | None = None
    """Counts per source and container over all unaligned items (``None``: group the list)."""

    @property
    def unaligned_total(self) -> int:
        """How many items are unaligned in all, whether or not the list shows each one."""
        return len(self.unaligned) if self.unaligned_count is None else self.unaligned_count

    def unaligned_by_group(self) -> tuple[UnalignedGroup, ...]:
        """Per source and container counts: the stored aggregates, else counted from the list."""
        if self.unaligned_groups is not None:
            return self.unaligned_groups
        counts: dict[tuple[str, str], int] = {}
        for item in self.unaligned:
            key = (item.source, item.container)
            counts[key] = counts.get(key, 0) + 1
        return tuple(UnalignedGroup(source, container, n) for (source, container), n in counts.items())
