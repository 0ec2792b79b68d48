"""``python bench/run.py --size 20000``: okrsync against the sandbox trackers, next to a naive script.

One run, one table. The sandbox Jira and GitHub run in their own process
(``bench.sandbox_server``); okrsync (``okrsync sync``) and the naive script (``bench/naive.py``)
each run as a subprocess, so the wall time, CPU time and peak RSS measured are theirs alone.
Requests are counted from the sandbox's request log, not from okrsync's own counters.

Phases: okrsync full sync, naive full run, 1% of the issues changed, okrsync incremental sync,
naive run again (it has no other mode), okrsync idle sync. Each request row is checked against
its floor (research §2; the formula is printed next to it): PASS when requests ≤ floor + 1%,
and for the idle pass GitHub quota must be 0 and Jira one request. The naive script computes the
same key results with okrsync's arithmetic; both must agree. Exit status 1 on any FAIL.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import select
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # ``python bench/run.py`` as well as ``python -m bench.run``
    sys.path.insert(0, str(ROOT))

from bench.bytecode import compile_okrsync  # noqa: E402
from bench.calibrate import workload  # noqa: E402
from bench.scenario import ENV, JQL_RULES, config_text  # noqa: E402
from connectors.jira import JiraSource  # noqa: E402
from syncer.config import Config, load  # noqa: E402
from syncer.store import Store  # noqa: E402

TIME = "/usr/bin/time" if Path("/usr/bin/time").exists() else None


@dataclass
class Measure:
    """One subprocess: wall seconds, CPU seconds (user + system), peak RSS in MB, its stdout."""

    wall: float
    cpu: float
    rss_mb: float
    stdout: str
    returncode: int


@dataclass
class Row:
    phase: str
    source: str
    requests: int
    floor: int
    formula: str
    quota: int | None = None
    ok: bool = True
    note: str = ""


@dataclass
class Result:
    size: int
    gzip: bool = False
    """The sandbox compressed its answers (``--gzip``)."""
    rows: list[Row] = field(default_factory=list)
    runs: dict[str, Measure] = field(default_factory=dict)
    naive_requests: dict[str, int] = field(default_factory=dict)
    fetched: dict[str, int] = field(default_factory=dict)
    agree: dict[str, list[str]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures and all(r.ok for r in self.rows)


def measure(cmd: list[str], env: dict[str, str], timeout: float, profile: Path | None = None) -> Measure:
    """Run ``cmd`` to completion; CPU and peak RSS of that process alone (GNU time, else psutil).

    ``profile``: a ``.txt`` path profiles the main thread with pyinstrument; a ``.spy`` path
    samples every thread with py-spy (collapsed stacks), which is what a pass whose sources
    run on their own threads needs."""
    if profile is not None and profile.suffix == ".spy":
        spy = Path(sys.executable).with_name("py-spy")
        cmd = [str(spy), "record", "--format", "raw", "-r", "250", "-o", str(profile), "--", *cmd]
    elif profile is not None:
        cmd = [cmd[0], "-m", "pyinstrument", "-o", str(profile), "-r", "text", *cmd[1:]]
    with tempfile.NamedTemporaryFile("r", suffix=".time") as stats:
        full = [TIME, "-f", "%e %U %S %M", "-o", stats.name, *cmd] if TIME else cmd
        started = time.monotonic()
        proc = subprocess.Popen(full, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        peak = 0.0
        try:
            if TIME:
                out, err = proc.communicate(timeout=timeout)
            else:
                out, err, peak = _poll(proc, timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise RuntimeError(f"{' '.join(cmd[:4])} did not finish within {timeout:.0f} s") from None
        wall = time.monotonic() - started
        if proc.returncode not in (0, 1):
            raise RuntimeError(f"{' '.join(cmd[:4])} exited {proc.returncode}: {err.strip()[-2000:]}")
        if TIME:
            last = stats.read().strip().splitlines()[-1].split()
            cpu, peak = float(last[1]) + float(last[2]), float(last[3]) / 1024
        else:
            cpu = 0.0
    return Measure(wall, cpu, peak, out, proc.returncode)


def _poll(proc: subprocess.Popen[str], timeout: float) -> tuple[str, str, float]:
    import psutil  # only without GNU time

    handle = psutil.Process(proc.pid)
    peak = 0.0
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() > deadline:
            raise subprocess.TimeoutExpired(proc.args, timeout)
        try:
            peak = max(peak, handle.memory_info().rss / 2**20)
        except psutil.Error:
            break
        time.sleep(0.05)
    out, err = proc.communicate()
    return out, err, peak


class Sandbox:
    """``python -m bench.sandbox_server --only T`` as one child process per tracker; stopped by ``close``."""

    def __init__(self, size: int, timeout: float = 600.0, *, gzip: bool = False) -> None:
        self.procs: list[subprocess.Popen[str]] = []
        urls: dict[str, str] = {}
        try:
            for tracker in ("jira", "github"):
                proc = subprocess.Popen(
                    [sys.executable, "-m", "bench.sandbox_server", "--size", str(size), "--only", tracker,
                     *(["--gzip"] if gzip else [])],
                    cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                )
                self.procs.append(proc)
            for proc in self.procs:  # both build their issues at the same time
                assert proc.stdout is not None
                ready, _, _ = select.select([proc.stdout], [], [], timeout)
                line = proc.stdout.readline() if ready else ""
                if not line:
                    raise RuntimeError(f"the sandbox did not start within {timeout:.0f} s")
                urls.update(json.loads(line))
        except BaseException:
            self.close()
            raise
        self.jira: str = urls["jira"]
        self.github: str = urls["github"]

    def scenario_info(self) -> dict[str, Any]:
        """What ``bench.scenario.config_text`` needs: each tracker's ``bench_info`` and its URL."""
        jira_info = self.control(self.jira, "bench_info", {"jql": list(JQL_RULES)})
        github_info = self.control(self.github, "bench_info")
        return {"jira": {**jira_info, "url": self.jira}, "github": {**github_info, "url": self.github}}

    def control(self, url: str, action: str, body: Any = None) -> Any:
        response = requests.post(f"{url}/_sandbox/{action}", json=body or {}, timeout=600)
        response.raise_for_status()
        return response.json()

    def clear_logs(self) -> None:
        for url in (self.jira, self.github):
            requests.delete(f"{url}/_sandbox/requests", timeout=30).raise_for_status()

    def log(self, url: str) -> list[dict[str, Any]]:
        response = requests.get(f"{url}/_sandbox/requests", timeout=120)
        response.raise_for_status()
        entries: list[dict[str, Any]] = response.json()
        return entries

    def close(self) -> None:
        for proc in self.procs:
            try:
                if proc.stdin:
                    proc.stdin.close()
                proc.terminate()
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _within(requests_made: int, floor: int) -> bool:
    return requests_made <= math.floor(floor * 1.01)


