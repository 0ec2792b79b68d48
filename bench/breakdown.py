"""``python -m bench.breakdown --size 200000``: where a full sync's CPU goes, one stage at a time.

``bench/run.py`` measures ``okrsync sync --full`` as a whole (CPU per issue, target 40 us). This
bench takes the same pass apart in one process, sources one after the other, against the same
sandbox over real loopback HTTP, and charges each stage its own CPU time (``time.process_time``;
the sandbox runs in other processes):

- **transport floor**: every request the connectors made, sent again through ``http.client``
  on one keep-alive connection and the body decoded whole with msgspec. No Python client receives
  and decodes these bytes whole for less; the connectors' body shapes (``connectors.shapes``)
  decode only the members they read, which costs less than this floor's decode.
- **HTTP layer**: the same requests as okrsync's ``HttpClient`` sends them (requests, urllib3,
  tenacity, rate-limit bookkeeping, decoding).
- **mapping**: the connectors' own work around them (tracker JSON -> ``WorkItem``, census, scan
  state), i.e. fetch minus HTTP layer.
- **matching**: ``match_item`` for every item against the 40 key results' rules.
- **store**: ``Store.write_page`` in the batches a sync writes (rows, upserts, matches), the last
  page's member sets and parent links, then the deferred index build (a first sync into an
  empty SQLite store, as ``okrsync sync --full`` into a fresh store does).
- **SQLite floor**: the rows the store stage wrote, written again into an empty database of the
  same schema through bare ``sqlite3`` (the same transactions of 5 000 items, alternating
  sources, the same statements, no Python between rows): what SQLite itself costs for them.
- **start-up**: ``okrsync --version`` as a subprocess (interpreter, imports, config classes).

With ``--whole [N]`` it also runs ``okrsync sync --full`` into a fresh store N times (default
1; the lowest CPU is kept), as ``bench/run.py`` does, so the table ends with what the stages do
not explain (two source threads sharing the GIL and the cores with the sandbox, re-matching the
items a JQL rule's fresh member set moved, snapshots, the report). Bodies are not kept: memory stays that of one sync.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402
import requests  # noqa: E402
import requests.adapters  # noqa: E402

from bench.bytecode import compile_okrsync  # noqa: E402
from bench.run import TIME, Sandbox, measure  # noqa: E402
from bench.scenario import ENV, config_text  # noqa: E402
from connectors.base import ConnectorContext, utc_now  # noqa: E402
from connectors.http import HttpClient, HttpPolicy  # noqa: E402
from connectors.transport import DirectTransport, Exchange  # noqa: E402
from syncer.cli import tune_gc  # noqa: E402
from syncer.config import Config, load  # noqa: E402
from syncer.matching import RuleIndex, build_index, compile_rules, match_item  # noqa: E402
from syncer.model import WorkItem  # noqa: E402
from syncer.store import Store  # noqa: E402
from syncer.sync import _WRITE_BATCH, _plugin_factory  # noqa: E402

STAGES = ("transport floor", "HTTP layer", "mapping", "SQLite floor", "matching", "store", "start-up")
FLOORS = ("transport floor", "SQLite floor")
"""Stages that redo part of the pass's work by the barest means: references, not part of the sum."""


@dataclass
class Breakdown:
    size: int
    issues: int = 0
    requests: int = 0
    replayed: int = 0
    """Requests the transport floor sent again: every one the connectors made, or the floor is void."""
    cpu: dict[str, float] = field(default_factory=dict)
    whole_cpu: float | None = None
    """The lowest CPU of the whole passes timed (``--whole N``): one pass is as noisy as the machine."""
    whole_wall: float | None = None
    whole_cpus: list[float] = field(default_factory=list)

    def charge(self, stage: str, seconds: float) -> None:
        self.cpu[stage] = self.cpu.get(stage, 0.0) + seconds


