"""Store fixtures: the same tests run against SQLite (a temp file) and PostgreSQL (a fresh schema).

PostgreSQL comes from ``$OKRSYNC_TEST_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/test``).
Each test gets its own schema (``search_path`` set through the URL's ``options``), dropped
afterwards, so tests never collide. When the variable is unset and the default server is not
reachable the PostgreSQL cases are skipped; when it is set, an unreachable server fails them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy.engine import make_url

from syncer.store import Store

__all__ = ["fresh_postgres_url", "pg_url", "postgres_admin_url", "store", "store_url"]

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
_reachable: dict[str, str | None] = {}


def postgres_admin_url() -> str:
    """The server to test against, or skip (fail, if the URL was given explicitly)."""
    explicit = os.environ.get("OKRSYNC_TEST_POSTGRES")
    url = explicit or PG_DEFAULT
    if url not in _reachable:
        import psycopg

        try:
            with psycopg.connect(url, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            _reachable[url] = None
        except psycopg.Error as exc:
            _reachable[url] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    problem = _reachable[url]
    if problem is not None:
        if explicit:
            pytest.fail(f"OKRSYNC_TEST_POSTGRES={url} is not reachable: {problem}")
        pytest.skip(f"PostgreSQL not reachable at {url} (set OKRSYNC_TEST_POSTGRES): {problem}")
    return url


@contextmanager
def fresh_postgres_url() -> Iterator[str]:
    """A URL whose ``search_path`` is a new empty schema; the schema is dropped afterwards."""
    import psycopg

    admin = postgres_admin_url()
    schema = f"okrsync_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        url = make_url(admin).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An empty store URL, once per dialect."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('store') / 'okrsync.db'}"
    else:
        with fresh_postgres_url() as url:
            yield url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """An empty PostgreSQL store URL (for tests that need both dialects at once)."""
    with fresh_postgres_url() as url:
        yield url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An opened, empty store, once per dialect; closed afterwards."""
    opened = Store.open(store_url)
    try:
        yield opened
    finally:
        opened.close()
