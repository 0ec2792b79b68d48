"""Bad config and bad input: mutated configs, mutated tracker payloads, YAML bombs, huge files.

Property-based (hypothesis, bounded examples, no deadline): whatever the mutation,

- ``okrsync validate`` answers exit 0, or exit 2 with every stderr line located
  (``FILE:LINE: ...`` or ``FILE: ...``) and never a traceback or "internal error";
- the connectors' mappings (``JiraConnector.to_item``, ``connectors.github.to_work_item``) return
  an item (odd values named in ``unknown_fields``) and never raise;
- a whole fetch over HTTP whose pages were mutated (the sandbox's real answers, changed on the
  way out) stores what it can or fails the source with a ``SourceError``; nothing else escapes.
"""

from __future__ import annotations

import copy
import json
import random
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.base import ConnectorContext
from connectors.github import GitHubConnector, GitHubSource, to_work_item
from connectors.http import HttpPolicy
from connectors.jira import JiraConnector, JiraMeta, JiraSource
from syncer.cli import main
from syncer.errors import SourceError
from syncer.model import WorkItem
from syncer.sandbox.github import start_github_sandbox
from syncer.sandbox.jira import start_jira_sandbox
from syncer.sandbox.server import Reply, SandboxServer
from syncer.yamlload import MAX_BYTES

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "okrs.example.yaml"
EXAMPLE_ENV = {"JIRA_EMAIL": "a@example.com", "JIRA_API_TOKEN": "tok-jira-123456", "GITHUB_TOKEN": "tok-gh-123456"}
GARBAGE = ["[", "{", "}", ":", "- -", "!!python/object:os.system", "&a", "*a", "null", "~", "0", "-1", "1e999",
           "'", '"', "\t", "key: [1, {2: 3}]", "${MISSING_VAR}", "yes", "2026-13-45", "version: 99", "\x00", "é",
           "<<: *x", "? complex", "%YAML 1.1", "---", "...", "|", ">"]


def validate(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["validate", "-c", str(path)])
    err = capsys.readouterr().err
    return code, err


def located(line: str, path: Path) -> bool:
    """``FILE:LINE: message``, or ``FILE: message`` (which the CLI prefixes with ``okrsync: ``)."""
    name = str(path)
    line = line.removeprefix("okrsync: ")
    if not line.startswith(name + ":"):
        return False
    rest = line[len(name) + 1 :]
    head, sep, _ = rest.partition(": ")
    return rest.startswith(" ") or (bool(sep) and head.isdigit())


def mutate_lines(lines: list[str], ops: list[tuple[int, int, int]]) -> list[str]:
    out = list(lines)
    for op, where, what in ops:
        if not out:
            out = [GARBAGE[what % len(GARBAGE)]]
            continue
        index = where % len(out)
        line = out[index]
        junk = GARBAGE[what % len(GARBAGE)]
        if op == 0:
            del out[index]
        elif op == 1:
            out.insert(index, line)  # a duplicated key
        elif op == 2 and ":" in line:
            key, _, _ = line.partition(":")
            out[index] = f"{key}: {junk}"  # a retyped value
        elif op == 3:
            out.insert(index, junk)
        elif op == 4:
            out[index] = " " * (what % 5) + line.lstrip()  # indentation drift
        else:
            out[index] = line[: what % (len(line) + 1)]  # a line cut short
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 10**4), st.integers(0, 10**4)), min_size=1,
                    max_size=4))
