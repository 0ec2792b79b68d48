"""``run_once``: one sync pass, the single unit of work of ``okrsync sync`` and the daemon.

    sources (side by side, one thread each, each isolated)
      └─ connector.fetch(cursor) ─ pages ─> match (pure) ─> store.write_page (items + matches)
         last page: members, census retirement and the new cursor in ONE transaction
    key results (SQL tallies + pure arithmetic) ─> snapshots (once per pass)
    write-back (after the store committed; idempotent) ─> report data

A whole Jira pass reads its JQL rules' member sets first (a members-only page, committed like a
last page without a cursor), so that each item is matched once against the new sets.

A source that fails changes nothing known from it: its cursor stays, nothing is retired, its key
results keep their last values marked ``stale`` and its items are never flagged unaligned because
of the failure. Pages fetched before the failure (and member sets read before it) are newer truth
and stay stored (at-least-once); the next pass reads from the same cursor.

Several workers on one store (``okrsync daemon --worker``, PostgreSQL):

- a source is synced under its lease ``source:<name>`` (TTL ``$OKRSYNC_LEASE_TTL``, default 2 min),
  taken just before the source and released right after, even on errors; a background thread
  renews it every ``ttl / 4`` while the fetch runs. A dead holder on this host frees it at once,
  any other holder only by expiry (holders are ``host:pid:random``);
- every page, the cursor and the source's status are written in a transaction that first renews
  the lease: a worker that lost it rolls back and abandons the source, so two workers never both
  commit a pass of one source;
- a source any worker attempted within ``fresh_for`` is not due; a worker that synced nothing
  writes no run; of the others, the first in each ``snapshot_window`` writes the key-result
  snapshot (``Store.write_snapshots_once``) and only that pass backfills history.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import connectors
from connectors.base import Connector, ConnectorContext, RuleConfig
from connectors.http import HttpPolicy, redact
from syncer.backfill import RECONSTRUCTIBLE, DayGroup, reconstruct_days
from syncer.config import Config, parse_duration
from syncer.errors import ConfigError, RateLimitedError, SourceError, SyncBusyError
from syncer.matching import CompiledRule, RuleIndex, build_index, compile_rules, match_item
from syncer.model import KeyResultChange, KeyResultProgress, PlannedWrite, SourceOutcome, WorkItem
from syncer.progress import describe_change
from syncer.publish import plan_writes
from syncer.results import compute_key_results, utc_now
from syncer.store import Store

__all__ = ["SyncOptions", "SyncResult", "run_once", "worker_id"]

log = logging.getLogger("okrsync.sync")

ConnectorFactory = Callable[[str, Any, ConnectorContext], Connector]
ProgressHook = Callable[[str, int, bool], None]
"""``hook(source, items_fetched_so_far, finished)`` for progress bars."""

LEASE_TTL = timedelta(minutes=2)
"""A source lease's default time to live; the holder renews it every ``ttl / 4`` (at most 30 s)."""
LEASE_TTL_ENV = "OKRSYNC_LEASE_TTL"
_REMATCH_BATCH = 2000
_BACKFILL_GROUP = 5
"""Key results whose history is rebuilt per read of item dates."""
_WRITE_BATCH = 5000
"""Fetched items written per transaction (the cursor moves only at the end of the source)."""


def worker_id() -> str:
    """``host:pid:random``: unique per process, and tells whether a holder on this host is alive."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def lease_ttl_from_env() -> timedelta:
    """``$OKRSYNC_LEASE_TTL`` (``5s``, ``2m``...) or the default two minutes.

    The TTL bounds how long a source stays unsynced after its worker vanished without a trace
    (another host, a frozen VM): a dead process on this host is noticed at once, anything else
    only when its lease expires. Shorter means faster takeover but more renewals.
    """
    raw = os.environ.get(LEASE_TTL_ENV, "").strip()
    if not raw:
        return LEASE_TTL
    try:
        return parse_duration(raw)
    except ValueError as exc:
        raise ConfigError(f"{LEASE_TTL_ENV}: {exc}") from None


class LeaseLostError(SourceError):
    """Another worker holds this source's lease now: stop without writing anything more."""