def _github_quota(log: list[dict[str, Any]]) -> int:
    """Requests GitHub charges: everything but authenticated 304s and ``/rate_limit``."""
    return sum(1 for r in log if r["status"] != 304 and r["path"] != "/rate_limit")


def _overlap_window(sandbox: Sandbox, config: Config) -> int:
    """Issues Jira's next incremental query re-reads: those updated inside the overlap window
    before the stored cursor (the eventual-consistency margin); they are in its pages."""
    with Store.open(config.store_url()) as store:
        cursor = store.get_cursor("jira") or {}
    source = config.sources["jira"]
    assert isinstance(source, JiraSource)
    overlap_ms = int(source.overlap.total_seconds() * 1000)
    window = f"({source.scope}) AND updated >= {int(cursor.get('updated_ms', 0)) - overlap_ms}"
    return int(sandbox.control(sandbox.jira, "bench_info", {"jql": [window]})["jql"][window])


def _jira_overlap(config: Config) -> timedelta:
    source = config.sources["jira"]
    assert isinstance(source, JiraSource)
    return source.overlap


def _stored(config: Config) -> tuple[int, dict[str, Any]]:
    """What the last okrsync pass fetched and the key results it stored (read from its store, so
    the pass can print its default table rather than a JSON report for us to parse)."""
    with Store.open(config.store_url()) as store:
        last = store.last_runs(1)[0]
        snapshots = store.latest_snapshots()
    fetched = sum(int(s.get("fetched", 0)) for s in last["detail"].get("sources", []))
    krs = {kr: {"current": round(float(s["current"]), 2), "total": s["total"], "done": s["done"]}
           for kr, s in snapshots.items()}
    return fetched, krs


def _compare(ours: dict[str, Any], naive: dict[str, Any]) -> list[str]:
    return [f"{kr}: okrsync {ours.get(kr)} naive {naive.get(kr)}"
            for kr in sorted(set(ours) | set(naive)) if ours.get(kr) != naive.get(kr)]


