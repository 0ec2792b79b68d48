"""The only module with SQL: items, matches, cursors, runs, snapshots, check-ins, leases.

One code path for SQLite (the default, embedded) and PostgreSQL. The few places where the
dialects differ (upsert syntax, schema lock, sequence reset, integrity check) are small functions
at the bottom of this file.

Units of work: each public method that writes runs in its own short write transaction, unless
the caller groups several inside ``with store.transaction():`` (nested use is a savepoint). On
SQLite every write transaction starts with ``BEGIN IMMEDIATE`` (a deferred transaction that
upgrades to a writer skips the busy handler and fails with "database is locked"), reads start a
plain ``BEGIN`` and, thanks to WAL, never block the writer.

Dry run: a store opened with ``dry_run=True`` puts every write inside one outer transaction that
``close()`` rolls back. The pass sees its own writes; the database is unchanged afterwards. On
SQLite that outer transaction holds the write lock from the first write until ``close()``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import astuple
from datetime import UTC, date, datetime, timedelta
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    RowMapping,
    String,
    Table,
    and_,
    bindparam,
    case,
    cast,
    create_engine,
    delete,
    event,
    func,
    inspect,
    literal,
    not_,
    or_,
    select,
    text,
    true,
    tuple_,
    union,
    union_all,
    update,
)
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.elements import ColumnElement

from syncer import __version__
from syncer.errors import StoreError, VisibilityLostError
from syncer.model import (
    HistoryPoint,
    ItemKind,
    KeyResultProgress,
    State,
    Tally,
    UnalignedGroup,
    UnalignedSummary,
    WorkItem,
)
from syncer.store_schema import (
    analyze_sqlite,
    backfill,
    checkins,
    cursors,
    format_utc,
    labelled,
    leases,
    matches,
    members,
    meta,
    runs,
    snapshots,
    source_status,
    writes,
)
from syncer.store_schema import items as items_t

if TYPE_CHECKING:
    from syncer.backfill import DayGroup

__all__ = ["ItemMaps", "Store", "copy_store"]

_T = TypeVar("_T")

PAGE_SIZE = 16384
"""Page size of a SQLite store this code creates (SQLite's default is 4096). A first sync of
200k items writes ~90 MB of B-tree pages: with 16 KiB pages the bare-sqlite3 replay of its rows
took 19% less CPU (commits, i.e. WAL frames, halved), and the pass's reads cost the same
(bench/RESULTS.md). The page cache stays 2 MB (``cache_size`` is in KiB). A store created
with other pages keeps them: SQLite changes an existing file's page size only by a VACUUM
outside WAL mode, which okrsync never runs (the README shows the command)."""
BUSY_TIMEOUT_S = 30.0
"""How long a SQLite writer waits for another writer before giving up."""
log = logging.getLogger("okrsync.store")

_CHUNK = 500
"""Ids per ``IN (...)`` list: far below SQLite's bound-variable limit."""
_ROWS = 2000
"""Rows per executemany group."""
_ITEM_ROWS = 500
"""Item rows per executemany in ``write_page`` (rows are built per group, not per page)."""
_TOUCHED_MAX = 20_000
"""Items written since the last snapshots beyond which ``snapshot_item_maps`` reads every map."""
_ANALYZE_MIN = 10_000
"""Refresh statistics after this many written items, or after as many as the table held."""
_RETIRE_MIN = 5
"""The visibility guard ignores disappearances of this many items or fewer."""
_DAY_KEYS = 400
"""Literal rows per statement in ``daily_histories`` (SQLite allows 500 SELECTs in a compound)."""

_STATE_LETTER = {"todo": "t", "in_progress": "p", "done": "d", "unknown": "u"}
_LETTER_STATE = {v: k for k, v in _STATE_LETTER.items()}
_STATES = {s.value: s for s in State}
_KINDS = {k.value: k for k in ItemKind}

_ITEM_COLUMNS = [
    items_t.c[name]
    for name in (
        "source", "id", "key", "title", "url", "kind", "state", "issue_type", "container",
        "created_at", "updated_at", "done_at", "excluded", "resolution", "points", "labels",
        "components", "milestone", "fix_versions", "parent_key", "parent_id", "status_name",
        "in_scope", "unknown_fields",
    )
]  # fmt: skip
_ITEM_WIDTH = len(_ITEM_COLUMNS)
_ITEM_UPDATE = [c.name for c in items_t.columns if c.name not in ("source", "id", "first_seen_at")]


def _chunks(values: Sequence[_T], size: int = _CHUNK) -> Iterator[Sequence[_T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _labels_blob(labels: Sequence[str]) -> str:
    """``\\x1fbug\\x1fcustomer\\x1f``: lower-cased labels, fenced so LIKE can test membership.

    Printable ASCII labels (nearly all) hold no fence and lower-case letter by letter, so the
    whole join is lowered at once: 0.2 us instead of 0.8 per labelled item written."""
    if not labels:
        return "\x1f"
    plain = "".join(labels)
    if plain.isascii() and plain.isprintable():
        return "\x1f" + "\x1f".join(labels).lower() + "\x1f"
    return "\x1f" + "".join(label.lower().replace("\x1f", " ") + "\x1f" for label in labels)


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


_ITEM_ALL = [c.name for c in items_t.columns]
"""Every items column, in table order: the order of ``_item_values``."""


def _json_list(values: tuple[str, ...]) -> str:
    """``json.dumps(list(values))``, byte for byte (stored rows stay comparable across versions).

    Most lists are empty; most others are printable ASCII without ``"`` or ``\\``, which the
    encoder would copy unchanged: joined here in 0.2 us instead of the encoder's 1.1."""
    if not values:
        return "[]"
    plain = "".join(values)
    if plain.isascii() and plain.isprintable() and '"' not in plain and "\\" not in plain:
        return '["' + '", "'.join(values) + '"]'
    return json.dumps(list(values))


_ITEM_ID = itemgetter(WorkItem._fields.index("id"))
"""``WorkItem.id`` as a sort key: ``itemgetter`` on the tuple, no attribute lookup."""


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


class _ItemBinding(NamedTuple):
    """How ``write_page`` spells an items row for one dialect's driver (``_item_values``).

    Python's ``sqlite3`` binds an exact ``int``, ``float``, ``str`` or ``bytearray`` directly,
    but sends ``None`` and ``bool`` through its adapter lookup first: ~300 ns per value against
    25-100 (measured on the bench machine). An items row holds 6-7 of them (two flags, the
    never-set ``retired_at`` and 4-5 empty optional fields), ~0.35 s of a 200k first sync. So on
    SQLite the flags True/False go as 1/0 (what SQLite stored for them anyway) and an empty
    optional field as an empty ``bytearray`` that ``NULLIF(?, x'')`` turns back into NULL: only
    an empty BLOB equals it, and no item field holds bytes (JSON has none), whatever else a
    connector puts there (text, a number, NaN). The stored rows are the same bytes as with
    None, True and False (tested). PostgreSQL's driver binds them as they are."""

    sql: str
    null: Any
    yes: Any
    no: Any


_NULLABLE = ("created_at", "done_at", "resolution", "points", "milestone", "parent_key", "parent_id")
"""Optional items columns ``_item_values`` fills (``retired_at`` is never written with a row)."""
_ROW_COLUMNS = [name for name in _ITEM_ALL if name != "retired_at"]
"""The columns ``_item_values`` gives values for: a written item is live, ``retired_at`` is NULL."""
_NULL_BLOB = bytearray()
"""SQLite's stand-in for NULL in an items row (``_ItemBinding``); never changed."""


def _upsert_items_sql(placeholder: Callable[[str], str]) -> str:
    values = ", ".join("NULL" if name == "retired_at" else placeholder(name) for name in _ITEM_ALL)
    return (
        f"INSERT INTO items ({_quoted(_ITEM_ALL)}) VALUES ({values}) "
        "ON CONFLICT (source, id) DO UPDATE SET " + ", ".join(f'"{c}" = excluded."{c}"' for c in _ITEM_UPDATE)
    )


_SQLITE_ITEMS = _ItemBinding(
    _upsert_items_sql(lambda name: "NULLIF(?, x'')" if name in _NULLABLE else "?"), _NULL_BLOB, 1, 0
)
_PLAIN_ITEMS = _ItemBinding(_upsert_items_sql(lambda name: "?"), None, True, False)


def _item_values(item: WorkItem, now_text: str, binding: _ItemBinding = _PLAIN_ITEMS) -> tuple[Any, ...]:
    """One items row in ``_ROW_COLUMNS`` order, already in its stored form (times as
    ``format_utc`` text, lists as JSON) and spelled for ``binding.sql``: the DBAPI binds it
    without SQLAlchemy's per-value processors (at 200k items those were a third of the write cost).

    The item is unpacked in one step (it is a tuple) rather than read field by field, and the
    enums' text taken as ``_value_`` (``.value`` is a property): 3.3-3.6 -> 3.0 us per item.
    Only True and False are respelled: a flag that is not a bool goes as it came."""
    (
        source, item_id, key, title, url, kind, state, updated, container, issue_type, created, done,
        excluded, resolution, points, labels, components, milestone, fix_versions, parent_key, parent_id,
        status_name, in_scope, unknown,
    ) = item  # fmt: skip
    _, null, yes, no = binding
    return (
        source, item_id, key, title, url, kind._value_, state._value_, issue_type, container,
        null if created is None else format_utc(created), format_utc(updated),
        null if done is None else format_utc(done),
        yes if excluded is True else no if excluded is False else excluded,
        null if resolution is None else resolution, null if points is None else points,
        _json_list(labels), _labels_blob(labels), _json_list(components),
        null if milestone is None else milestone, _json_list(fix_versions),
        null if parent_key is None else parent_key, null if parent_id is None else parent_id, status_name,
        yes if in_scope is True else no if in_scope is False else in_scope,
        _json_list(unknown), now_text, now_text,
    )  # fmt: skip


def _json_tuple(value: str) -> tuple[str, ...]:
    """Most lists are empty: skip the JSON parser for them (iterating 200k items)."""
    return () if value == "[]" else tuple(json.loads(value))


def _row_item(r: Any) -> WorkItem:
    """A row selected with ``_ITEM_COLUMNS`` (first, in that order) back into the shared model.

    Unpacked by position: a SQLAlchemy ``Row`` answers ``r.title`` through its key map in
    ~0.4 us, 24 names per item, against ~0.04 us by index. By name this took 15 us per item,
    0.6 s for a full sync's 22k JQL re-matches at 200k items and most of a report's item lists."""
    (
        source, item_id, key, title, url, kind, state, issue_type, container, created_at, updated_at,
        done_at, excluded, resolution, points, labels, components, milestone, fix_versions, parent_key,
        parent_id, status_name, in_scope, unknown_fields,
    ) = r[:_ITEM_WIDTH]  # fmt: skip
    return WorkItem(  # by position, in ``WorkItem._fields`` order (keywords: 1.1 us a call, 0.3 by position)
        source,
        item_id,
        key,
        title,
        url,
        _KINDS.get(kind, ItemKind.ISSUE),
        _STATES.get(state, State.UNKNOWN),
        updated_at,
        container,
        issue_type,
        created_at,
        done_at,
        bool(excluded),
        resolution,
        points,
        _json_tuple(labels),
        _json_tuple(components),
        milestone,
        _json_tuple(fix_versions),
        parent_key,
        parent_id,
        status_name,
        bool(in_scope),
        _json_tuple(unknown_fields),
    )


def _normalise_url(url: str) -> URL:
    """``postgresql://`` means psycopg 3 here; SQLite URLs are used as given."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"invalid store URL: {exc}") from None
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return parsed
    raise StoreError(f"unsupported store URL scheme {parsed.drivername!r}: use sqlite:///PATH or postgresql://...")


def _describe(exc: BaseException) -> str:
    """One line from a driver error, without SQL text, parameters or documentation links."""
    inner = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = [line.strip() for line in str(inner).splitlines() if line.strip()]
    return lines[0] if lines else type(inner).__name__


class ItemMaps(NamedTuple):
    """What ``Store.snapshot_item_maps`` read for a pass's snapshots."""

    letters: dict[str, dict[str, str]]
    """``{kr_id: {item_id: state letter}}`` (``kr_item_letters``)."""
    days: dict[str, list[DayGroup]] | None
    """``kr_item_days`` of the key results asked for in ``days_for``, read with the letters in
    the same join when the maps were read whole; ``None`` when they were carried forward."""


class Store:
    """A connection to the okrsync database; see the module docstring for transactions."""

    def __init__(self, engine: Engine, url: URL, *, dry_run: bool) -> None:
        self._engine = engine
        self._url = url
        self._dry_run = dry_run
        self._local = threading.local()
        self._sqlite = engine.dialect.name == "sqlite"
        # One shared connection (in-memory SQLite, or the dry-run's outer transaction) can only
        # serve one thread at a time.
        self._serial: threading.RLock | None = None
        self._dry_conn: Connection | None = None
        self._closed = False
        self._written = 0  # items written since the last ANALYZE
        # Ids of items whose row or matches this Store wrote since it opened or last wrote the
        # snapshots' item maps (None: every item, the matches were cleared); see snapshot_item_maps.
        self._touched: set[tuple[str, str]] | None = set()
        self._maps_quiet: int | None = None  # run whose item maps were read with no other run live
        self._analyzed = 0  # items in the table at the last ANALYZE
        self._loading = False  # a first load with deferred indexes: ANALYZE once, when they are built
        # Aggregates this Store computed, by kind: (data generation, arguments, JSON value), for
        # ``keep_aggregates`` to store if nothing changed the data since (SQLite only).
        self._fresh: dict[str, tuple[int, list[Any], Any]] = {}

    # -- opening and closing ----------------------------------------------------------------

    @classmethod
    def open(cls, url: str, *, dry_run: bool = False) -> Store:
        """Connect, create or migrate the schema, and refuse a schema newer than this code."""
        parsed = _normalise_url(url)
        redacted = parsed.render_as_string(hide_password=True)
        target = parsed
        fresh = parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").exists()
        if dry_run and fresh and not _is_memory(parsed):
            # Nothing to read and nothing may be written: an empty in-memory store stands in,
            # so a dry run in a fresh folder leaves no file behind.
            target = make_url("sqlite://")
        try:
            engine = _make_engine(target, dry_run=dry_run)
        except (SQLAlchemyError, ArgumentError) as exc:
            raise StoreError(f"cannot open store {redacted}: {_describe(exc)}") from None
        store = cls(engine, parsed, dry_run=dry_run)
        if dry_run or _is_memory(target):
            store._serial = threading.RLock()
        try:
            store._migrate()
        except StoreError as exc:
            store.close()
            raise StoreError(f"cannot open store {redacted}: {exc}") from None
        return store

    def close(self) -> None:
        """Roll back a dry run, then release every connection (SQLite checkpoints its WAL)."""
        if self._closed:
            return
        self._closed = True
        if self._dry_conn is not None:
            try:
                self._dry_conn.rollback()
                self._dry_conn.close()
            except SQLAlchemyError:
                pass
            self._dry_conn = None
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url_redacted(self) -> str:
        """The URL with any password replaced by ``***``."""
        return self._url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._engine.dialect.name

    @property
    def dry_run(self) -> bool:
        return self._dry_run

    def _migrate(self) -> None:
        from syncer import store_schema  # read at call time so tests can append a step

        steps = store_schema.MIGRATIONS
        with self._read("read schema version") as conn:
            version = _schema_version(conn)
        if version > len(steps):
            raise StoreError(_too_new(version, len(steps)))
        if version == len(steps):
            return
        with self._write("migrate schema") as conn:
            _lock_schema(conn)
            version = _schema_version(conn)
            if version > len(steps):
                raise StoreError(_too_new(version, len(steps)))
            for number in range(version, len(steps)):
                steps[number](conn)
                _upsert(conn, meta, [{"key": "schema_version", "value": str(number + 1)}], ["key"])

    # -- transactions -------------------------------------------------------------------------

    def _current(self) -> Connection | None:
        conn: Connection | None = getattr(self._local, "conn", None)
        return conn

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """Serialise shared connections and turn driver errors into one-line StoreErrors."""
        if self._closed:
            raise StoreError(f"store: {what}: the store is closed")
        lock: AbstractContextManager[Any] = self._serial if self._serial is not None else nullcontext()
        with lock:
            try:
                yield
            except SQLAlchemyError as exc:
                message = _describe(exc)
                if self._url.password:
                    message = message.replace(str(self._url.password), "***")
                raise StoreError(f"store: {what}: {message}") from None

    @contextmanager
    def _write(self, what: str, *, data: bool = True) -> Iterator[Connection]:
        """A write unit: own transaction, or a savepoint inside the caller's.

        ``data``: the unit may change items or matches, so it counts the data generation up
        (``_changed``) as it commits. Only writes that never touch them say ``False``: a
        forgotten count would let a report use a stale cached aggregate, an extra one only
        costs a recomputation."""
        with self._guard(what):
            conn = self._current()
            if conn is not None:
                with conn.begin_nested():
                    yield conn
                    if data:
                        self._changed(conn)
                return
            if self._dry_run:
                conn = self._dry_connection()
                self._local.conn = conn
                try:
                    with conn.begin_nested():
                        yield conn
                        if data:
                            self._changed(conn)
                finally:
                    self._local.conn = None
                return
            with self._engine.connect().execution_options(okrsync_write=True) as conn:
                self._local.conn = conn
                try:
                    with conn.begin():
                        yield conn
                        if data:
                            self._changed(conn)
                finally:
                    self._local.conn = None

    def _changed(self, conn: Connection) -> None:
        """Count the data generation up, in the writer's transaction (SQLite; PostgreSQL
        workers would all queue on that one row, and its aggregates are not cached)."""
        if self._sqlite:
            conn.exec_driver_sql(_BUMP_GENERATION)

    @contextmanager
    def _read(self, what: str) -> Iterator[Connection]:
        """A read: inside the caller's transaction if any, else a short snapshot of its own."""
        with self._guard(what):
            conn = self._current() or self._dry_conn
            if conn is not None:
                yield conn
                return
            with self._engine.connect() as conn:
                yield conn

    def _dry_connection(self) -> Connection:
        if self._dry_conn is None:
            conn = self._engine.connect().execution_options(okrsync_write=True)
            conn.begin()
            self._dry_conn = conn
        return self._dry_conn

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group the writes inside into one transaction (a savepoint when nested)."""
        with self._write("transaction", data=False):  # the writes inside count for themselves
            yield

    # -- items ----------------------------------------------------------------------------------

    def write_page(
        self,
        source: str,
        items: Sequence[WorkItem],
        matches: Mapping[str, Mapping[str, int]],
        cursor: Mapping[str, Any] | None,
        now: datetime,
    ) -> None:
        """Upsert a page of items, replace their matches and move the cursor, all or nothing."""
        with self._write(f"write page of {source}", data=bool(items)) as conn:
            if any(item.source != source for item in items):
                raise StoreError(f"store: write page of {source}: items from another source")
            now_text = format_utc(now)
            # The last version of a repeated id wins, as an upsert of the rows in order would.
            # Rows are built a group at a time: a sync writes 5000 items per call, and their rows
            # all at once were ~3 MB of peak RSS per source. They go in the key's order: an
            # incremental pass updates items spread over the whole table, and visiting the
            # B-trees' pages in order cut the upserts' CPU by a fifth (a replay of 2 000 changed
            # items into the 200k bench store, bench/RESULTS.md); a page already in order (Jira's
            # full pass) costs the sort ~0.5 ms.
            latest = sorted({item.id: item for item in items}.values(), key=_ITEM_ID)
            binding = _SQLITE_ITEMS if self._sqlite else _PLAIN_ITEMS
            for group in _chunks(latest, _ITEM_ROWS):
                _executemany(conn, binding.sql, [_item_values(item, now_text, binding) for item in group])
            self._replace_matches(conn, source, [item.id for item in items], matches)
            self._touch(source, [item.id for item in items])
            if cursor is not None:
                self._set_cursor(conn, source, cursor, now)
        self._written += len(items)
        if self._written >= max(_ANALYZE_MIN, self._analyzed) and not self._loading:
            self.analyze()

    def analyze(self) -> None:
        """Refresh planner statistics (bulk loads otherwise leave PostgreSQL planning for an empty table)."""
        with self._write("analyze", data=False) as conn:
            _analyze(conn)
            self._analyzed = int(conn.scalar(select(func.count()).select_from(items_t)) or 0)
        self._written = 0

    def defer_indexes_if_empty(self) -> bool:
        """Before a first sync into an empty SQLite store: drop the indexes no write reads
        (``_DEFERRABLE``), to be built once over the loaded rows by ``build_deferred_indexes``.

        ``ix_items_updated`` is random in fetch order: kept up row by row it was ~1.2 s of a
        200k first sync's CPU, built afterwards 0.2 s. ``ix_matches_kr`` takes each key
        result's items in fetch order too: ~0.25 s kept up, 0.08 s built (a bare-sqlite3
        replay). The meta mark written with the drop lets the next pass build them if this
        process dies first (``deferred_indexes_left``); reads stay correct meanwhile, only
        slower (the newest-first unaligned list, the reads by key result). Not on PostgreSQL
        (workers share it, and a role that may write rows may not own the table)
        and not in a dry run."""
        if self._dry_run or self.dialect != "sqlite":
            return False
        with self._read("look for items") as conn:  # every pass asks: no write lock for that
            if conn.scalar(select(items_t.c.id).limit(1)) is not None:
                return False
        with self._write("defer indexes", data=False) as conn:  # BEGIN IMMEDIATE: one writer decides
            if conn.scalar(select(items_t.c.id).limit(1)) is not None:
                return False
            _upsert(conn, meta, [{"key": _DEFERRED, "value": ",".join(_DEFERRABLE)}], ["key"])
            for name in _DEFERRABLE:
                conn.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")
        # Statistics taken while loading are outdated a few pages later (five ANALYZEs at 200k
        # items, 0.08-0.11 s) and no write's plan needs them: ``build_deferred_indexes`` takes
        # them once over the loaded rows. Until then the planner has none, as for the first
        # ``_ANALYZE_MIN`` items of every first load.
        self._loading = True
        return True

    def deferred_indexes_left(self) -> bool:
        """A first sync dropped indexes and did not build them again (it died)."""
        return not self._dry_run and self.get_meta(_DEFERRED) is not None

    def build_deferred_indexes(self) -> None:
        """Build what ``defer_indexes_if_empty`` dropped (idempotent), clear its mark, and give
        the planner statistics over the loaded rows (the load took none)."""
        with self._write("build deferred indexes", data=False) as conn:
            for index in sorted(items_t.indexes | matches.indexes, key=lambda ix: str(ix.name)):
                if index.name in _DEFERRABLE:
                    index.create(conn, checkfirst=True)
            conn.execute(delete(meta).where(meta.c.key == _DEFERRED))
            _analyze(conn)
            self._analyzed = int(conn.scalar(select(func.count()).select_from(items_t)) or 0)
        self._written, self._loading = 0, False

    def get_cursor(self, source: str) -> dict[str, Any] | None:
        with self._read("read cursor") as conn:
            value = conn.scalar(select(cursors.c.cursor).where(cursors.c.source == source))
        return dict(value) if value is not None else None

    def set_cursor(self, source: str, cursor: Mapping[str, Any] | None, now: datetime | None = None) -> None:
        """Store (or with ``None`` forget) a source's cursor on its own."""
        with self._write(f"set cursor of {source}", data=False) as conn:
            if cursor is None:
                conn.execute(delete(cursors).where(cursors.c.source == source))
            else:
                self._set_cursor(conn, source, cursor, now or _utcnow())

    @staticmethod
    def _set_cursor(conn: Connection, source: str, cursor: Mapping[str, Any], now: datetime) -> None:
        row = {"source": source, "cursor": dict(cursor), "updated_at": now}
        _upsert(conn, cursors, [row], ["source"])

    def get_members(self, source: str) -> dict[str, frozenset[str]]:
        """Rule fingerprint -> item ids the tracker said match it."""
        found: dict[str, set[str]] = {}
        with self._read("read members") as conn:
            for fp, item_id in conn.execute(
                select(members.c.fingerprint, members.c.item_id).where(members.c.source == source)
            ):
                found.setdefault(fp, set()).add(item_id)
        return {fp: frozenset(ids) for fp, ids in found.items()}

    def replace_members(self, source: str, members_: Mapping[str, frozenset[str]]) -> set[str]:
        """Replace the member sets of the given fingerprints; return ids whose membership changed."""
        changed: set[str] = set()
        with self._write(f"replace members of {source}", data=False) as conn:  # matches follow apart
            for fp, new in members_.items():
                old = set(
                    conn.scalars(
                        select(members.c.item_id).where(members.c.source == source, members.c.fingerprint == fp)
                    )
                )
                gone = sorted(old - new)
                added = sorted(new - old)
                changed.update(gone, added)
                _delete_keys(conn, members, [{"source": source, "fingerprint": fp, "item_id": i} for i in gone])
                rows = [{"source": source, "fingerprint": fp, "item_id": i} for i in added]
                for group in _chunks(rows, _ROWS):
                    conn.execute(members.insert(), list(group))
        return changed

    def link_parents(self, source: str) -> int:
        """Give items that name their parent only by key (a Data Center Epic Link, a JSON import)
        that parent's stable id, so unaligned work and roll-ups can follow it. Returns the count."""
        parent = items_t.alias("parent")
        parent_id = (
            select(parent.c.id)
            .where(parent.c.source == items_t.c.source, parent.c.key == items_t.c.parent_key)
            .limit(1)
            .scalar_subquery()
        )
        with self._write(f"link parents of {source}", data=False) as conn:  # every pass asks; few link
            result = conn.execute(
                update(items_t)
                .where(
                    items_t.c.source == source, items_t.c.parent_id.is_(None), items_t.c.parent_key.is_not(None),
                    parent_id.is_not(None),  # a parent okrsync never saw stays unlinked, and unwritten
                )
                .values(parent_id=parent_id)
            )
            linked = int(result.rowcount or 0)
            if linked:
                self._changed(conn)
            return linked

    def items_by_ids(self, source: str, ids: Collection[str]) -> list[WorkItem]:
        """The stored items (live or retired) with these ids, in no particular order."""
        found: list[WorkItem] = []
        with self._read("read items") as conn:
            for part in _chunks(sorted(set(ids))):
                query = select(*_ITEM_COLUMNS).where(items_t.c.source == source, items_t.c.id.in_(part))
                found.extend(_row_item(r) for r in conn.execute(query))
        return found

    def iter_items(
        self, source: str | None = None, *, include_retired: bool = False, batch: int = 2000
    ) -> Iterator[WorkItem]:
        """Every item, ordered by (source, id), in batches: memory stays flat at any size."""
        after: tuple[str, str] | None = None
        while True:
            query = select(*_ITEM_COLUMNS)
            if source is not None:
                query = query.where(items_t.c.source == source)
            if not include_retired:
                query = query.where(items_t.c.retired_at.is_(None))
            if after is not None:
                query = query.where(tuple_(items_t.c.source, items_t.c.id) > tuple_(*after))
            query = query.order_by(items_t.c.source, items_t.c.id).limit(batch)
            with self._read("read items") as conn:
                page = [_row_item(r) for r in conn.execute(query)]
            yield from page
            if len(page) < batch:
                return
            after = (page[-1].source, page[-1].id)

    def replace_matches(self, source: str, matches: Mapping[str, Mapping[str, int]]) -> None:
        """Set which key results the given items serve (``{item_id: {kr_id: rule_index}}``)."""
        with self._write(f"replace matches of {source}", data=bool(matches)) as conn:
            self._replace_matches(conn, source, list(matches), matches)
            self._touch(source, list(matches))

    def _touch(self, source: str, ids: Iterable[str]) -> None:
        # Read once: sources write from their own threads, and another may stop the tracking
        # (set None) between this thread's check and its update.
        touched = self._touched
        if touched is None:
            return
        touched.update((source, i) for i in ids)
        if len(touched) > _TOUCHED_MAX:
            # Past this many, reading every map again is cheaper than reading these by id,
            # and a full pass's 200k (source, id) pairs held ~30 MB until its snapshots.
            self._touched = None

    @staticmethod
    def _replace_matches(
        conn: Connection, source: str, ids: Sequence[str], wanted: Mapping[str, Mapping[str, int]]
    ) -> None:
        unique = sorted(set(ids))
        if unique and _may_hold_matches(conn, source, unique[0], unique[-1]):
            for part in _chunks([(source, i) for i in unique], _ROWS):
                _executemany(conn, _DELETE_MATCHES, part)
        rows = [
            (source, item_id, kr_id, rule)
            for item_id in unique
            for kr_id, rule in (wanted.get(item_id) or {}).items()
        ]
        for group in _chunks(rows, _ROWS):
            _executemany(conn, _INSERT_MATCHES, group)

    def clear_matches(self) -> None:
        """Forget every match (the rules changed: everything is matched again)."""
        with self._write("clear matches") as conn:
            conn.execute(delete(matches))
            self._touched = None

    def item_matches(self, source: str, ids: Collection[str]) -> dict[str, dict[str, int]]:
        """The stored matches of these items: ``{item_id: {kr_id: rule_index}}``."""
        found: dict[str, dict[str, int]] = {}
        with self._read("read matches") as conn:
            for part in _chunks(sorted(set(ids))):
                query = select(matches.c.item_id, matches.c.kr_id, matches.c.rule_index).where(
                    matches.c.source == source, matches.c.item_id.in_(part)
                )
                for item_id, kr_id, rule in conn.execute(query):
                    found.setdefault(item_id, {})[kr_id] = rule
        return found

    def live_ids(self, source: str) -> set[str]:
        with self._read("read item ids") as conn:
            return set(
                conn.scalars(select(items_t.c.id).where(items_t.c.source == source, items_t.c.retired_at.is_(None)))
            )

    def count_items(self, source: str | None = None) -> int:
        """Live items, of one source or all."""
        query = select(func.count()).select_from(items_t).where(items_t.c.retired_at.is_(None))
        if source is not None:
            query = query.where(items_t.c.source == source)
        with self._read("count items") as conn:
            return int(conn.scalar(query) or 0)

    def retire_missing(
        self,
        source: str,
        seen_ids: Collection[str],
        now: datetime,
        *,
        guard: float,
        in_scope_only: bool = True,
    ) -> int:
        """Retire live items a full pass no longer saw, unless too many vanished at once."""
        seen = seen_ids if isinstance(seen_ids, set | frozenset) else set(seen_ids)
        with self._write(f"retire items of {source}", data=False) as conn:  # counted below if any
            query = select(items_t.c.id).where(items_t.c.source == source, items_t.c.retired_at.is_(None))
            if in_scope_only:
                query = query.where(items_t.c.in_scope)
            # Streamed: only the missing ids are kept (a set of every live id was ~10 MB at 100k).
            live, missing = 0, []
            for item_id in conn.scalars(query):
                live += 1
                if item_id not in seen:
                    missing.append(item_id)
            gone = sorted(missing)
            if not gone:
                return 0
            share = len(gone) / live
            if share > guard and len(gone) > _RETIRE_MIN:
                raise VisibilityLostError(
                    source,
                    f"visibility lost: {len(gone)} of {live} items ({share:.0%}) vanished at once; "
                    "nothing retired",
                )
            self._touch(source, gone)
            self._changed(conn)
            for part in _chunks(gone):
                conn.execute(
                    update(items_t).where(items_t.c.source == source, items_t.c.id.in_(part)).values(retired_at=now)
                )
        return len(gone)

    # -- progress ---------------------------------------------------------------------------------

    def tallies(self, cycle_start: datetime, cycle_end: datetime) -> dict[str, Tally]:
        """Per key result, over live matched items, in one grouped query (CONTRACT §3).

        One pass over the matches: excluded (won't do) items are counted apart by their own
        CASE instead of a second join (which cost as much as the first at 200k items), and so
        are all live rows (``listed``, the item lists' lengths), so that a report need not count
        each key result's items again (40 joins of its matches, 0.16-0.21 s at 200k items).
        Sub-tasks never count: they are left out by the CASEs rather than by the WHERE, so that
        ``listed`` sees the rows ``kr_items`` lists.
        """
        i = items_t
        countable = i.c.kind != ItemKind.SUBTASK.value
        counted = and_(not_(i.c.excluded), countable)
        is_done = and_(counted, i.c.state == State.DONE.value)
        points = func.coalesce(i.c.points, 0.0)
        # A done item without done_at counts by its last update, as ``progress.tally`` does.
        done_at = func.coalesce(i.c.done_at, i.c.updated_at)
        in_cycle = and_(is_done, done_at >= cycle_start, done_at < cycle_end)

        def count_if(cond: ColumnElement[bool]) -> ColumnElement[Any]:
            return func.sum(case((cond, 1), else_=0))

        def points_if(cond: ColumnElement[bool]) -> ColumnElement[Any]:
            return func.sum(case((cond, points), else_=0.0))

        known = (State.DONE.value, State.IN_PROGRESS.value, State.TODO.value)
        query = (
            select(
                matches.c.kr_id,
                count_if(counted),
                count_if(is_done),
                count_if(and_(counted, i.c.state == State.IN_PROGRESS.value)),
                count_if(and_(counted, i.c.state == State.TODO.value)),
                count_if(and_(counted, i.c.state.not_in(known))),
                points_if(counted),
                points_if(is_done),
                count_if(in_cycle),
                points_if(in_cycle),
                count_if(and_(counted, i.c.points.is_(None))),
                count_if(and_(i.c.excluded, countable)),
                func.count(),
            )
            .select_from(matches.join(i, and_(i.c.source == matches.c.source, i.c.id == matches.c.item_id)))
            .where(i.c.retired_at.is_(None))
            .group_by(matches.c.kr_id)
        )
        # "listed": a tally kept before ``Tally.listed`` existed (same version) is not reused.
        args: list[Any] = [__version__, "listed", format_utc(cycle_start), format_utc(cycle_end)]
        with self._read("compute tallies") as conn:
            generation, cached = self._cached(conn, "tallies", args)
            if cached is not None:
                return {kr_id: Tally(*values) for kr_id, values in cached.items()}
            rows = conn.execute(query).all()
        found = {
            r[0]: Tally(
                total=int(r[1] or 0),
                done=int(r[2] or 0),
                in_progress=int(r[3] or 0),
                todo=int(r[4] or 0),
                unknown=int(r[5] or 0),
                points_total=float(r[6] or 0.0),
                points_done=float(r[7] or 0.0),
                done_in_cycle=int(r[8] or 0),
                points_done_in_cycle=float(r[9] or 0.0),
                unestimated=int(r[10] or 0),
                excluded=int(r[11] or 0),
                listed=int(r[12] or 0),
            )
            for r in rows
        }
        self._remember("tallies", generation, args, {kr_id: astuple(t) for kr_id, t in found.items()})
        return found

    def kr_items(
        self, kr_id: str, *, limit: int | None = None, done_first: bool = False
    ) -> list[tuple[WorkItem, int]]:
        """Live items behind a key result (excluded ones too, for ``explain``) with their rule.

        Ordered by (source, key, id); ``done_first`` puts done items first (a report's item list),
        and ``limit`` makes the database stop there instead of handing over thousands of rows.
        """
        with self._read("read key result items") as conn:
            return [(_row_item(r), int(r.rule_index)) for r in conn.execute(_kr_items_query(kr_id, limit, done_first))]

    def kr_items_page(
        self, kr_id: str, limit: int | None, *, count: bool = True
    ) -> tuple[list[tuple[WorkItem, int]], int | None]:
        """The first ``limit`` items of ``kr_items(kr_id, done_first=True)`` and how many there are.

        The database keeps only the first ``limit`` rows while it sorts (a top-N sort); the total
        is a narrow ``count(*)`` asked only when the page is full, in the same read (one snapshot
        on SQLite). At 200k items this took the HTML report's 40 item lists from 0.41 to 0.27 s:
        a window count (``count(*) OVER ()``) made the database carry every wide row of a key
        result through the sort. Without ``count`` a full page's total is ``None``: the caller
        takes it from the tallies (``Tally.listed``), which count it anyway.
        """
        if limit is None:
            rows = self.kr_items(kr_id, done_first=True)
            return rows, len(rows)
        with self._read("read key result items") as conn:
            found = conn.execute(_kr_items_query(kr_id, limit, done_first=True)).all()
            rows = [(_row_item(r), int(r.rule_index)) for r in found]
            if len(rows) < limit:
                return rows, len(rows)
            if not count:
                return rows, None
            query = (
                select(func.count())
                .select_from(_matched_items())
                .where(matches.c.kr_id == kr_id, items_t.c.retired_at.is_(None))
            )
            return rows, int(conn.scalar(query) or 0)

    def kr_item_counts(self) -> dict[str, int]:
        """Per key result, how many rows ``kr_items`` would return (live, excluded included)."""
        query = (
            select(matches.c.kr_id, func.count())
            .select_from(_matched_items())
            .where(items_t.c.retired_at.is_(None))
            .group_by(matches.c.kr_id)
        )
        with self._read("count key result items") as conn:
            return {str(kr_id): int(n) for kr_id, n in conn.execute(query)}

    def kr_item_states(self, kr_id: str) -> dict[str, str]:
        """``{item_id: state}`` of the items counted for a key result (no excluded, no sub-tasks)."""
        query = (
            select(items_t.c.id, items_t.c.state)
            .select_from(_matched_items())
            .where(
                matches.c.kr_id == kr_id,
                items_t.c.retired_at.is_(None),
                not_(items_t.c.excluded),
                items_t.c.kind != ItemKind.SUBTASK.value,
            )
        )
        with self._read("read key result states") as conn:
            return {item_id: state for item_id, state in conn.execute(query)}

    def snapshot_item_maps(
        self,
        kr_ids: Collection[str],
        latest: Mapping[str, Mapping[str, Any]],
        run_id: int,
        *,
        days_for: Collection[str] = (),
    ) -> ItemMaps:
        """``kr_item_letters`` for this run's snapshots, carried forward from the newest ones
        when that is provably the same: their maps plus the items this Store wrote since.

        Reading every key result's items cost 0.45 s per pass at 200k items whatever changed.
        Carried forward only when the newest snapshots' maps were computed by this method in a
        run ``P`` that saw no other run live (meta ``item_maps_run``), no run began after ``P``
        but this one (every write happens inside a run), and this Store tracked every write since
        it opened (or since it wrote those maps); otherwise every map is read again.
        ``latest``: ``latest_snapshots(letters=True)``.

        ``days_for``: key results whose first pass rebuilds their history (``kr_item_days``).
        When every map is read, so are their day groups, in the same join: a first sync of 200k
        items joined the 120k matches to their items twice, 0.2 s more."""
        wanted = sorted(set(kr_ids))
        with self._read("read runs") as conn:
            quiet = not conn.scalar(
                select(func.count()).select_from(runs).where(runs.c.id != run_id, runs.c.finished_at.is_(None))
            )
            base = {int(latest[k]["run_id"]) for k in wanted if k in latest}
            tracked = self._touched  # read once (see ``_touch``)
            carry = (
                tracked is not None and len(base) == 1 and all(k in latest for k in wanted)
                and (prev := base.pop()) < run_id
                and conn.scalar(select(meta.c.value).where(meta.c.key == _MAPS_RUN)) == str(prev)
                and not conn.scalar(
                    select(func.count()).select_from(runs).where(runs.c.id > prev, runs.c.id != run_id)
                )
            )
        self._maps_quiet = run_id if quiet else None
        if not carry:
            if days_for:
                return ItemMaps(*self._letters_and_days(wanted, days_for))
            return ItemMaps(self.kr_item_letters(wanted), None)
        maps = {k: dict(latest[k]["items"]) for k in wanted}
        touched = sorted(tracked or ())
        if not touched:
            return ItemMaps(maps, None)
        ids = {i for _, i in touched}
        for found in maps.values():
            for i in ids & found.keys():
                del found[i]
        letter = _STATE_LETTER
        with self._read("read key result states") as conn:
            sources = sorted(set(conn.scalars(select(items_t.c.source).distinct())))
            for source in sources:  # an id another source also uses is read again there too
                for part in _chunks(sorted(ids)):
                    query = (
                        select(matches.c.kr_id, items_t.c.id, items_t.c.state)
                        .select_from(_matched_items())
                        .where(
                            matches.c.source == source, matches.c.item_id.in_(part),
                            items_t.c.retired_at.is_(None), not_(items_t.c.excluded),
                            items_t.c.kind != ItemKind.SUBTASK.value,
                        )
                    )
                    for kr_id, item_id, state in conn.execute(query):
                        if kr_id in maps:
                            maps[kr_id][item_id] = letter.get(state) or state[:1]
        return ItemMaps(maps, None)

    def kr_item_letters(self, kr_ids: Collection[str]) -> dict[str, dict[str, str]]:
        """``{kr_id: {item_id: state letter}}``: ``kr_item_states`` of several key results at once,
        in the snapshot's encoding (``write_snapshots(..., letters=True)``).

        Every pass snapshots every key result: one query instead of one per key result, and no
        per-item translation to state names and back, cut about 0.15 s per pass at 200k items."""
        return self._letters_and_days(kr_ids, ())[0]

    def _letters_and_days(
        self, kr_ids: Collection[str], days_for: Collection[str]
    ) -> tuple[dict[str, dict[str, str]], dict[str, list[DayGroup]]]:
        """``kr_item_letters`` of ``kr_ids`` and, from the same rows, ``kr_item_days`` of those
        in ``days_for`` (grouped here as the database groups them there: UTC day = the stored
        text's first ten characters, points summed with NULL as 0)."""
        wanted = sorted(set(kr_ids))
        found: dict[str, dict[str, str]] = {kr_id: {} for kr_id in wanted}
        rebuild = set(days_for)
        groups: dict[tuple[str, str | None, str | None, bool], list[Any]] = {}
        letter = _STATE_LETTER
        done = State.DONE.value
        with self._read("read key result states") as conn:
            # The DBAPI cursor itself: SQLAlchemy's result rows cost as much as the query here.
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                for part in _chunks(wanted):
                    days = bool(rebuild.intersection(part))
                    widened = "(" + ", ".join("?" * len(part)) + ")"
                    sql = (_KR_LETTERS_DAYS if days else _KR_LETTERS).replace("(?)", widened)
                    if conn.dialect.name == "postgresql":
                        sql = _pg_placeholders(sql)
                    cursor.execute(sql, (*part, ItemKind.SUBTASK.value))
                    for rows in iter(lambda: cursor.fetchmany(_FETCH_ROWS), []):
                        if not days:
                            for kr_id, item_id, state in rows:
                                found[kr_id][item_id] = letter.get(state) or state[:1]
                            continue
                        for kr_id, item_id, state, created_day, done_day, points in rows:
                            found[kr_id][item_id] = letter.get(state) or state[:1]
                            if kr_id in rebuild:
                                key = (kr_id, created_day, done_day, state == done)
                                group = groups.get(key)
                                if group is None:
                                    groups[key] = [1, points]
                                else:
                                    group[0] += 1
                                    group[1] += points
            finally:
                cursor.close()
        day = _day_parser()
        by_kr: dict[str, list[DayGroup]] = {}
        for (kr_id, created_day, done_day, is_done), (count, points) in groups.items():
            by_kr.setdefault(kr_id, []).append((day(created_day), day(done_day), is_done, count, float(points)))
        return found, by_kr

    def _candidate_filter(
        self,
        cycle_start: datetime,
        cycle_end: datetime,
        ignore_labels: Collection[str],
        exclude_sources: Collection[str],
    ) -> list[ColumnElement[bool]]:
        """Work that could be unaligned: live, in scope, countable kind, open or touched in cycle."""
        i = items_t
        conds: list[ColumnElement[bool]] = [
            i.c.retired_at.is_(None),
            i.c.in_scope,
            i.c.kind.not_in((ItemKind.EPIC.value, ItemKind.SUBTASK.value, ItemKind.PULL_REQUEST.value)),
            or_(
                and_(i.c.state != State.DONE.value, not_(i.c.excluded)),
                and_(i.c.updated_at >= cycle_start, i.c.updated_at < cycle_end),
            ),
        ]
        conds.extend(_label_filter(ignore_labels))
        if exclude_sources:
            conds.append(i.c.source.not_in(sorted(exclude_sources)))
        return conds

    def unaligned(
        self,
        cycle_start: datetime,
        cycle_end: datetime,
        ignore_labels: Collection[str],
        *,
        exclude_sources: Collection[str] = (),
        limit: int | None = None,
    ) -> list[WorkItem]:
        """In-scope work no key result matches, directly or through its parent or grandparent.

        Newest update first; ``limit`` caps the list (``unaligned_summary`` counts all of them).
        """
        i = items_t
        query = (
            select(*_ITEM_COLUMNS)
            .where(*self._candidate_filter(cycle_start, cycle_end, ignore_labels, exclude_sources))
            .where(*_unmatched())
            .order_by(i.c.updated_at.desc(), i.c.source, i.c.id)
        )
        if limit is not None:
            query = query.limit(limit)
        with self._read("find unaligned items") as conn:
            return [_row_item(r) for r in conn.execute(query)]

    def count_unaligned_candidates(
        self,
        cycle_start: datetime,
        cycle_end: datetime,
        ignore_labels: Collection[str],
        *,
        exclude_sources: Collection[str] = (),
    ) -> int:
        """Everything ``unaligned`` considers, matched or not: the denominator of its share."""
        query = (
            select(func.count())
            .select_from(items_t)
            .where(*self._candidate_filter(cycle_start, cycle_end, ignore_labels, exclude_sources))
        )
        with self._read("count work items") as conn:
            return int(conn.scalar(query) or 0)

    def concurrent_reads(self) -> bool:
        """Whether reads from other threads see what this thread sees, each on its own connection.

        Not inside a transaction of this thread (other threads would not see its writes), not in
        a dry run, not on a shared single connection (in-memory SQLite): there every read is
        serialised anyway. Lets a report run its independent aggregates side by side.
        """
        return self._serial is None and not self._dry_run and self._current() is None

    def unaligned_summary(
        self,
        cycle_start: datetime,
        cycle_end: datetime,
        ignore_labels: Collection[str],
        exclude_sources: Collection[str] = (),
    ) -> UnalignedSummary:
        """How many items ``unaligned`` would list, per source and container, without listing them.

        One grouped query over the candidates (label filter left out of the WHERE): it counts
        every candidate (``total_work_items``, the share's denominator, as
        ``count_unaligned_candidates(..., ())`` does) and, with a CASE, those that carry no
        ignored label and match nothing. Groups come biggest first, then by source and container.
        """
        i = items_t
        labels_ok = _label_filter(ignore_labels)
        unmatched = and_(*labels_ok, *_unmatched())
        query = (
            select(
                i.c.source,
                i.c.container,
                func.count().label("candidates"),
                func.sum(case((unmatched, 1), else_=0)).label("unaligned"),
            )
            .where(*self._candidate_filter(cycle_start, cycle_end, (), exclude_sources))
            .group_by(i.c.source, i.c.container)
        )
        args: list[Any] = [
            __version__, format_utc(cycle_start), format_utc(cycle_end), sorted(ignore_labels),
            sorted(exclude_sources),
        ]
        with self._read("count unaligned items") as conn:
            generation, cached = self._cached(conn, "unaligned_summary", args)
            if cached is not None:
                return UnalignedSummary(
                    count=int(cached["count"]),
                    groups=tuple(UnalignedGroup(str(s), str(c), int(n)) for s, c, n in cached["groups"]),
                    total_work_items=cached["total"],
                )
            rows = conn.execute(query).all()
        groups = sorted(
            (UnalignedGroup(str(r.source), str(r.container), int(r.unaligned or 0)) for r in rows if r.unaligned),
            key=lambda g: (-g.count, g.source, g.container),
        )
        summary = UnalignedSummary(
            count=sum(g.count for g in groups),
            groups=tuple(groups),
            total_work_items=sum(int(r.candidates) for r in rows),
        )
        self._remember("unaligned_summary", generation, args, {
            "count": summary.count,
            "groups": [[g.source, g.container, g.count] for g in summary.groups],
            "total": summary.total_work_items,
        })  # fmt: skip
        return summary

    # -- cached aggregates ----------------------------------------------------------------------

    def _cached(self, conn: Connection, kind: str, args: list[Any]) -> tuple[int | None, Any]:
        """The data generation this read sees and, if ``keep_aggregates`` stored ``kind`` for
        these arguments at that very generation, its value; ``(None, None)`` where aggregates
        are not cached (PostgreSQL, a dry run, a read inside a write transaction). The
        arguments start with okrsync's version: another version may aggregate differently."""
        if not self._sqlite or self._dry_run or self._current() is not None:
            return None, None
        query = select(meta.c.key, meta.c.value).where(meta.c.key.in_([_GENERATION, _AGGREGATE + kind]))
        found: dict[str, str] = {str(key): str(value) for key, value in conn.execute(query)}
        generation = int(found.get(_GENERATION) or 0)
        entry = json.loads(found[_AGGREGATE + kind]) if _AGGREGATE + kind in found else None
        if entry is not None and entry.get("generation") == generation and entry.get("args") == args:
            return generation, entry["value"]
        return generation, None

    def _remember(self, kind: str, generation: int | None, args: list[Any], value: Any) -> None:
        if generation is not None:
            self._fresh[kind] = (generation, args, value)

    def keep_aggregates(self) -> None:
        """Store the aggregates this Store computed (the key results' tallies, the unaligned
        summary) if no write changed items or matches since: the next ``okrsync report`` reads
        them instead of aggregating 200k items again (0.3-0.5 s each). Called after a pass's
        report; a read-only command never writes them. A no-op on PostgreSQL and in a dry run.
        Only a saving: a store that cannot take them now (another writer holds it past the busy
        timeout) leaves the next report to aggregate, and the pass that computed them stays ok."""
        fresh, self._fresh = self._fresh, {}
        if not fresh or not self._sqlite or self._dry_run:
            return
        try:
            with self._write("keep aggregates", data=False) as conn:
                current = int(conn.scalar(select(meta.c.value).where(meta.c.key == _GENERATION)) or 0)
                rows = [
                    {"key": _AGGREGATE + kind, "value": json.dumps({"generation": gen, "args": args, "value": value})}
                    for kind, (gen, args, value) in sorted(fresh.items())
                    if gen == current
                ]
                _upsert(conn, meta, rows, ["key"])
        except StoreError as exc:
            log.debug("aggregates not kept: %s", exc)

    # -- runs and source status -----------------------------------------------------------------

    def begin_run(self, now: datetime, *, full: bool, dry_run: bool, worker: str) -> int:
        row = {
            "started_at": now,
            "outcome": "running",
            "full": full,
            "dry_run": dry_run,
            "requests": 0,
            "worker": worker,
            "detail": None,
        }
        with self._write("begin run", data=False) as conn:
            result = conn.execute(runs.insert().values(**row).returning(runs.c.id))
            return int(result.scalar_one())

    def finish_run(self, run_id: int, now: datetime, outcome: str, requests: int, detail: Mapping[str, Any]) -> None:
        if outcome not in ("ok", "partial", "failed", "running"):
            raise StoreError(f"store: finish run: unknown outcome {outcome!r}")
        with self._write("finish run", data=False) as conn:
            conn.execute(
                update(runs)
                .where(runs.c.id == run_id)
                .values(finished_at=now, outcome=outcome, requests=requests, detail=dict(detail))
            )

    def last_runs(self, limit: int = 10) -> list[dict[str, Any]]:
        """Newest first."""
        with self._read("read runs") as conn:
            rows = conn.execute(select(runs).order_by(runs.c.id.desc()).limit(limit)).mappings().all()
        return [_run_dict(r) for r in rows]

    def record_source_attempt(
        self,
        source: str,
        now: datetime,
        *,
        ok: bool,
        error: str | None,
        full: bool,
        census: bool,
        resume_at: datetime | None = None,
    ) -> None:
        """Remember how a source fared (health endpoint, stale marks, resume after rate limits)."""
        with self._write(f"record attempt of {source}", data=False) as conn:
            old = conn.execute(select(source_status).where(source_status.c.source == source)).mappings().first()
            row: dict[str, Any] = (
                dict(old)
                if old is not None
                else {
                    "source": source,
                    "last_success_at": None,
                    "last_error": None,
                    "consecutive_failures": 0,
                    "last_full_at": None,
                    "last_census_at": None,
                }
            )
            row["last_attempt_at"] = now
            row["resume_at"] = resume_at
            if ok:
                row["last_success_at"] = now
                row["last_error"] = None
                row["consecutive_failures"] = 0
                if full:
                    row["last_full_at"] = now
                if census:
                    row["last_census_at"] = now
            else:
                row["last_error"] = error
                row["consecutive_failures"] = int(row["consecutive_failures"]) + 1
            _upsert(conn, source_status, [row], ["source"])

    def source_status(self) -> dict[str, dict[str, Any]]:
        with self._read("read source status") as conn:
            rows = conn.execute(select(source_status).order_by(source_status.c.source)).mappings().all()
        return {r["source"]: dict(r) for r in rows}

    # -- snapshots and history ------------------------------------------------------------------

    def write_snapshots(
        self,
        run_id: int,
        at: datetime,
        krs: Sequence[KeyResultProgress],
        item_states: Mapping[str, Mapping[str, str]],
        *,
        letters: bool = False,
    ) -> None:
        """One row per key result for this run (written again in the same run: replaced).

        ``letters``: ``item_states`` already hold state letters (``kr_item_letters``)."""
        rows = []
        for kr in krs:
            t = kr.tally
            states = item_states.get(kr.id, {})
            encoded = states if letters else {k: _STATE_LETTER.get(str(v), str(v)[:1]) for k, v in states.items()}
            rows.append(
                {
                    "run_id": run_id,
                    "kr_id": kr.id,
                    "at": at,
                    "current": float(kr.current),
                    "progress": float(kr.progress),
                    "status": str(kr.status.value if hasattr(kr.status, "value") else kr.status),
                    "total": t.total,
                    "done": t.done,
                    "in_progress": t.in_progress,
                    "todo": t.todo,
                    "unknown": t.unknown,
                    "points_total": float(t.points_total),
                    "points_done": float(t.points_done),
                    "done_in_cycle": t.done_in_cycle,
                    "points_done_in_cycle": float(t.points_done_in_cycle),
                    "stale": kr.stale,
                    "last_synced": kr.last_synced,
                    "items": encoded,
                }
            )
        with self._write("write snapshots", data=False) as conn:
            # One snapshot writer at a time (SQLite's write lock does this already): a prune in
            # another transaction must see this run's rows before it moves its mark past them.
            _lock_snapshots(conn)
            for group in _chunks(rows, _ROWS):
                _upsert(conn, snapshots, group, ["run_id", "kr_id"])
            _prune_item_maps(conn, run_id)
            if letters and self._maps_quiet == run_id:  # maps from snapshot_item_maps, no other run live
                _upsert(conn, meta, [{"key": _MAPS_RUN, "value": str(run_id)}], ["key"])
            else:
                conn.execute(delete(meta).where(meta.c.key == _MAPS_RUN))
        if letters:
            self._touched = set()

    def latest_snapshots(self, *, items: bool = True, letters: bool = False) -> dict[str, dict[str, Any]]:
        """kr_id -> its newest snapshot (by run), with ``items`` decoded to state names.

        ``items=False`` leaves the provenance out (``items`` is ``{}``): the numbers are all a
        report needs, and the provenance of 40 key results over 100k items is megabytes of JSON.
        ``letters=True`` leaves ``items`` as stored (state letters; compared with
        ``kr_item_letters`` without translating 100k entries).
        """
        newest = (
            select(snapshots.c.kr_id, func.max(snapshots.c.run_id).label("run_id"))
            .group_by(snapshots.c.kr_id)
            .subquery()
        )
        columns = [c for c in snapshots.columns if items or c.name != "items"]
        query = select(*columns).join(
            newest, and_(newest.c.kr_id == snapshots.c.kr_id, newest.c.run_id == snapshots.c.run_id)
        )
        with self._read("read snapshots") as conn:
            found = {}
            for r in conn.execute(query).mappings():
                if not items:
                    row = {**r, "stale": bool(r["stale"]), "items": {}}
                elif letters:
                    row = {**r, "stale": bool(r["stale"]), "items": r["items"] or {}}
                else:
                    row = _snapshot_dict(r)
                found[r["kr_id"]] = row
            return found

    def previous_snapshot(self, kr_id: str, before_run: int | None = None) -> dict[str, Any] | None:
        """The newest snapshot of a key result from a run before ``before_run`` (or the newest)."""
        query = select(snapshots).where(snapshots.c.kr_id == kr_id)
        if before_run is not None:
            query = query.where(snapshots.c.run_id < before_run)
        query = query.order_by(snapshots.c.run_id.desc()).limit(1)
        with self._read("read snapshot") as conn:
            row = conn.execute(query).mappings().first()
        return _snapshot_dict(row) if row is not None else None

    def first_snapshot_in(self, kr_id: str, start: datetime) -> dict[str, Any] | None:
        """The earliest snapshot at or after ``start`` (the cycle's baseline for scope change)."""
        query = (
            select(snapshots)
            .where(snapshots.c.kr_id == kr_id, snapshots.c.at >= start)
            .order_by(snapshots.c.at, snapshots.c.run_id)
            .limit(1)
        )
        with self._read("read snapshot") as conn:
            row = conn.execute(query).mappings().first()
        return _snapshot_dict(row) if row is not None else None

    def history(self, kr_id: str, since: datetime | None = None) -> list[HistoryPoint]:
        """Oldest first."""
        return self._histories(kr_id, since).get(kr_id, [])

    def histories(self, since: datetime | None = None) -> dict[str, list[HistoryPoint]]:
        """Every key result's history, oldest first, in one query."""
        return self._histories(None, since)

    def _histories(self, kr_id: str | None, since: datetime | None) -> dict[str, list[HistoryPoint]]:
        s = snapshots.c
        query = select(s.kr_id, s.at, s.current, s.progress, s.total, s.done)
        if kr_id is not None:
            query = query.where(s.kr_id == kr_id)
        if since is not None:
            query = query.where(s.at >= since)
        query = query.order_by(s.kr_id, s.at, s.run_id)
        found: dict[str, list[HistoryPoint]] = {}
        with self._read("read history") as conn:
            for r in conn.execute(query):
                found.setdefault(r.kr_id, []).append(
                    HistoryPoint(at=r.at, current=r.current, progress=r.progress, total=r.total, done=r.done)
                )
            self._prepend_backfill(conn, found, kr_id, since)
        return found

    def daily_histories(
        self, since: datetime | None = None, *, kr_ids: Collection[str] | None = None
    ) -> dict[str, list[HistoryPoint]]:
        """Every key result's history at one point per UTC day (the day's last), oldest first.

        What reports draw and forecast from: 90 days of a daemon syncing every 15 minutes are
        ~8 600 snapshots per key result, of which the forecast uses each day's last and a chart
        at most 120. The database picks them with index seeks on ``(kr_id, at)``: first each key
        result's first (at or after ``since``) and newest snapshot, then, for every UTC day in
        between, the newest snapshot before the day's end. So ~90 rows per key result are read,
        never all of them. The window's first snapshot is kept as well (the baseline of the
        scope change). Reconstructed (backfill) points before the first snapshot come first,
        as in ``histories``. ``kr_ids`` (default: every key result with a snapshot) limits it.
        """
        s = snapshots.c
        window: list[ColumnElement[bool]] = [] if since is None else [s.at >= since]
        found: dict[str, list[HistoryPoint]] = {}
        with self._read("read daily history") as conn:
            ids = sorted(set(kr_ids)) if kr_ids is not None else sorted(conn.scalars(select(s.kr_id).distinct()))
            for part in _chunks(ids, _DAY_KEYS):
                keys = _literal_rows(("kr_id", snapshots.c.kr_id.type, list(part)))
                first_at = select(func.min(s.at)).where(s.kr_id == keys.c.kr_id, *window).scalar_subquery()
                last_at = select(func.max(s.at)).where(s.kr_id == keys.c.kr_id, *window).scalar_subquery()
                bounds = conn.execute(select(keys.c.kr_id, first_at.label("first"), last_at.label("last"))).all()
                days = sorted(
                    {
                        (r.first + timedelta(days=n)).date()
                        for r in bounds
                        if r.first is not None
                        for n in range((r.last.date() - r.first.date()).days + 1)
                    }
                )
                rows: list[Any] = []
                for number, day_part in enumerate(_chunks(days, _DAY_KEYS)):
                    midnights = [datetime(d.year, d.month, d.day, tzinfo=UTC) for d in day_part]
                    day_rows = _literal_rows(
                        ("lo", s.at.type, midnights), ("hi", s.at.type, [m + timedelta(days=1) for m in midnights])
                    )
                    newest = (
                        select(s.at)
                        .where(s.kr_id == keys.c.kr_id, s.at >= day_rows.c.lo, s.at < day_rows.c.hi)
                        .order_by(s.at.desc())
                        .limit(1)
                        .scalar_subquery()
                    )
                    chosen: Any = select(keys.c.kr_id, newest.label("at")).select_from(keys.join(day_rows, true()))
                    if number == 0:  # the window's first snapshot, once
                        chosen = union(chosen, select(keys.c.kr_id, first_at.label("at")))
                    picked = chosen.subquery("picked")
                    query = select(s.kr_id, s.at, s.run_id, s.current, s.progress, s.total, s.done).select_from(
                        picked.join(snapshots, and_(s.kr_id == picked.c.kr_id, s.at == picked.c.at))
                    )
                    rows.extend(conn.execute(query))
                rows.sort(key=lambda r: (r.kr_id, r.at, r.run_id))
                for r in rows:
                    points = found.setdefault(r.kr_id, [])
                    point = HistoryPoint(at=r.at, current=r.current, progress=r.progress, total=r.total, done=r.done)
                    if points and points[-1].at == point.at:
                        points[-1] = point  # a repeated pick, or two runs at one instant: the later run wins
                    else:
                        points.append(point)
            self._prepend_backfill(conn, found, None, since)
            if kr_ids is not None:
                found = {k: v for k, v in found.items() if k in ids}
        return found

    def _prepend_backfill(
        self, conn: Connection, found: dict[str, list[HistoryPoint]], kr_id: str | None, since: datetime | None
    ) -> None:
        """Put reconstructed points before each key result's first real snapshot (real ones win)."""
        b = backfill.c
        rebuilt = select(b.kr_id, b.at, b.current, b.progress, b.total, b.done)
        if kr_id is not None:
            rebuilt = rebuilt.where(b.kr_id == kr_id)
        if since is not None:
            rebuilt = rebuilt.where(b.at >= since)
        earlier: dict[str, list[HistoryPoint]] = {}
        for r in conn.execute(rebuilt.order_by(b.kr_id, b.at)):
            first = found.get(r.kr_id)
            if first and r.at >= first[0].at:
                continue  # real snapshots win over reconstruction
            earlier.setdefault(r.kr_id, []).append(
                HistoryPoint(at=r.at, current=r.current, progress=r.progress, total=r.total, done=r.done)
            )
        for key, points in earlier.items():
            found[key] = points + found.get(key, [])

    def write_backfill(self, kr_id: str, points: Sequence[HistoryPoint]) -> None:
        """Store a key result's reconstructed history (replacing any earlier reconstruction)."""
        rows = [
            {"kr_id": kr_id, "at": p.at, "current": p.current, "progress": p.progress, "total": p.total,
             "done": p.done}
            for p in points
        ]
        with self._write(f"backfill history of {kr_id}", data=False) as conn:
            conn.execute(backfill.delete().where(backfill.c.kr_id == kr_id))
            for group in _chunks(rows, _ROWS):
                conn.execute(backfill.insert(), list(group))

    def kr_item_days(self, kr_ids: Collection[str]) -> dict[str, list[DayGroup]]:
        """Per key result, its counted items grouped by UTC creation day, UTC done day and
        whether they are done now, with each group's size and points: what a history
        reconstruction needs. The database groups (stored times are UTC text, so the day is
        the first ten characters): at 200k items 25k groups came back instead of 98k rows."""
        i = items_t
        # SELECT and GROUP BY render each expression with the same bound parameters, which
        # PostgreSQL takes as the same expression (the store test runs on both databases).
        created_day = func.substr(i.c.created_at, 1, 10, type_=String).label("created_day")
        done_day = func.substr(i.c.done_at, 1, 10, type_=String).label("done_day")
        done_now = case((i.c.state == State.DONE.value, 1), else_=0).label("done_now")
        query = (
            select(matches.c.kr_id, created_day, done_day, done_now, func.count(),
                   func.sum(func.coalesce(i.c.points, 0.0)))
            .select_from(matches.join(i, and_(i.c.source == matches.c.source, i.c.id == matches.c.item_id)))
            .where(
                matches.c.kr_id.in_(list(kr_ids)), i.c.retired_at.is_(None), not_(i.c.excluded),
                i.c.kind != ItemKind.SUBTASK.value,
            )
            .group_by(matches.c.kr_id, created_day, done_day, done_now)
        )
        found: dict[str, list[DayGroup]] = {}
        with self._read("read item days") as conn:
            for kr_id, created, done_at, is_done, count, points in conn.execute(query):
                found.setdefault(kr_id, []).append((
                    date.fromisoformat(created) if created else None,
                    date.fromisoformat(done_at) if done_at else None,
                    bool(is_done), int(count), float(points or 0.0),
                ))
        return found

    def backfilled(self) -> set[str]:
        """Key results that already have a reconstructed history."""
        with self._read("read backfill") as conn:
            return {str(k) for k in conn.scalars(select(backfill.c.kr_id).distinct())}

    # -- check-ins ------------------------------------------------------------------------------

    def add_checkin(self, kr_id: str, value: float, note: str | None, at: datetime) -> None:
        with self._write("add check-in", data=False) as conn:
            conn.execute(checkins.insert().values(kr_id=kr_id, value=float(value), note=note, at=at))

    def latest_checkins(self) -> dict[str, float]:
        """kr_id -> the value of its newest check-in."""
        latest: dict[str, float] = {}
        with self._read("read check-ins") as conn:
            query = select(checkins.c.kr_id, checkins.c.value).order_by(checkins.c.at, checkins.c.id)
            for kr_id, value in conn.execute(query):
                latest[kr_id] = float(value)
        return latest

    def checkins(self, kr_id: str) -> list[tuple[datetime, float, str | None]]:
        """Oldest first."""
        query = (
            select(checkins.c.at, checkins.c.value, checkins.c.note)
            .where(checkins.c.kr_id == kr_id)
            .order_by(checkins.c.at, checkins.c.id)
        )
        with self._read("read check-ins") as conn:
            return [(r.at, float(r.value), r.note) for r in conn.execute(query)]

    # -- write-back idempotency -----------------------------------------------------------------

    def last_written(self, source: str, target: str) -> str | None:
        with self._read("read last write") as conn:
            value: str | None = conn.scalar(
                select(writes.c.value).where(writes.c.source == source, writes.c.target == target)
            )
        return value

    def record_written(self, source: str, target: str, value: str, at: datetime) -> None:
        with self._write("record write", data=False) as conn:
            row = {"source": source, "target": target, "value": value, "written_at": at}
            _upsert(conn, writes, [row], ["source", "target"])

    def labelled(self, source: str) -> set[str]:
        """Items of a source we put the unaligned label on."""
        with self._read("read labelled items") as conn:
            return set(conn.scalars(select(labelled.c.item_id).where(labelled.c.source == source)))

    def set_labelled(self, source: str, item_id: str, on: bool) -> None:
        with self._write("record label", data=False) as conn:
            if on:
                _upsert(conn, labelled, [{"source": source, "item_id": item_id}], ["source", "item_id"])
            else:
                conn.execute(delete(labelled).where(labelled.c.source == source, labelled.c.item_id == item_id))

    # -- leases ---------------------------------------------------------------------------------

    def acquire_lease(self, name: str, holder: str, ttl: timedelta, now: datetime) -> bool:
        """Take a lease if free, expired or already ours; atomic across processes."""
        with self._write(f"acquire lease {name}", data=False) as conn:
            row = {"name": name, "holder": holder, "acquired_at": now, "expires_at": now + ttl}
            if _insert_ignore(conn, leases, row, ["name"]):
                return True
            result = conn.execute(
                update(leases)
                .where(leases.c.name == name, or_(leases.c.holder == holder, leases.c.expires_at <= now))
                .values(
                    holder=holder,
                    expires_at=now + ttl,
                    acquired_at=case(
                        (leases.c.holder == holder, leases.c.acquired_at),
                        else_=literal(now, leases.c.acquired_at.type),
                    ),
                )
            )
            return result.rowcount == 1

    def renew_lease(self, name: str, holder: str, ttl: timedelta, now: datetime) -> bool:
        """Extend our lease; False if someone else holds it now (we lost it)."""
        with self._write(f"renew lease {name}", data=False) as conn:
            result = conn.execute(
                update(leases).where(leases.c.name == name, leases.c.holder == holder).values(expires_at=now + ttl)
            )
            return result.rowcount == 1

    def release_lease(self, name: str, holder: str) -> None:
        with self._write(f"release lease {name}", data=False) as conn:
            conn.execute(delete(leases).where(leases.c.name == name, leases.c.holder == holder))

    def leases(self) -> list[dict[str, Any]]:
        with self._read("read leases") as conn:
            return [dict(r) for r in conn.execute(select(leases).order_by(leases.c.name)).mappings()]

    # -- several workers (added for issue 9; kept apart from the core methods above) ------------

    def write_snapshots_once(
        self,
        run_id: int,
        at: datetime,
        krs: Sequence[KeyResultProgress],
        item_states: Mapping[str, Mapping[str, str]],
        window: timedelta,
        *,
        letters: bool = False,
    ) -> bool:
        """Write this run's snapshots unless any snapshot is newer than ``at - window``.

        Several workers finish passes at different moments; without this guard each would add a
        history point for the same round. The check and the write are one transaction under a
        store-wide lock (PostgreSQL advisory lock; SQLite's BEGIN IMMEDIATE), so two workers
        finishing together cannot both pass the check. Returns whether the snapshots were written.
        """
        with self._write("write snapshots", data=False) as conn:
            _lock_snapshots(conn)
            newest = conn.scalar(select(func.max(snapshots.c.at)))
            if newest is not None and newest > at - window:
                return False
            self.write_snapshots(run_id, at, krs, item_states, letters=letters)
        return True

    # -- meta and maintenance -------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self._read("read meta") as conn:
            value: str | None = conn.scalar(select(meta.c.value).where(meta.c.key == key))
        return value

    def set_meta(self, key: str, value: str) -> None:
        with self._write("write meta", data=False) as conn:
            _upsert(conn, meta, [{"key": key, "value": value}], ["key"])

    def schema_version(self) -> int:
        with self._read("read schema version") as conn:
            return _schema_version(conn)

    def quick_check(self) -> bool:
        """SQLite ``PRAGMA quick_check`` is ok; on PostgreSQL, the server answers."""
        try:
            with self._read("check integrity") as conn:
                return _quick_check(conn)
        except StoreError:
            return False

    def checkpoint(self) -> None:
        """SQLite: fold the WAL back into the file so it cannot grow without bound when idle."""
        if self._sqlite and not self._dry_run:
            with self._guard("checkpoint"), self._engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def _matched_items() -> Any:
    """matches joined to their items (one row per item and key result it serves)."""
    return matches.join(items_t, and_(items_t.c.source == matches.c.source, items_t.c.id == matches.c.item_id))


def _kr_items_query(kr_id: str, limit: int | None, done_first: bool) -> Any:
    """``Store.kr_items``' query: live items of a key result with their rule, in list order."""
    order: list[ColumnElement[Any]] = [items_t.c.source, items_t.c.key, items_t.c.id]
    if done_first:
        order.insert(0, case((items_t.c.state == State.DONE.value, 0), else_=1))
    query = (
        select(*_ITEM_COLUMNS, matches.c.rule_index)
        .select_from(_matched_items())
        .where(matches.c.kr_id == kr_id, items_t.c.retired_at.is_(None))
        .order_by(*order)
    )
    return query if limit is None else query.limit(limit)


def _literal_rows(*columns: tuple[str, Any, Sequence[Any]]) -> Any:
    """A small table of bound values (``UNION ALL`` of one-row SELECTs: SQLite and PostgreSQL alike).

    Each column is (name, SQL type, values); every column has the same number of values.
    """
    names = [name for name, _, _ in columns]
    n = len(columns[0][2])
    selects = [
        select(*(literal(values[row], type_).label(name) for name, type_, values in columns))
        for row in range(n)
    ]
    compound = selects[0] if n == 1 else union_all(*selects)
    return compound.subquery("rows_" + "_".join(names))


def _label_filter(ignore_labels: Collection[str]) -> list[ColumnElement[bool]]:
    """Conditions that hold for an item carrying none of ``ignore_labels`` (case-insensitive)."""
    conds: list[ColumnElement[bool]] = []
    for label in sorted({label.lower() for label in ignore_labels}):
        pattern = "%\x1f" + _like_escape(label.replace("\x1f", " ")) + "\x1f%"
        conds.append(not_(items_t.c.labels_lc.like(pattern, escape="\\")))
    return conds


def _unmatched() -> list[ColumnElement[bool]]:
    """An item (``items``, correlated) that no key result matches, itself or via (grand)parent."""
    i = items_t
    m_self, m_parent, m_grand = matches.alias("m_self"), matches.alias("m_parent"), matches.alias("m_grand")
    parent = items_t.alias("parent")
    own = select(literal(1)).where(m_self.c.source == i.c.source, m_self.c.item_id == i.c.id)
    via_parent = select(literal(1)).where(m_parent.c.source == i.c.source, m_parent.c.item_id == i.c.parent_id)
    via_grand = (
        select(literal(1))
        .select_from(
            parent.join(m_grand, and_(m_grand.c.source == parent.c.source, m_grand.c.item_id == parent.c.parent_id))
        )
        .where(parent.c.source == i.c.source, parent.c.id == i.c.parent_id)
    )
    # Most items have no parent (every GitHub issue): the guard skips both lookups for them
    # (the unaligned summary at 200k: median 599 -> 492 ms of 10 on SQLite). Same truth value: a NULL
    # parent_id lets neither subquery find a row.
    return [~own.exists(), or_(i.c.parent_id.is_(None), and_(~via_parent.exists(), ~via_grand.exists()))]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _too_new(version: int, known: int) -> str:
    return (
        f"schema version {version} is newer than this okrsync knows ({known}); "
        "upgrade okrsync or point it at another store"
    )


def _schema_version(conn: Connection) -> int:
    if not inspect(conn).has_table("meta"):
        return 0
    value = conn.scalar(select(meta.c.value).where(meta.c.key == "schema_version"))
    return int(value) if value is not None else 0


def _run_dict(r: RowMapping) -> dict[str, Any]:
    row = dict(r)
    row["full"] = bool(row["full"])
    row["dry_run"] = bool(row["dry_run"])
    row["detail"] = row["detail"] or {}
    return row


def _snapshot_dict(r: RowMapping) -> dict[str, Any]:
    row = dict(r)
    row["stale"] = bool(row["stale"])
    row["items"] = {k: _LETTER_STATE.get(v, v) for k, v in (row["items"] or {}).items()}
    return row


_COPY_ORDER = (
    meta, runs, items_t, matches, members, cursors, source_status, snapshots, checkins, writes, labelled,
    backfill,
)  # fmt: skip
"""Parents before children; leases are not copied (they belong to the old store's processes)."""


def _prune_item_maps(conn: Connection, run_id: int) -> None:
    """Keep the per-item state maps of the two newest runs only (``explain`` and the change
    summary compare those two); older snapshots keep their numbers. Without this a 200k-item
    store grew by megabytes per pass: 96 passes a day for a quarter is tens of gigabytes.

    Only the runs since the last prune are visited (``meta`` remembers where it stopped): a
    scan of every older snapshot cost 56 ms per pass after 90 days of 96 passes a day, and
    grew with the history. A run that writes after newer runs were pruned past it (a worker
    that finished late) is not one of the two newest: its own map is cleared."""
    mark = conn.scalar(select(meta.c.value).where(meta.c.key == _MAPS_PRUNED))
    low = int(mark) if mark is not None and mark.isdigit() else 0
    if run_id < low:
        conn.execute(update(snapshots).where(snapshots.c.run_id == run_id).values(items={}))
        return
    previous = conn.scalar(select(func.max(snapshots.c.run_id)).where(snapshots.c.run_id < run_id))
    if previous is None:
        return
    stale = and_(snapshots.c.run_id >= low, snapshots.c.run_id < previous, snapshots.c["items"] != {})
    conn.execute(update(snapshots).where(stale).values(items={}))
    if previous > low:
        _upsert(conn, meta, [{"key": _MAPS_PRUNED, "value": str(previous)}], ["key"])


def copy_store(src: Store, dst: Store, *, batch: int = 2000) -> dict[str, tuple[int, int]]:
    """Copy every table (history included) from ``src`` into ``dst``; upserts, so re-runnable."""
    counts: dict[str, tuple[int, int]] = {}
    for table in _COPY_ORDER:
        keys = [c.name for c in table.primary_key.columns]
        with src._read(f"copy {table.name}") as sconn:
            result = sconn.execution_options(stream_results=True, yield_per=batch).execute(
                select(table).order_by(*table.primary_key.columns)
            )
            for part in result.mappings().partitions(batch):
                rows = [dict(r) for r in part if table is not meta or not _derived_meta(str(r["key"]))]
                with dst._write(f"copy {table.name}") as dconn:
                    _upsert(dconn, table, rows, keys)
        with dst._write(f"copy {table.name}") as dconn:
            _reset_sequence(dconn, table)
        count = select(func.count()).select_from(table)
        if table is meta:  # each store's own generation and aggregates are not copied
            count = count.where(meta.c.key != _GENERATION, ~meta.c.key.startswith(_AGGREGATE, autoescape=True))
        with src._read("count rows") as sconn:
            n_src = int(sconn.scalar(count) or 0)
        with dst._read("count rows") as dconn:
            n_dst = int(dconn.scalar(count) or 0)
        counts[table.name] = (n_src, n_dst)
    with dst._write("count the copy as a change"):  # dst's own kept aggregates no longer hold
        pass
    return counts


def _derived_meta(key: str) -> bool:
    """Meta rows that describe a store's own rows, not data to copy: its data generation and
    the aggregates kept at it. Copied, they could set the target's generation back to a value
    at which an aggregate it kept earlier seems current again."""
    return key == _GENERATION or key.startswith(_AGGREGATE)


# -- the dialect-specific corner ----------------------------------------------------------------


def _is_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def _make_engine(url: URL, *, dry_run: bool = False) -> Engine:
    """SQLite: 16 KiB pages when new, WAL, NORMAL sync, busy timeout, foreign keys, explicit
    BEGIN [IMMEDIATE]."""
    if url.get_backend_name() != "sqlite":
        engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
        # Send executemany INSERTs as multi-row VALUES pages (one round trip per 1000 rows)
        # instead of one statement per row; SQLAlchemy does this on its own only with RETURNING.
        engine.dialect.use_insertmanyvalues_wo_returning = True
        return engine
    if _is_memory(url):
        engine = create_engine(url, connect_args={"check_same_thread": False}, poolclass=StaticPool)
    else:
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (SQLAlchemy's pysqlite recipe)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA page_size={PAGE_SIZE}")  # a no-op unless the file is new (PAGE_SIZE)
        if not dry_run:  # switching the journal mode rewrites the file header
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("okrsync_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


_GENERATION = "data_generation"
"""meta: counted up by every write that changes items or matches (``Store._changed``)."""
_AGGREGATE = "aggregate:"
"""meta: prefix of a cached aggregate, ``{"generation", "args", "value"}`` (``keep_aggregates``)."""
_BUMP_GENERATION = (
    "INSERT INTO meta (key, value) VALUES ('data_generation', '1') "
    "ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(meta.value AS INTEGER) + 1 AS TEXT)"
)
_DEFERRED = "indexes_deferred"
"""meta: the indexes ``defer_indexes_if_empty`` dropped and nobody has built again yet."""
_DEFERRABLE = ("ix_items_updated", "ix_matches_kr")
"""Indexes that only reads use (the newest-first unaligned list; a key result's items), none of
a sync's writes: the matches are replaced by item, through their primary key."""
_MAPS_PRUNED = "item_maps_pruned_below"
"""meta: runs below this one have had their item maps cleared (``_prune_item_maps``)."""
_MAPS_RUN = "item_maps_run"
"""meta: the run whose snapshots' item maps ``snapshot_item_maps`` may carry forward."""
_KR_LETTERS = (
    "SELECT m.kr_id, i.id, i.state FROM matches m JOIN items i ON i.source = m.source AND i.id = m.item_id"
    " WHERE m.kr_id IN (?) AND i.retired_at IS NULL AND NOT i.excluded AND i.kind <> ?"
)
"""``kr_item_states``' filter for several key results (``(?)`` is widened to one ``?`` per id)."""
_FETCH_ROWS = 10_000
"""Rows taken from a cursor at a time where a read streams many (120k matches at 200k items)."""
_KR_LETTERS_DAYS = _KR_LETTERS.replace(
    "i.state FROM", "i.state, substr(i.created_at, 1, 10), substr(i.done_at, 1, 10), coalesce(i.points, 0.0) FROM"
)
"""``_KR_LETTERS`` with what ``kr_item_days`` groups by and sums."""
_DELETE_MATCHES = "DELETE FROM matches WHERE source = ? AND item_id = ?"
_INSERT_MATCHES = "INSERT INTO matches (source, item_id, kr_id, rule_index) VALUES (?, ?, ?, ?)"
_ANY_MATCH_BETWEEN = "SELECT 1 FROM matches WHERE source = ? AND item_id BETWEEN ? AND ? LIMIT 1"


def _may_hold_matches(conn: Connection, source: str, lowest: str, highest: str) -> bool:
    """Whether stored matches of ``source`` may fall between these item ids (inclusive).

    A page's old matches are deleted id by id: 200k probes of the matches' key in a 200k first
    sync. A full Jira Cloud pass writes its ids in the store's key order, so each page's ids lie
    beyond every id written before it and one probe of the range shows there is nothing to
    delete (0.27-0.31 s of Jira's share on a slow machine, bench/RESULTS.md). Only where the
    store's text order is the order ``sorted`` gives: SQLite's BINARY over UTF-8 bytes. A SQLite
    file created as UTF-16 compares UTF-16 bytes (in a little-endian file ``"Ā" < "a"``), and
    PostgreSQL's collation may order ids otherwise: there the range proves nothing and the
    deletes always run."""
    if conn.dialect.name != "sqlite" or conn.exec_driver_sql("PRAGMA encoding").scalar() != "UTF-8":
        return True
    return conn.exec_driver_sql(_ANY_MATCH_BETWEEN, (source, lowest, highest)).first() is not None


def _executemany(conn: Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """One statement over many rows through the DBAPI's own executemany, without SQLAlchemy's
    per-row bind processing (rows are already in their stored form). ``sql`` is written with
    ``?`` placeholders; PostgreSQL's driver (psycopg, ``%s``) gets them translated. The same
    SQL, the same semantics on both dialects: only the placeholder differs."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        sql = _pg_placeholders(sql)
    conn.exec_driver_sql(sql, list(rows))


def _day_parser() -> Callable[[str | None], date | None]:
    """``date.fromisoformat`` of stored day text, each distinct day parsed once (a cycle's
    groups share a few hundred days; one date object each keeps the groups small)."""
    parsed: dict[str | None, date | None] = {None: None}

    def day(text: str | None) -> date | None:
        if text in parsed:
            return parsed[text]
        found = parsed[text] = date.fromisoformat(text) if text else None
        return found

    return day


def _pg_placeholders(sql: str) -> str:
    return _PG_SQL.get(sql) or _PG_SQL.setdefault(sql, sql.replace("%", "%%").replace("?", "%s"))


_PG_SQL: dict[str, str] = {}


def _delete_keys(conn: Connection, table: Table, keys: Sequence[Mapping[str, Any]]) -> None:
    """Delete rows by their full key, as one executemany (an index lookup per row)."""
    if not keys:
        return
    stmt = delete(table).where(*(table.c[name] == bindparam(f"k_{name}") for name in keys[0]))
    for group in _chunks(keys, _ROWS):
        conn.execute(stmt, [{f"k_{k}": v for k, v in row.items()} for row in group])


def _upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    update_cols: Sequence[str] | None = None,
) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE for many rows; the last row of a repeated key wins."""
    if not rows:
        return
    unique = list({tuple(r[k] for k in keys): dict(r) for r in rows}.values())
    postgres = conn.dialect.name == "postgresql"
    pg_dialect = _pg_dialect() if postgres else None
    insert: Callable[[Table], Any] = pg_dialect.insert if pg_dialect is not None else sqlite_dialect.insert
    stmt = insert(table)
    cols = update_cols if update_cols is not None else [c for c in unique[0] if c not in keys]
    if cols:
        stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_={c: stmt.excluded[c] for c in cols})
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
    if pg_dialect is not None and len(unique) > 1:
        # One statement per group over column arrays (``unnest``): psycopg otherwise sends an
        # executemany upsert row by row, and multi-row VALUES text is slow to build at this size.
        names = list(unique[0])
        arrays = select(
            *(
                func.unnest(
                    cast(
                        bindparam(f"arr_{n}", type_=pg_dialect.ARRAY(table.c[n].type)),
                        pg_dialect.ARRAY(table.c[n].type),
                    )
                ).label(n)
                for n in names
            )
        )
        bulk = pg_dialect.insert(table).from_select(names, arrays)
        if cols:
            bulk = bulk.on_conflict_do_update(index_elements=list(keys), set_={c: bulk.excluded[c] for c in cols})
        else:
            bulk = bulk.on_conflict_do_nothing(index_elements=list(keys))
        for group in _chunks(unique, _ROWS):
            conn.execute(bulk, {f"arr_{n}": [r[n] for r in group] for n in names})
        return
    conn.execute(stmt, unique)


def _pg_dialect() -> Any:
    """PostgreSQL's SQL constructs, imported on first use: 27 ms that a SQLite store (and every
    ``okrsync report`` on one) would otherwise pay at start-up."""
    from sqlalchemy.dialects import postgresql

    return postgresql


def _insert_ignore(conn: Connection, table: Table, row: Mapping[str, Any], keys: Sequence[str]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; True when the row went in."""
    insert: Callable[[Table], Any] = (
        _pg_dialect().insert if conn.dialect.name == "postgresql" else sqlite_dialect.insert
    )
    stmt = insert(table).values(**row).on_conflict_do_nothing(index_elements=list(keys))
    return bool(conn.execute(stmt).rowcount == 1)


def _lock_schema(conn: Connection) -> None:
    """Serialise concurrent first opens (SQLite's BEGIN IMMEDIATE already does)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(5318008)"))


def _lock_snapshots(conn: Connection) -> None:
    """Serialise snapshot writes across workers until the transaction ends (re-entrant)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(5318009)"))


def _reset_sequence(conn: Connection, table: Table) -> None:
    """After copying explicit ids into PostgreSQL, move the serial past them."""
    if conn.dialect.name != "postgresql" or table.autoincrement_column is None:
        return
    col = table.autoincrement_column.name
    conn.execute(
        text(
            f"SELECT setval(pg_get_serial_sequence('{table.name}', '{col}'), "
            f"COALESCE(MAX({col}), 1), MAX({col}) IS NOT NULL) FROM {table.name}"
        )
    )


def _analyze(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("ANALYZE items, matches, members"))
    else:
        analyze_sqlite(conn)


def _quick_check(conn: Connection) -> bool:
    if conn.dialect.name == "sqlite":
        return conn.exec_driver_sql("PRAGMA quick_check").scalar() == "ok"
    return conn.execute(text("SELECT 1")).scalar() == 1
