"""Soak: ``okrsync daemon`` against both sandbox trackers for N minutes under faults and churn.

    python bench/soak.py --minutes 10            # the recorded run (bench/RESULTS.md "## Soak")
    python bench/soak.py --minutes 1 --size 500  # a quick look

The daemon runs as a subprocess (5 s interval) against the sandbox Jira and GitHub served by
this process (bench data, ``--size`` items each). While it runs, this script changes issues at
random (status, labels, points, new issues) and the sandbox answers ~10% of requests with an
injected fault (500, 429 ``Retry-After: 1``, a truncated body). Every 5 s it samples the daemon's
RSS (psutil) and open file descriptors (/proc/PID/fd).

At the end: faults off, the daemon is stopped with SIGTERM (must exit 0), one clean incremental
``okrsync sync`` runs, and the checks are

- the store equals the sandbox's own truth (every item: key, state, excluded, points, labels),
  and the key-result numbers equal those of a fresh full sync into an empty store;
- RSS after warm-up grew by at most 20% (median of the last minute against the median of the
  first minute after warm-up);
- open fds at rest did not grow by more than 5: the fewest open in the last minute against the
  fewest in the first minute after warm-up (a pass holds 7 more while it runs: the trackers'
  connections and the store's; a sample can land inside one, so the last sample alone says
  nothing about a leak, while a leak raises the count between passes too).

Exit code 0 when every check holds; a JSON summary is printed (``--json PATH`` also writes it).
Every loop is bounded by the run's duration; every process started is stopped in ``finally``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import psutil  # noqa: E402

from syncer.model import WorkItem  # noqa: E402
from syncer.sandbox.github import GitHubApp, cycle_of, start_github_sandbox  # noqa: E402
from syncer.sandbox.jira import JiraApp, start_jira_sandbox  # noqa: E402
from syncer.sandbox.server import Fault, SandboxServer  # noqa: E402
from syncer.store import Store  # noqa: E402

JIRA_EMAIL = "soak@example.com"
JIRA_TOKEN = "soak-jira-token"
GITHUB_TOKEN = "soak-github-token"
REPOS = tuple(f"bench/repo-{i:02d}" for i in range(10))


def config_text(jira_url: str, github_url: str, now: datetime, store: str) -> str:
    name, start, end = cycle_of(now)
    repos = ", ".join(REPOS)
    return f"""\
version: 1
cycle: {{name: {name}, start: {start.isoformat()}, end: {end.isoformat()}}}
store: {store}
schedule: {{interval: 5s, jitter: 1s, census_every: 1d, full_every: 1d, deadline: 2m}}
sources:
  jira:
    type: jira
    url: {jira_url}
    auth:
      email: ${{SOAK_JIRA_EMAIL}}
      token: ${{SOAK_JIRA_TOKEN}}
    scope: project in (PLAT, MOB)
  github:
    type: github
    url: {github_url}
    token: ${{SOAK_GITHUB_TOKEN}}
    repos: [{repos}]
objectives:
  - id: ship
    title: Ship the quarter's work
    key_results:
      - id: perf-points
        title: Deliver performance points
        metric: sum_points_done
        target: 200
        match: [{{source: jira, jql: labels = perf}}]
      - id: mobile-done
        title: Finish mobile work
        metric: percent_done
        match: [{{source: jira, jql: project = MOB}}]
      - id: bugs-closed
        title: Close customer bugs
        metric: count_done
        target: 100
        match: [{{source: github, labels: [bug]}}]
      - id: web-open
        title: Keep repo-00 tidy
        metric: count_open
        start: 100
        target: 10
        match: [{{source: github, repo: bench/repo-00}}]
