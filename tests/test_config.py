"""Config loading: every mistake reported as FILE:LINE: message, all at once, secrets never shown."""

from __future__ import annotations

import json
import os
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from connectors.github import PLUGIN as GITHUB
from connectors.github import GitHubPublish, GitHubRule, GitHubSource
from connectors.jira import PLUGIN as JIRA
from connectors.jira import JiraRule, JiraSource
from syncer.config import json_schema, load, resolve_store_url, schema_text
from syncer.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "config"
# Messages name the known source types: pin them so a new tracker module does not change them.
PLUGINS = {"github": GITHUB, "jira": JIRA}
EXAMPLE_ENV = {
    "JIRA_EMAIL": "me@example.com",
    "JIRA_API_TOKEN": "jira-token-123",
    "GITHUB_TOKEN": "ghp_exampletoken",
}

# Four lines every table case starts with; objectives begin on line 5.
HEAD = """\
cycle: {name: 2026-Q4, start: 2026-10-01, end: 2026-12-31}
sources:
  jira: {type: jira, url: "https://jira.example", auth: {pat: pat-1}, scope: project = PLAT}
  gh: {type: github, token: tok-1, repos: [acme/web]}
"""


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    """Load ``text`` as F.yaml and return its problems with the path shortened to ``F``."""
    path = tmp_path / "F.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load(path, env=env or {}, plugins=PLUGINS)
    return [line.replace(str(path), "F") for line in caught.value.problems]


