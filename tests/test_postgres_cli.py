"""Every command with ``store: postgresql://…`` (a fresh schema through the URL's ``options``), and
``okrsync migrate`` from a SQLite store with history into PostgreSQL.

The store URL carries a password (the server trusts 127.0.0.1, so any password is accepted): it
must never appear in any output.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from syncer import store_schema
from syncer.cli import main
from syncer.store import Store
from tests.conftest import MemoryEnv

pytestmark = pytest.mark.postgres

PASSWORD = "s3cret-pg-pw"
TABLES = tuple(sorted(set(store_schema.metadata.tables) - {"leases"}))
"""Every table but leases (they belong to the old store's processes): a table added later is covered."""
FILLED = ("items", "matches", "members", "cursors", "runs", "snapshots", "checkins", "writes", "labelled",
          "source_status", "meta")


@pytest.fixture
def pg_store_url(pg_url: str) -> str:
    """The fresh schema's URL with a password added (as a config would carry it)."""
    return make_url(pg_url).set(password=PASSWORD).render_as_string(hide_password=False)


def use_store(env: MemoryEnv, url: str, *, extra: str = "") -> None:
    text = env.config.read_text(encoding="utf-8").replace("store: sqlite:///okrsync.db", f"store: {url}")
    env.config.write_text(text + extra, encoding="utf-8")


def count(store: Store, table: str) -> int:
    """Rows a copy carries: not a store's own data generation and the aggregates it kept."""
    query = select(func.count()).select_from(store_schema.metadata.tables[table])
    if table == "meta":
        key = store_schema.meta.c.key
        query = query.where(key != "data_generation", ~key.startswith("aggregate:", autoescape=True))
    with store._read("count") as conn:
        return int(conn.scalar(query) or 0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_every_command_works_on_postgresql_and_never_prints_the_password(
    memory_env: MemoryEnv, pg_store_url: str, okrsync: Any
) -> None:
    assert "search_path%3D" in pg_store_url and f":{PASSWORD}@" in pg_store_url
    use_store(memory_env, pg_store_url)
    config = str(memory_env.config)
    outputs: list[str] = []

    def run(*args: str, expect: int = 0) -> str:
        code: int
        out: str
        err: str
        code, out, err = okrsync(*args)
        outputs.extend((out, err))
        assert code == expect, (args, out, err)
        return out

    assert "ok (" in run("validate", "-c", config)
    synced = json.loads(run("sync", "-c", config, "--format", "json", "--quiet"))
    numbers = {kr["id"]: kr["current"] for o in synced["objectives"] for kr in o["key_results"]}
    assert numbers["launch"] == 60.0 and numbers["bugs"] == 3 and numbers["perf"] == 8
    assert numbers["ops-uptime"] == 50.0
    assert "checked in 40" in run("checkin", "-c", config, "nps", "40", "--note", "survey")
    report = json.loads(run("report", "-c", config, "--format", "json"))
    reported = {kr["id"]: kr["current"] for o in report["objectives"] for kr in o["key_results"]}
    assert reported == {**numbers, "nps": 40.0}
    assert "MEM-2" in run("explain", "-c", config, "launch")
    # A worker right after the sync finds nothing due (synced < 80% of an interval ago): no run.
    run("daemon", "-c", config, "--once", "--worker", "--listen", f"127.0.0.1:{free_port()}")
    assert len(json.loads(run("status", "-c", config, "--format", "json"))["runs"]) == 1
    run("daemon", "-c", config, "--once", "--worker", "--interval", "1s", "--listen", f"127.0.0.1:{free_port()}")
    now = datetime.now(UTC)
    with Store.open(pg_store_url) as store:  # another host's worker mid-pass, and one long gone
        assert store.acquire_lease("source:ops", "otherhost:4242:feedbeef", timedelta(minutes=2), now)
        assert store.acquire_lease("source:memory", "gone:1:dead", timedelta(minutes=2), now - timedelta(hours=1))
    held = run("status", "-c", config)
    assert re.search(r"ops\s+held by otherhost:4242:feedbeef since \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ, "
                     r"expires \d{4}-", held), held
    assert re.search(r"memory\s+held by gone:1:dead since .*, expired \d{4}-", held), held
    leases = json.loads(run("status", "-c", config, "--format", "json"))["leases"]
    assert [(lease["name"], lease["holder"]) for lease in leases] == [
        ("source:memory", "gone:1:dead"), ("source:ops", "otherhost:4242:feedbeef")]
    with Store.open(pg_store_url) as store:
        store.release_lease("source:ops", "otherhost:4242:feedbeef")
        store.release_lease("source:memory", "gone:1:dead")
    status = run("status", "-c", config)
    shown = make_url(pg_store_url).render_as_string(hide_password=True)
    assert f"store: {shown}" in status and ":***@" in shown
    assert re.search(r"memory\s+idle\s+last success \d{4}-", status), status
    runs = json.loads(run("status", "-c", config, "--format", "json"))["runs"]
    assert len(runs) == 2 and {r["outcome"] for r in runs} == {"ok"}, "the sync and the daemon's pass"
    for text in outputs:
        assert PASSWORD not in text
    # The data really is in PostgreSQL, in the schema the URL named (nothing went to a SQLite file).
    assert not memory_env.store.exists()
    with Store.open(pg_store_url) as store:
        assert store.dialect == "postgresql"
        assert store.count_items() == 18 and store.latest_checkins() == {"nps": 40.0}
        assert len(store.last_runs()) == 2


def test_a_bad_postgresql_store_is_one_line_without_the_password(memory_env: MemoryEnv, okrsync: Any) -> None:
    closed = free_port()
    use_store(memory_env, f"postgresql://postgres:{PASSWORD}@127.0.0.1:{closed}/test")
    code, out, err = okrsync("report", "-c", str(memory_env.config), "--format", "json")
    assert code != 0 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert re.search(r"cannot open store postgresql(\+psycopg)?://postgres:\*\*\*@127\.0\.0\.1", err), err
    assert PASSWORD not in err


def _history(env: MemoryEnv, fixed: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """Three passes over changing items, a check-in and write-backs: every table gets rows."""
    assert main(["sync", "-c", str(env.config), "--format", "json", "--quiet"], now=fixed) == 0
    assert main(["checkin", "-c", str(env.config), "nps", "38", "--note", "first survey"], now=fixed) == 0
    items = json.loads(env.items.read_text(encoding="utf-8"))
    for entry in items:
        if entry["key"] == "MEM-6":
            entry.update(state="done", done_at=entry["updated_at"])
    env.write_items(items)
    assert main(["sync", "-c", str(env.config), "--format", "json", "--quiet"], now=fixed) == 0
    assert main(["sync", "-c", str(env.config), "--full", "--format", "json", "--quiet"], now=fixed) == 0
    capsys.readouterr()


def report_json(config: Path, fixed: Any, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["report", "-c", str(config), "--format", "json"], now=fixed) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    data.pop("generated_at")
    return data


@pytest.fixture
def fixed_now() -> Iterator[Any]:
    at = datetime.now(UTC).replace(microsecond=0)
    yield lambda: at


def test_migrate_copies_a_store_with_history_and_the_reports_are_identical(
    memory_env: MemoryEnv, pg_store_url: str, fixed_now: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    publish = (
        "        publish:\n"
        "          - {source: memory, issue: OKR-1, field: progress}\n"
    )
    text = memory_env.config.read_text(encoding="utf-8")
    text = text.replace("          - {source: memory, parent: EPIC-1}\n",
                        "          - {source: memory, parent: EPIC-1}\n" + publish, 1)
    text = text.replace("  ignore_labels: [chore]\n", "  ignore_labels: [chore]\n  label: unaligned\n")
    memory_env.config.write_text(text, encoding="utf-8")
    _history(memory_env, fixed_now, capsys)
    sqlite_url = f"sqlite:///{memory_env.store}"
    with Store.open(sqlite_url) as src:
        src.replace_members("memory", {"fp-epic": frozenset({"m2", "m3"})})  # what a JQL rule would leave
        before = {t: count(src, t) for t in TABLES}
    assert all(before[t] > 0 for t in FILLED), before
    assert before["runs"] == 3 and before["snapshots"] == 3 * 5

    code = main(["migrate", "--from", sqlite_url, "--to", pg_store_url])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "row counts verified" in out and "MISMATCH" not in out and PASSWORD not in out + err
    for table in TABLES:
        assert re.search(rf"^{table}\s+{before[table]}\s+->\s+{before[table]}$", out, re.M), (table, out)
    with Store.open(pg_store_url) as dst:
        assert {t: count(dst, t) for t in TABLES} == before
        assert dst.get_meta("schema_version") == str(store_schema.SCHEMA_VERSION)
        dst_history = dst.histories()
    with Store.open(sqlite_url) as src:
        assert src.histories() == dst_history

    sqlite_report = report_json(memory_env.config, fixed_now, capsys)
    pg_config = memory_env.config.with_name("pg.yaml")
    pg_config.write_text(memory_env.config.read_text(encoding="utf-8").replace(
        "store: sqlite:///okrsync.db", f"store: {pg_store_url}"), encoding="utf-8")
    pg_report = report_json(pg_config, fixed_now, capsys)
    assert pg_report == sqlite_report
    assert {kr["id"] for o in pg_report["objectives"] for kr in o["key_results"]} >= {"launch", "nps"}

    again = main(["migrate", "--from", sqlite_url, "--to", pg_store_url])  # re-runnable: upserts
    assert again == 0 and "row counts verified" in capsys.readouterr().out
    with Store.open(pg_store_url) as dst:
        next_run = dst.begin_run(fixed_now(), full=False, dry_run=False, worker="t")
    assert next_run == before["runs"] + 1, "the id sequence continues after the copied runs"