@dataclass(frozen=True)
class Recorded:
    """One request as it went on the wire: enough to send it again with ``http.client``."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None


@contextmanager
def _timed(book: Breakdown, stage: str) -> Iterator[None]:
    started = time.process_time()
    try:
        yield
    finally:
        book.charge(stage, time.process_time() - started)


@contextmanager
def _watching_http(book: Breakdown, recorded: list[Recorded]) -> Iterator[None]:
    """Charge every ``HttpClient.request`` to the HTTP layer and note what went on the wire."""
    original_request = HttpClient.request
    # Every hop goes through the transport adapter (``HttpClient`` hands prepared requests to it
    # directly since e4c9d83; watching ``Session.send`` saw none of them after that).
    original_send = requests.adapters.HTTPAdapter.send
    original_direct = DirectTransport.send  # what a plain session uses (connectors/transport.py)

    def request(self: HttpClient, *args: Any, **kwargs: Any) -> Any:
        with _timed(book, "HTTP layer"):
            return original_request(self, *args, **kwargs)

    @functools.wraps(original_send)  # named as a wrapper: the direct transport stays in use
    def send(self: requests.adapters.HTTPAdapter, prepared: requests.PreparedRequest, **kwargs: Any) -> Any:
        body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
        recorded.append(Recorded(str(prepared.method), str(prepared.url), dict(prepared.headers), body))
        return original_send(self, prepared, **kwargs)

    @functools.wraps(original_direct)
    def send_direct(self: DirectTransport, exchange: Exchange, **kwargs: Any) -> Any:
        recorded.append(Recorded(exchange.method, exchange.url, dict(exchange.headers), exchange.body))
        return original_direct(self, exchange, **kwargs)

    HttpClient.request = request  # type: ignore[method-assign]
    requests.adapters.HTTPAdapter.send = send  # type: ignore[method-assign,assignment]
    DirectTransport.send = send_direct  # type: ignore[method-assign]
    try:
        yield
    finally:
        HttpClient.request = original_request  # type: ignore[method-assign]
        requests.adapters.HTTPAdapter.send = original_send  # type: ignore[method-assign]
        DirectTransport.send = original_direct  # type: ignore[method-assign]


def _timed_pages(pages: Iterator[Any], book: Breakdown) -> Iterator[Any]:
    """The connector's generator, its CPU charged to mapping (the HTTP inside charges itself)."""
    while True:
        started = time.process_time()
        http_before = book.cpu.get("HTTP layer", 0.0)
        try:
            page = next(pages)
        except StopIteration:
            return
        finally:
            spent = time.process_time() - started
            book.charge("mapping", spent - (book.cpu.get("HTTP layer", 0.0) - http_before))
        yield page


def sync_stages(config: Config, book: Breakdown, recorded: list[Recorded]) -> None:
    """One full pass, sources in turn, each stage timed on its own."""
    index = build_index(compile_rules(config))
    store = Store.open(config.store)
    try:
        store.defer_indexes_if_empty()
        for name, source_config in config.sources.items():
            context = ConnectorContext(policy=HttpPolicy(), stop=threading.Event(), now=utc_now, state={})
            connector = _plugin_factory(name, source_config, context)
            rules = [c.rule for c in index.for_source(name)]
            pending: list[WorkItem] = []
            members: dict[str, frozenset[str]] = {}
            pages = connector.fetch(None, full=True, census=True, rules=rules)
            for page in _timed_pages(iter(pages), book):
                book.issues += len(page.items)
                pending.extend(page.items)
                last = page.cursor is not None or page.census is not None or bool(page.members)
                if last and page.members:
                    with _timed(book, "store"):
                        store.replace_members(name, page.members)
                    members.update(page.members)  # a full pass replaces each rule's set it names
                if len(pending) >= _WRITE_BATCH or last:
                    _write(book, store, name, pending, index, members, page.cursor)
                    pending = []
            _write(book, store, name, pending, index, members, None)
            with _timed(book, "store"):
                store.link_parents(name)
            book.requests += connector.requests
        with _timed(book, "store"):
            store.build_deferred_indexes()
    finally:
        store.close()


def _write(book: Breakdown, store: Store, name: str, items: list[WorkItem], index: RuleIndex,
           members: dict[str, frozenset[str]], cursor: Any) -> None:
    """Match ``items`` (charged to matching) and write them with ``cursor`` (charged to store)."""
    if not items:
        return
    with _timed(book, "matching"):
        matches = {item.id: match_item(item, index, members) for item in items}
    with _timed(book, "store"):
        store.write_page(name, items, matches, cursor, datetime.now(UTC))