"""


def env_for(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")}
    env.update({"HOME": str(folder), "PYTHONPATH": str(REPO), "NO_COLOR": "1", "PYTHONUNBUFFERED": "1",
                "SOAK_JIRA_EMAIL": JIRA_EMAIL, "SOAK_JIRA_TOKEN": JIRA_TOKEN, "SOAK_GITHUB_TOKEN": GITHUB_TOKEN})
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def faults() -> list[Fault]:
    """~10% of tracker requests fail: 4% 500, 3% 429 Retry-After 1, 3% truncated bodies."""
    return [
        Fault(kind="status", status=500, probability=0.04, times=10**6),
        Fault(kind="status", status=429, headers={"Retry-After": "1"}, body={"message": "slow down"},
              probability=0.03 / 0.96, times=10**6),
        Fault(kind="truncate", keep=30, probability=0.03 / 0.93, times=10**6),
    ]


def mutate(rng: random.Random, jira: JiraApp, github: GitHubApp) -> str:
    """One random change a team could make; returns a short description."""
    roll = rng.random()
    if roll < 0.45:
        keys = [i.key for i in jira.issues.values() if i.id not in jira.deleted]
        key = rng.choice(keys)
        change: dict[str, Any] = {"key": key}
        pick = rng.random()
        if pick < 0.5:
            change["status"] = rng.choice(["To Do", "In Progress", "Done", "Won't Do"])
        elif pick < 0.75:
            change["labels"] = rng.choice([[], ["perf"], ["perf", "ux"]])
        else:
            change["points"] = rng.choice([None, 1.0, 3.0, 8.0])
        jira.control("update", change)
        return f"jira update {key}"
    if roll < 0.55:
        created = jira.control("create", {"project": rng.choice(["PLAT", "MOB"]), "summary": "Soak issue",
                                          "status": "In Progress", "labels": rng.choice([[], ["perf"]]),
                                          "points": 2})
        return f"jira create {created['key']}"
    repo = rng.choice(REPOS)
    if roll < 0.92:
        numbers = list(github.repos[repo].issues)
        number = rng.choice(numbers)
        args: dict[str, Any] = {"repo": repo, "number": number}
        if rng.random() < 0.6:
            args["state"] = rng.choice(["open", "closed"])
            if args["state"] == "closed":
                args["state_reason"] = rng.choice(["completed", "not_planned"])
        else:
            args["labels"] = rng.choice([[], ["bug"], ["bug", "customer"]])
        github.control("update", args)
        return f"github update {repo}#{number}"
    created = github.control("create", {"repo": repo, "title": "Soak issue", "labels": rng.choice([[], ["bug"]])})
    return f"github create {created['key']}"


def truth(jira: JiraApp, jira_url: str, github: GitHubApp) -> dict[tuple[str, str], WorkItem]:
    items = [*jira.truth("jira", jira_url), *github.truth("github", repos=REPOS)]
    return {(i.source, i.id): i for i in items}


def compare(store: Store, expected: dict[tuple[str, str], WorkItem]) -> list[str]:
    """Differences between the store and the truth (empty when equal)."""
    actual = {(i.source, i.id): i for i in store.iter_items()}
    problems: list[str] = []
    missing, extra = set(expected) - set(actual), set(actual) - set(expected)
    if missing:
        problems.append(f"{len(missing)} missing, e.g. {sorted(missing)[:3]}")
    if extra:
        problems.append(f"{len(extra)} extra, e.g. {sorted(extra)[:3]}")
    for ref in set(expected) & set(actual):
        want, got = expected[ref], actual[ref]
        a = (got.key, got.state, got.excluded, got.points, tuple(sorted(got.labels)))
        b = (want.key, want.state, want.excluded, want.points, tuple(sorted(want.labels)))
        if a != b:
            problems.append(f"{ref}: stored {a} != truth {b}")
    return problems[:20]


def numbers(store: Store) -> dict[str, float]:
    return {kr: float(s["current"]) for kr, s in sorted(store.latest_snapshots().items())}


def resource_trend(samples: list[tuple[float, float, int]], warmup: float) -> dict[str, Any]:
    """RSS and open fds of ``(seconds, rss MB, fds)`` samples: the first window after warm-up
    against the last (each a quarter of the samples, 2 to 12). RSS by the windows' medians; fds
    by their fewest, the count at rest between two passes (a sample inside a pass counts its
    connections too, so the last sample alone says nothing about a leak)."""
    trend: dict[str, Any] = {"samples": len(samples)}
    after = [s for s in samples if s[0] >= warmup]
    if len(after) < 4:
        return trend
    window = max(2, min(12, len(after) // 4))
    rss_start = statistics.median(s[1] for s in after[:window])
    rss_end = statistics.median(s[1] for s in after[-window:])
    trend.update({
        "rss_mb_after_warmup": round(rss_start, 1), "rss_mb_end": round(rss_end, 1),
        "rss_mb_max": round(max(s[1] for s in samples), 1),
        "rss_growth_pct": round(100 * (rss_end - rss_start) / rss_start, 1),
        "fds_at_rest_after_warmup": min(s[2] for s in after[:window]),
        "fds_at_rest_end": min(s[2] for s in after[-window:]),
        "fds_max": max(s[2] for s in samples),
    })
    return trend


def sample(proc: psutil.Process) -> tuple[float, int]:
    rss = proc.memory_info().rss / 2**20
    fds = len(os.listdir(f"/proc/{proc.pid}/fd"))
    return rss, fds


def fault_stats(server: SandboxServer) -> dict[str, int]:
    log = server.requests()
    return {"requests": len(log), "5xx": sum(1 for r in log if r.status >= 500),
            "429": sum(1 for r in log if r.status == 429)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--size", type=int, default=3000, help="items per sandbox tracker")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--mutate-every", type=float, default=1.0, help="seconds between random changes")
    parser.add_argument("--warmup", type=float, default=None, help="seconds (default: 20%% of the run, max 120)")
    parser.add_argument("--json", help="also write the summary here")
    args = parser.parse_args(argv)
    duration = args.minutes * 60
    warmup = args.warmup if args.warmup is not None else min(120.0, duration * 0.2)
    rng = random.Random(args.seed)
    print(f"soak: {args.minutes:g} min, {args.size} items per tracker, seed {args.seed}", flush=True)

    folder = Path(tempfile.mkdtemp(prefix="okrsync-soak-"))
    now = datetime.now(UTC)
    jira_server, jira = start_jira_sandbox("bench", size=args.size, now=now, seed=args.seed,
                                           users={JIRA_EMAIL: JIRA_TOKEN})
    github_server, github = start_github_sandbox("bench", size=args.size, now=now, seed=args.seed,
                                                 repos=REPOS, tokens=(GITHUB_TOKEN,))
    github.rate_limit = 10**6
    github.control("quota", {"limit": 10**6, "remaining": 10**6})
    config = folder / "okrs.yaml"
    config.write_text(config_text(jira_server.url, github_server.url, now, "sqlite:///okrsync.db"), encoding="utf-8")
    port = free_port()
    log_path = folder / "daemon.log"
    daemon: subprocess.Popen[bytes] | None = None
    summary: dict[str, Any] = {"minutes": args.minutes, "size": args.size, "seed": args.seed, "folder": str(folder)}
    samples: list[tuple[float, float, int]] = []
    mutations = 0
    try:
        with log_path.open("wb") as log:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "syncer", "daemon", "-c", str(config), "--interval", "5s",
                 "--listen", f"127.0.0.1:{port}"],
                cwd=folder, env=env_for(folder), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
            )
        proc = psutil.Process(daemon.pid)
        started = time.monotonic()
        # Let the first full pass finish cleanly, then turn the faults on.
        first_deadline = started + 300
        while time.monotonic() < first_deadline and daemon.poll() is None:
            if b"pass finished" in log_path.read_bytes():
                break
            time.sleep(0.5)
        summary["first_pass_s"] = round(time.monotonic() - started, 1)
        jira_server.inject(*faults())
        github_server.inject(*faults())
        t0 = time.monotonic()
        next_sample = t0
        while time.monotonic() - t0 < duration and daemon.poll() is None:
            if time.monotonic() >= next_sample:
                rss, fds = sample(proc)
                samples.append((time.monotonic() - t0, rss, fds))
                next_sample += 5.0
            mutate(rng, jira, github)
            mutations += 1
            time.sleep(args.mutate_every)
        summary["daemon_alive"] = daemon.poll() is None
        summary["mutations"] = mutations
        summary["faults_served"] = {"jira": fault_stats(jira_server), "github": fault_stats(github_server)}
        jira_server.clear_faults()
        github_server.clear_faults()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                metrics = answer.read().decode()
            summary["passes"] = {
                line.split('"')[1]: float(line.rsplit(" ", 1)[1])
                for line in metrics.splitlines() if line.startswith("okrsync_passes_total{")
            }
            summary["source_failures"] = {
                line.split('"')[1]: float(line.rsplit(" ", 1)[1])
                for line in metrics.splitlines() if line.startswith("okrsync_source_failures_total{")
            }
        except OSError as exc:
            summary["metrics_error"] = str(exc)
        stop_at = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        try:
            summary["daemon_exit"] = daemon.wait(timeout=15)
        except subprocess.TimeoutExpired:
            summary["daemon_exit"] = "timeout"
        summary["sigterm_to_exit_s"] = round(time.monotonic() - stop_at, 2)
        final = subprocess.run(
            [sys.executable, "-m", "syncer", "sync", "-c", str(config), "--quiet", "--format", "json"],
            cwd=folder, env=env_for(folder), capture_output=True, timeout=300, check=False,
        )
        summary["final_sync_exit"] = final.returncode
        expected = truth(jira, jira_server.url, github)
        with Store.open(f"sqlite:///{folder / 'okrsync.db'}") as store:
            summary["store_vs_truth"] = compare(store, expected)
            summary["items"] = store.count_items()
            summary["quick_check"] = store.quick_check()
            soaked_numbers = numbers(store)
        fresh = folder / "fresh.yaml"
        fresh.write_text(config_text(jira_server.url, github_server.url, now, "sqlite:///fresh.db"), encoding="utf-8")
        subprocess.run([sys.executable, "-m", "syncer", "sync", "-c", str(fresh), "--full", "--quiet"],
                       cwd=folder, env=env_for(folder), capture_output=True, timeout=300, check=False)
        with Store.open(f"sqlite:///{folder / 'fresh.db'}") as store:
            fresh_numbers = numbers(store)
        summary["numbers"] = soaked_numbers
        summary["numbers_equal_fresh_full_sync"] = soaked_numbers == fresh_numbers
        if soaked_numbers != fresh_numbers:
            summary["fresh_numbers"] = fresh_numbers
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
            daemon.wait(timeout=10)
        jira_server.stop()
        github_server.stop()

    summary.update(resource_trend(samples, warmup))
    checks = {
        "daemon survived": bool(summary.get("daemon_alive")),
        "SIGTERM exit 0": summary.get("daemon_exit") == 0,
        "final sync exit 0": summary.get("final_sync_exit") == 0,
        "store equals truth": summary.get("store_vs_truth") == [],
        "numbers equal a fresh full sync": bool(summary.get("numbers_equal_fresh_full_sync")),
        "quick_check ok": bool(summary.get("quick_check")),
        "RSS growth <= 20%": "rss_growth_pct" in summary and summary["rss_growth_pct"] <= 20.0,
        "no fd leak (<= +5 at rest)": "fds_at_rest_end" in summary
        and summary["fds_at_rest_end"] <= summary["fds_at_rest_after_warmup"] + 5,
    }
    summary["checks"] = checks
    text = json.dumps(summary, indent=2, default=str)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