@dataclass
class SyncOptions:
    """What one pass does. The defaults are an incremental pass over every source."""

    full: bool = False
    dry_run: bool = False
    sources: tuple[str, ...] | None = None
    census: bool | None = None
    """Force (True) or skip (False) the ids-only census; ``None``: when ``schedule.census_every`` is due."""
    worker: str = field(default_factory=worker_id)
    lock_wait: float = 5.0
    """Seconds to wait for a source held by another pass before saying a sync is running."""
    skip_busy: bool = False
    """Several workers on one store (``daemon --worker``): take each source's lease just before
    syncing it and release it right after, and skip sources another worker holds instead of failing."""
    lease_ttl: timedelta = field(default_factory=lambda: lease_ttl_from_env())
    """How long a source's lease outlives its holder's last renewal (``$OKRSYNC_LEASE_TTL``)."""
    fresh_for: timedelta | None = None
    """Worker mode: skip a source any worker attempted less than this long ago (so N workers do
    not sync every source N times per interval)."""
    snapshot_window: timedelta | None = None
    """Several workers: write this pass's key-result snapshot only if no worker wrote one within
    this window (``Store.write_snapshots_once``); ``None``: always write it (one worker)."""
    stop: threading.Event = field(default_factory=threading.Event)
    policy: HttpPolicy | None = None
    session: Any = None
    """A ``requests.Session`` for every connector (tests)."""
    sleep: Any = None
    on_progress: ProgressHook | None = None
    after_sources: Callable[[frozenset[str]], None] | None = None
    """Called once every source is synced, with the names of those that failed, before the key
    results are computed: a report can start reads that the rest of the pass does not change."""


@dataclass
class SyncResult:
    """What a pass did: per-source outcomes, key-result changes, write-backs, the run id."""

    run_id: int
    outcomes: list[SourceOutcome]
    changes: dict[str, KeyResultChange]
    writes: list[PlannedWrite]
    write_errors: list[str]
    skipped: list[str] = field(default_factory=list)
    key_results: dict[str, KeyResultProgress] = field(default_factory=dict)
    """The key results this pass computed (reports reuse them instead of recomputing)."""

    @property
    def exit_code(self) -> int:
        failed = any(not o.ok for o in self.outcomes) or bool(self.write_errors)
        return 1 if failed else 0

    @property
    def requests(self) -> int:
        return sum(o.requests for o in self.outcomes)


