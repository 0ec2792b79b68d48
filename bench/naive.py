"""What a user would write instead of okrsync: fetch everything with the usual libraries, every time.

``python -m bench.naive -c okrs.yaml`` reads the same config as okrsync, lists every configured
repository's issues with PyGithub (``per_page=100``, ``state="all"``) and the whole Jira scope
with the ``jira`` package (``enhanced_search_issues(maxResults=False)``), asks Jira for each JQL
rule's members, then computes every key result with okrsync's own arithmetic
(``syncer.matching`` + ``syncer.progress``) and prints ``{kr_id: {current, total, done}}`` as
JSON. No cursor, no ETag, no store: a second run costs what the first did.

To keep the comparison fair to the script, it turns off PyGithub's default 0.25 s pause
between requests (``--throttle`` keeps it) and avoids PyGithub's N+1 trap: on a listed issue
``issue.pull_request`` (and ``raw_data``) of a plain issue costs one extra GET each (research
§J), so the script reads the listed JSON (``_rawData``) instead. ``--n-plus-one`` uses the public
property, as most scripts do.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from github import Auth, Github
from jira import JIRA

from connectors.github import GitHubSource
from connectors.jira import JiraRule, JiraSource
from syncer.config import Config, load
from syncer.matching import compile_rules, match_all
from syncer.model import ItemKind, State, WorkItem
from syncer.progress import compute_key_result, tally
from syncer.results import utc_now

_JIRA_FIELDS = ["summary", "status", "issuetype", "project", "labels", "components", "fixVersions", "parent",
                "resolution", "resolutiondate", "created", "updated", "statuscategorychangedate"]
_POINTS_NAMES = ("story points", "story point estimate")


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    text = str(value).replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
        text = text[:-2] + ":" + text[-2:]  # Jira's +0000
    return datetime.fromisoformat(text)


def github_items(config: Config, name: str, n_plus_one: bool = False, throttle: bool = False) -> list[WorkItem]:
    source = config.sources[name]
    assert isinstance(source, GitHubSource)
    # PyGithub 2.x sleeps 0.25 s between requests by default; the bench turns that off
    # (``--throttle`` keeps it) so that the wall time compared is work, not a courtesy pause.
    gh = Github(base_url=source.url, auth=Auth.Token(source.token), per_page=100, retry=None,
                seconds_between_requests=0.25 if throttle else None)
    items: list[WorkItem] = []
    for repo_name in source.repos:
        repo = gh.get_repo(repo_name)
        for issue in repo.get_issues(state="all"):
            raw = issue._rawData
            pull = issue.pull_request if n_plus_one else raw.get("pull_request")
            is_pr = pull is not None
            excluded, done_at = False, None
            if raw["state"] == "open":
                state = State.TODO
            elif is_pr:
                merged = raw["pull_request"].get("merged_at")
                state, excluded, done_at = State.DONE, merged is None, _time(merged)
            else:
                excluded = raw.get("state_reason") in ("not_planned", "duplicate")
                state, done_at = State.DONE, None if excluded else _time(raw.get("closed_at"))
            items.append(WorkItem(
                source=name, id=raw["node_id"], key=f"{repo_name.lower()}#{raw['number']}", title=raw["title"],
                url=raw["html_url"], kind=ItemKind.PULL_REQUEST if is_pr else ItemKind.ISSUE, state=state,
                updated_at=_time(raw["updated_at"]) or utc_now(), container=repo_name.lower(),
                created_at=_time(raw["created_at"]), done_at=done_at, excluded=excluded,
                resolution=raw.get("state_reason"), labels=tuple(label["name"] for label in raw["labels"]),
                milestone=(raw.get("milestone") or {}).get("title"),
            ))
    return items


def jira_items(config: Config, name: str) -> tuple[list[WorkItem], dict[str, frozenset[str]]]:
    """The whole scope, and each JQL rule's member ids (Jira evaluates JQL; a script must ask it)."""
    source = config.sources[name]
    assert isinstance(source, JiraSource)
    client = JIRA(server=source.url, basic_auth=(source.auth.email or "", source.auth.token or ""))
    points = [f["id"] for f in client.fields() if str(f.get("name", "")).casefold() in _POINTS_NAMES]
    skip = {r.casefold() for r in source.excluded_resolutions}
    items: list[WorkItem] = []
    for issue in client.enhanced_search_issues(source.scope, maxResults=False, fields=_JIRA_FIELDS + points):
        fields = issue.raw["fields"]
        category = fields["status"]["statusCategory"]["key"]
        state = {"new": State.TODO, "indeterminate": State.IN_PROGRESS, "done": State.DONE}.get(category, State.UNKNOWN)
        resolution = (fields.get("resolution") or {}).get("name")
        issue_type = fields["issuetype"]["name"]
        value = next((fields[f] for f in points if fields.get(f) is not None), None)
        items.append(WorkItem(
            source=name, id=str(issue.raw["id"]), key=issue.raw["key"], title=fields["summary"],
            url=f"{source.url}/browse/{issue.raw['key']}",
            kind=ItemKind.EPIC if issue_type == "Epic" else (
                ItemKind.SUBTASK if fields["issuetype"].get("subtask") else ItemKind.ISSUE),
            state=state, updated_at=_time(fields["updated"]) or utc_now(), container=fields["project"]["key"],
            issue_type=issue_type, created_at=_time(fields["created"]),
            done_at=(_time(fields.get("resolutiondate")) or _time(fields.get("statuscategorychangedate")))
            if state is State.DONE else None,
            excluded=bool(resolution and resolution.casefold() in skip), resolution=resolution,
            points=float(value) if value is not None else None,
            labels=tuple(fields.get("labels") or ()),
            components=tuple(c["name"] for c in fields.get("components") or ()),
            fix_versions=tuple(v["name"] for v in fields.get("fixVersions") or ()),
            parent_key=(fields.get("parent") or {}).get("key"), parent_id=(fields.get("parent") or {}).get("id"),
        ))
    members: dict[str, frozenset[str]] = {}
    for compiled in compile_rules(config):
        rule = compiled.rule
        if isinstance(rule, JiraRule) and rule.source == name and rule.jql:
            found = client.enhanced_search_issues(f"({rule.jql})", maxResults=False, fields="id")
            members[rule.fingerprint()] = frozenset(str(i.raw["id"]) for i in found)
    return items, members


