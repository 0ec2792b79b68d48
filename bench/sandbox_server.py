"""``python -m bench.sandbox_server --size N [--only jira|github]``: the bench's sandbox trackers
in their own process.

The sandbox runs apart from okrsync so that the CPU time and peak RSS measured for okrsync are
its own; ``bench/run.py`` starts one process per tracker, because real trackers are separate
servers and one Python process would serialise the two behind its GIL while okrsync fetches
from both at once. It prints one JSON line (both URLs) once it serves, then runs until SIGTERM/SIGINT or
until stdin closes (the runner died). Besides the sandbox's own knobs
(``POST <url>/_sandbox/update`` etc., ``GET``/``DELETE <url>/_sandbox/requests``) it serves:

- ``POST <url>/_sandbox/bench_info`` (body ``{"jql": [...]}`` on Jira): what the floors are
  computed from — issues per repository, issues in the Jira scope, epics, each JQL's size;
- ``POST <url>/_sandbox/bench_mutate`` (body ``{"fraction": 0.01, "seed": 7}``): change that
  share of the issues (state changes and retitles, as a team's day would), through the same
  ``update`` knob, and say how many changed per repository.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import threading
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from bench.scenario import GITHUB_TOKEN, JIRA_EMAIL, JIRA_TOKEN, PROJECTS, REPOS, split
from syncer.sandbox.github import GitHubApp
from syncer.sandbox.jira import BENCH_PROJECTS, JiraApp
from syncer.sandbox.server import Reply, Request, SandboxServer


class _JiraBench:
    """The sandbox Jira plus the bench's two knobs."""

    def __init__(self, app: JiraApp) -> None:
        self.app = app

    def handle(self, request: Request) -> Reply:
        return self.app.handle(request)

    def control(self, action: str, body: Any) -> Any:
        app = self.app
        body = body or {}
        if action == "bench_info":
            with app._lock:
                visible = [i for i in app.issues.values() if i.id not in app.deleted]
                epics = [i for i in visible if i.type == "Epic"]
                children = Counter(i.epic for i in visible if i.epic is not None)
                # The epics with the most children first: their key results have something in them.
                epics.sort(key=lambda i: (-children[i.id], i.id))
                return {
                    "issues": len(visible),
                    "projects": list(BENCH_PROJECTS[: app.projects]),
                    "epics": [e.key for e in epics[:20]],
                    "jql": {jql: len(app.search_ids(jql)) for jql in body.get("jql", [])},
                }
        if action == "bench_mutate":
            rng = random.Random(int(body.get("seed", 7)))
            with app._lock:
                candidates = sorted(i.key for i in app.issues.values() if i.type != "Epic" and i.id not in app.deleted)
                count = max(1, round(float(body.get("fraction", 0.01)) * len(app.issues)))
                chosen = rng.sample(candidates, min(count, len(candidates)))
            for n, key in enumerate(chosen):
                change = {"status": "Done"} if n % 2 == 0 else {"summary": f"Bench issue {key} (edited)"}
                app.control("update", {"key": key, **change})
            return {"changed": len(chosen)}
        return app.control(action, body)


class _GitHubBench:
    """The sandbox GitHub plus the bench's two knobs."""

    def __init__(self, app: GitHubApp) -> None:
        self.app = app

    def handle(self, request: Request) -> Reply:
        return self.app.handle(request)

    def control(self, action: str, body: Any) -> Any:
        app = self.app
        body = body or {}
        if action == "bench_info":
            with app._lock:
                return {
                    "repos": {r.name: len(r.issues) for r in app.repos.values() if not r.revoked},
                    "cycle": app.cycle_name,
                    "cycle_start": app.cycle_start.isoformat(),
                    "cycle_end": app.cycle_end.isoformat(),
                    "quota_used": app.rate_limit - app.quota_remaining,
                }
        if action == "bench_mutate":
            rng = random.Random(int(body.get("seed", 7)))
            with app._lock:
                every = sorted((r.name, number) for r in app.repos.values() for number in r.issues)
                count = max(1, round(float(body.get("fraction", 0.01)) * len(every)))
                chosen = rng.sample(every, min(count, len(every)))
            per_repo: Counter[str] = Counter()
            for n, (repo, number) in enumerate(chosen):
                issue = app.repos[repo.lower()].issues[number]
                if issue.state == "open" and not issue.is_pr and n % 2 == 0:
                    change: dict[str, Any] = {"state": "closed", "state_reason": "completed"}
                else:
                    change = {"title": f"{issue.title} (edited)"}
                app.control("update", {"repo": repo, "number": number, **change})
                per_repo[repo] += 1
            return {"changed": len(chosen), "per_repo": dict(per_repo)}
        return app.control(action, body)


def start(size: int, *, seed: int = 1, repos: int = len(REPOS), projects: int = PROJECTS,
          now: datetime | None = None, only: str | None = None, gzip: bool = False) -> dict[str, SandboxServer]:
    """The bench sandboxes (both, or ``only`` one), started on free loopback ports (the caller
    stops them); ``gzip``: answers compressed for clients that accept it, as the real trackers'."""
    jira_size, github_size = split(size)
    moment = now or datetime.now(UTC)
    servers: dict[str, SandboxServer] = {}
    try:
        if only in (None, "jira"):
            jira = JiraApp(scenario="bench", size=jira_size, now=moment, seed=seed, users={JIRA_EMAIL: JIRA_TOKEN},
                           projects=projects)
            servers["jira"] = SandboxServer(_JiraBench(jira), seed=seed, compress=gzip).start()
        if only in (None, "github"):
            # A high primary limit: the bench reads the quota it used, it does not test running out.
            github = GitHubApp(scenario="bench", size=github_size, repos=REPOS[:repos], now=moment, seed=seed,
                               tokens=(GITHUB_TOKEN,), rate_limit=1_000_000)
            servers["github"] = SandboxServer(_GitHubBench(github), seed=seed, compress=gzip).start()
            github.base_url = servers["github"].url
    except BaseException:
        for server in servers.values():
            server.stop()
        raise
    return servers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sandbox_server", description=__doc__)
    parser.add_argument("--size", type=int, required=True, help="issues in total (half Jira, half GitHub)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repos", type=int, default=len(REPOS))
    parser.add_argument("--projects", type=int, default=PROJECTS)
    parser.add_argument("--only", choices=("jira", "github"),
                        help="serve one tracker (the bench runs one process per tracker, as real trackers are)")
    parser.add_argument("--gzip", action="store_true",
                        help="gzip answers for clients that accept it (Accept-Encoding), as GitHub and Jira Cloud do")
    args = parser.parse_args(argv)
    servers = start(args.size, seed=args.seed, repos=args.repos, projects=args.projects, only=args.only,
                    gzip=args.gzip)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def watch_stdin() -> None:
        sys.stdin.read()  # returns when the runner closes the pipe or dies
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    try:
        print(json.dumps({name: server.url for name, server in servers.items()}), flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        for server in servers.values():
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