def run_once(
    config: Config,
    store: Store,
    options: SyncOptions | None = None,
    *,
    now: Callable[[], datetime] = utc_now,
    connector_factory: ConnectorFactory | None = None,
) -> SyncResult:
    """One pass over the configured sources; see the module docstring for the guarantees."""
    options = options or SyncOptions()
    names = _selected_sources(config, options.sources)
    rules = compile_rules(config)
    index = build_index(rules)
    factory = connector_factory or _plugin_factory
    started = now()

    upfront = not options.skip_busy
    held: list[str] = []
    skipped: list[str] = []
    if upfront:
        held, skipped = _acquire_sources(store, names, options, now)
        if names and not held:
            return SyncResult(0, [], {}, [], [], skipped)
    renewer = _Renewer(store, options, now, held)
    run_id = 0
    outcomes: list[SourceOutcome] = []
    timings: dict[str, tuple[datetime, datetime]] = {}
    connectors_by_name: dict[str, Connector] = {}
    fresh = False  # the store held no items when this pass began (set below, before any source runs)
    try:
        if upfront:
            _rematch_if_rules_changed(config, store, index)
            run_id = store.begin_run(started, full=options.full, dry_run=options.dry_run, worker=options.worker)
        def sync_one(name: str) -> tuple[str, SourceOutcome, Connector | None]:
            begun = now()
            _log_source(options, "source sync started", name)
            try:
                outcome, connector = _sync_source(
                    config, store, name, index, options, now, factory, renewer, fresh=fresh
                )
            finally:
                if not upfront:
                    renewer.discard(name)
                    store.release_lease(_lease(name), options.worker)
            timings[name] = (begun, now())
            _log_source(options, "source sync finished", name, ok=outcome.ok, lost=name in renewer.lost)
            return name, outcome, connector

        done: list[tuple[str, SourceOutcome, Connector | None]] = []
        # A first sync into an empty store loads every row: indexes only reads use are built
        # once afterwards (Store.defer_indexes_if_empty). Not with workers sharing the store.
        deferred = fresh = upfront and store.defer_indexes_if_empty()
        if not deferred and store.deferred_indexes_left():
            store.build_deferred_indexes()  # the first sync died before it built them
        try:
            if upfront and len(held) > 1 and store.concurrent_reads():
                done = _side_by_side(held, sync_one, options.stop)
            else:
                for name in held if upfront else names:
                    if options.stop.is_set():
                        break
                    if not upfront:
                        if not _take_source(store, name, options, now, skipped):
                            continue
                        renewer.add(name)
                        if run_id == 0:
                            _rematch_if_rules_changed(config, store, index)
                            run_id = store.begin_run(started, full=options.full, dry_run=options.dry_run,
                                                     worker=options.worker)
                    done.append(sync_one(name))
        finally:
            if deferred:
                store.build_deferred_indexes()
        for name, outcome, connector in done:
            if name in renewer.lost:
                skipped.append(name)  # another worker took it over: not ours to report or to count
                continue
            outcomes.append(outcome)
            if connector is not None:
                connectors_by_name[name] = connector
        if run_id == 0:
            # A worker that synced no source (all busy or fresh) writes no run and no snapshot.
            return SyncResult(0, [], {}, [], [], skipped)
        failed = {o.name for o in outcomes if not o.ok}
        if options.after_sources is not None:
            options.after_sources(frozenset(failed))
        at = now()
        krs = compute_key_results(config, store, at, failed_sources=failed)
        latest = store.latest_snapshots(letters=True)
        first = _first_passes(store, krs, run_id)
        maps = store.snapshot_item_maps(krs, latest, run_id, days_for=first)
        item_states = maps.letters
        changes = _changes(latest, krs, item_states)
        wrote = True
        if options.snapshot_window is None:
            store.write_snapshots(run_id, at, list(krs.values()), item_states, letters=True)
        else:
            wrote = store.write_snapshots_once(
                run_id, at, list(krs.values()), item_states, options.snapshot_window, letters=True
            )
            if not wrote:
                log.debug("snapshot skipped: another worker wrote this round's within %s", options.snapshot_window)
        if wrote:  # only the round's snapshot writer: two workers would race on the same backfill rows
            _backfill_first_passes(config, store, first, maps.days, at)
        del maps, item_states, latest  # ~15 MB at 200k items, not needed by the write-backs below

        writes = plan_writes(config, store, krs, at, failed_sources=failed)
        write_errors: list[str] = []
        if not options.dry_run and not options.stop.is_set():
            write_errors = _carry_out(config, store, writes, connectors_by_name, options, now, factory)
        requests = sum(o.requests for o in outcomes)
        outcome_text = "ok"
        if failed or write_errors:
            attempted = held if upfront else outcomes
            outcome_text = "failed" if attempted and len(failed) == len(attempted) else "partial"
        sources = [{**_outcome_dict(o), "started_at": timings[o.name][0].isoformat(),
                    "finished_at": timings[o.name][1].isoformat()} for o in outcomes if o.name in timings]
        store.finish_run(
            run_id, now(), outcome_text, requests,
            {"sources": sources, "write_errors": write_errors, "skipped": skipped},
        )
        return SyncResult(run_id, outcomes, changes, writes, write_errors, skipped, dict(krs))
    finally:
        renewer.stop()
        for name in held:
            store.release_lease(_lease(name), options.worker)


# -- one source -----------------------------------------------------------------------------


_SOURCE_THREADS = 4
"""Sources synced side by side in one pass: each mostly waits on its own tracker, so a pass takes
about as long as its slowest source instead of the sum. Within a source requests stay serial
(GitHub asks integrators not to send concurrent requests; Jira's cursor and pages are ordered)."""


def _side_by_side(
    names: Sequence[str],
    sync_one: Callable[[str], tuple[str, SourceOutcome, Connector | None]],
    stop: threading.Event,
) -> list[tuple[str, SourceOutcome, Connector | None]]:
    """Sync several sources at once, one thread each (at most ``_SOURCE_THREADS``); results in
    ``names`` order. A source not yet started when ``stop`` is set is not started."""
    from concurrent.futures import ThreadPoolExecutor

    def guarded(name: str) -> tuple[str, SourceOutcome, Connector | None] | None:
        return None if stop.is_set() else sync_one(name)

    pool = ThreadPoolExecutor(max_workers=min(len(names), _SOURCE_THREADS), thread_name_prefix="okrsync-source")
    futures = [pool.submit(guarded, name) for name in names]
    try:
        results = [f.result() for f in futures]
    except BaseException as exc:
        if not isinstance(exc, Exception):
            # Ctrl-C (or SystemExit) lands in this waiting thread, not in the sources' threads:
            # ask them to stop at their next page or wait, as a daemon's SIGTERM does.
            stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return [r for r in results if r is not None]