def write(tmp_path: Path, text: str, name: str = "okrs.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


CASES: list[tuple[str, str, list[str]]] = [
    (
        "unknown top-level key, with a hint",
        HEAD + "objectivs: []\n",
        ["F:5: unknown key 'objectivs' in the top level (did you mean 'objectives'?)"],
    ),
    (
        "unknown key without a close match lists the known ones",
        HEAD + "zzz: 1\n",
        [
            "F:5: unknown key 'zzz' in the top level (known keys: cycle, objectives, schedule, sources,"
            " store, unaligned, version)"
        ],
    ),
    (
        "path is not a config key",
        HEAD + "path: /tmp/x\n",
        ["F:5: unknown key 'path' in the top level (known keys: cycle, objectives, schedule, sources,"
         " store, unaligned, version)"],
    ),
    (
        "unknown key in an objective",
        HEAD + "objectives:\n  - id: a\n    title: A\n    ownr: me\n",
        ["F:8: unknown key 'ownr' in objectives[0] (did you mean 'owner'?)"],
    ),
    (
        "unknown key inside a plugin's nested model",
        "cycle: {name: Q, start: 2026-10-01, end: 2026-12-31}\n"
        "sources:\n"
        "  jira:\n"
        "    type: jira\n"
        "    url: https://jira.example\n"
        "    scope: project = X\n"
        "    auth:\n"
        "      pat: p\n"
        "      tokn: t\n",
        ["F:9: unknown key 'tokn' in sources.jira.auth (did you mean 'token'?)"],
    ),
    (
        "unknown key in a source",
        "cycle: {name: Q, start: 2026-10-01, end: 2026-12-31}\n"
        "sources:\n"
        "  gh:\n"
        "    type: github\n"
        "    token: t\n"
        "    repo: [acme/web]\n",
        [
            "F:3: sources.gh: missing required key 'repos'",
            "F:6: unknown key 'repo' in sources.gh (did you mean 'repos'?)",
        ],
    ),
    (
        "source with an unknown type names the known ones",
        "cycle: {name: Q, start: 2026-10-01, end: 2026-12-31}\nsources:\n  lab:\n    type: gitlab\n",
        ["F:4: sources.lab: unknown type 'gitlab' (did you mean 'github'?) (known types: github, jira)"],
    ),
    (
        "source without a type",
        "cycle: {name: Q, start: 2026-10-01, end: 2026-12-31}\nsources:\n  lab:\n    url: x\n",
        ["F:3: sources.lab: missing required key 'type' (known types: github, jira)"],
    ),
    (
        "duplicate objective id",
        HEAD + "objectives:\n  - id: a\n    title: A\n  - id: a\n    title: B\n",
        ["F:8: duplicate objective id 'a' (first on line 6)"],
    ),
    (
        "duplicate key result id across objectives",
        HEAD
        + "objectives:\n"
        + "  - id: a\n    title: A\n    key_results:\n"
        + "      - {id: k, title: K, metric: manual, start: 0, target: 1}\n"
        + "  - id: b\n    title: B\n    key_results:\n"
        + "      - {id: k, title: K, metric: manual, start: 0, target: 1}\n",
        ["F:13: duplicate key result id 'k' (first on line 9)"],
    ),
    (
        "a key result may share an objective's id",
        HEAD
        + "objectives:\n  - id: a\n    title: A\n    key_results:\n"
        + "      - {id: a, title: K, metric: manual, start: 0, target: 1}\n"
        + "bogus: 1\n",
        ["F:10: unknown key 'bogus' in the top level (known keys: cycle, objectives, schedule, sources,"
         " store, unaligned, version)"],
    ),
    (
        "dangling parent, with a hint",
        HEAD + "objectives:\n  - id: growth\n    title: A\n  - id: b\n    title: B\n    parent: grwoth\n",
        ["F:10: objective 'b': parent 'grwoth' is not an objective id (did you mean 'growth'?)"],
    ),
    (
        "cycle in parents is named once, from the first objective in the file",
        HEAD
        + "objectives:\n"
        + "  - {id: a, title: A, parent: c}\n"
        + "  - {id: b, title: B, parent: a}\n"
        + "  - {id: c, title: C, parent: b}\n"
        + "  - {id: d, title: D, parent: d}\n",
        [
            "F:6: objectives form a parent cycle: a -> c -> b -> a",
            "F:9: objectives form a parent cycle: d -> d",
        ],
    ),
    (
        "unknown source in a rule names the known sources",
        HEAD
        + "objectives:\n  - id: a\n    title: A\n    key_results:\n      - id: k\n        title: K\n"
        + "        match:\n          - {source: jria, epic: PLAT-1}\n",
        ["F:12: objectives[0].key_results[0].match[0]: unknown source 'jria' (did you mean 'jira'?)"
         " (known sources: gh, jira)"],
    ),
    (
        "unknown source in a publish target",
        HEAD
        + "objectives:\n  - id: a\n    title: A\n    key_results:\n"
        + "      - {id: k, title: K, metric: manual, start: 0, target: 1,\n"
        + "         publish: [{source: gitlab, issue: X}]}\n",
        ["F:10: objectives[0].key_results[0].publish[0]: unknown source 'gitlab' (known sources: gh, jira)"],
    ),
    (
        "rule with no condition",
        HEAD
        + "objectives:\n  - id: a\n    title: A\n    key_results:\n      - id: k\n        title: K\n"
        + "        match:\n          - source: gh\n",
        ["F:12: objectives[0].key_results[0].match[0]: rule has no condition: add one of repo, labels,"
         " milestone, type, parent"],
    ),
    (
        "unknown key in a rule is checked with that source's plugin",
        HEAD
        + "objectives:\n  - id: a\n    title: A\n    key_results:\n      - id: k\n        title: K\n"
        + "        match:\n          - {source: gh, epic: PLAT-1}\n",
        ["F:12: unknown key 'epic' in objectives[0].key_results[0].match[0] (known keys: labels, milestone,"
         " parent, repo, source, type)"],
    ),
    (
        "plugin validator message without its repeated prefix",
        HEAD
        + "objectives:\n  - id: a\n    title: A\n    key_results:\n"
        + "      - id: k\n        title: K\n        metric: manual\n        start: 0\n        target: 1\n"
        + "        publish:\n          - {source: jira, issue: OKR-1}\n",
        ["F:15: objectives[0].key_results[0].publish[0]: give exactly one of `field: <field id>` or"
         " `comment: true`"],
    ),
    (
        "start == target",
        HEAD
        + "objectives:\n  - id: a\n    title: A\n    key_results:\n"
        + "      - id: k\n        title: K\n        metric: manual\n        start: 5\n        target: 5\n",
        ["F:13: key result 'k': start and target are both 5; progress cannot move"],
    ),
    (
        "start == the default target of a percent metric",
        HEAD
        + "objectives:\n  - id: a\n    title: A\n    key_results:\n"
        + "      - id: k\n        title: K\n        start: 100\n"
        + "        match: [{source: gh, repo: acme/web}]\n",
        ["F:11: key result 'k': start and target are both 100; progress cannot move"],
    ),
    (
        "manual needs start and target",
        HEAD + "objectives:\n  - id: a\n    title: A\n    key_results:\n"
        + "      - {id: k, title: K, metric: manual, target: 3}\n",
        ["F:9: key result 'k': metric manual needs start"],
    ),
    (
        "manual takes no match rules",
        HEAD + "objectives:\n  - id: a\n    title: A\n    key_results:\n"
        + "      - id: k\n        title: K\n        metric: manual\n        start: 1\n        target: 3\n"
        + "        match: [{source: gh, repo: acme/web}]\n",
        ["F:14: key result 'k': metric manual takes its value from check-ins; drop match"],
    ),
    (
        "count_done needs a target",
        HEAD + "objectives:\n  - id: a\n    title: A\n    key_results:\n"
        + "      - id: k\n        title: K\n        metric: count_done\n"
        + "        match: [{source: gh, labels: [bug]}]\n",
        ["F:11: key result 'k': metric count_done needs a target"],
    ),
    (
        "an empty match list is no better",
        HEAD + "objectives:\n  - id: a\n    title: A\n    key_results:\n      - {id: k, title: K, match: []}\n",
        ["F:9: key result 'k': no match rules: add `match:` or use metric: manual"],
    ),
    (
        "a measured key result needs match rules",
        HEAD + "objectives:\n  - id: a\n    title: A\n    key_results:\n      - {id: k, title: K}\n",
        ["F:9: key result 'k': no match rules: add `match:` or use metric: manual"],
    ),
    (
        "bad metric name",
        HEAD + "objectives:\n  - id: a\n    title: A\n    key_results:\n"
        + "      - id: k\n        title: K\n        metric: percent\n"
        + "        match: [{source: gh, repo: a/b}]\n",
        ["F:11: objectives[0].key_results[0].metric: unknown metric 'percent' (did you mean 'percent_done'?)"
         " (known: percent_done, points_percent_done, count_done, sum_points_done, count_open, manual)"],
    ),
    (
        "wrong type: a number expected",
        HEAD + "objectives:\n  - id: a\n    title: A\n    weight: heavy\n",
        ["F:8: objectives[0].weight: expected a number, not 'heavy'"],
    ),
    (
        "wrong type: YAML read text as a number",
        HEAD + "objectives:\n  - id: a\n    title: 2026\n",
        ["F:7: objectives[0].title: expected text (put it in quotes: YAML read it as a number, date or"
         " boolean)"],
    ),
    (
        "wrong type: a list expected",
        HEAD + "unaligned:\n  ignore_labels: chore\n",
        ["F:6: unaligned.ignore_labels: expected a list"],
    ),
    (
        "negative weight",
        HEAD + "objectives:\n  - id: a\n    title: A\n    weight: -1\n",
        ["F:8: objectives[0].weight: must be >= 0.0"],
    ),
    (
        "bad date",
        "cycle:\n  name: Q\n  start: 2026-13-01\n  end: 2026-12-31\n",
        ["F:3: cycle.start: invalid date '2026-13-01': write it as YYYY-MM-DD"],
    ),
    (
        "cycle end before start",
        "cycle:\n  name: Q\n  start: 2026-10-01\n  end: 2026-09-30\n",
        ["F:4: cycle.end: the cycle ends (2026-09-30) before it starts (2026-10-01)"],
    ),
    (
        "missing cycle",
        "sources: {}\n",
        ["F:1: the top level: missing required key 'cycle'"],
    ),
    (
        "bad duration",
        HEAD + "schedule:\n  interval: 5 minutes\n",
        ["F:6: schedule.interval: invalid duration '5 minutes': write it like 30s, 5m, 1h or 1d"],
    ),
    (
        "unsupported version",
        "version: 2\n" + HEAD,
        ["F:1: version: unsupported version 2; this okrsync reads version 1"],
    ),
    (
        "unsupported store",
        HEAD + "store: mysql://db/okr\n",
        ["F:5: store: unsupported database URL 'mysql': use sqlite:///FILE.db or postgresql://HOST/DB"],
    ),
    (
        "missing environment variable names it",
        "cycle: {name: Q, start: 2026-10-01, end: 2026-12-31}\n"
        "sources:\n  gh:\n    type: github\n    token: ${GITHUB_TOKEN}\n    repos: [acme/web]\n",
        ["F:5: environment variable GITHUB_TOKEN is not set"],
    ),
    (
        "unclosed variable",
        HEAD + "unaligned:\n  label: ${OOPS\n",
        ["F:6: '${' without a closing '}'"],
    ),
    (
        "duplicate YAML key",
        HEAD + "objectives:\n  - id: a\n    title: A\n    title: B\n",
        ["F:8: duplicate key 'title' (first on line 7)"],
    ),
    (
        "YAML syntax error",
        HEAD + "objectives:\n  - id: a\n    title: A: B\n",
        ["F:7: YAML syntax error: mapping values are not allowed here"],
    ),
    (
        "YAML syntax error: bad indentation",
        HEAD + "objectives:\n  - id: a\n   title: A\n",
        ["F:7: YAML syntax error: expected <block end>, but found '<block mapping start>' (while parsing a"
         " block collection on line 6)"],
    ),
    (
        "YAML syntax error in a flow mapping",
        "cycle: {name: Q, start: 2026-10-01\nsources: {}\n",
        ["F:2: YAML syntax error: expected ',' or '}', but got ':' (while parsing a flow mapping on line 1)"],
    ),
    (
        "empty file",
        "# nothing yet\n",
        ["F:1: the file is empty: expected a mapping with cycle, sources and objectives"],
    ),
    (
        "top level not a mapping",
        "- a\n- b\n",
        ["F:1: expected a mapping at the top level (version, cycle, sources, objectives, …)"],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_mistake_is_reported_with_its_line(tmp_path: Path, text: str, expected: list[str]) -> None:
    assert problems(tmp_path, text) == expected


def test_every_problem_in_a_file_is_reported_at_once() -> None:
    path = FIXTURES / "many-errors.yaml"
    with pytest.raises(ConfigError) as caught:
        load(path, env={}, plugins=PLUGINS)
    assert caught.value.problems == [
        f"{path}:2: cycle.end: the cycle ends (2026-09-30) before it starts (2026-10-01)",
        f"{path}:3: unknown key 'colour' in the top level (known keys: cycle, objectives, schedule, sources,"
        " store, unaligned, version)",
        f"{path}:8: environment variable JIRA_PAT is not set",
        f"{path}:11: sources.gl: unknown type 'gitlab' (did you mean 'github'?) (known types: github, jira)",
        f"{path}:15: objectives form a parent cycle: grow -> onboarding -> grow",
        f"{path}:22: objectives[1].key_results[0].metric: unknown metric 'percent_doen' (did you mean"
        " 'percent_done'?) (known: percent_done, points_percent_done, count_done, sum_points_done,"
        " count_open, manual)",
        f"{path}:24: unknown key 'epik' in objectives[1].key_results[0].match[0] (did you mean 'epic'?)",
        f"{path}:25: duplicate key result id 'revamp' (first on line 20)",
        f"{path}:27: key result 'revamp': metric count_done needs a target",
        f"{path}:29: objectives[1].key_results[1].match[0]: unknown source 'jria' (did you mean 'jira'?)"
        " (known sources: gl, jira)",
    ]
    assert caught.value.exit_code == 2
    assert str(caught.value) == "\n".join(caught.value.problems)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert caught.value.problems == [f"{path}: no such file"]


def test_minimal_config_gets_its_defaults() -> None:
    config = load(FIXTURES / "minimal.yaml", env={})
    assert config.version == 1
    assert config.cycle.start == date(2026, 10, 1)
    assert config.cycle.ends_at.isoformat() == "2027-01-01T00:00:00+00:00"
    assert config.sources == {}
    assert config.schedule.interval == timedelta(minutes=15)
    assert config.schedule.full_every == timedelta(days=1)
    assert config.unaligned.ignore_labels == ()
    assert config.unaligned.label is None
    assert config.path == (FIXTURES / "minimal.yaml").absolute()
    assert config.store == f"sqlite:///{FIXTURES.absolute()}/okrsync.db"
    objective, kr = config.key_results()[0]
    assert (objective.id, objective.weight, kr.id, kr.metric, kr.start_value, kr.target_value) == (
        "nps", 1.0, "nps", "manual", 30.0, 45.0
    )


def test_rules_and_targets_become_the_plugins_models() -> None:
    config = load(ROOT / "config" / "okrs.example.yaml", env=EXAMPLE_ENV)
    assert isinstance(config.sources["jira"], JiraSource)
    assert isinstance(config.sources["github"], GitHubSource)
    assert config.sources["github"].repos == ("acme/web", "acme/api")
    found = config.key_result("onboarding-revamp")
    assert found is not None
    objective, kr = found
    assert objective.parent == "grow"
    assert [type(rule) for rule in kr.match] == [JiraRule, GitHubRule]
    assert kr.match[0].conditions() == {"epic": "PLAT-123"}
    assert kr.match[1].conditions() == {"repo": "acme/web", "labels": ("onboarding",)}
    nps = config.key_result("nps")
    assert nps is not None
    assert isinstance(nps[1].publish[1], GitHubPublish)
    assert nps[1].publish[1].target() == "acme/okrs#4:body"
    milestone_rule = config.key_result("customer-bugs")[1].match[0]  # type: ignore[index]
    assert isinstance(milestone_rule, GitHubRule)
    assert milestone_rule.milestone == "2026-Q4"


def test_env_interpolation_and_escape(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "cycle: {name: Q, start: 2026-10-01, end: 2026-12-31}\n"
        "sources:\n"
        "  gh:\n"
        "    type: github\n"
        "    url: https://${GHE_HOST}/api/v3\n"
        "    token: ${TOKEN}\n"
        "    repos: [acme/web]\n"
        "unaligned: {label: 'cost $$5 and $${NOT_A_VAR}'}\n",
    )
    config = load(path, env={"GHE_HOST": "ghe.example.com", "TOKEN": "tok-xyz"})
    source = config.sources["gh"]
    assert isinstance(source, GitHubSource)
    assert source.url == "https://ghe.example.com/api/v3"
    assert source.token == "tok-xyz"
    assert config.unaligned.label == "cost $$5 and ${NOT_A_VAR}"
    assert config.secrets() == ("tok-xyz",)


def test_env_defaults_to_the_process_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OKRSYNC_TEST_LABEL", "from-env")
    path = write(tmp_path, "cycle: {name: Q, start: 2026-10-01, end: 2026-12-31}\n"
                 "unaligned: {label: '${OKRSYNC_TEST_LABEL}'}\n")
    assert load(path).unaligned.label == "from-env"


def test_empty_variable_is_an_error(tmp_path: Path) -> None:
    text = HEAD + "unaligned: {label: '${LABEL}'}\n"
    assert problems(tmp_path, text, env={"LABEL": ""}) == ["F:5: environment variable LABEL is empty"]


def test_interpolated_values_never_appear_in_errors(tmp_path: Path) -> None:
    secret = "s3cr3t-t0ken-value"
    text = (
        "cycle: {name: Q, start: 2026-10-01, end: 2026-12-31}\n"
        "store: ${SECRET}\n"
        "sources:\n"
        "  gh:\n"
        "    type: ${SECRET}\n"
        "  hub:\n"
        "    type: github\n"
        "    token: ${SECRET}\n"
        "    repos: ['${SECRET}']\n"
        "    retire_guard: ${SECRET}\n"
        "objectives:\n"
        "  - id: a\n"
        "    title: A\n"
        "    weight: ${SECRET}\n"
        "    key_results:\n"
        "      - id: k\n"
        "        title: K\n"
        "        metric: ${SECRET}\n"
        "        match: [{source: '${SECRET}', epic: X}]\n"
        "        publish: [{source: hub, issue: 'x ${SECRET}'}]\n"
    )
    found = problems(tmp_path, text, env={"SECRET": secret})
    assert found == [
        "F:2: store: unsupported database URL: use sqlite:///FILE.db or postgresql://HOST/DB",
        "F:5: sources.gh: unknown type (known types: github, jira)",
        "F:9: sources.hub.repos: *** is not owner/name",
        "F:10: sources.hub.retire_guard: expected a number",
        "F:14: objectives[0].weight: expected a number",
        "F:18: objectives[0].key_results[0].metric: unknown metric (known: percent_done,"
        " points_percent_done, count_done, sum_points_done, count_open, manual)",
        "F:19: objectives[0].key_results[0].match[0]: unknown source (known sources: gh, hub)",
        "F:20: objectives[0].key_results[0].publish[0].issue: invalid value (from an environment variable)",
    ]
    assert not any(secret in line for line in found)


def test_a_validator_message_about_interpolated_values_is_kept_and_masked(tmp_path: Path) -> None:
    text = (
        "cycle: {name: Q, start: 2026-10-01, end: 2026-12-31}\n"
        "sources:\n"
        "  jira:\n"
        "    type: jira\n"
        "    url: https://jira.example\n"
        "    scope: project = X\n"
        "    auth: {email: '${EMAIL}', token: '${TOKEN}', pat: '${TOKEN}'}\n"
    )
    found = problems(tmp_path, text, env={"EMAIL": "me@example.com", "TOKEN": "tok-123456"})
    assert found == [
        "F:7: sources.jira.auth: give either email + token (Cloud) or pat (Data Center), not both"
    ]


def test_literal_secrets_in_a_broken_file_are_not_echoed(tmp_path: Path) -> None:
    # A syntax error near a pasted token must not print the line's text.
    text = "cycle: {name: Q, start: 2026-10-01, end: 2026-12-31}\nsources:\n  gh: {token: ghp_pasted: x}\n"
    found = problems(tmp_path, text)
    assert len(found) == 1 and found[0].startswith("F:3: YAML syntax error:")
    assert "ghp_pasted" not in found[0]


def test_relative_sqlite_store_resolves_next_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    path = write(tmp_path / "conf", "cycle: {name: Q, start: 2026-10-01, end: 2026-12-31}\n"
                 "store: sqlite:///data/okr.db\n")
    config = load(path, env={})
    assert config.store == f"sqlite:///{tmp_path.absolute()}/conf/data/okr.db"
    assert config.store_url() == config.store


def test_absolute_and_other_stores_are_kept(tmp_path: Path) -> None:
    for url in ("sqlite:////var/lib/okrsync/okr.db", "postgresql+psycopg://okr@db/okr", "sqlite:///:memory:"):
        path = write(tmp_path, f"cycle: {{name: Q, start: 2026-10-01, end: 2026-12-31}}\nstore: '{url}'\n")
        assert load(path, env={}).store == url


def test_resolve_store_url_keeps_query_and_is_idempotent(tmp_path: Path) -> None:
    once = resolve_store_url("sqlite:///okr.db?timeout=5", tmp_path)
    assert once == f"sqlite:///{tmp_path.absolute()}/okr.db?timeout=5"
    assert resolve_store_url(once, Path("/elsewhere")) == once


def test_yaml_anchors_and_merge_keys_work(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + "objectives:\n"
        + "  - id: a\n"
        + "    title: A\n"
        + "    key_results:\n"
        + "      - &base {id: k1, title: K, metric: count_done, target: 5,\n"
        + "               match: [{source: gh, labels: [x]}]}\n"
        + "      - <<: *base\n"
        + "        id: k2\n",
    )
    config = load(path, env={})
    assert [kr.id for _, kr in config.key_results()] == ["k1", "k2"]
    assert config.key_results()[1][1].target == 5


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(f"b{i}: &b{i} [" + ", ".join([f"*{'a' if i == 0 else f'b{i - 1}'}"] * 10) + "]\n"
                      for i in range(8)),
            "F:5: aliases expand to more than 100000 nodes; refusing the file",
        ),
        (
            "a: &a x\nb: [" + ", ".join(["*a"] * 101) + "]\n",
            "F:2: more than 100 alias references (*name); refusing the file",
        ),
        (
            "a: &a [*a]\n",
            "F:1: an alias refers to itself; refusing the file",
        ),
        (
            "a: " + "[" * 70 + "]" * 70 + "\n",
            "F:1: nested deeper than 64 levels; refusing the file",
        ),
    ],
    ids=["billion-laughs", "many-aliases", "recursive-alias", "deep-nesting"],
)
def test_hostile_yaml_is_refused(tmp_path: Path, text: str, expected: str) -> None:
    assert problems(tmp_path, text) == [expected]