def test_mutated_configs_give_exit_2_with_located_lines_or_exit_0(
    ops: list[tuple[int, int, int]], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in EXAMPLE_ENV.items():
        monkeypatch.setenv(key, value)
    path = tmp_path / "okrs.yaml"
    path.write_text("\n".join(mutate_lines(EXAMPLE.read_text().splitlines(), ops)) + "\n", encoding="utf-8")
    code, err = validate(path, capsys)
    assert "Traceback" not in err and "internal error" not in err, err
    assert code in (0, 2), (code, err)
    if code == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert lines and all(located(line, path) for line in lines), err
    for secret in EXAMPLE_ENV.values():
        assert secret not in err


def test_unmutated_example_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in EXAMPLE_ENV.items():
        monkeypatch.setenv(key, value)
    path = tmp_path / "okrs.yaml"
    path.write_text(EXAMPLE.read_text(), encoding="utf-8")
    assert validate(path, capsys)[0] == 0


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("billion-laughs", "a: &a [x, x, x, x, x, x, x, x, x]\n"
         + "".join(f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))),
        ("huge", "# " + "x" * (MAX_BYTES + 10) + "\nversion: 1\n"),
        ("deep", "a: " + "[" * 200 + "]" * 200 + "\n"),
        ("many-aliases", "x: &x 1\n" + "".join(f"k{i}: *x\n" for i in range(200))),
        ("self-merge", "a: &a\n  <<: *a\n"),
        ("binary", "\x00\x01\x02version: 1\n"),
    ],
)
def test_yaml_bombs_and_huge_files_are_refused_with_a_located_line(
    name: str, text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    code, err = validate(path, capsys)
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and all(located(line, path) for line in lines), err
    assert "Traceback" not in err


# -- tracker payloads ----------------------------------------------------------------------------

REPLACEMENTS: list[Any] = [None, 0, -1, "", "x", [], {}, True, 1e308, [None], {"name": None}, "2026-02-30T25:61:00Z",
                           "ça", 10**30, [{"key": 1}], float("nan")]
DELETE = object()


def nodes(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from nodes(inner, (*path, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from nodes(inner, (*path, index))


def mutate_json(value: Any, ops: list[tuple[int, int]], keep_root: bool = True) -> Any:
    """``value`` with a few nodes replaced by odd values or deleted (a dict key)."""
    data = copy.deepcopy(value)
    for where, what in ops:
        paths = [p for p in nodes(data) if p or not keep_root]
        if not paths:
            return data
        path = paths[where % len(paths)]
        if not path:
            return REPLACEMENTS[what % len(REPLACEMENTS)]
        parent = data
        for step in path[:-1]:
            parent = parent[step]
        replacement = DELETE if what % (len(REPLACEMENTS) + 1) == len(REPLACEMENTS) else REPLACEMENTS[
            what % len(REPLACEMENTS)]
        if replacement is DELETE and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(replacement) if replacement is not DELETE else None
    return data


OPS = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**3)), min_size=1, max_size=6)
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def jira_connector(url: str = "https://jira.test", **context: Any) -> JiraConnector:
    config = JiraSource(type="jira", url=url, auth={"email": "rel@example.com", "token": "jira-SECRET-tok"},
                        scope="project in (PLAT, MOB)")
    return JiraConnector("jira", config, ConnectorContext(policy=HttpPolicy(attempts=2, backoff_base=0.01),
                                                          stop=threading.Event(), now=lambda: datetime.now(UTC),
                                                          sleep=lambda s: None, **context))


@settings(max_examples=400, deadline=None)
@given(ops=OPS)
def test_mutated_jira_issues_map_without_raising(ops: list[tuple[int, int]]) -> None:
    page = json.loads((FIXTURES / "jira" / "cloud_search_page.json").read_text())
    connector = jira_connector()
    meta = JiraMeta(cloud=True, points_fields=("customfield_10016", "customfield_10028"),
                    epic_link_field="customfield_10014")
    for raw in page["issues"]:
        item = connector.to_item(mutate_json(raw, ops), meta)
        assert isinstance(item, WorkItem)


@settings(max_examples=400, deadline=None)
@given(ops=OPS)
def test_mutated_github_issues_map_without_raising(ops: list[tuple[int, int]]) -> None:
    listing = json.loads((FIXTURES / "github" / "issues_mixed.json").read_text())
    for raw in listing:
        item = to_work_item(mutate_json(raw, ops), "github", repo="acme/web")
        assert item is None or isinstance(item, WorkItem)


class Mangler:
    """Wraps a sandbox app's ``handle``: JSON answers of matching paths are mutated on the way out."""

    def __init__(self, server: SandboxServer, paths: tuple[str, ...]) -> None:
        self.server = server
        self.paths = paths
        self.ops: list[tuple[int, int]] = []
        self.original: Callable[[Any], Reply] = server.app.handle
        server.app.handle = self.handle  # type: ignore[method-assign]

    def handle(self, request: Any) -> Reply:
        reply = self.original(request)
        if self.ops and any(p in request.path for p in self.paths) and isinstance(reply.body, dict | list):
            reply = Reply(reply.status, mutate_json(reply.body, self.ops, keep_root=False), reply.headers)
        return reply


@pytest.fixture(scope="module")
def mangled_jira() -> Iterator[tuple[SandboxServer, Mangler]]:
    server, _ = start_jira_sandbox("demo", users={"rel@example.com": "jira-SECRET-tok"})
    try:
        yield server, Mangler(server, ("/search", "/bulkfetch", "/field", "/serverInfo"))
    finally:
        server.stop()


@pytest.fixture(scope="module")
def mangled_github() -> Iterator[tuple[SandboxServer, Mangler]]:
    server, app = start_github_sandbox("demo", tokens=("gh-SECRET-tok",))
    try:
        yield server, Mangler(server, ("/issues",))
    finally:
        server.stop()


def drain(pages: Iterator[Any]) -> int:
    count = 0
    for page in pages:
        assert all(isinstance(item, WorkItem) for item in page.items)
        count += len(page.items)
    return count


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_mutated_jira_pages_through_a_whole_fetch_store_or_fail_cleanly(
    ops: list[tuple[int, int]], mangled_jira: tuple[SandboxServer, Mangler]
) -> None:
    server, mangler = mangled_jira
    mangler.ops = ops
    try:
        connector = jira_connector(server.url, state={})
        try:
            drain(connector.fetch(None, full=True, census=True, rules=[]))
        except SourceError:
            pass
    finally:
        mangler.ops = []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_mutated_github_pages_through_a_whole_fetch_store_or_fail_cleanly(
    ops: list[tuple[int, int]], mangled_github: tuple[SandboxServer, Mangler]
) -> None:
    server, mangler = mangled_github
    mangler.ops = ops
    try:
        config = GitHubSource(type="github", url=server.url, token="gh-SECRET-tok", repos=("acme/web", "acme/api"))
        connector = GitHubConnector("github", config, ConnectorContext(
            policy=HttpPolicy(attempts=2, backoff_base=0.01), stop=threading.Event(),
            now=lambda: datetime.now(UTC), sleep=lambda s: None))
        try:
            drain(connector.fetch(None, full=True, census=True, rules=[]))
        except SourceError:
            pass
    finally:
        mangler.ops = []


def test_mangler_really_changes_answers(mangled_jira: tuple[SandboxServer, Mangler]) -> None:
    """Guards the property tests above: a mutation that empties every search breaks the fetch."""
    server, mangler = mangled_jira
    clean = drain(jira_connector(server.url, state={}).fetch(None, full=True, census=True, rules=[]))
    mangler.ops = [(1, 4)]  # the first node under the root becomes "x"
    try:
        with pytest.raises(SourceError):
            drain(jira_connector(server.url, state={}).fetch(None, full=True, census=True, rules=[]))
    finally:
        mangler.ops = []
    assert clean > 20
    _ = random  # seeds come from hypothesis