def _sync_source(
    config: Config,
    store: Store,
    name: str,
    index: RuleIndex,
    options: SyncOptions,
    now: Callable[[], datetime],
    factory: ConnectorFactory,
    renewer: _Renewer,
    *,
    fresh: bool = False,
) -> tuple[SourceOutcome, Connector | None]:
    """Fetch and store one source. Every write checks, in its own transaction, that this worker
    still holds the source's lease; once lost, nothing more is written (``LeaseLostError``).

    ``fresh``: the store held no items when the pass began. If the source is then read whole
    (no cursor), every stored item of it is one this scan wrote from what it listed: the census
    has nothing to retire and is not compared."""
    source_config = config.sources[name]
    status = store.source_status().get(name, {})
    outcome = SourceOutcome(name=name, full=options.full)
    attempt_at = now()
    resume_at = _as_datetime(status.get("resume_at"))
    if resume_at is not None and resume_at > attempt_at and not options.full:
        outcome.ok = False
        outcome.resume_at = resume_at
        outcome.error = f"rate limited by the tracker; resuming at {resume_at:%Y-%m-%dT%H:%M:%SZ}"
        return outcome, None
    census = options.full or _census_due(config, status, attempt_at, options.census)
    state = _load_state(store, name)
    context = ConnectorContext(
        policy=options.policy or HttpPolicy(deadline=config.schedule.deadline.total_seconds()),
        stop=options.stop,
        now=now,
        session=options.session,
        sleep=options.sleep,
        state=state,
        config_dir=config.path.parent if config.path else None,
    )
    connector: Connector | None = None
    source_rules = [c.rule for c in index.for_source(name)]
    pending: list[WorkItem] = []
    members: dict[str, frozenset[str]] = {}
    try:
        connector = factory(name, source_config, context)
        cursor = None if options.full else store.get_cursor(name)
        members = store.get_members(name)
        for page in connector.fetch(cursor, full=options.full, census=census, rules=source_rules):
            if options.stop.is_set():
                raise SourceError(name, "stopped by a shutdown request; nothing after the last page was kept")
            renewer.check(name)
            outcome.fetched += len(page.items)
            is_last = page.cursor is not None or page.census is not None or bool(page.members)
            if not is_last:
                pending.extend(page.items)
                if len(pending) >= _WRITE_BATCH:
                    _flush(store, name, pending, index, members, options, now, renewer)
            else:
                _flush(store, name, pending, index, members, options, now, renewer)
                with store.transaction():
                    _hold(store, name, options, now, renewer)
                    # Whole (no cursor) into an empty store: every stored item of this source
                    # came from this scan and its census. An incremental pass takes its census
                    # apart from the changes (Jira: after them), so it still compares.
                    seen = None if fresh and cursor is None else page.census
                    outcome.retired += _finish_source(store, name, page, seen, index, members, source_config, now())
                members = store.get_members(name)
            if options.on_progress:
                options.on_progress(name, outcome.fetched, False)
        _flush(store, name, pending, index, members, options, now, renewer)
        outcome.requests = connector.requests
        with store.transaction():
            _hold(store, name, options, now, renewer)
            store.record_source_attempt(name, now(), ok=True, error=None, full=options.full, census=census)
            _save_state(store, name, context.state)
    except LeaseLostError as exc:
        _fail(outcome, connector, exc.message, config.secrets())
        log.warning("%s: %s", name, outcome.error, extra={"fields": {"source": name, "worker": options.worker}})
    except SourceError as exc:
        _keep_fetched(store, name, pending, index, members, options, now, renewer)
        _fail(outcome, connector, exc.message, config.secrets())
        resume = exc.resume_at if isinstance(exc, RateLimitedError) else None
        outcome.resume_at = resume
        if name not in renewer.lost:
            store.record_source_attempt(name, now(), ok=False, error=outcome.error, full=False, census=False,
                                        resume_at=resume)
    except Exception as exc:  # a tracker answer we did not foresee must not take the pass down
        log.debug("unexpected failure in source %s", name, exc_info=True)
        _keep_fetched(store, name, pending, index, members, options, now, renewer)
        _fail(outcome, connector, f"unexpected {type(exc).__name__}: {exc}", config.secrets())
        if name not in renewer.lost:
            store.record_source_attempt(name, now(), ok=False, error=outcome.error, full=False, census=False)
    if options.on_progress:
        options.on_progress(name, outcome.fetched, True)
    return outcome, connector