def test_too_many_nodes_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The real limit is 100 000; a smaller one keeps the test fast and exercises the same check.
    monkeypatch.setattr("syncer.yamlload.MAX_NODES", 1000)
    text = "a:\n  b: [" + ", ".join(["1"] * 999) + "]\n"
    assert problems(tmp_path, text) == ["F:2: more than 1000 YAML nodes; refusing the file"]
    text = "a:\n  b: [" + ", ".join(["1"] * 995) + "]\n"  # 2 mappings, keys a and b, the list, 995 items
    with pytest.raises(ConfigError) as caught:
        load(write(tmp_path, text), env={})
    assert "YAML nodes" not in str(caught.value)


def test_huge_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = write(tmp_path, "# " + "x" * (1024 * 1024) + "\n")
    with pytest.raises(ConfigError) as caught:
        load(path, env={})
    size = os.path.getsize(path)
    assert caught.value.problems == [
        f"{path}: the file is {size} bytes, over the 1 MiB limit; refusing to read it"
    ]


def test_schema_file_is_up_to_date() -> None:
    committed = (ROOT / "config" / "okrs.schema.json").read_text(encoding="utf-8")
    # Regenerate with: okrsync schema > config/okrs.schema.json
    assert committed == schema_text()


def _as_json(path: Path) -> Any:
    """The YAML file as JSON would carry it (dates as ISO text), before interpolation."""
    return json.loads(json.dumps(yaml.safe_load(path.read_text(encoding="utf-8")), default=str))


