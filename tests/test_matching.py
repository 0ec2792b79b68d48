"""Which key results an item serves: epic children, labels, PR vs issue, first rule wins."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from connectors.github import GitHubRule
from connectors.jira import JiraRule
from syncer.config import Config, Cycle, KeyResult, Objective
from syncer.matching import (
    CompiledRule,
    RuleIndex,
    build_index,
    compile_rules,
    match_all,
    match_item,
    rules_needing_members,
)
from syncer.model import ItemKind, State, WorkItem

T0 = datetime(2026, 10, 5, tzinfo=UTC)


def jira(key: str, **kw: Any) -> WorkItem:
    base: dict[str, Any] = dict(
        source="jira",
        id=f"id-{key}",
        key=key,
        title=key,
        url=f"https://jira/{key}",
        kind=ItemKind.ISSUE,
        state=State.TODO,
        updated_at=T0,
        container=key.split("-")[0],
    )
    base.update(kw)
    return WorkItem(**base)


def gh(ref: str, **kw: Any) -> WorkItem:
    base: dict[str, Any] = dict(
        source="github",
        id=f"gh-{ref}",
        key=ref,
        title=ref,
        url=f"https://github.com/{ref}",
        kind=ItemKind.ISSUE,
        state=State.TODO,
        updated_at=T0,
        container=ref.split("#")[0],
    )
    base.update(kw)
    return WorkItem(**base)


def compiled(*rules: tuple[str, Any]) -> tuple[CompiledRule, ...]:
    """(kr_id, rule) pairs -> compiled rules with per-KR indexes, as compile_rules numbers them."""
    counts: dict[str, int] = {}
    out = []
    for kr_id, rule in rules:
        out.append(CompiledRule(kr_id, counts.get(kr_id, 0), rule))
        counts[kr_id] = counts.get(kr_id, 0) + 1
    return tuple(out)


EPIC = JiraRule(source="jira", epic="PLAT-1")


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        pytest.param(jira("PLAT-2", parent_key="PLAT-1"), {"kr": 0}, id="epic-child-team-managed"),
        pytest.param(jira("PLAT-3", parent_key="plat-1"), {"kr": 0}, id="epic-key-case-insensitive"),
        pytest.param(jira("PLAT-1", kind=ItemKind.EPIC), {}, id="the-epic-itself"),
        pytest.param(
            jira("PLAT-1", kind=ItemKind.EPIC, parent_key="PLAT-0"), {}, id="epic-under-an-initiative"
        ),
        pytest.param(
            jira("PLAT-4", kind=ItemKind.SUBTASK, parent_key="PLAT-1"), {}, id="subtask-directly-under-epic"
        ),
        pytest.param(jira("PLAT-5", kind=ItemKind.SUBTASK, parent_key="PLAT-2"), {}, id="subtask-of-a-child"),
        pytest.param(jira("PLAT-6", parent_key="PLAT-9"), {}, id="child-of-another-epic"),
        pytest.param(jira("PLAT-7"), {}, id="no-parent"),
        pytest.param(gh("acme/web#1", parent_key="PLAT-1"), {}, id="other-source-same-parent-key"),
    ],
)
def test_epic_rule(item: WorkItem, expected: dict[str, int]) -> None:
    assert match_item(item, compiled(("kr", EPIC)), {}) == expected


@pytest.mark.parametrize(
    ("rule", "item", "matches"),
    [
        (GitHubRule(source="github", labels=("bug", "customer")), gh("a/b#1", labels=("bug",)), False),
        (
            GitHubRule(source="github", labels=("bug", "customer")),
            gh("a/b#1", labels=("Customer", "BUG", "p1")),
            True,
        ),
        (GitHubRule(source="github", repo="acme/web"), gh("acme/api#1"), False),
        (GitHubRule(source="github", repo="acme/web"), gh("Acme/Web#1"), True),
        (GitHubRule(source="github", milestone="2026-Q4"), gh("a/b#1", milestone="2026-Q4"), True),
        (GitHubRule(source="github", milestone="2026-Q4"), gh("a/b#1", milestone="2026-Q3"), False),
        # type: issues by default, pull requests only when asked, both with `any`
        (GitHubRule(source="github", repo="a/b"), gh("a/b#2", kind=ItemKind.PULL_REQUEST), False),
        (GitHubRule(source="github", repo="a/b", type="pull_request"), gh("a/b#2"), False),
        (
            GitHubRule(source="github", repo="a/b", type="pull_request"),
            gh("a/b#2", kind=ItemKind.PULL_REQUEST),
            True,
        ),
        (GitHubRule(source="github", repo="a/b", type="any"), gh("a/b#2", kind=ItemKind.PULL_REQUEST), True),
        (GitHubRule(source="github", repo="a/b", type="any"), gh("a/b#3"), True),
        # sub-issues marked as sub-tasks follow their parent, even on GitHub
        (GitHubRule(source="github", repo="a/b"), gh("a/b#4", kind=ItemKind.SUBTASK), False),
        # keys inside one rule are AND-ed
        (
            GitHubRule(source="github", repo="a/b", labels=("bug",), milestone="M1"),
            gh("a/b#5", labels=("bug",), milestone="M2"),
            False,
        ),
        (JiraRule(source="jira", labels=("perf",), project="PLAT"), jira("PLAT-8", labels=("perf",)), True),
        (JiraRule(source="jira", labels=("perf",), project="MOB"), jira("PLAT-8", labels=("perf",)), False),
        (JiraRule(source="jira", issue_type="bug"), jira("PLAT-9", issue_type="Bug"), True),
        (JiraRule(source="jira", component="api"), jira("PLAT-9", components=("web",)), False),
        # a rule of one source never selects another source's items
        (JiraRule(source="jira", project="PLAT"), gh("PLAT/x#1"), False),
    ],
)
def test_single_rule(rule: Any, item: WorkItem, matches: bool) -> None:
    assert match_item(item, compiled(("kr", rule)), {}) == ({"kr": 0} if matches else {})


@pytest.mark.parametrize("indexed", [False, True])
def test_member_rules_use_the_tracker_sets(indexed: bool) -> None:
    jql = JiraRule(source="jira", jql="labels = perf", project="PLAT")
    members = {jql.fingerprint(): frozenset({"id-PLAT-1", "id-MOB-1"})}
    rules: Any = build_index(compiled(("kr", jql))) if indexed else compiled(("kr", jql))
    assert match_item(jira("MOB-1"), rules, members) == {}  # a member, but the other keys still apply
    assert match_item(jira("PLAT-1"), rules, members) == {"kr": 0}
    assert match_item(jira("PLAT-2"), rules, members) == {}
    assert match_item(jira("PLAT-1"), rules, {}) == {}


def test_matched_twice_in_one_kr_counts_once_with_first_rule() -> None:
    rules = compiled(
        ("a", JiraRule(source="jira", project="MOB")),
        ("a", JiraRule(source="jira", labels=("x",))),
        ("a", JiraRule(source="jira", project="PLAT")),
        ("b", JiraRule(source="jira", project="PLAT")),
    )
    item = jira("PLAT-1", labels=("x",))
    assert match_item(item, rules, {}) == {"a": 1, "b": 0}
    assert match_item(item, build_index(rules), {}) == {"a": 1, "b": 0}


def test_index_only_tries_rules_of_the_items_source() -> None:
    class Exploding(JiraRule):
        def matches(self, item: WorkItem, members: Any) -> bool:
            raise AssertionError("a jira rule was tried on a github item")

    rules = compiled(
        ("a", Exploding(source="jira", project="X")), ("b", GitHubRule(source="github", repo="a/b"))
    )
    index = build_index(rules)
    assert isinstance(index, RuleIndex)
    assert list(index) == list(rules) and len(index) == 2 and index[1] == rules[1]
    assert index.for_source("jira") == (rules[0],)
    assert index.sources == frozenset({"jira", "github"})
    assert match_item(gh("a/b#1"), index, {}) == {"b": 0}
    assert build_index(index) is index


def _config() -> Config:
    epic = JiraRule(source="jira", epic="PLAT-1")
    jql = JiraRule(source="jira", jql="labels = perf")
    return Config(
        cycle=Cycle(name="Q4", start=date(2026, 10, 1), end=date(2026, 12, 31)),
        objectives=(
            Objective(
                id="o1",
                title="O1",
                key_results=(
                    KeyResult(id="k1", title="K1", match=(epic, GitHubRule(source="github", repo="a/b"))),
                    KeyResult(id="nps", title="NPS", metric="manual", start=30, target=45),
                ),
            ),
            Objective(
                id="o2",
                title="O2",
                key_results=(
                    KeyResult(id="k2", title="K2", metric="sum_points_done", target=9, match=(jql,)),
                ),
            ),
        ),
    )


def test_compile_rules_in_config_order_without_manual() -> None:
    rules = compile_rules(_config())
    assert [(r.kr_id, r.index, r.rule.source) for r in rules] == [
        ("k1", 0, "jira"),
        ("k1", 1, "github"),
        ("k2", 0, "jira"),
    ]


def test_rules_needing_members_dedupes_by_fingerprint() -> None:
    rules = list(compile_rules(_config()))
    rules.append(CompiledRule("k3", 0, JiraRule(source="jira", jql="labels = perf")))
    rules.append(CompiledRule("k3", 1, JiraRule(source="jira", parent="PLAT-100")))
    needed = rules_needing_members(rules)
    assert set(needed) == {"jira:jql=labels = perf", "jira:parent=PLAT-100"}
    assert rules_needing_members([JiraRule(source="jira", epic="E-1")]) == {}


def test_match_all_groups_items_by_key_result() -> None:
    rules = compile_rules(_config())
    items = [
        jira("PLAT-2", parent_key="PLAT-1"),
        jira("PLAT-1", kind=ItemKind.EPIC),
        gh("a/b#1"),
        gh("a/b#1")._replace(id="gh-other", kind=ItemKind.PULL_REQUEST),
    ]
    assert match_all(items, rules, {}) == {"k1": {"id-PLAT-2": 0, "gh-a/b#1": 1}, "k2": {}}


def _items_grid() -> list[WorkItem]:
    """Items that hit every branch of both rule models (case, empty, sub-task, PR, members)."""
    out: list[WorkItem] = []
    n = 0
    for source in ("jira", "github"):
        for kind in (ItemKind.ISSUE, ItemKind.SUBTASK, ItemKind.PULL_REQUEST, ItemKind.EPIC):
            for container in ("PLAT", "plat", "acme/Web", "MOB"):
                for labels in ((), ("perf",), ("Perf", "bug"), ("bug",), ("STRASSE", "Bug")):
                    for parent in (None, "PLAT-1", "plat-1", "acme/web#3"):
                        n += 1
                        out.append(WorkItem(
                            source=source, id=f"i{n}", key=f"K-{n}", title="t", url="u", kind=kind,
                            state=State.TODO, updated_at=T0, container=container, labels=labels,
                            parent_key=parent, issue_type="Story" if n % 3 else "bug",
                            components=("api",) if n % 2 else (), fix_versions=("1.0",) if n % 5 else (),
                            milestone="M1" if n % 4 else None,
                        ))
    return out


def test_the_rules_fast_predicates_agree_with_matches_on_every_branch() -> None:
    rules: list[Any] = [
        JiraRule(source="jira", epic="plat-1"), JiraRule(source="jira", labels=("perf",), project="plat"),
        JiraRule(source="jira", jql="x = 1"), JiraRule(source="jira", issue_type="STORY", component="api"),
        JiraRule(source="jira", fix_version="1.0"), JiraRule(source="github", labels=("bug",)),
        JiraRule(source="jira"),
        GitHubRule(source="github", repo="ACME/web", labels=("PERF",)), GitHubRule(source="github", type="any"),
        GitHubRule(source="github", type="pull_request", milestone="M1"),
        GitHubRule(source="github", parent="ACME/WEB#3"), GitHubRule(source="jira", type="any"),
        GitHubRule(source="github", labels=("straße", "BUG")),  # casefolded, not lower-cased
    ]
    items = _items_grid()
    members = {JiraRule(source="jira", jql="x = 1").fingerprint(): frozenset(i.id for i in items[::3])}
    compared = agreed = 0
    for rule in rules:
        test = rule.predicate()
        for item in items:
            compared += 1
            agreed += test(item, members) == rule.matches(item, members)
    assert agreed == compared == len(rules) * len(items)
    # and the grid is not trivial: each rule selects some items and rejects others
    assert all(0 < sum(r.matches(i, members) for i in items) < len(items) for r in rules)


def test_the_rule_index_gives_what_every_rule_in_config_order_gives() -> None:
    """``match_item`` with a RuleIndex (keyed on epic / project / repository) equals walking
    every rule in order, for every item of the grid, including the first-rule-wins index."""
    rules: list[Any] = [
        JiraRule(source="jira", epic="PLAT-1"), JiraRule(source="jira", project="plat", labels=("perf",)),
        JiraRule(source="jira", labels=("bug",)), JiraRule(source="jira", epic="plat-1", project="MOB"),
        JiraRule(source="jira", jql="x = 1"), JiraRule(source="jira", project="PLAT"),
        GitHubRule(source="github", repo="ACME/web"), GitHubRule(source="github", labels=("bug",)),
        GitHubRule(source="github", repo="acme/WEB", type="any"), GitHubRule(source="github", type="any"),
    ]
    # two key results share rules, so "first rule of the KR wins" is exercised across keyed/plain
    compiled = [CompiledRule(f"kr-{n % 4}", n // 4, rule) for n, rule in enumerate(rules)]
    index = build_index(compiled)
    items = _items_grid()
    members = {JiraRule(source="jira", jql="x = 1").fingerprint(): frozenset(i.id for i in items[::2])}
    slow = [match_item(item, list(compiled), members) for item in items]
    fast = [match_item(item, index, members) for item in items]
    assert fast == slow
    assert sum(bool(m) for m in fast) > len(items) // 4 and any(len(m) >= 2 for m in fast)


def test_a_github_label_rule_takes_labels_in_a_list_too() -> None:
    """The predicate folds an item's labels through a cache keyed by the tuple; a list (an item
    built by a plugin connector that did not make a tuple) is folded directly, not an error."""
    rule = GitHubRule(source="github", labels=("BUG",))
    listed = gh("a/b#1")._replace(labels=["Bug", "p1"])
    assert rule.predicate()(listed, {}) is True is rule.matches(listed, {})
    assert rule.predicate()(listed._replace(labels=["p1"]), {}) is False
