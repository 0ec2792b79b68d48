"""The store's tables, column types and migrations (SQLAlchemy Core, SQLite and PostgreSQL alike).

Times are stored as fixed-width UTC text (``2026-10-01T00:00:00.000000Z``) on both databases:
lexicographic order is time order, so ``>=``/``<`` in SQL compare correctly everywhere and a
store copied between dialects stays byte-for-byte the same. JSON is stored as text for the
same reason.

Migrations: ``MIGRATIONS[n]`` moves a store from schema version ``n`` to ``n + 1``; they run in
order, in one transaction, when a store is opened. Version 1 creates the tables from
``metadata`` below. A later version must NOT edit these table definitions in place for old
stores: add a step (``ALTER TABLE ...``) and change the definition here, and make ``_v1`` create
the version-1 shape it always created (freeze it) if ``create_all`` would no longer match.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeDecorator

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Json",
    "UtcDateTime",
    "analyze_sqlite",
    "format_utc",
    "metadata",
    "parse_utc",
]


_DAY_TEXT: dict[int, str] = {}
"""``YYYY-MM-DDT`` by proleptic ordinal: a pass's items fall on a few thousand days at most."""
_DAY_TEXT_LIMIT = 100_000
_TWO_DIGITS = tuple("%02d" % n for n in range(100))  # noqa: UP031 - built once


def format_utc(
    value: datetime, _utc: Any = UTC, _days: dict[int, str] = _DAY_TEXT, _two: tuple[str, ...] = _TWO_DIGITS
) -> str:
    """Fixed-width UTC text; a naive datetime is taken as UTC already.

    Two or three per item written (200k items a full sync). The day's text is kept per ordinal
    and the clock's two-digit parts are looked up: ~0.54 us where %-formatting all seven
    fields took ~0.79 (and the f-string with seven format specs 1.5)."""
    tz = value.tzinfo
    if tz is not None and tz is not _utc:
        value = value.astimezone(_utc)
    ordinal = value.toordinal()
    day = _days.get(ordinal)
    if day is None:
        if len(_days) >= _DAY_TEXT_LIMIT:  # bounded whatever dates a tracker sends
            _days.clear()
        day = _days[ordinal] = "%04d-%02d-%02dT" % (value.year, value.month, value.day)  # noqa: UP031
    return f"{day}{_two[value.hour]}:{_two[value.minute]}:{_two[value.second]}.{value.microsecond:06d}Z"


def parse_utc(value: str) -> datetime:
    """Inverse of ``format_utc``: always timezone-aware UTC."""
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime stored as sortable fixed-width text."""

    impl = String(27)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> str | None:
        return None if value is None else format_utc(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> datetime | None:
        return None if value is None else parse_utc(value)


class Json(TypeDecorator[Any]):
    """JSON stored as text, so both dialects hold the same bytes."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"))

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)


metadata = MetaData()