def _flush(
    store: Store,
    name: str,
    pending: list[WorkItem],
    index: RuleIndex,
    members: Mapping[str, frozenset[str]],
    options: SyncOptions,
    now: Callable[[], datetime],
    renewer: _Renewer,
) -> None:
    """Match and store the buffered pages in one transaction, then empty the buffer.

    Pages are written ~``_WRITE_BATCH`` items at a time rather than one transaction per page
    (100 items for GitHub): at 200k items the commits and lease renewals per page were ~10% of
    the CPU. The cursor still moves only with the last page."""
    if not pending:
        return
    matches = {item.id: match_item(item, index, members) for item in pending}
    with store.transaction():
        _hold(store, name, options, now, renewer)
        store.write_page(name, pending, matches, None, now())
    pending.clear()


def _keep_fetched(
    store: Store,
    name: str,
    pending: list[WorkItem],
    index: RuleIndex,
    members: Mapping[str, frozenset[str]],
    options: SyncOptions,
    now: Callable[[], datetime],
    renewer: _Renewer,
) -> None:
    """A failing source keeps the pages it fetched (newer truth, at-least-once), as it did when
    every page was its own transaction. A store that cannot take them, or a lost lease, leaves
    them unwritten: the cursor did not move, so the next pass reads them again."""
    if not pending or name in renewer.lost:
        return
    try:
        _flush(store, name, pending, index, members, options, now, renewer)
    except Exception as exc:  # noqa: BLE001 - the source's own failure is what gets reported
        log.debug("%s: the %d items fetched before the failure were not kept: %s", name, len(pending), exc)


def _fail(outcome: SourceOutcome, connector: Connector | None, message: str, secrets: tuple[str, ...]) -> None:
    outcome.ok = False
    outcome.error = redact(" ".join(message.split()), secrets)
    outcome.requests = connector.requests if connector is not None else 0


def _finish_source(
    store: Store,
    name: str,
    page: Any,
    seen: frozenset[str] | None,
    index: RuleIndex,
    members: Mapping[str, frozenset[str]],
    source_config: Any,
    at: datetime,
) -> int:
    """The last page: items, member sets, rematches, retirement of what ``seen`` (the census)
    lacks, and the cursor, atomically."""
    retired = 0
    with store.transaction():
        updates = _member_updates(members, page.members, page.members_scope)
        merged = {**members, **updates}
        changed = store.replace_members(name, updates) if updates else set()
        matches = {item.id: match_item(item, index, merged) for item in page.items}
        store.write_page(name, page.items, matches, None, at)
        page_ids = {item.id for item in page.items}
        stale_ids = [i for i in changed if i not in page_ids]
        for start in range(0, len(stale_ids), _REMATCH_BATCH):
            batch = store.items_by_ids(name, stale_ids[start : start + _REMATCH_BATCH])
            store.replace_matches(name, {item.id: match_item(item, index, merged) for item in batch})
        store.link_parents(name)
        if seen is not None:
            retired = store.retire_missing(name, seen, at, guard=source_config.retire_guard)
        if page.cursor is not None:
            store.set_cursor(name, page.cursor)
    return retired


def _member_updates(
    stored: Mapping[str, frozenset[str]],
    fresh: Mapping[str, frozenset[str]],
    scope: frozenset[str] | None,
) -> dict[str, frozenset[str]]:
    """The new sets of the rules this page speaks for: a full replace of each fingerprint it
    names, or, when only ``scope`` was re-evaluated, (stored − scope) ∪ fresh matches."""
    if scope is None:
        return dict(fresh)
    return {fp: (stored.get(fp, frozenset()) - scope) | ids for fp, ids in fresh.items()}