EXAMPLES = sorted((ROOT / "config").glob("*.example.yaml"))


def test_there_are_three_examples() -> None:
    assert [p.name for p in EXAMPLES] == [
        "github-only.example.yaml",
        "jira-only.example.yaml",
        "okrs.example.yaml",
    ]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_load_and_match_the_schema(path: Path) -> None:
    config = load(path, env=EXAMPLE_ENV)
    assert config.objectives and config.sources
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(_as_json(path))


def test_schema_rejects_what_load_rejects() -> None:
    validator = jsonschema.Draft202012Validator(json_schema())
    base: dict[str, Any] = {"cycle": {"name": "Q", "start": "2026-10-01", "end": "2026-12-31"}}
    assert validator.is_valid(base)
    assert not validator.is_valid({**base, "colour": "blue"})
    assert not validator.is_valid({**base, "path": "/x"})
    rule_typo = {"id": "k", "title": "K", "match": [{"source": "gh", "epik": "X"}]}
    objective = {"id": "a", "title": "A", "key_results": [rule_typo]}
    assert not validator.is_valid({**base, "objectives": [objective]})
    source = {"type": "github", "token": "t", "repos": ["a/b"], "scope": "x"}
    assert not validator.is_valid({**base, "sources": {"gh": source}})


def test_schema_names_every_plugin_model() -> None:
    defs = json_schema(PLUGINS)["$defs"]
    assert defs["SourceConfig"]["anyOf"] == [{"$ref": "#/$defs/GitHubSource"}, {"$ref": "#/$defs/JiraSource"}]
    assert defs["RuleConfig"]["anyOf"] == [{"$ref": "#/$defs/GitHubRule"}, {"$ref": "#/$defs/JiraRule"}]
    assert defs["Schedule"]["properties"]["interval"]["default"] == "15m"


