"""The bench scenario shared by the sandbox process, the runner and the naive script.

Half the issues live in a sandbox Jira Cloud over 20 projects, half in a sandbox GitHub over
100 repositories; 40 key results over epics, labels, milestones, pull requests and a few JQL
rules. ``config_text`` writes the okrs.yaml both okrsync and the naive script read, from what
the sandbox reports about its data (``bench_info``), so the rules always name real epics.
"""

from __future__ import annotations

from typing import Any

JIRA_EMAIL = "bench@example.com"
JIRA_TOKEN = "bench-jira-token"
GITHUB_TOKEN = "bench-github-token"
ENV = {"BENCH_JIRA_EMAIL": JIRA_EMAIL, "BENCH_JIRA_TOKEN": JIRA_TOKEN, "BENCH_GITHUB_TOKEN": GITHUB_TOKEN}
REPOS = tuple(f"bench/repo-{i:03d}" for i in range(100))
PROJECTS = 20

JQL_RULES = (
    "labels = perf AND project in (PLAT, MOB)",
    "issuetype = Story AND project = BEN07 AND statusCategory != Done",
    'status = "In Review"',
)
"""The JQL key results: Jira evaluates these (ids-only searches), so they cost requests."""


def split(size: int) -> tuple[int, int]:
    """(Jira issues, GitHub issues) for a total ``size``: half each."""
    return size // 2, size - size // 2


def config_text(info: dict[str, Any], store: str) -> str:
    """okrs.yaml for the bench: 4 objectives × 10 key results = 40, rules over both trackers."""
    jira, github = info["jira"], info["github"]
    epics: list[str] = jira["epics"]
    projects: list[str] = jira["projects"]
    cycle = github["cycle"]
    krs: list[str] = []

    def kr(kr_id: str, title: str, metric: str, rule: str, extra: str = "") -> None:
        krs.append(f"      - {{id: {kr_id}, title: \"{title}\", metric: {metric}{extra}, match: [{rule}]}}")

    # Jira: 10 epics, 4 label/project rules, 3 JQL rules, 3 project/type rules = 20
    for n, epic in enumerate(epics[:10]):
        metric = "points_percent_done" if n % 2 else "percent_done"
        kr(f"epic-{n:02d}", f"Finish epic {epic}", metric, f"{{source: jira, epic: {epic}}}")
    for n, project in enumerate(projects[:4]):
        kr(f"perf-{n}", f"Perf points in {project}", "sum_points_done",
           f"{{source: jira, labels: [perf], project: {project}}}", ", target: 200")
    for n, jql in enumerate(JQL_RULES):
        kr(f"jql-{n}", f"JQL rule {n}", "count_done" if n != 1 else "count_open",
           f"{{source: jira, jql: '{jql}'}}", ", target: 50" if n != 1 else ", start: 5000, target: 0")
    for n, project in enumerate(projects[4:7]):
        kr(f"stories-{n}", f"Stories done in {project}", "percent_done",
           f"{{source: jira, project: {project}, issue_type: Story}}")
    # GitHub: 8 repo milestones, 4 label rules, 4 PR rules, 4 repo+label rules = 20
    repos: list[str] = list(github["repos"])
    for n, repo in enumerate(repos[:8]):
        kr(f"ms-{n}", f"Milestone {cycle} in {repo}", "percent_done",
           f"{{source: github, repo: {repo}, milestone: {cycle}}}")
    for n, labels in enumerate((["bug"], ["bug", "customer"], ["onboarding"], ["perf"])):
        metric = "count_open" if n == 0 else "count_done"
        extra = ", start: 50000, target: 0" if n == 0 else ", target: 500"
        kr(f"label-{n}", f"Label rule {'+'.join(labels)}", metric,
           f"{{source: github, labels: [{', '.join(labels)}]}}", extra)
    for n, repo in enumerate(repos[8:12]):
        kr(f"prs-{n}", f"Merged PRs in {repo}", "count_done", f"{{source: github, repo: {repo}, type: pull_request}}",
           ", target: 100")
    for n, repo in enumerate(repos[12:16]):
        kr(f"bugs-{n}", f"Bugs fixed in {repo}", "percent_done",
           f"{{source: github, repo: {repo}, labels: [bug], milestone: {cycle}}}")
    assert len(krs) == 40, len(krs)
    objectives = []
    for n in range(4):
        body = "\n".join(krs[n * 10 : (n + 1) * 10])
        objectives.append(f"  - id: obj-{n}\n    title: Bench objective {n}\n    key_results:\n{body}")
    scope = ", ".join(projects)
    repo_list = ", ".join(repos)
    return f"""\
# okrsync bench scenario (bench/scenario.py): generated, do not edit.
version: 1
cycle: {{name: {cycle}, start: {github['cycle_start']}, end: {github['cycle_end']}}}
store: {store}
schedule: {{deadline: 2h}}
sources:
  jira:
    type: jira
    url: {jira['url']}
    auth:
      email: ${{BENCH_JIRA_EMAIL}}
      token: ${{BENCH_JIRA_TOKEN}}
    scope: project in ({scope})
  github:
    type: github
    url: {github['url']}
    token: ${{BENCH_GITHUB_TOKEN}}
    repos: [{repo_list}]
objectives:
{chr(10).join(objectives)}
unaligned:
  ignore_labels: [chore, dependencies]
"""
