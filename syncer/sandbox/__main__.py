"""``python -m syncer.sandbox``: the sandbox Jira and GitHub as a process, until SIGTERM/Ctrl-C.

Prints one line per tracker with its URL and credentials, then a JSON line for scripts.
Knobs are at ``POST <url>/_sandbox/<action>`` (see ``syncer/sandbox/server.py``).
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from datetime import UTC, datetime

from syncer.sandbox.github import GitHubApp
from syncer.sandbox.jira import JiraApp
from syncer.sandbox.server import SandboxServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m syncer.sandbox", description=__doc__)
    parser.add_argument("--scenario", choices=("demo", "bench"), default="demo")
    parser.add_argument("--size", type=int, default=0, help="issues per tracker in the bench scenario")
    parser.add_argument("--flavour", choices=("cloud", "datacenter"), default="cloud", help="the Jira flavour")
    parser.add_argument("--jira-port", type=int, default=0)
    parser.add_argument("--github-port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", choices=("jira", "github"), help="start one tracker only")
    args = parser.parse_args(argv)
    now = datetime.now(UTC)
    servers: list[SandboxServer] = []
    urls: dict[str, str] = {}
    if args.only in (None, "jira"):
        jira = JiraApp(flavour=args.flavour, scenario=args.scenario, size=args.size, now=now, seed=args.seed)
        server = SandboxServer(jira, port=args.jira_port, seed=args.seed).start()
        servers.append(server)
        urls["jira"] = server.url
        print(f"jira   {server.url}  (Basic demo@example.com / sandbox-token; Bearer sandbox-pat on datacenter)")
    if args.only in (None, "github"):
        github = GitHubApp(scenario=args.scenario, size=args.size, now=now, seed=args.seed)
        server = SandboxServer(github, port=args.github_port, seed=args.seed).start()
        servers.append(server)
        urls["github"] = server.url
        print(f"github {server.url}  (token: tok)")
    print(json.dumps(urls), flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for server in servers:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