# -- write-back -----------------------------------------------------------------------------


def _carry_out(
    config: Config,
    store: Store,
    writes: Sequence[PlannedWrite],
    built: dict[str, Connector],
    options: SyncOptions,
    now: Callable[[], datetime],
    factory: ConnectorFactory,
) -> list[str]:
    """Make each planned write; a failure is reported and retried next pass (not recorded)."""
    errors: list[str] = []
    for write in writes:
        connector = built.get(write.source)
        try:
            if connector is None:
                context = ConnectorContext(
                    policy=options.policy or HttpPolicy(deadline=config.schedule.deadline.total_seconds()),
                    stop=options.stop, now=now, session=options.session, sleep=options.sleep,
                    state=_load_state(store, write.source),
                    config_dir=config.path.parent if config.path else None,
                )
                connector = factory(write.source, config.sources[write.source], context)
                built[write.source] = connector
            connector.publish(write)
        except Exception as exc:  # noqa: BLE001 - every failure is reported and retried next pass
            message = exc.message if isinstance(exc, SourceError) else f"{type(exc).__name__}: {exc}"
            text = f"{write.source}: write-back to {write.target} failed: {message}"
            errors.append(redact(text, config.secrets()))
            continue
        _record_write(store, write, now())
    return errors


def _record_write(store: Store, write: PlannedWrite, at: datetime) -> None:
    if write.kind in ("add_label", "remove_label"):
        store.set_labelled(write.source, write.item_id or write.target, write.kind == "add_label")
    else:
        store.record_written(write.source, write.target, write.value, at)


# -- key results ----------------------------------------------------------------------------


def _changes(
    latest: Mapping[str, Mapping[str, Any]], krs: Mapping[str, Any], item_letters: Mapping[str, Mapping[str, str]]
) -> dict[str, KeyResultChange]:
    """Each key result's change against the latest stored snapshot (before this pass writes one).

    ``item_letters`` are the states this pass snapshots, as the snapshot stores them (state
    letters, ``Store.snapshot_item_maps``): read once, not once more here, and compared with
    the stored maps (``latest_snapshots(letters=True)``) without translating 100k entries to state names. The counts are
    ``describe_change``'s, in letters."""
    changes: dict[str, KeyResultChange] = {}
    for kr_id, kr in krs.items():
        before = latest.get(kr_id)
        before_items: Mapping[str, str] = before.get("items", {}) if before else {}
        after_items = item_letters.get(kr_id, {})
        change = describe_change(None, kr, {}, {})
        changes[kr_id] = KeyResultChange(
            kr_id=change.kr_id,
            before=float(before["current"]) if before is not None else change.before,
            after=change.after,
            unit=change.unit,
            done_delta=sum(1 for i, s in after_items.items() if s == _DONE and before_items.get(i) != _DONE),
            added=sum(1 for i in after_items if i not in before_items),
            left=sum(1 for i in before_items if i not in after_items),
        )
    return changes


_DONE = "d"
"""``State.DONE`` in a snapshot's item map (``syncer.store._STATE_LETTER``)."""


def _first_passes(store: Store, krs: Mapping[str, Any], run_id: int) -> list[str]:
    """Key results whose history this pass rebuilds: reconstructible, fresh, never rebuilt
    before and without a snapshot from an earlier run (their first pass)."""
    done = store.backfilled()
    return [
        kr_id for kr_id, kr in krs.items()
        if kr.metric in RECONSTRUCTIBLE and not kr.stale and kr_id not in done
        and store.previous_snapshot(kr_id, before_run=run_id) is None
    ]  # fmt: skip


def _backfill_first_passes(
    config: Config, store: Store, wanted: Sequence[str], days: Mapping[str, list[DayGroup]] | None, at: datetime
) -> None:
    """A key result's first pass rebuilds its past days from item dates (see ``syncer.backfill``).

    ``days``: the day groups read with the snapshot's maps (``Store.snapshot_item_maps``), or
    ``None`` to read them here."""
    for start in range(0, len(wanted), _BACKFILL_GROUP):
        # A few key results at a time: every counted item's dates at once were ~20 MB at 200k
        # items, on top of the pass's peak (grouped by day they are a quarter of that now).
        group = wanted[start : start + _BACKFILL_GROUP]
        found = days if days is not None else store.kr_item_days(group)
        for kr_id in group:
            kr = config.key_result(kr_id)
            if kr is not None:
                store.write_backfill(kr_id, reconstruct_days(kr[1], found.get(kr_id, []), config.cycle, at))
        del found