items = Table(
    "items",
    metadata,
    Column("source", String(100), primary_key=True),
    Column("id", String(200), primary_key=True),
    Column("key", String(300), nullable=False),
    Column("title", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("state", String(20), nullable=False),
    Column("issue_type", String(100), nullable=False),
    Column("container", String(300), nullable=False),
    Column("created_at", UtcDateTime),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("done_at", UtcDateTime),
    Column("excluded", Boolean, nullable=False),
    Column("resolution", String(200)),
    Column("points", Float),
    Column("labels", Text, nullable=False),  # JSON list, as the tracker spelled them
    # "\x1f" + lower-cased labels joined by "\x1f" + "\x1f": lets SQL test label membership with
    # LIKE on both dialects, case-insensitively, without a per-label table.
    Column("labels_lc", Text, nullable=False),
    Column("components", Text, nullable=False),  # JSON list
    Column("milestone", String(300)),
    Column("fix_versions", Text, nullable=False),  # JSON list
    Column("parent_key", String(300)),
    Column("parent_id", String(200)),
    Column("status_name", String(200), nullable=False),
    Column("in_scope", Boolean, nullable=False),
    Column("unknown_fields", Text, nullable=False),  # JSON list
    Column("retired_at", UtcDateTime),  # NULL = live
    Column("first_seen_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
    Index("ix_items_source_retired", "source", "retired_at"),
    Index("ix_items_updated", "updated_at"),
    Index("ix_items_key", "source", "key"),
)

matches = Table(
    "matches",
    metadata,
    Column("source", String(100), primary_key=True),
    Column("item_id", String(200), primary_key=True),
    Column("kr_id", String(200), primary_key=True),
    Column("rule_index", Integer, nullable=False),
    Index("ix_matches_kr", "kr_id", "source", "item_id"),
)

members = Table(
    "members",
    metadata,
    Column("source", String(100), primary_key=True),
    Column("fingerprint", String(1000), primary_key=True),
    Column("item_id", String(200), primary_key=True),
)

cursors = Table(
    "cursors",
    metadata,
    Column("source", String(100), primary_key=True),
    Column("cursor", Json, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime),
    Column("outcome", String(20), nullable=False),
    Column("full", Boolean, nullable=False),
    Column("dry_run", Boolean, nullable=False),
    Column("requests", Integer, nullable=False),
    Column("worker", String(200), nullable=False),
    Column("detail", Json),
)

source_status = Table(
    "source_status",
    metadata,
    Column("source", String(100), primary_key=True),
    Column("last_attempt_at", UtcDateTime),
    Column("last_success_at", UtcDateTime),
    Column("last_error", Text),
    Column("consecutive_failures", Integer, nullable=False),
    Column("resume_at", UtcDateTime),
    Column("last_full_at", UtcDateTime),
    Column("last_census_at", UtcDateTime),
)

snapshots = Table(
    "snapshots",
    metadata,
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("kr_id", String(200), primary_key=True),
    Column("at", UtcDateTime, nullable=False),
    Column("current", Float, nullable=False),
    Column("progress", Float, nullable=False),
    Column("status", String(20), nullable=False),
    Column("total", Integer, nullable=False),
    Column("done", Integer, nullable=False),
    Column("in_progress", Integer, nullable=False),
    Column("todo", Integer, nullable=False),
    Column("unknown", Integer, nullable=False),
    Column("points_total", Float, nullable=False),
    Column("points_done", Float, nullable=False),
    Column("done_in_cycle", Integer, nullable=False),
    Column("points_done_in_cycle", Float, nullable=False),
    Column("stale", Boolean, nullable=False),
    Column("last_synced", UtcDateTime),
    Column("items", Json, nullable=False),  # {item_id: state letter t/p/d/u}
    Index("ix_snapshots_kr", "kr_id", "at", "run_id"),
)

checkins = Table(
    "checkins",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kr_id", String(200), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("value", Float, nullable=False),
    Column("note", Text),
    Index("ix_checkins_kr", "kr_id", "at"),
)

writes = Table(
    "writes",
    metadata,
    Column("source", String(100), primary_key=True),
    Column("target", String(500), primary_key=True),
    Column("value", Text, nullable=False),
    Column("written_at", UtcDateTime, nullable=False),
)

labelled = Table(
    "labelled",
    metadata,
    Column("source", String(100), primary_key=True),
    Column("item_id", String(200), primary_key=True),
)

leases = Table(
    "leases",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("acquired_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
)

meta = Table(
    "meta",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("value", Text, nullable=False),
)


backfill = Table(
    "backfill",
    metadata,
    Column("kr_id", String(200), primary_key=True),
    Column("at", UtcDateTime, primary_key=True),
    Column("current", Float, nullable=False),
    Column("progress", Float, nullable=False),
    Column("total", Integer, nullable=False),
    Column("done", Integer, nullable=False),
)
"""History reconstructed from the items' created/done dates on a key result's first pass, so a
burn-up has a line from the cycle's start instead of one point (schema version 2)."""


UNLINKED_INDEX = (
    "CREATE INDEX IF NOT EXISTS ix_items_unlinked ON items (source)"
    " WHERE parent_id IS NULL AND parent_key IS NOT NULL"
)
"""Only the rows ``link_parents`` has yet to link (a parent named by key alone): nearly empty,
so writing an item costs no entry here; the full (source, parent_id) index it replaced (schema
version 4) cost ~5% of a random write and served no other query. Plain DDL, the same on both
dialects, rather than an ``Index`` in ``metadata``: ``sqlite_where``/``postgresql_where`` import
both dialects when this module loads (~45 ms of every command's start-up)."""


def _v1(conn: Connection) -> None:
    """Version 1: every table above (``backfill`` too on a new store; version 2 then skips it)."""
    metadata.create_all(conn)


def _v2(conn: Connection) -> None:
    """Version 2: the ``backfill`` table of reconstructed history."""
    backfill.create(conn, checkfirst=True)


Migration = Callable[[Connection], None]

def _v3(conn: Connection) -> None:
    """Version 3: items by key, to give a child named only by its parent's key that parent's id."""
    for index in items.indexes:
        if index.name == "ix_items_key":
            index.create(conn, checkfirst=True)


def analyze_sqlite(conn: Connection) -> None:
    """Statistics for the tables a pass queries by item (86 ms at 200k items; after 10k, 20k,
    40k ... written items). Not the history tables: their size grows with the days kept.

    ``PRAGMA optimize`` alone never analyzed ``items``: it only looks at tables this connection's
    queries flagged. Without statistics SQLite took ``source = ? AND retired_at IS NULL`` for a
    selective index and read 100k items to find 500 by id (47 ms instead of 3 per lookup). A
    sampled ANALYZE (``analysis_limit``) caps its estimates near the sample size and left that
    plan in place; the exact one also made the pass's aggregates 15-25% faster."""
    for table in ("items", "matches", "members"):
        conn.exec_driver_sql(f"ANALYZE {table}")


def _v4(conn: Connection) -> None:
    """Version 4: ``ix_items_parent`` gives way to the partial ``ix_items_unlinked``."""
    conn.exec_driver_sql("DROP INDEX IF EXISTS ix_items_parent")
    conn.exec_driver_sql(UNLINKED_INDEX)
    if conn.dialect.name == "sqlite":
        analyze_sqlite(conn)  # stores before this version never had statistics for ``items``


def _v5(conn: Connection) -> None:
    """Version 5: the data generation (meta ``data_generation``), counted up by every write that
    changes items or matches. A cached aggregate (``Store.tallies``, ``Store.unaligned_summary``)
    is used only at the generation it was computed at, so an okrsync that writes without
    counting (any older version) must not open this store: the version number keeps it out."""
    conn.exec_driver_sql("INSERT INTO meta (key, value) VALUES ('data_generation', '0') ON CONFLICT (key) DO NOTHING")


MIGRATIONS: list[Migration] = [_v1, _v2, _v3, _v4, _v5]
"""``MIGRATIONS[n]`` upgrades schema version ``n`` to ``n + 1``; append, never reorder."""

SCHEMA_VERSION = len(MIGRATIONS)