def run_bench(size: int, *, naive: bool = True, fraction: float = 0.01, step_timeout: float = 1500.0,
              workdir: Path | None = None, profile: Path | None = None, log: Any = None,
              profiler: str = "pyinstrument",
              fmt: str = "table", gzip: bool = False) -> Result:
    """The whole bench at ``size`` issues; see the module docstring."""
    say = log or (lambda text: print(text, file=sys.stderr, flush=True))
    folder = workdir or Path(tempfile.mkdtemp(prefix="okrsync-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    result = Result(size, gzip=gzip)
    say(f"bench: starting the sandbox with {size} issues" + (", answers gzip-compressed" if gzip else ""))
    sandbox = Sandbox(size, gzip=gzip)
    try:
        info = sandbox.scenario_info()
        jira_info, github_info = info["jira"], info["github"]
        db = folder / "okrsync.db"
        for stale in folder.glob("okrsync.db*"):
            stale.unlink()
        config = folder / "okrs.yaml"
        config.write_text(config_text(info, f"sqlite:///{db}"), encoding="utf-8")
        env = {**os.environ, **ENV, "NO_COLOR": "1"}
        okrsync = [sys.executable, "-m", "syncer", "sync", "-c", str(config), "--format", fmt]
        naive_cmd = [sys.executable, "-m", "bench.naive", "-c", str(config)]
        repos: dict[str, int] = github_info["repos"]
        n_jira = int(jira_info["issues"])
        n_github = sum(repos.values())
        jql_sizes: dict[str, int] = jira_info["jql"]

        def step(name: str, cmd: list[str], profile_to: Path | None = None) -> tuple[Measure, dict[str, Any]]:
            sandbox.clear_logs()
            say(f"bench: {name}")
            run = measure(cmd, env, step_timeout, profile_to)
            result.runs[name] = run
            logs = {"jira": sandbox.log(sandbox.jira), "github": sandbox.log(sandbox.github)}
            if run.returncode != 0:
                result.failures.append(f"{name} exited {run.returncode}")
            return run, logs

        # -- full ------------------------------------------------------------------------------
        if profile is not None:
            profile.mkdir(parents=True, exist_ok=True)

        def prof(name: str) -> Path | None:
            return profile / f"{name}.{'spy' if profiler == 'py-spy' else 'txt'}" if profile is not None else None

        full, logs = step("okrsync full", [*okrsync, "--full"], prof("full"))
        loaded = load(config, env=ENV)
        result.fetched["full"], ours_full = _stored(loaded)
        jql_pages = sum(max(1, _cdiv(m, 5000)) for m in jql_sizes.values())
        floor = 2 + max(1, _cdiv(n_jira, 5000)) + _cdiv(n_jira, 1000) + 1 + jql_pages
        result.rows.append(Row("full", "jira", len(logs["jira"]), floor,
                               f"2 meta + ⌈{n_jira}/5000⌉ ids + ⌈{n_jira}/1000⌉ bulkfetch + 1/source"
                               f" + Σ{len(jql_sizes)} JQL ⌈m/5000⌉"))
        floor = sum(max(1, _cdiv(n, 100)) for n in repos.values())
        quota = _github_quota(logs["github"])
        result.rows.append(Row("full", "github", len(logs["github"]), floor,
                               f"Σ{len(repos)} repos ⌈n_r/100⌉ (N={n_github})", quota))
        reread = _overlap_window(sandbox, loaded)
        if naive:
            run, logs = step("naive full", naive_cmd)
            result.naive_requests["full"] = len(logs["jira"]) + len(logs["github"])
            result.agree["full"] = _compare(ours_full, json.loads(run.stdout)["key_results"])

        # -- incremental: 1% changed -------------------------------------------------------------
        jira_changed = int(sandbox.control(sandbox.jira, "bench_mutate", {"fraction": fraction})["changed"])
        github_changes = sandbox.control(sandbox.github, "bench_mutate", {"fraction": fraction})
        per_repo: dict[str, int] = github_changes["per_repo"]
        say(f"bench: changed {jira_changed} Jira issues and {github_changes['changed']} GitHub issues "
            f"in {len(per_repo)} repositories")
        incr, logs = step("okrsync incremental", okrsync, prof("incremental"))
        result.fetched["incremental"], ours_incr = _stored(loaded)
        floor = max(1, _cdiv(jira_changed + reread, 100)) + len(jql_sizes) * _cdiv(jira_changed, 1000)
        result.rows.append(Row("incremental", "jira", len(logs["jira"]), floor,
                               f"⌈(k+o)/100⌉ one query (k={jira_changed} changed, o={reread} re-read in the "
                               f"overlap) + {len(jql_sizes)} JQL × ⌈k/1000⌉ among k"))
        quota_floor = sum(_cdiv(k, 100) for k in per_repo.values())
        floor = len(repos) + quota_floor - len(per_repo)
        quota = _github_quota(logs["github"])
        row = Row("incremental", "github", len(logs["github"]), floor,
                  f"R={len(repos)} conditional + Σ{len(per_repo)} changed (⌈k_r/100⌉−1); quota Σ⌈k_r/100⌉"
                  f"={quota_floor}", quota)
        row.ok = _within(row.requests, floor) and _within(quota, quota_floor)
        result.rows.append(row)
        reread_idle = _overlap_window(sandbox, loaded)
        if naive:
            run, logs = step("naive incremental", naive_cmd)
            result.naive_requests["incremental"] = len(logs["jira"]) + len(logs["github"])
            result.agree["incremental"] = _compare(ours_incr, json.loads(run.stdout)["key_results"])

        # -- idle --------------------------------------------------------------------------------
        # The sandbox Jira's clock moves on by the overlap first (a daemon gets there by waiting):
        # this idle pass still re-reads the burst (it was inside the overlap before the previous
        # pass's start), its successor starts its window after the burst and makes one request.
        overlap_s = _jira_overlap(loaded).total_seconds()
        sandbox.control(sandbox.jira, "clock", {"advance": overlap_s + 1})
        idle, logs = step("okrsync idle", okrsync, prof("idle"))
        result.fetched["idle"] = _stored(loaded)[0]
        result.rows.append(Row("idle", "jira", len(logs["jira"]), max(1, _cdiv(reread_idle, 100)),
                               f"after the burst: the o={reread_idle} issues changed inside the overlap before "
                               "the previous pass's start are re-read, ⌈o/100⌉"))
        quota = _github_quota(logs["github"])
        row = Row("idle", "github", len(logs["github"]), len(repos), f"R={len(repos)} conditional, quota 0", quota)
        row.ok = _within(row.requests, row.floor) and quota == 0
        result.rows.append(row)
        later, logs = step("okrsync idle later", okrsync, prof("idle-later"))
        result.fetched["idle later"] = _stored(loaded)[0]
        result.rows.append(Row("idle later", "jira", len(logs["jira"]), 1,
                               f"1 request per source (the previous pass began > overlap = {overlap_s:.0f} s after "
                               "the burst)"))
        quota = _github_quota(logs["github"])
        row = Row("idle later", "github", len(logs["github"]), len(repos), f"R={len(repos)} conditional, quota 0",
                  quota)
        row.ok = _within(row.requests, row.floor) and quota == 0
        result.rows.append(row)
        for row in result.rows:
            if row.source == "jira" or row.phase == "full":
                row.ok = row.ok and _within(row.requests, row.floor)
        for phase, diffs in result.agree.items():
            if diffs:
                result.failures.append(f"{phase}: {len(diffs)} key results differ from the naive script: "
                                       + "; ".join(diffs[:3]))
        return result
    finally:
        sandbox.close()


def table(result: Result) -> str:
    """The one table: requests vs floor per source, then the process figures and ratios per phase."""
    head = (f"{'phase':<12} {'source':<7} {'requests':>8} {'floor':>6} {'quota':>6} {'check':<5} "
            f"{'wall s':>7} {'CPU s':>7} {'CPU µs/issue':>12} {'RSS MB':>7} {'naive req':>9} "
            f"{'naive s':>8} {'× req':>6} {'× wall':>6}  formula")
    lines = [f"okrsync bench: {result.size} issues (half Jira over 20 projects, half GitHub over 100 repos), "
             "40 key results" + (", answers gzip-compressed" if result.gzip else ""), head, "-" * len(head)]
    runs = {"full": "okrsync full", "incremental": "okrsync incremental", "idle": "okrsync idle",
            "idle later": "okrsync idle later"}
    naive_runs = {"full": "naive full", "incremental": "naive incremental"}
    for phase in ("full", "incremental", "idle", "idle later"):
        rows = [r for r in result.rows if r.phase == phase]
        for row in rows:
            quota = "" if row.quota is None else str(row.quota)
            lines.append(f"{row.phase:<12} {row.source:<7} {row.requests:>8} {row.floor:>6} {quota:>6} "
                         f"{'PASS' if row.ok else 'FAIL':<5} {'':>7} {'':>7} {'':>12} {'':>7} {'':>9} {'':>8} "
                         f"{'':>6} {'':>6}  {row.formula}")
        run = result.runs.get(runs[phase])
        if run is None:
            continue
        total = sum(r.requests for r in rows)
        fetched = result.fetched.get(phase, 0)
        per_issue = f"{run.cpu / fetched * 1e6:.0f}" if fetched else "-"
        naive = result.runs.get(naive_runs.get(phase, ""))
        naive_req = result.naive_requests.get(phase)
        x_req = f"{naive_req / total:.1f}" if naive_req and total else ""
        x_wall = f"{naive.wall / run.wall:.1f}" if naive else ""
        lines.append(f"{phase:<12} {'total':<7} {total:>8} {sum(r.floor for r in rows):>6} {'':>6} "
                     f"{'PASS' if all(r.ok for r in rows) else 'FAIL':<5} {run.wall:>7.2f} {run.cpu:>7.2f} "
                     f"{per_issue:>12} {run.rss_mb:>7.1f} {naive_req if naive_req is not None else '':>9} "
                     f"{f'{naive.wall:.2f}' if naive else '':>8} {x_req:>6} {x_wall:>6}  "
                     f"{fetched} issues fetched")
    for phase, diffs in result.agree.items():
        lines.append(f"key results, {phase}: okrsync and the naive script "
                     + ("agree on all 40" if not diffs else f"DIFFER on {len(diffs)}: {'; '.join(diffs[:3])}"))
    lines.extend(f"FAIL: {failure}" for failure in result.failures)
    lines.append("RESULT: " + ("PASS" if result.passed else "FAIL"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=20000, help="issues in total (half Jira, half GitHub)")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive script")
    parser.add_argument("--fraction", type=float, default=0.01, help="share of issues changed (default 1%%)")
    parser.add_argument("--step-timeout", type=float, default=1500.0, help="seconds allowed per subprocess")
    parser.add_argument("--dir", type=Path, help="keep the config and store here (default: a temporary folder)")
    parser.add_argument("--profile", type=Path,
                        help="profile each okrsync pass with pyinstrument into this folder (slows them down)")
    parser.add_argument("--profiler", choices=("pyinstrument", "py-spy"), default="pyinstrument",
                        help="pyinstrument (main thread, text tree) or py-spy (every thread, collapsed "
                             "stacks; needs `pip install py-spy`)")
    parser.add_argument("--gzip", action="store_true",
                        help="the sandbox compresses its answers for clients that accept gzip, as GitHub and "
                             "Jira Cloud do (requests and so okrsync and the naive script ask for it); off by "
                             "default, as in the earlier sessions' figures")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--format", choices=("table", "json", "markdown"), default="table",
                        help="okrsync sync's output (default: its default, the table)")
    args = parser.parse_args(argv)
    compile_okrsync()  # what pip install does; see bench/bytecode.py
    started = time.monotonic()
    # The machines' speed moves by up to a half within minutes (bench/RESULTS.md): the fixed
    # workload before and after says which phase a run's figures come from.
    calibration = [workload()]
    result = run_bench(args.size, naive=not args.no_naive, fraction=args.fraction, step_timeout=args.step_timeout,
                       workdir=args.dir, profile=args.profile, fmt=args.format, profiler=args.profiler,
                       gzip=args.gzip)
    calibration.append(workload())
    print(table(result))
    print(f"calibration (python -m bench.calibrate, CPU s): {calibration[0]:.2f} before, {calibration[1]:.2f} after")
    print(f"bench wall time: {time.monotonic() - started:.1f} s")
    if args.json:
        args.json.write_text(json.dumps({
            "size": result.size, "passed": result.passed, "gzip": result.gzip,
            "rows": [r.__dict__ for r in result.rows],
            "runs": {k: {"wall": v.wall, "cpu": v.cpu, "rss_mb": v.rss_mb} for k, v in result.runs.items()},
            "naive_requests": result.naive_requests, "fetched": result.fetched, "failures": result.failures,
            "calibration_s": {"before": round(calibration[0], 3), "after": round(calibration[1], 3)},
        }, indent=2), encoding="utf-8")
    return 0 if result.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