def transport_floor(recorded: list[Recorded], book: Breakdown) -> None:
    """Send the recorded requests again through bare ``http.client`` and decode each body."""
    connections: dict[str, http.client.HTTPConnection] = {}
    try:
        with _timed(book, "transport floor"):
            for request in recorded:
                parts = urlsplit(request.url)
                conn = connections.get(parts.netloc)
                if conn is None:
                    conn = connections[parts.netloc] = http.client.HTTPConnection(parts.netloc, timeout=60)
                target = parts.path + (f"?{parts.query}" if parts.query else "")
                conn.request(request.method, target, body=request.body, headers=request.headers)
                answer = conn.getresponse()
                body = answer.read()
                if answer.status == 200 and body:
                    msgspec.json.decode(body)
    finally:
        for conn in connections.values():
            conn.close()


def sqlite_floor(stored: Path, book: Breakdown) -> None:
    """Write ``stored``'s items and matches again into a fresh database with bare ``sqlite3``."""
    import sqlite3

    from syncer.store import (
        _DEFERRABLE,
        _DELETE_MATCHES,
        _INSERT_MATCHES,
        _NULLABLE,
        _ROW_COLUMNS,
        _SQLITE_ITEMS,
        PAGE_SIZE,
    )

    # The rows as write_page binds them on SQLite (_ItemBinding): NULL spelled by its stand-in,
    # the flags as integers already (SQLite stored them so), no retired_at (never written).
    optional = {_ROW_COLUMNS.index(name) for name in _NULLABLE}
    null = _SQLITE_ITEMS.null
    source_db = sqlite3.connect(stored)
    try:
        schema = [sql for (sql,) in source_db.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name IN ('items', 'matches') AND sql IS NOT NULL")]
        picked = ", ".join(f'"{name}"' for name in _ROW_COLUMNS)
        rows = [
            tuple(null if value is None and n in optional else value for n, value in enumerate(row))
            for row in source_db.execute(f"SELECT {picked} FROM items ORDER BY rowid")
        ]
        matched: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
        for row in source_db.execute("SELECT source, item_id, kr_id, rule_index FROM matches"):
            matched.setdefault((row[0], row[1]), []).append(row)
    finally:
        source_db.close()
    by_source: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        by_source.setdefault(row[0], []).append(row)
    batches: list[list[tuple[Any, ...]]] = []  # the sources' batches interleaved, as their two threads write them
    for start in range(0, max(map(len, by_source.values()), default=0), _WRITE_BATCH):
        batches.extend(part[start : start + _WRITE_BATCH] for part in by_source.values() if part[start:])
    target = stored.with_name("sqlite-floor.db")
    db = sqlite3.connect(target, isolation_level=None)
    try:
        db.execute(f"PRAGMA page_size={PAGE_SIZE}")  # as a store okrsync creates
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        deferred = [sql for sql in schema if any(name in sql for name in _DEFERRABLE)]
        for sql in schema:
            if sql not in deferred:
                db.execute(sql)
        with _timed(book, "SQLite floor"):
            for batch in batches:
                db.execute("BEGIN IMMEDIATE")
                for start in range(0, len(batch), 500):
                    db.executemany(_SQLITE_ITEMS.sql, batch[start : start + 500])
                db.executemany(_DELETE_MATCHES, sorted(r[:2] for r in batch))
                db.executemany(_INSERT_MATCHES, [m for r in batch for m in matched.get((r[0], r[1]), ())])
                db.execute("COMMIT")
            for sql in deferred:
                db.execute(sql)
    finally:
        db.close()


def startup_cpu(env: dict[str, str], repeat: int = 3) -> float:
    """The least CPU of ``okrsync --version`` over a few runs (the process start every command pays)."""
    best = float("inf")
    for _ in range(repeat):
        best = min(best, measure([sys.executable, "-m", "syncer", "--version"], env, 60).cpu)
    return best


def run(size: int, whole: int, say: Callable[[str], None], folder: Path | None = None) -> Breakdown:
    """The breakdown at ``size`` issues, with ``whole`` passes of ``okrsync sync --full`` timed
    first (0: none); the stores and config go to ``folder`` (kept) or a temporary folder (removed)."""
    if folder is None:
        with tempfile.TemporaryDirectory(prefix="okrsync-breakdown-") as scratch:
            return run(size, whole, say, Path(scratch))
    for stale in ("whole.db", "stages.db", "sqlite-floor.db"):  # every stage starts from an empty store
        for path in folder.glob(stale + "*"):
            path.unlink()
    book = Breakdown(size)
    say(f"breakdown: starting the sandbox with {size} issues")
    sandbox = Sandbox(size)
    try:
        info = sandbox.scenario_info()
        config_path = folder / "okrs.yaml"
        env = {**os.environ, **ENV, "NO_COLOR": "1"}
        for attempt in range(int(whole)):
            for path in folder.glob("whole.db*"):  # each into an empty store, as a first sync
                path.unlink()
            config_path.write_text(config_text(info, f"sqlite:///{folder / 'whole.db'}"), encoding="utf-8")
            say(f"breakdown: okrsync sync --full (the whole pass, as bench/run.py runs it; {attempt + 1} of {whole})")
            cmd = [sys.executable, "-m", "syncer", "sync", "-c", str(config_path), "--full", "--quiet"]
            done = measure(cmd, env, 1500)
            book.whole_cpus.append(done.cpu)
            if book.whole_cpu is None or done.cpu < book.whole_cpu:
                book.whole_cpu, book.whole_wall = done.cpu, done.wall
        config_path.write_text(config_text(info, f"sqlite:///{folder / 'stages.db'}"), encoding="utf-8")
        config = load(config_path, env=ENV)
        recorded: list[Recorded] = []
        say("breakdown: the same pass, stage by stage, in this process")
        with _watching_http(book, recorded):
            sync_stages(config, book, recorded)
        book.replayed = len(recorded)
        if book.replayed != book.requests:
            raise RuntimeError(f"breakdown: {book.replayed} of {book.requests} requests were seen on the wire")
        say(f"breakdown: {book.replayed} requests again through http.client + msgspec")
        transport_floor(recorded, book)
        say("breakdown: the stored rows again through bare sqlite3")
        sqlite_floor(folder / "stages.db", book)
        book.charge("start-up", startup_cpu(env))
    finally:
        sandbox.close()
    return book


def table(book: Breakdown) -> str:
    n = max(1, book.issues)
    lines = [
        f"full sync of {book.issues} issues, {book.requests} requests, stages timed one after the other",
        f"{'stage':<22} {'CPU s':>8} {'us/issue':>9}   (floors: the barest way to do a stage's I/O part)",
    ]
    for stage in STAGES:
        seconds = book.cpu.get(stage, 0.0)
        lines.append(f"{stage:<22} {seconds:>8.2f} {1e6 * seconds / n:>9.1f}")
    counted = sum(book.cpu.get(s, 0.0) for s in STAGES if s not in FLOORS)
    lines.append(f"{'sum (floors excluded)':<22} {counted:>8.2f} {1e6 * counted / n:>9.1f}")
    if book.whole_cpu is not None:
        rest = book.whole_cpu - counted
        runs = "" if len(book.whole_cpus) < 2 else (
            f"; the lowest of {len(book.whole_cpus)}: " + ", ".join(f"{cpu:.2f}" for cpu in book.whole_cpus))
        lines.append(f"{'okrsync sync --full':<22} {book.whole_cpu:>8.2f} {1e6 * book.whole_cpu / n:>9.1f}"
                     f"   ({book.whole_wall:.1f} s wall{runs})")
        lines.append(f"{'not in the stages':<22} {rest:>8.2f} {1e6 * rest / n:>9.1f}"
                     "   (threads, lease, snapshots, report)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.breakdown", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=20000, help="issues in total (half Jira, half GitHub)")
    parser.add_argument("--whole", type=int, nargs="?", const=1, default=0, metavar="N",
                        help="also time okrsync sync --full as a subprocess, N times (default 1: the"
                             " lowest CPU is kept, one pass is as noisy as the machine)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--dir", type=Path, help="keep the config and stores here (default: a temporary folder)")
    args = parser.parse_args(argv)
    if TIME is None and args.whole:
        print("breakdown: --whole needs GNU time (/usr/bin/time)", file=sys.stderr)
        return 2
    compile_okrsync()
    tune_gc()  # as okrsync's own main() does
    if args.dir:
        args.dir.mkdir(parents=True, exist_ok=True)
    book = run(args.size, args.whole, lambda text: print(text, file=sys.stderr, flush=True), args.dir)
    print(table(book))
    if args.json:
        args.json.write_text(json.dumps(book.__dict__, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
