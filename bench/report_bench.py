"""``python -m bench.report_bench --size 200000``: how long ``okrsync report`` takes on a big store.

Builds a SQLite store through the Store API, without any HTTP: the bench scenario's items (the
sandbox's own ``truth()``, matched to the 40 key results with okrsync's matcher, JQL members
from the sandbox's JQL engine) and ``--days`` days of snapshots, ``--per-day`` per key result
(96 = a daemon syncing every 15 minutes). Only the newest snapshot carries the provenance
(item ids and states); older ones carry the numbers, which is all a report reads from them.
Then keeps the aggregates a sync's own report leaves behind (``Store.keep_aggregates``) and times
``okrsync report`` as a subprocess (``--repeat`` times per format; the best and the median are
printed): as users run it after a sync, then with the data generation counted up before each run
(as if something wrote since), so that everything is aggregated again. Target: ≤ 1 s. Two
reference lines beside it: ``okrsync --version`` (the process start and imports every command
pays) and the report ``okrsync sync`` builds after its pass (``assemble_report`` without item
lists + the table, timed in-process: what a pass adds).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bytecode import compile_okrsync  # noqa: E402
from bench.sandbox_server import _GitHubBench, _JiraBench  # noqa: E402
from bench.scenario import ENV, JQL_RULES, REPOS, config_text, split  # noqa: E402
from syncer.config import load  # noqa: E402
from syncer.matching import build_index, compile_rules, match_item  # noqa: E402
from syncer.results import compute_key_results  # noqa: E402
from syncer.sandbox.github import GitHubApp  # noqa: E402
from syncer.sandbox.jira import JiraApp  # noqa: E402
from syncer.store import Store  # noqa: E402

JIRA_URL = "http://127.0.0.1:9"
GITHUB_URL = "http://127.0.0.1:10"
"""Never contacted: ``okrsync report`` reads only the store."""


def build(folder: Path, size: int, days: int, per_day: int, say: object = print) -> Path:
    """The store and its config in ``folder``; returns the config path."""
    log = say if callable(say) else print
    now = datetime.now(UTC).replace(microsecond=0)
    jira_size, github_size = split(size)
    jira = JiraApp(scenario="bench", size=jira_size, now=now, projects=20)
    github = GitHubApp(scenario="bench", size=github_size, repos=REPOS, now=now)
    jira_info = _JiraBench(jira).control("bench_info", {"jql": list(JQL_RULES)})
    github_info = _GitHubBench(github).control("bench_info", {})
    info = {"jira": {**jira_info, "url": JIRA_URL}, "github": {**github_info, "url": GITHUB_URL}}
    db = folder / "okrsync.db"
    for stale in folder.glob("okrsync.db*"):
        stale.unlink()
    config_path = folder / "okrs.yaml"
    config_path.write_text(config_text(info, f"sqlite:///{db}"), encoding="utf-8")
    config = load(config_path, env=ENV)
    index = build_index(compile_rules(config))
    members: dict[str, frozenset[str]] = {}
    for compiled in index:
        jql = getattr(compiled.rule, "jql", None)
        if jql:
            members[compiled.rule.fingerprint()] = frozenset(str(i) for i in jira.search_ids(jql))
    started = time.monotonic()
    with Store.open(config.store_url()) as store:
        store.replace_members("jira", members)
        for name, items in (("jira", jira.truth("jira", JIRA_URL)), ("github", github.truth("github"))):
            for start in range(0, len(items), 1000):
                page = items[start : start + 1000]
                store.write_page(name, page, {i.id: match_item(i, index, members) for i in page}, None, now)
            store.record_source_attempt(name, now, ok=True, error=None, full=True, census=True)
        log(f"report bench: {store.count_items()} items stored in {time.monotonic() - started:.1f} s")
        krs = compute_key_results(config, store, now)
        states = {kr_id: store.kr_item_states(kr_id) for kr_id in krs}
        started = time.monotonic()
        first = now - timedelta(days=days)
        step = timedelta(days=1) / per_day
        runs = days * per_day
        with store.transaction():
            for n in range(runs):
                at = first + step * (n + 1)
                share = (n + 1) / runs  # numbers climbing towards today's, for charts and forecasts
                run_id = store.begin_run(at, full=False, dry_run=False, worker="report-bench")
                history = [replace(kr, current=kr.current * share, progress=kr.progress * share, last_synced=at)
                           for kr in krs.values()]
                store.write_snapshots(run_id, at, history, states if n == runs - 1 else {})
                store.finish_run(run_id, at, "ok", 0, {})
        log(f"report bench: {runs} runs × {len(krs)} key results = {runs * len(krs)} snapshots "
            f"in {time.monotonic() - started:.1f} s")
        store.analyze()
    return config_path


def keep_as_a_pass_does(config_path: Path) -> None:
    """What ``okrsync sync`` leaves behind after its pass: the report it prints (tallies and the
    unaligned summary) computed, then kept for the next ``okrsync report`` (``Store.keep_aggregates``)."""
    from syncer.assemble import assemble_report
    from syncer.model import SourceOutcome

    config = load(config_path, env=ENV)
    with Store.open(config.store_url()) as store:
        outcomes = [SourceOutcome(name=name) for name in config.sources]
        assemble_report(config, store, datetime.now(UTC), outcomes=outcomes, with_items=False)
        store.keep_aggregates()


def as_if_changed(config_path: Path) -> None:
    """Count the data generation up, as any write to items or matches does: what was kept is
    stale, and the next report aggregates everything again."""
    database = load(config_path, env=ENV).store_url().removeprefix("sqlite:///")
    with sqlite3.connect(database) as conn:
        conn.execute("UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'data_generation'")


def time_report(config_path: Path, fmt: str, repeat: int, before: Callable[[], None] | None = None) -> list[float]:
    return time_command(["report", "-c", str(config_path), "--format", fmt], repeat, before)


def time_command(args: list[str], repeat: int, before: Callable[[], None] | None = None) -> list[float]:
    env = {**os.environ, **ENV, "NO_COLOR": "1"}
    walls: list[float] = []
    for _ in range(repeat):
        if before is not None:
            before()
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "syncer", *args],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
        walls.append(time.monotonic() - started)
        if done.returncode != 0:
            raise RuntimeError(f"okrsync {' '.join(args)} exited {done.returncode}: {done.stderr[-1000:]}")
    return walls


def time_sync_report(config_path: Path, repeat: int) -> list[float]:
    """What ``okrsync sync`` adds after its pass: ``assemble_report`` as ``_cmd_sync`` calls it
    (outcomes given, no item lists) and the table, in this process (imports already paid)."""
    from syncer.assemble import assemble_report
    from syncer.model import SourceOutcome
    from syncer.report import render

    config = load(config_path, env=ENV)
    walls: list[float] = []
    with Store.open(config.store_url()) as store:
        for _ in range(repeat):
            as_if_changed(config_path)  # a pass that synced something aggregates anew
            started = time.monotonic()
            outcomes = [SourceOutcome(name=name) for name in config.sources]
            data = assemble_report(config, store, datetime.now(UTC), outcomes=outcomes, with_items=False)
            render(data, "table")
            walls.append(time.monotonic() - started)
    return walls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--per-day", type=int, default=96)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--formats", default="table,json,html")
    parser.add_argument("--dir", type=Path, help="build the store here (default: a temporary folder)")
    parser.add_argument("--reuse", action="store_true", help="time the store already in --dir")
    args = parser.parse_args(argv)
    compile_okrsync()  # what pip install does; see bench/bytecode.py
    folder = args.dir or Path(tempfile.mkdtemp(prefix="okrsync-report-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "okrs.yaml"
    if not (args.reuse and config_path.exists()):
        config_path = build(folder, args.size, args.days, args.per_day)
    failed = False
    print(f"okrsync report on {args.size} items, {args.days} days × {args.per_day} snapshots per key result, "
          f"40 key results ({folder})")
    keep_as_a_pass_does(config_path)
    for fmt in args.formats.split(","):
        walls = time_report(config_path, fmt, args.repeat)
        ok = min(walls) <= 1.0
        failed = failed or not ok
        print(f"  --format {fmt:<6} best {min(walls):.2f} s, median {statistics.median(walls):.2f} s "
              f"(target ≤ 1 s: {'PASS' if ok else 'MISS'}; after a sync, as users run it)")
    for fmt in args.formats.split(","):
        walls = time_report(config_path, fmt, args.repeat, before=lambda: as_if_changed(config_path))
        print(f"  --format {fmt:<6} best {min(walls):.2f} s, median {statistics.median(walls):.2f} s "
              "(the store changed since the last sync: everything aggregated again)")
    keep_as_a_pass_does(config_path)
    walls = time_command(["--version"], args.repeat)
    print(f"  okrsync --version   best {min(walls):.2f} s, median {statistics.median(walls):.2f} s "
          "(process start + imports, paid by every command)")
    walls = time_sync_report(config_path, args.repeat)
    print(f"  sync's report       best {min(walls):.2f} s, median {statistics.median(walls):.2f} s "
          "(assemble_report + table after a pass, in-process)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
