"""okrsync sync end to end over HTTP against both sandbox trackers (the demo organisation).

Every assertion compares the store with the sandbox's own truth, not with okrsync's earlier
output: full sync, a week of changes, an incremental sync equal to a fresh full recomputation,
idle passes at the request floor, one source failing while the other syncs, dry-run, and
idempotent write-back.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.jira import JiraConnector
from syncer.config import Config, load
from syncer.demo import DEMO_ENV, GITHUB_TOKEN, JIRA_EMAIL, JIRA_TOKEN, demo_config_text, mutate_week
from syncer.model import WorkItem
from syncer.sandbox.github import GitHubApp, start_github_sandbox
from syncer.sandbox.jira import JiraApp, quarter_bounds, start_jira_sandbox
from syncer.sandbox.server import SandboxServer
from syncer.store import Store
from syncer.sync import SyncOptions, run_once

NOW = datetime.now(UTC).replace(microsecond=0)
CYCLE_BOUNDS = quarter_bounds(NOW)


@dataclass
class Org:
    jira_server: SandboxServer
    jira: JiraApp
    github_server: SandboxServer
    github: GitHubApp
    folder: Path

    def config(self, name: str = "okrs.yaml", store: str = "okrsync.db") -> Config:
        path = self.folder / name
        path.write_text(demo_config_text(self.jira_server.url, self.github_server.url, NOW,
                                         store=f"sqlite:///{store}"), encoding="utf-8")
        return load(path, env=DEMO_ENV)


@pytest.fixture
def org(tmp_path: Path) -> Iterator[Org]:
    jira_server, jira = start_jira_sandbox("demo", now=NOW, users={JIRA_EMAIL: JIRA_TOKEN})
    github_server, github = start_github_sandbox("demo", now=NOW, tokens=(GITHUB_TOKEN,))
    try:
        yield Org(jira_server, jira, github_server, github, tmp_path)
    finally:
        jira_server.stop()
        github_server.stop()


def truth(org: Org) -> dict[tuple[str, str], WorkItem]:
    jira = [i for i in org.jira.truth("jira", org.jira_server.url) if i.container in ("PLAT", "MOB")]
    github = org.github.truth("github", repos=["acme/web", "acme/api"])
    return {(i.source, i.id): i for i in [*jira, *github]}


def stored(store: Store) -> dict[tuple[str, str], WorkItem]:
    return {(i.source, i.id): i for i in store.iter_items()}


def assert_store_equals_truth(store: Store, org: Org) -> None:
    expected, actual = truth(org), stored(store)
    assert set(actual) == set(expected), (
        f"missing {sorted(set(expected) - set(actual))[:5]}, extra {sorted(set(actual) - set(expected))[:5]}"
    )
    for ref, want in expected.items():
        got = actual[ref]
        assert (got.key, got.state, got.excluded, got.kind, got.parent_key, got.points, tuple(sorted(got.labels))) == (
            want.key, want.state, want.excluded, want.kind, want.parent_key, want.points,
            tuple(sorted(want.labels)),
        ), ref


def test_full_then_incremental_equals_the_truth_and_a_fresh_full_sync(org: Org) -> None:
    config = org.config()
    with Store.open(config.store_url()) as store:
        first = run_once(config, store, SyncOptions(full=True))
        assert first.exit_code == 0, [o.error for o in first.outcomes]
        assert_store_equals_truth(store, org)
        history = store.histories()
        first_snapshot = store.latest_snapshots()["customer-bugs"]
        rebuilt = history["customer-bugs"]
        if NOW.day > 1 or NOW.month % 3 != 1:  # a burn-up from the cycle's start, not one point
            assert len(rebuilt) > 1 and rebuilt[0].at < first_snapshot["at"]
            assert all(a.current <= b.current for a, b in zip(rebuilt, rebuilt[1:], strict=False))
        assert rebuilt[-1].current == first_snapshot["current"]
        mutate_week(org.jira, org.github)
        second = run_once(config, store, SyncOptions())
        assert second.exit_code == 0
        assert_store_equals_truth(store, org)
        incremental = {kr: (s["current"], s["total"], s["done"]) for kr, s in store.latest_snapshots().items()}
        changes = second.changes
        assert changes["checkout-speed"].done_delta == 1 and changes["customer-bugs"].done_delta == 1
    fresh = org.config("fresh.yaml", "fresh.db")
    with Store.open(fresh.store_url()) as store:
        assert run_once(fresh, store, SyncOptions(full=True)).exit_code == 0
        recomputed = {kr: (s["current"], s["total"], s["done"]) for kr, s in store.latest_snapshots().items()}
    assert incremental == recomputed


def test_a_full_sync_matches_jql_members_once_without_reading_items_back(
    org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The JQL sets arrive before the items: a first sync stores each item with its final
    # matches instead of reading the members back from the store to match them again.
    read_back: list[int] = []
    items_by_ids = Store.items_by_ids

    def counting(self: Store, source: str, ids: Collection[str]) -> list[WorkItem]:
        found = items_by_ids(self, source, ids)
        read_back.append(len(found))
        return found

    monkeypatch.setattr(Store, "items_by_ids", counting)
    config = org.config()
    with Store.open(config.store_url()) as store:
        assert run_once(config, store, SyncOptions(full=True)).exit_code == 0
        matched = {item.key for item, _ in store.kr_items("perf-points")}
    expected = {i.key for i in truth(org).values() if i.source == "jira" and "perf" in i.labels}
    assert expected and matched == expected
    assert sum(read_back) == 0


@pytest.mark.parametrize("flavour", ["cloud", "datacenter"])
def test_an_issue_that_joins_a_jql_rule_during_a_full_sync_is_matched_by_the_next_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flavour: str
) -> None:
    # A whole pass asks the JQL rules first: an issue labelled right after that query is stored
    # with the label but outside the rule. The next incremental pass must take its new version
    # for a change (and ask the rule about it), not for one the full pass already read.
    jira_server, jira = start_jira_sandbox("demo", now=NOW, users={JIRA_EMAIL: JIRA_TOKEN}, flavour=flavour)
    github_server, github = start_github_sandbox("demo", now=NOW, tokens=(GITHUB_TOKEN,))
    try:
        org = Org(jira_server, jira, github_server, github, tmp_path)
        target = next(i for i in jira.issues.values() if i.key.startswith("PLAT-") and "perf" not in i.labels
                      and not i.subtask and i.id not in jira.deleted)
        ids = JiraConnector._ids
        labelled: list[str] = []

        def label_after_the_rule_query(self: JiraConnector, jql: str, scan: Any, **kw: Any) -> list[str]:
            found = ids(self, jql, scan, **kw)
            if jql == "(labels = perf)" and not labelled:
                jira.control("update", {"key": target.key, "labels": [*target.labels, "perf"]})
                labelled.append(target.key)
            return found

        monkeypatch.setattr(JiraConnector, "_ids", label_after_the_rule_query)
        config = org.config()
        with Store.open(config.store_url()) as store:
            assert run_once(config, store, SyncOptions(full=True)).exit_code == 0
            assert labelled == [target.key]
            stored = {i.key: i for i in store.iter_items("jira")}
            assert "perf" in stored[target.key].labels
            assert run_once(config, store, SyncOptions()).exit_code == 0
            matched = {item.key for item, _ in store.kr_items("perf-points")}
        expected = {i.key for i in truth(org).values() if i.source == "jira" and "perf" in i.labels}
        assert target.key in matched and matched == expected
    finally:
        jira_server.stop()
        github_server.stop()


def test_idle_passes_cost_one_jira_request_and_no_github_quota(org: Org) -> None:
    config = org.config()
    with Store.open(config.store_url()) as store:
        run_once(config, store, SyncOptions(full=True))
        run_once(config, store, SyncOptions(census=False))  # warm the ETags after the full pass
        org.jira_server.clear_log()
        org.github_server.clear_log()
        idle = run_once(config, store, SyncOptions(census=False))
    assert idle.exit_code == 0
    assert len(org.jira_server.requests()) == 1
    github = org.github_server.requests()
    assert github and all(r.status == 304 for r in github), [(r.path, r.status) for r in github]
    assert idle.writes == []


def test_one_source_failing_leaves_its_numbers_stale_while_the_other_syncs(org: Org) -> None:
    config = org.config()
    with Store.open(config.store_url()) as store:
        run_once(config, store, SyncOptions(full=True))
        before = store.latest_snapshots()
        mutate_week(org.jira, org.github)
        org.jira.users.clear()  # every Jira request now answers 401
        result = run_once(config, store, SyncOptions())
        after = store.latest_snapshots()
    assert result.exit_code == 1
    jira, github = result.outcomes
    assert not jira.ok and "401" in (jira.error or "") and github.ok
    assert after["checkout-speed"]["current"] == before["checkout-speed"]["current"]
    assert after["checkout-speed"]["stale"] and after["onboarding-revamp"]["stale"]
    assert after["customer-bugs"]["current"] == before["customer-bugs"]["current"] + 1
    assert not after["customer-bugs"]["stale"]
    assert JIRA_TOKEN not in (jira.error or "")


def test_dry_run_changes_no_byte_of_the_store_and_prints_the_plan(org: Org) -> None:
    config = org.config()
    with Store.open(config.store_url()) as store:
        run_once(config, store, SyncOptions(full=True))
        store.checkpoint()
    db = Path(config.store_url().removeprefix("sqlite:///"))
    before = db.read_bytes()
    mutate_week(org.jira, org.github)
    org.jira_server.clear_log()
    with Store.open(config.store_url(), dry_run=True) as store:
        plan = run_once(config, store, SyncOptions(dry_run=True))
    assert db.read_bytes() == before
    assert plan.changes["checkout-speed"].after > plan.changes["checkout-speed"].before  # type: ignore[operator]
    assert any(w.target == "OKR-12:customfield_10100" for w in plan.writes)
    assert not [r for r in org.jira_server.requests() if r.method != "GET" and "search" not in r.path]


def test_write_back_happens_once_and_a_rerun_writes_nothing(org: Org) -> None:
    config = org.config()
    with Store.open(config.store_url()) as store:
        run_once(config, store, SyncOptions(full=True))
        writes = [r for r in org.jira_server.requests() + org.github_server.requests() if r.method in ("PUT", "PATCH")]
        assert len(writes) == 2, [(r.method, r.path) for r in writes]
        okr = org.jira.find("OKR-12")
        assert okr is not None and okr.okr_progress == float(store.last_written("jira", "OKR-12:customfield_10100"))
        org.jira_server.clear_log()
        org.github_server.clear_log()
        again = run_once(config, store, SyncOptions())
    assert again.writes == []
    assert not [r for r in org.jira_server.requests() + org.github_server.requests()
                if r.method in ("PUT", "PATCH", "POST") and "search" not in r.path and "bulkfetch" not in r.path]
    body = org.github.repos["acme/okrs"].issues[4].body
    assert body.count("<!-- okrsync:start -->") == 1 and "Ship the onboarding revamp" in body


def test_data_center_children_of_a_matched_epic_are_aligned_through_the_epic_link(tmp_path: Path) -> None:
    """DC sends the Epic Link as a key only; the child still counts as aligned through its epic."""
    server, jira = start_jira_sandbox("demo", now=NOW, flavour="datacenter")
    try:
        path = tmp_path / "dc.yaml"
        first, last = CYCLE_BOUNDS
        path.write_text(f"""\