def key_results(config: Config, items: Iterable[WorkItem], members: dict[str, frozenset[str]]) -> dict[str, Any]:
    """Every key result as okrsync computes it (same rules, same arithmetic)."""
    every = list(items)
    by_id = {i.id: i for i in every}  # GitHub node ids and Jira numeric ids never collide
    matched = match_all(every, compile_rules(config), members)
    now = utc_now()
    out: dict[str, Any] = {}
    for objective, kr in config.key_results():
        ids = matched.get(kr.id, {})
        chosen = [by_id[i] for i in ids]
        counted = tally(chosen, config.cycle)
        result = compute_key_result(objective.id, kr, counted, config.cycle, now)
        out[kr.id] = {"current": round(result.current, 2), "total": counted.total, "done": counted.done}
    return out


def run(config_path: Path, n_plus_one: bool = False, throttle: bool = False) -> dict[str, Any]:
    config = load(config_path)
    items: list[WorkItem] = []
    members: dict[str, frozenset[str]] = {}
    for name, source in config.sources.items():
        if source.type == "github":
            items.extend(github_items(config, name, n_plus_one, throttle))
        elif source.type == "jira":
            found, rule_members = jira_items(config, name)
            items.extend(found)
            members.update(rule_members)
    return {"items": len(items), "key_results": key_results(config, items, members)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.naive", description=__doc__)
    parser.add_argument("-c", "--config", type=Path, required=True)
    parser.add_argument("--n-plus-one", action="store_true", help="use issue.pull_request (one GET per issue)")
    parser.add_argument("--throttle", action="store_true", help="keep PyGithub's 0.25 s between requests")
    args = parser.parse_args(argv)
    json.dump(run(args.config, args.n_plus_one, args.throttle), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
