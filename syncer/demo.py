"""``okrsync demo``: the whole product against built-in sandbox trackers, no credentials needed.

Starts the sandbox Jira and GitHub on free loopback ports with a seeded organisation, writes a
config for it into a folder, runs a full sync, changes a few issues the way a team would during
a week, runs an incremental sync, and prints the report with the plan of what changed. With
``--keep`` it leaves the sandbox and a daemon running so the page can be opened in a browser.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from syncer.config import load
from syncer.results import utc_now
from syncer.sandbox.github import GitHubApp, start_github_sandbox
from syncer.sandbox.jira import JiraApp, quarter_bounds, start_jira_sandbox
from syncer.store import Store

__all__ = ["DEMO_ENV", "demo_config_text", "mutate_week", "run_demo"]

JIRA_EMAIL = "demo@example.com"
JIRA_TOKEN = "sandbox-token"
GITHUB_TOKEN = "demo-github-token"
DEMO_ENV = {"DEMO_JIRA_EMAIL": JIRA_EMAIL, "DEMO_JIRA_TOKEN": JIRA_TOKEN, "DEMO_GITHUB_TOKEN": GITHUB_TOKEN}


def demo_config_text(jira_url: str, github_url: str, now: datetime, store: str = "sqlite:///okrsync.db") -> str:
    """The demo organisation's okrs.yaml: three objectives, eight key results over both trackers."""
    first, last = quarter_bounds(now)
    quarter = f"{first.year}-Q{(first.month - 1) // 3 + 1}"
    return f"""\
# okrsync demo: written by `okrsync demo` for the sandbox trackers on this machine.
version: 1
cycle: {{name: {quarter}, start: {first.isoformat()}, end: {last.isoformat()}}}
store: {store}
schedule: {{interval: 15s, jitter: 2s}}
sources:
  jira:
    type: jira
    url: {jira_url}
    auth:
      email: ${{DEMO_JIRA_EMAIL}}
      token: ${{DEMO_JIRA_TOKEN}}
    scope: project in (PLAT, MOB)
    story_points_field: auto
  github:
    type: github
    url: {github_url}
    token: ${{DEMO_GITHUB_TOKEN}}
    repos: [acme/web, acme/api]
objectives:
  - id: grow
    title: Increase user engagement and retention
    owner: product
  - id: onboarding
    parent: grow
    title: Make onboarding effortless
    owner: growth-team
    key_results:
      - id: onboarding-revamp
        title: Ship the onboarding revamp
        metric: percent_done
        match:
          - {{source: jira, epic: PLAT-1}}
          - {{source: github, repo: acme/web, labels: [onboarding]}}
        publish:
          - {{source: jira, issue: OKR-12, field: customfield_10100}}
          - {{source: github, issue: acme/okrs#4}}
      - id: mobile-onboarding
        title: Deliver mobile onboarding (story points)
        metric: points_percent_done
        match:
          - {{source: jira, epic: MOB-1}}
      - id: activation-nps
        title: Reach an NPS of 45 among new users
        metric: manual
        start: 30
        target: 45
  - id: reliability
    parent: grow
    title: Make the product fast and dependable
    owner: platform-team
    weight: 2
    key_results:
      - id: customer-bugs
        title: Close 10 customer bugs this quarter
        metric: count_done
        target: 10
        match:
          - {{source: github, labels: [bug, customer], milestone: {quarter}}}
      - id: perf-points
        title: Deliver 40 story points of performance work
        metric: sum_points_done
        target: 40
        match:
          - {{source: jira, jql: labels = perf}}
      - id: checkout-speed
        title: Finish the checkout performance epic
        metric: percent_done
        match:
          - {{source: jira, epic: PLAT-2}}
      - id: open-bugs
        title: Bring open bugs down to 2
        metric: count_open
        start: 12
        target: 2
        match:
          - {{source: github, labels: [bug]}}
      - id: api-prs
        title: Merge 6 API pull requests
        metric: count_done
        target: 6
        match:
          - {{source: github, repo: acme/api, type: pull_request}}
unaligned:
  ignore_labels: [chore, dependencies]
"""


def _github_number(app: GitHubApp, repo: str, title_start: str) -> int:
    for number, issue in app.repos[repo].issues.items():
        if issue.title.startswith(title_start):
            return int(number)
    raise LookupError(f"{repo}: no issue titled {title_start!r} in the sandbox")