cycle: {{name: Q, start: {first}, end: {last}}}
store: sqlite:///dc.db
sources:
  jira:
    type: jira
    url: {server.url}
    auth:
      pat: sandbox-pat
    scope: project = PLAT
objectives:
  - id: o
    title: Epics themselves
    key_results:
      - id: epics
        title: Epics
        match:
          - {{source: jira, issue_type: Epic}}
""", encoding="utf-8")
        config = load(path, env={})
        with Store.open(config.store_url()) as store:
            assert run_once(config, store, SyncOptions(full=True)).exit_code == 0
            children = [i for i in store.iter_items("jira") if i.parent_key == "PLAT-1"]
            assert children and all(i.parent_id == str(jira.find("PLAT-1").id) for i in children)
            unaligned = {i.key for i in store.unaligned(config.cycle.starts_at, config.cycle.ends_at, ())}
            assert not unaligned & {i.key for i in children}
    finally:
        server.stop()


def test_gzip_compressed_answers_sync_to_the_same_store(org: Org) -> None:
    # GitHub and Jira Cloud compress their answers for a client that accepts gzip, as requests
    # does by default: the shaped decoding must see the inflated bytes, full pass and incremental.
    org.jira_server.compress = org.github_server.compress = True
    config = org.config()
    with Store.open(config.store_url()) as store:
        assert run_once(config, store, SyncOptions(full=True)).exit_code == 0
        assert_store_equals_truth(store, org)
        mutate_week(org.jira, org.github)
        assert run_once(config, store, SyncOptions()).exit_code == 0
        assert_store_equals_truth(store, org)
    assert org.jira_server.compressed > 0 and org.github_server.compressed > 0