def test_plugins_argument_replaces_discovery(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD)
    with pytest.raises(ConfigError) as caught:
        load(path, env={}, plugins={"github": GITHUB})
    assert caught.value.problems == [f"{path}:3: sources.jira: unknown type 'jira' (known types: github)"]
    schema = json_schema(plugins={"github": GITHUB})
    assert schema["$defs"]["SourceConfig"]["anyOf"] == [{"$ref": "#/$defs/GitHubSource"}]


def test_count_open_must_reduce(tmp_path: Path) -> None:
    text = HEAD + """\
objectives:
  - id: o
    title: O
    key_results:
      - id: bugs
        title: Fewer bugs
        metric: count_open
        start: 5
        target: 20
        match: [{source: gh, labels: [bug]}]
"""
    assert problems(tmp_path, text) == [
        "F:13: key result 'bugs': count_open is for reducing open work: target 20 must be below start 5"
    ]


def test_an_unquoted_variable_in_a_flow_mapping_gets_a_hint(tmp_path: Path) -> None:
    text = "cycle: {name: Q, start: 2026-10-01, end: 2026-12-31}\nsources:\n  gh: {type: github, token: ${T}}\n"
    found = problems(tmp_path, text, env={"T": "x"})
    assert len(found) == 1 and found[0].startswith("F:3: YAML syntax error")
    assert "must be quoted: '${NAME}'" in found[0]