# -- rules, leases, state ---------------------------------------------------------------------


def _selected_sources(config: Config, only: Iterable[str] | None) -> list[str]:
    names = list(config.sources)
    if only:
        unknown = [n for n in only if n not in config.sources]
        if unknown:
            raise ConfigError(f"--source {', '.join(unknown)}: no such source (known: {', '.join(names)})")
        names = [n for n in names if n in set(only)]
    return names


def rules_hash(rules: Sequence[CompiledRule]) -> str:
    """Fingerprint of every rule in order: when it changes, stored matches are recomputed."""
    text = json.dumps([[c.kr_id, c.index, c.rule.fingerprint()] for c in rules], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _rematch_if_rules_changed(config: Config, store: Store, index: RuleIndex) -> None:
    """Config edits change which items serve which key result: recompute matches once."""
    digest = rules_hash(list(index))
    if store.get_meta("rules_hash") == digest:
        return
    with store.transaction():
        # Writing this row locks it until commit: a second worker rematching at the same moment
        # waits here, then sees the new hash and leaves (instead of a duplicate-key error).
        store.set_meta("rematch_lock", digest)
        if store.get_meta("rules_hash") == digest:
            return
        store.clear_matches()
        for name in config.sources:
            members = store.get_members(name)
            batch: list[WorkItem] = []
            for item in store.iter_items(name):
                batch.append(item)
                if len(batch) >= _REMATCH_BATCH:
                    store.replace_matches(name, {i.id: match_item(i, index, members) for i in batch})
                    batch = []
            if batch:
                store.replace_matches(name, {i.id: match_item(i, index, members) for i in batch})
        store.set_meta("rules_hash", digest)


def _lease(source: str) -> str:
    return f"source:{source}"


def _acquire_sources(
    store: Store, names: list[str], options: SyncOptions, now: Callable[[], datetime]
) -> tuple[list[str], list[str]]:
    """Take every source's lease; wait briefly for a busy one, then refuse (or skip, for workers)."""
    held: list[str] = []
    skipped: list[str] = []
    deadline = time.monotonic() + options.lock_wait
    pending = list(names)
    while pending:
        for name in list(pending):
            _release_if_dead(store, _lease(name), now())
            if store.acquire_lease(_lease(name), options.worker, options.lease_ttl, now()):
                held.append(name)
                pending.remove(name)
        if not pending:
            break
        if options.skip_busy:
            skipped.extend(pending)
            break
        if time.monotonic() >= deadline:
            for name in held:
                store.release_lease(_lease(name), options.worker)
            holder = next((lease for lease in store.leases() if lease["name"] == _lease(pending[0])), None)
            since = f" since {holder['acquired_at']:%Y-%m-%d %H:%M:%SZ}" if holder else ""
            who = f" (worker {holder['holder']}{since})" if holder else ""
            raise SyncBusyError(f"a sync is already running for source {pending[0]}{who}; try again later")
        if options.stop.wait(0.2):
            break
    return held, skipped


def _take_source(
    store: Store, name: str, options: SyncOptions, now: Callable[[], datetime], skipped: list[str]
) -> bool:
    """Worker mode: take the source's lease if the source is due and no live worker holds it."""
    if _fresh(store, name, options, now):
        return False
    _release_if_dead(store, _lease(name), now())
    if not store.acquire_lease(_lease(name), options.worker, options.lease_ttl, now()):
        skipped.append(name)
        return False
    if _fresh(store, name, options, now):  # another worker finished it between our two looks
        store.release_lease(_lease(name), options.worker)
        return False
    return True


def _fresh(store: Store, name: str, options: SyncOptions, now: Callable[[], datetime]) -> bool:
    if options.fresh_for is None:
        return False
    last = _as_datetime(store.source_status().get(name, {}).get("last_attempt_at"))
    return last is not None and now() - last < options.fresh_for


def _hold(store: Store, name: str, options: SyncOptions, now: Callable[[], datetime], renewer: _Renewer) -> None:
    """Inside the caller's transaction: renew our lease or abort the source.

    The UPDATE locks the lease row until the transaction commits, so a worker taking the
    source over waits for this write to finish, then sees the renewed expiry and backs off;
    a worker that lost the lease finds no row of its own and writes nothing.
    """
    renewer.check(name)
    if not store.renew_lease(_lease(name), options.worker, options.lease_ttl, now()):
        renewer.mark_lost(name)
        renewer.check(name)


class _Renewer:
    """Renews the held source leases from a background thread every ``ttl / 4`` (at most 30 s), so
    a long fetch (a slow tracker, one huge page) keeps its lease; remembers the leases it lost."""

    def __init__(self, store: Store, options: SyncOptions, now: Callable[[], datetime], names: Iterable[str]) -> None:
        self._store = store
        self._options = options
        self._now = now
        self._names = set(names)
        self.lost: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._period = max(0.2, min(30.0, options.lease_ttl.total_seconds() / 4))
        self._thread = threading.Thread(target=self._run, name="okrsync-lease-renewal", daemon=True)
        self._thread.start()

    def add(self, name: str) -> None:
        with self._lock:
            self._names.add(name)

    def discard(self, name: str) -> None:
        with self._lock:
            self._names.discard(name)

    def mark_lost(self, name: str) -> None:
        with self._lock:
            self.lost.add(name)

    def check(self, name: str) -> None:
        if name in self.lost:
            raise LeaseLostError(
                name, f"lease lost: another worker took source {name} over; nothing more was written by this one"
            )

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            with self._lock:
                names = sorted(self._names - self.lost)
            for name in names:
                try:
                    ok = self._store.renew_lease(_lease(name), self._options.worker, self._options.lease_ttl,
                                                 self._now())
                except Exception as exc:  # noqa: BLE001 - a busy or unreachable store: try again next tick
                    log.warning("renewing the lease of %s failed: %s", name, exc)
                    continue
                if not ok:
                    with self._lock:
                        if name in self._names:  # not a lease we released ourselves meanwhile
                            self.lost.add(name)


def _log_source(options: SyncOptions, message: str, name: str, **fields: Any) -> None:
    """Worker mode logs who synced which source when (INFO); a single ``okrsync sync`` only at DEBUG."""
    level = logging.INFO if options.skip_busy else logging.DEBUG
    log.log(level, "%s: %s", message, name,
            extra={"fields": {"source": name, "worker": options.worker, "t": round(time.time(), 3), **fields}})


def _release_if_dead(store: Store, name: str, at: datetime) -> None:
    """A holder on this host whose process is gone (kill -9) frees its lease at once."""
    for lease in store.leases():
        if lease["name"] != name:
            continue
        host, _, rest = str(lease["holder"]).partition(":")
        pid_text = rest.split(":", 1)[0]
        if host == socket.gethostname() and pid_text.isdigit() and not _alive(int(pid_text)):
            store.release_lease(name, lease["holder"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _census_due(config: Config, status: Mapping[str, Any], at: datetime, forced: bool | None) -> bool:
    if forced is not None:
        return forced
    last = _as_datetime(status.get("last_census_at"))
    return last is None or at - last >= config.schedule.census_every


def _as_datetime(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _load_state(store: Store, name: str) -> dict[str, Any]:
    raw = store.get_meta(f"connector_state:{name}")
    try:
        loaded = json.loads(raw) if raw else {}
    except ValueError:
        loaded = {}
    return loaded if isinstance(loaded, dict) else {}


def _save_state(store: Store, name: str, state: dict[str, Any] | None) -> None:
    if state is not None:
        store.set_meta(f"connector_state:{name}", json.dumps(state, sort_keys=True, default=str))


def _outcome_dict(outcome: SourceOutcome) -> dict[str, Any]:
    return {
        "name": outcome.name, "ok": outcome.ok, "fetched": outcome.fetched, "requests": outcome.requests,
        "error": outcome.error, "retired": outcome.retired, "full": outcome.full,
        "resume_at": outcome.resume_at.isoformat() if outcome.resume_at else None,
    }


def _plugin_factory(name: str, source_config: Any, context: ConnectorContext) -> Connector:
    plugin = connectors.plugins()[source_config.type]
    return plugin.build(name, source_config, context)


def rules_of_source(rules: Sequence[CompiledRule], source: str) -> list[RuleConfig]:
    return [c.rule for c in rules if c.rule.source == source]
