"""The ``okrsync`` command line (CONTRACT §1).

Every command is a thin shell around a library call: load the config, open the store, call
``run_once`` / ``assemble_report`` / the store, render. Errors are one line each on stderr with
the exit code of their class (``syncer.errors``); a traceback only with ``--debug``; secrets are
redacted from anything printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from connectors.http import redact
from syncer import __version__
from syncer.config import Config, load, parse_duration, schema_text
from syncer.errors import ConfigError, OkrsyncError
from syncer.store import Store, copy_store

__all__ = ["GC_THRESHOLD", "main", "run", "tune_gc"]

FORMATS_SYNC = ("table", "json", "markdown")
FORMATS_REPORT = ("table", "json", "markdown", "html")

log = logging.getLogger("okrsync")


GC_THRESHOLD = (50_000, 20, 100)
"""``gc.set_threshold`` for an okrsync process (Python's default is (700, 10, 10))."""


def tune_gc() -> None:
    """Collect cyclic garbage less often: a pass allocates millions of short-lived, acyclic
    objects (decoded answers, items, rows), and at the default threshold the collector ran
    every 700 of them and traversed the whole heap often: ~10% of a 200k full sync's CPU
    (perf), 24.8 -> 22.0 s CPU in A/B runs, peak RSS unchanged. Nothing okrsync keeps is cyclic."""
    import gc

    gc.set_threshold(*GC_THRESHOLD)


def run() -> int:
    """The ``okrsync`` process: ``main``, then leave the heap to the operating system.

    After the last line CPython tears its modules down and collects the whole heap several
    times on the way: 0.31-0.41 s after a 1% pass over a 200k store on a slow machine, 0.03 s
    with every object moved to the permanent generation first (``gc.freeze``, which those
    collections skip; bench/RESULTS.md). Nothing is lost by it: atexit handlers (logging's
    flush), the standard streams' flush and the end of non-daemon threads still run; only
    finalizers of objects in reference cycles do not. okrsync closes its store (the WAL is
    checkpointed and removed) and its thread pools before ``main`` returns; the trackers'
    keep-alive sockets are closed by the operating system. A plugin connector that must flush
    something at exit should use ``atexit`` or ``weakref.finalize``, not ``__del__``. Tests call
    ``main``: a frozen heap in a long-lived process would never be collected again."""
    import gc

    try:
        return main()
    finally:
        gc.freeze()


def main(argv: Sequence[str] | None = None, *, now: Callable[[], datetime] | None = None) -> int:
    """Run one command; returns the process exit code."""
    tune_gc()
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    _configure_logging(args.debug)
    secrets: tuple[str, ...] = ()
    try:
        handler: Callable[[argparse.Namespace], int] = args.handler
        if now is not None:
            args.now = now
        return handler(args)
    except OkrsyncError as exc:
        secrets = _secrets_of(args)
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(redact(f"okrsync: {line}" if not _located(line) else line, secrets), file=sys.stderr)
        if args.debug:
            raise
        return exc.exit_code
    except KeyboardInterrupt:
        print("okrsync: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the last line of defence: one clear line, never a traceback by default
        if args.debug:
            raise
        secrets = _secrets_of(args)
        print(redact(f"okrsync: internal error: {type(exc).__name__}: {exc} (run with --debug for details)",
                     secrets), file=sys.stderr)
        return 1


# -- commands -------------------------------------------------------------------------------


def _cmd_validate(args: argparse.Namespace) -> int:
    config = _config(args)
    krs = config.key_results()
    print(f"{config.path}: ok ({len(config.objectives)} objectives, {len(krs)} key results, "
          f"{len(config.sources)} sources)")
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    sys.stdout.write(schema_text())
    return 0


def _cmd_sync(args: argparse.Namespace) -> int:
    from syncer.assemble import UnalignedPrefetch, assemble_report
    from syncer.sync import SyncOptions, run_once

    config = _config(args)
    now = _now(args)
    with Store.open(config.store_url(), dry_run=args.dry_run) as store:
        prefetch = UnalignedPrefetch(config, store)
        options = SyncOptions(
            full=args.full, dry_run=args.dry_run, sources=tuple(args.source) if args.source else None,
            on_progress=_progress_hook() if _tty(sys.stderr) and not args.quiet else None,
            after_sources=prefetch.start,
        )
        try:
            result = run_once(config, store, options, now=now)
            data = assemble_report(
                config, store, now(), outcomes=result.outcomes, writes=result.writes,
                krs=result.key_results or None, changes=result.changes, dry_run=args.dry_run, with_items=False,
                unaligned_limit=args.unaligned_limit, prefetched=prefetch,
            )
        finally:
            prefetch.close()
        store.keep_aggregates()  # the next `okrsync report` reads them instead of aggregating again
        _emit(args, data)
    for outcome in result.outcomes:
        if not outcome.ok:
            print(redact(f"okrsync: source {outcome.name} failed: {outcome.error}", config.secrets()),
                  file=sys.stderr)
    for error in result.write_errors:
        print(f"okrsync: {error}", file=sys.stderr)
    for name in result.skipped:
        print(f"okrsync: source {name} skipped: another worker is syncing it", file=sys.stderr)
    return result.exit_code


def _cmd_report(args: argparse.Namespace) -> int:
    from syncer.assemble import assemble_report

    config = _config(args)
    with Store.open(config.store_url()) as store:
        data = assemble_report(config, store, _now(args)(), with_items=args.format in ("html", "markdown"),
                               unaligned_limit=args.unaligned_limit)
        _emit(args, data)
    return 0


def _cmd_checkin(args: argparse.Namespace) -> int:
    config = _config(args)
    found = config.key_result(args.kr_id)
    if found is None:
        raise ConfigError(f"{args.kr_id}: no such key result in {config.path}")
    if found[1].metric != "manual":
        raise ConfigError(
            f"{args.kr_id}: metric is {found[1].metric}; check-ins are for key results with metric manual"
        )
    try:
        value = float(args.value)
    except ValueError:
        raise ConfigError(f"{args.value!r}: not a number") from None
    if not math.isfinite(value):  # float() accepts nan and inf; the store would refuse them later
        raise ConfigError(f"{args.value!r}: not a finite number")
    at = _now(args)()
    with Store.open(config.store_url()) as store:
        store.add_checkin(args.kr_id, value, args.note, at)
    print(f"{args.kr_id}: checked in {value:g} at {at:%Y-%m-%d %H:%M}Z")
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    from syncer.explain import explain

    config = _config(args)
    if config.key_result(args.kr_id) is None:
        raise ConfigError(f"{args.kr_id}: no such key result in {config.path}")
    with Store.open(config.store_url()) as store:
        text = explain(config, store, args.kr_id, _now(args)(), as_json=args.format == "json")
    sys.stdout.write(text)
    return 0


def _cmd_daemon(args: argparse.Namespace) -> int:
    from syncer.daemon import Daemon

    config = _config(args)
    interval = parse_duration(args.interval) if args.interval else config.schedule.interval
    host, port = parse_listen(args.listen or "127.0.0.1:8080")
    daemon = Daemon(
        Path(args.config_path), interval=interval, listen=(host, port),
        worker_mode=args.worker, once=args.once,
    )
    return daemon.run()


def _cmd_demo(args: argparse.Namespace) -> int:
    from syncer.demo import run_demo

    return run_demo(keep=args.keep, workdir=Path(args.dir) if args.dir else None, fmt=args.format,
                    listen=args.listen)


def _cmd_status(args: argparse.Namespace) -> int:
    config = _config(args)
    with Store.open(config.store_url()) as store:
        leases = store.leases()
        status = store.source_status()
        runs = store.last_runs(5)
    if args.format == "json":
        print(json.dumps({"leases": leases, "sources": status, "runs": runs}, default=str, indent=2))
        return 0
    print(f"store: {_redact_url(config.store_url())}")
    print("sources:")
    for name in config.sources:
        row = status.get(name, {})
        holder = next((lease for lease in leases if lease["name"] == f"source:{name}"), None)
        held = "idle"
        if holder:
            expired = holder["expires_at"] <= _now(args)()
            held = (f"held by {holder['holder']} since {_fmt(holder['acquired_at'])}, "
                    f"{'expired' if expired else 'expires'} {_fmt(holder['expires_at'])}")
        ok = "failing: " + str(row.get("last_error")) if row.get("last_error") else "ok"
        print(f"  {name:<12} {held:<90} last success {_fmt(row.get('last_success_at'))}  {ok}")
    print("recent runs:")
    for run in runs:
        print(f"  #{run['id']:<5} {_fmt(run['started_at'])}  {run['outcome']:<8} worker {run['worker']}  "
              f"requests {run['requests']}")
    return 0


def _cmd_migrate(args: argparse.Namespace) -> int:
    with Store.open(args.source_url) as src, Store.open(args.target_url) as dst:
        counts = copy_store(src, dst)
    bad = {t: c for t, c in counts.items() if c[0] != c[1]}
    for table, (a, b) in counts.items():
        print(f"{table:<14} {a:>9} -> {b:>9}{'  MISMATCH' if (a != b) else ''}")
    if bad:
        raise OkrsyncError(f"row counts differ after the copy in {', '.join(bad)}")
    print(f"copied {_redact_url(args.source_url)} -> {_redact_url(args.target_url)}: row counts verified")
    return 0


# -- helpers --------------------------------------------------------------------------------


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[v6]:PORT`` -> (host, port); a bad value is a usage error."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--listen {text}: write it HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080")
    return host, int(port)


def _config(args: argparse.Namespace) -> Config:
    config = load(args.config_path)
    args.loaded_config = config
    return config


def _secrets_of(args: argparse.Namespace) -> tuple[str, ...]:
    config: Config | None = getattr(args, "loaded_config", None)
    return config.secrets() if config is not None else ()


def _located(line: str) -> bool:
    """``FILE:LINE: message`` lines are printed as they are (editors jump to them).

    ``cannot listen on 127.0.0.1:8080: ...`` is not one: a FILE with a space in it must exist.
    """
    head = line.split(": ", 1)[0]
    file, sep, number = head.rpartition(":")
    if not (sep and file and number.isdigit()):
        return False
    return not any(c.isspace() for c in file) or Path(file).exists()


def _now(args: argparse.Namespace) -> Callable[[], datetime]:
    from syncer.results import utc_now

    fixed: Callable[[], datetime] | None = getattr(args, "now", None)
    return fixed or utc_now


def _emit(args: argparse.Namespace, data: Any) -> None:
    from syncer.report import render

    out: TextIO = sys.stdout
    to_file = bool(args.output)
    color = not to_file and _tty(out) and os.environ.get("NO_COLOR") is None
    text = render(data, args.format, color=color)
    if to_file:
        path = Path(args.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        print(f"wrote {path}", file=sys.stderr)
    else:
        out.write(text if text.endswith("\n") else text + "\n")


def _tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _progress_hook() -> Callable[[str, int, bool], None]:
    """A rich progress line per source while it fetches (only on a terminal)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), transient=True,
                        console=__import__("rich.console").console.Console(stderr=True))
    tasks: dict[str, Any] = {}
    active: set[str] = set()
    lock = threading.Lock()  # sources report from their own threads

    def hook(source: str, fetched: int, finished: bool) -> None:
        with lock:
            if not active and not finished:
                progress.start()
            if source not in tasks:
                tasks[source] = progress.add_task(f"{source}: fetching…", total=None)
            if not finished:
                active.add(source)
            label = f"{source}: {fetched} items" + (" ✓" if finished else " …")
            progress.update(tasks[source], description=label)
            if finished:
                progress.stop_task(tasks[source])
                was_active = source in active
                active.discard(source)
                if was_active and not active:
                    progress.stop()  # the last source is done: the report starts on a clean line

    return hook


def _redact_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown without anything after the scheme
        return url.split("://", 1)[0] + "://***"


def _fmt(value: Any) -> str:
    if value is None:
        return "never"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S}Z"
    return str(value)


class _JsonFormatter(logging.Formatter):
    """One JSON object per line (the daemon's log when stderr is not a terminal)."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "at": datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="seconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            payload.update(extra)
        return json.dumps(payload, default=str)


def _configure_logging(debug: bool) -> None:
    root = logging.getLogger("okrsync")
    if root.handlers:
        root.setLevel(logging.DEBUG if debug else logging.INFO)
        return
    handler = logging.StreamHandler(sys.stderr)
    if _tty(sys.stderr):
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    else:
        handler.setFormatter(_JsonFormatter())
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    root.propagate = False


def _count(text: str) -> int:
    """A whole number >= 0 for argparse (a bad one is a usage error, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative (0 means all)")
    return value


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c", "--config", dest="config_path",
        default=os.environ.get("OKRSYNC_CONFIG", "okrs.yaml"),
        help="config file (default: $OKRSYNC_CONFIG, else ./okrs.yaml)",
    )
    # SUPPRESS: a subcommand that does not see --debug must not reset `okrsync --debug CMD` to False.
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks and debug logs")
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--output", "-o", help="write the report to this file instead of stdout")
    output.add_argument("--unaligned-limit", type=_count, default=200, metavar="N",
                        help="list at most N unaligned items (default 200; 0 = all); counts cover all")

    parser = argparse.ArgumentParser(prog="okrsync", description="Link Jira and GitHub work to OKRs.")
    parser.add_argument("--version", action="version", version=f"okrsync {__version__}")
    parser.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, handler: Callable[[argparse.Namespace], int], help_text: str,
            parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
        command = sub.add_parser(name, parents=parents, help=help_text, description=help_text)
        command.set_defaults(handler=handler)
        return command

    add("validate", _cmd_validate, "check the config; print every problem as FILE:LINE: message", [common])
    add("schema", _cmd_schema, "print the config's JSON Schema", [common])
    sync = add("sync", _cmd_sync, "one sync pass: fetch, store, recompute, write back, report", [common, output])
    sync.add_argument("--full", action="store_true", help="re-read everything and run the deletion census")
    sync.add_argument("--dry-run", action="store_true", help="fetch and compute, write nothing, print the plan")
    sync.add_argument("--source", action="append", help="only this source (repeatable)")
    sync.add_argument("--format", choices=FORMATS_SYNC, default="table")
    sync.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    report = add("report", _cmd_report, "the report from the store (no network)", [common, output])
    report.add_argument("--format", choices=FORMATS_REPORT, default="table")
    checkin = add("checkin", _cmd_checkin, "record a value for a manual key result", [common])
    checkin.add_argument("kr_id", metavar="KR_ID")
    checkin.add_argument("value", metavar="VALUE")
    checkin.add_argument("--note", help="why the value moved")
    explain = add("explain", _cmd_explain, "the items behind a key result and what changed", [common])
    explain.add_argument("kr_id", metavar="KR_ID")
    explain.add_argument("--format", choices=("table", "json"), default="table")
    daemon = add("daemon", _cmd_daemon, "sync on a schedule; serve health, metrics and the report", [common])
    daemon.add_argument("--interval", help="time between passes, e.g. 15m (default: schedule.interval)")
    daemon.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT for /healthz, /metrics, /")
    daemon.add_argument("--worker", action="store_true",
                        help="share sources with other workers on the same store (skip busy sources)")
    daemon.add_argument("--once", action="store_true", help=argparse.SUPPRESS)
    demo = add("demo", _cmd_demo, "run okrsync against built-in sandbox trackers (no credentials)", [])
    demo.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    demo.add_argument("--keep", action="store_true", help="leave the sandbox and a daemon running")
    demo.add_argument("--dir", help="where to write the demo config and store (default: a temp folder)")
    demo.add_argument("--format", choices=FORMATS_SYNC, default="table")
    demo.add_argument("--listen", default="127.0.0.1:8080", help="daemon address with --keep")
    status = add("status", _cmd_status, "which worker holds which source, and recent runs", [common])
    status.add_argument("--format", choices=("table", "json"), default="table")
    migrate = add("migrate", _cmd_migrate, "copy a store to another (history included)", [])
    migrate.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    migrate.add_argument("--from", dest="source_url", required=True, help="source store URL")
    migrate.add_argument("--to", dest="target_url", required=True, help="target store URL")
    return parser