def mutate_week(jira: JiraApp, github: GitHubApp) -> list[str]:
    """A week of work: stories finished, bugs closed, new unplanned work. Returns what changed."""
    changes: list[str] = []
    for key, what in (("PLAT-7", "guided tour"), ("PLAT-20", "parallel tax and shipping quotes"),
                      ("MOB-4", "offline first launch")):
        jira.control("update", {"key": key, "status": "Done"})
        changes.append(f"jira {key} ({what}) moved to Done")
    created = jira.control("create", {"project": "PLAT", "summary": "Investigate slow admin exports",
                                      "type": "Task", "status": "In Progress"})
    changes.append(f"jira {created['key']} created with no epic or label (unplanned work)")
    for title in ("Search results flicker", "Onboarding: sample project"):
        number = _github_number(github, "acme/web", title)
        github.control("update", {"repo": "acme/web", "number": number, "state": "closed",
                                  "state_reason": "completed"})
        changes.append(f"github acme/web#{number} ({title.lower()}) closed as completed")
    return changes


def run_demo(*, keep: bool = False, workdir: Path | None = None, fmt: str = "table",
             listen: str = "127.0.0.1:8080") -> int:
    """The README's first command. Returns the exit code of the last sync."""
    from syncer.assemble import assemble_report
    from syncer.report import render
    from syncer.sync import SyncOptions, run_once

    folder = workdir or Path(tempfile.mkdtemp(prefix="okrsync-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    now = utc_now()
    os.environ.update(DEMO_ENV)
    jira_server, jira = start_jira_sandbox("demo", now=now, users={JIRA_EMAIL: JIRA_TOKEN})
    github_server, github = start_github_sandbox("demo", now=now, tokens=(GITHUB_TOKEN,))
    out = sys.stdout
    try:
        config_path = folder / "okrs.yaml"
        config_path.write_text(demo_config_text(jira_server.url, github_server.url, now), encoding="utf-8")
        (folder / "okrsync.db").unlink(missing_ok=True)
        config = load(config_path)
        print(f"okrsync demo: sandbox Jira at {jira_server.url}, sandbox GitHub at {github_server.url}", file=out)
        print(f"config and store in {folder}", file=out)
        with Store.open(config.store_url()) as store:
            for days, value, note in ((40, 31, "kick-off survey"), (20, 34, "mid-cycle survey"),
                                      (6, 38, "latest survey")):
                store.add_checkin("activation-nps", value, note, now - timedelta(days=days))
            first = run_once(config, store, SyncOptions(full=True, worker="demo"))
            print("\n1. full sync: " + _summary(first.outcomes), file=out)
            print("\n2. a week of work happens on the trackers:", file=out)
            for line in mutate_week(jira, github):
                print(f"   - {line}", file=out)
            second = run_once(config, store, SyncOptions(worker="demo"))
            print("\n3. incremental sync: " + _summary(second.outcomes), file=out)
            data = assemble_report(config, store, utc_now(), outcomes=second.outcomes, writes=second.writes,
                                   krs=second.key_results or None, changes=second.changes)
            html_path = folder / "report.html"
            html_path.write_text(render(data, "html"), encoding="utf-8")
            print("", file=out)
            print(render(data, fmt, color=out.isatty()), file=out)
            print(f"HTML report: {html_path}", file=out)
            print(f"Try: okrsync report -c {config_path} --format markdown   |   "
                  f"okrsync explain -c {config_path} onboarding-revamp", file=out)
            print("(the demo's tokens are set in this process only; to rerun sync yourself, export "
                  + " ".join(f"{k}={v}" for k, v in DEMO_ENV.items()) + ")", file=out)
        if keep:
            return _keep_running(config_path, listen)
        return second.exit_code
    finally:
        jira_server.stop()
        github_server.stop()


def _summary(outcomes: Any) -> str:
    return "; ".join(
        f"{o.name} {o.fetched} items in {o.requests} requests" + ("" if o.ok else f" (FAILED: {o.error})")
        for o in outcomes
    )


def _keep_running(config_path: Path, listen: str) -> int:
    from syncer.daemon import Daemon

    host, _, port = listen.rpartition(":")
    print(f"\nkeeping the sandbox and a daemon running: open http://{host}:{port}/ "
          f"(health /healthz, metrics /metrics); Ctrl-C stops", file=sys.stdout)
    daemon = Daemon(config_path, listen=(host or "127.0.0.1", int(port)))
    stopper = threading.Event()
    try:
        return daemon.run()
    finally:
        stopper.set()


def _now() -> datetime:
    return datetime.now(UTC)
