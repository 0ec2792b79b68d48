"""The ``okrsync`` command line (CONTRACT §1): exit codes, stdout/stderr lines, files written.

Most tests call ``syncer.cli.main`` in-process; a few run the real console entry point in a
subprocess (``python -m syncer``) to pin what a shell sees. Sources are JSON files (no network).
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from syncer import __version__
from syncer.cli import main
from syncer.store import Store
from tests.conftest import REPO, MemoryEnv, write_json

REPORT_SCHEMA = Path(__file__).resolve().parents[1] / ".." / "shared" / "report.schema.json"
EXAMPLE = REPO / "config" / "okrs.example.yaml"
EXAMPLE_ENV = {"JIRA_EMAIL": "me@example.test", "JIRA_API_TOKEN": "tok-123456", "GITHUB_TOKEN": "ghp_example"}


@pytest.fixture(autouse=True)
def _fresh_logging():
    """main() installs a handler on the ``okrsync`` logger bound to the (captured) stderr of the
    test that ran first; drop it after every test so later tests log to their own capture."""
    yield
    logger = logging.getLogger("okrsync")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``main(argv)`` -> (exit code, stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def report_json(capsys: pytest.CaptureFixture[str], config: Path) -> dict[str, Any]:
    code, out, err = run(capsys, "report", "-c", str(config), "--format", "json")
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    return data


def krs(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {kr["id"]: kr for o in data["objectives"] for kr in o["key_results"]}


def line_of(path: Path, needle: str) -> int:
    """1-based line number of the first line of ``path`` containing ``needle``."""
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in text:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def lines_of(path: Path, needle: str) -> list[int]:
    """1-based numbers of every line of ``path`` containing ``needle``."""
    text = path.read_text(encoding="utf-8").splitlines()
    return [number for number, line in enumerate(text, start=1) if needle in line]


def store_files(env: MemoryEnv) -> dict[str, bytes]:
    """Every file of the SQLite store (the database, and its WAL/SHM if any) by name."""
    return {p.name: p.read_bytes() for p in env.store.parent.glob(env.store.name + "*")}


# -- validate / schema -------------------------------------------------------------------------


def test_validate_the_shipped_example_with_its_variables_set(capsys, monkeypatch) -> None:
    for name, value in EXAMPLE_ENV.items():
        monkeypatch.setenv(name, value)
    code, out, err = run(capsys, "validate", "-c", str(EXAMPLE))
    assert code == 0, err
    assert out.splitlines() == [f"{EXAMPLE}: ok (2 objectives, 4 key results, 2 sources)"]
    assert err == ""


def test_validate_names_a_missing_environment_variable(capsys, monkeypatch) -> None:
    for name in EXAMPLE_ENV:
        monkeypatch.delenv(name, raising=False)
    code, out, err = run(capsys, "validate", "-c", str(EXAMPLE))
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert any(line.startswith(f"{EXAMPLE}:{line_of(EXAMPLE, '${JIRA_EMAIL}')}:") and "JIRA_EMAIL" in line
               for line in lines), err


def test_validate_the_memory_config(capsys, memory_config: Path) -> None:
    code, out, err = run(capsys, "validate", "-c", str(memory_config))
    assert code == 0, err
    assert out.splitlines() == [f"{memory_config}: ok (3 objectives, 5 key results, 2 sources)"]


def test_config_comes_from_the_environment_variable_when_no_flag(capsys, monkeypatch, memory_config) -> None:
    monkeypatch.setenv("OKRSYNC_CONFIG", str(memory_config))
    code, out, _ = run(capsys, "validate")
    assert code == 0
    assert out.startswith(f"{memory_config}: ok")


def test_validate_prints_every_problem_with_its_line(capsys, memory_config: Path) -> None:
    text = memory_config.read_text(encoding="utf-8")
    broken = memory_config.with_name("broken.yaml")
    broken.write_text(
        text.replace("metric: count_done", "metric: count_dne")
        .replace("    owner: product-team\n", "    owner: product-team\n    colour: blue\n")
        .replace("      - id: perf\n", "      - id: launch\n"),
        encoding="utf-8",
    )
    code, out, err = run(capsys, "validate", "-c", str(broken))
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert "Traceback" not in err
    assert len(lines) >= 3
    for line in lines:
        assert re.match(rf"^{re.escape(str(broken))}:\d+: \S", line), line
    by_line = {int(line.split(":")[1]): line for line in lines}
    assert "count_dne" in by_line[line_of(broken, "metric: count_dne")]
    assert "colour" in by_line[line_of(broken, "colour: blue")]
    first, second = lines_of(broken, "- id: launch")
    assert by_line[second] == f"{broken}:{second}: duplicate key result id 'launch' (first on line {first})"


def test_validate_reports_a_yaml_syntax_error_with_its_line(capsys, tmp_path: Path) -> None:
    bad = tmp_path / "syntax.yaml"
    bad.write_text("version: 1\ncycle: {name: x, start: 2026-10-01\nobjectives: []\n", encoding="utf-8")
    code, out, err = run(capsys, "validate", "-c", str(bad))
    assert code == 2
    assert out == ""
    [line] = err.splitlines()
    assert re.match(rf"^{re.escape(str(bad))}:\d+: .*YAML", line), line


def test_validate_lines_stay_located_when_the_path_has_a_space(capsys, memory_config: Path) -> None:
    folder = memory_config.parent / "my configs"
    folder.mkdir()
    bad = folder / "okrs.yaml"
    bad.write_text(memory_config.read_text(encoding="utf-8").replace("metric: count_done", "metric: nope"),
                   encoding="utf-8")
    code, _, err = run(capsys, "validate", "-c", str(bad))
    assert code == 2
    [line] = err.splitlines()
    assert line.startswith(f"{bad}:{line_of(bad, 'metric: nope')}: "), line


def test_validate_a_missing_file_is_one_line_and_exit_2(capsys, tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    code, out, err = run(capsys, "validate", "-c", str(missing))
    assert code == 2
    assert out == ""
    assert err.splitlines() == [f"okrsync: {missing}: no such file"]


def test_no_command_is_a_usage_error(capsys) -> None:
    code, _, err = run(capsys)
    assert code == 2
    assert "usage:" in err


def test_schema_prints_the_committed_json_schema(capsys) -> None:
    code, out, _ = run(capsys, "schema")
    assert code == 0
    assert json.loads(out) == json.loads((REPO / "config" / "okrs.schema.json").read_text(encoding="utf-8"))


# -- sync / report ------------------------------------------------------------------------------


def test_sync_then_the_json_report_matches_the_schema_and_the_hand_computed_numbers(
    capsys, memory_env: MemoryEnv
) -> None:
    code, out, err = run(capsys, "sync", "-c", str(memory_env.config), "--format", "json")
    assert code == 0, err
    synced = json.loads(out)
    assert {s["name"]: (s["ok"], s["fetched"]) for s in synced["sources"]} == {
        "memory": (True, 16), "ops": (True, 2)}

    data = report_json(capsys, memory_env.config)
    offline = {s["name"]: (s["ok"], s["fetched"], s["requests"]) for s in data["sources"]}
    assert offline == {s["name"]: (s["ok"], s["fetched"], s["requests"]) for s in synced["sources"]}, (
        "report (no network) shows the figures of the last pass, not zeros")
    if REPORT_SCHEMA.exists():
        import jsonschema  # type: ignore[import-untyped]

        schema = json.loads(REPORT_SCHEMA.read_text(encoding="utf-8"))
        jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(data)
        jsonschema.Draft202012Validator(schema).validate(synced)
    assert data["cycle"]["start"] == memory_env.cycle_start.isoformat()
    by_id = krs(data)
    launch = by_id["launch"]
    assert launch["current"] == 60.0  # 3 of 5 children done; the won't-do child counts in neither
    assert launch["progress"] == pytest.approx(0.6)
    assert {k: launch["items"][k] for k in ("total", "done", "in_progress", "todo")} == {
        "total": 5, "done": 3, "in_progress": 1, "todo": 1}
    assert by_id["bugs"]["current"] == 3  # MEM-13 closed before the cycle does not count
    assert by_id["bugs"]["progress"] == pytest.approx(0.3)
    assert by_id["perf"]["current"] == 8  # 5 + 3 points done; the open 8 points do not
    assert by_id["ops-uptime"]["current"] == 50.0
    assert by_id["nps"]["current"] == 30 and by_id["nps"]["progress"] == 0
    assert not any(kr["stale"] for kr in by_id.values())
    objectives = {o["id"]: o for o in data["objectives"]}
    assert objectives["product"]["progress"] == pytest.approx((0.6 + 0.3 + 0.4 + 0.0) / 4)
    assert objectives["company"]["progress"] == pytest.approx(((0.6 + 0.3 + 0.4 + 0.0) / 4 + 0.5) / 2)
    assert [(u["source"], u["key"]) for u in data["unaligned"]] == [("memory", "MEM-20")]


@pytest.mark.parametrize("fmt", ["table", "markdown", "html"])
def test_report_formats_name_every_key_result(capsys, memory_config: Path, fmt: str) -> None:
    assert run(capsys, "sync", "-c", str(memory_config))[0] == 0
    code, out, err = run(capsys, "report", "-c", str(memory_config), "--format", fmt)
    assert code == 0, err
    for kr_id in ("launch", "bugs", "perf", "nps", "ops-uptime"):
        assert kr_id in out, f"{kr_id} missing from the {fmt} report"
    if fmt == "html":
        assert out.lstrip().lower().startswith("<!doctype html")


def test_sync_table_output_names_the_key_results(capsys, memory_config: Path) -> None:
    code, out, _ = run(capsys, "sync", "-c", str(memory_config))
    assert code == 0
    assert "launch" in out and "ops-uptime" in out


def test_output_writes_the_report_to_a_file(capsys, memory_config: Path, tmp_path: Path) -> None:
    assert run(capsys, "sync", "-c", str(memory_config))[0] == 0
    target = tmp_path / "out" / "report.json"
    code, out, err = run(capsys, "report", "-c", str(memory_config), "--format", "json", "--output", str(target))
    assert code == 0
    assert out == ""
    assert f"wrote {target}" in err
    assert krs(json.loads(target.read_text(encoding="utf-8")))["launch"]["current"] == 60.0
    md = tmp_path / "sync.md"
    code, out, _ = run(capsys, "sync", "-c", str(memory_config), "--format", "markdown", "-o", str(md))
    assert code == 0 and out == ""
    assert "launch" in md.read_text(encoding="utf-8")


def test_report_before_any_sync_still_lists_the_key_results(capsys, memory_config: Path) -> None:
    data = report_json(capsys, memory_config)
    assert set(krs(data)) == {"launch", "bugs", "perf", "nps", "ops-uptime"}


def test_an_item_marked_done_moves_the_number_on_the_next_sync(capsys, memory_env: MemoryEnv) -> None:
    assert run(capsys, "sync", "-c", str(memory_env.config))[0] == 0
    items = json.loads(memory_env.items.read_text(encoding="utf-8"))
    for item in items:
        if item["key"] == "MEM-6":
            item.update(state="done", done_at=item["updated_at"], updated_at="2099-01-01T00:00:00Z")
    memory_env.write_items(items)
    assert run(capsys, "sync", "-c", str(memory_env.config))[0] == 0
    assert krs(report_json(capsys, memory_env.config))["launch"]["current"] == 80.0


def test_a_report_after_a_sync_reads_the_numbers_the_sync_kept(capsys, memory_env: MemoryEnv) -> None:
    code, out, _ = run(capsys, "sync", "-c", str(memory_env.config), "--format", "json")
    assert code == 0
    synced = json.loads(out)
    # Rows changed behind okrsync's back (no okrsync write counted them): the report shows the
    # aggregates the sync kept, which proves it read them instead of aggregating again.
    with sqlite3.connect(memory_env.store) as conn:
        conn.execute("UPDATE items SET state = 'done'")
    reported = report_json(capsys, memory_env.config)
    assert {k: (v["current"], v["items"]) for k, v in krs(reported).items()} == {
        k: (v["current"], v["items"]) for k, v in krs(synced).items()
    }
    assert reported["unaligned_summary"]["count"] == synced["unaligned_summary"]["count"]
    # (A sync that writes makes them stale: test_an_item_marked_done_moves_the_number_on_the_next_sync.)


def test_unaligned_limit_caps_the_list_but_not_the_count(capsys, memory_env: MemoryEnv) -> None:
    items = json.loads(memory_env.items.read_text(encoding="utf-8"))
    extra = [dict(items[-2], id=f"x{n}", key=f"MEM-{100 + n}", title=f"Unplanned {n}",
                  updated_at=f"{memory_env.cycle_start.isoformat()}T0{n}:00:00Z") for n in range(5)]
    memory_env.write_items(items + extra)  # MEM-20 and five more match no key result
    code, out, err = run(capsys, "sync", "-c", str(memory_env.config), "--format", "json", "--unaligned-limit", "1")
    assert code == 0, err
    assert len(json.loads(out)["unaligned"]) == 1 and json.loads(out)["unaligned_summary"]["count"] == 6

    code, out, err = run(capsys, "report", "-c", str(memory_env.config), "--format", "json", "--unaligned-limit", "2")
    assert code == 0, err
    data = json.loads(out)
    assert [u["key"] for u in data["unaligned"]] == ["MEM-104", "MEM-103"]  # newest update first
    summary = data["unaligned_summary"]
    assert (summary["count"], summary["shown"]) == (6, 2)
    assert summary["groups"] == [{"source": "memory", "container": "MEM", "count": 6}]
    if REPORT_SCHEMA.exists():
        import jsonschema

        jsonschema.Draft202012Validator(json.loads(REPORT_SCHEMA.read_text(encoding="utf-8"))).validate(data)

    code, out, _ = run(capsys, "report", "-c", str(memory_env.config), "--format", "json", "--unaligned-limit", "0")
    assert code == 0 and len(json.loads(out)["unaligned"]) == 6  # 0 = all
    assert len(report_json(capsys, memory_env.config)["unaligned"]) == 6  # default 200
    code, out, _ = run(capsys, "report", "-c", str(memory_env.config), "--format", "markdown", "--unaligned-limit", "3")
    assert code == 0 and "showing 3 of 6" in out
    for bad in ("-1", "many"):
        with pytest.raises(SystemExit) as exited:  # argparse: a usage error
            main(["report", "-c", str(memory_env.config), "--unaligned-limit", bad])
        assert exited.value.code == 2 and "--unaligned-limit" in capsys.readouterr().err


# -- checkin / explain --------------------------------------------------------------------------


def test_checkin_on_a_manual_key_result_shows_in_the_report(capsys, memory_config: Path) -> None:
    code, out, err = run(capsys, "checkin", "-c", str(memory_config), "nps", "38", "--note", "survey")
    assert code == 0, err
    assert out.startswith("nps: checked in 38 at ")
    nps = krs(report_json(capsys, memory_config))["nps"]
    assert nps["current"] == 38
    assert nps["progress"] == pytest.approx((38 - 30) / (45 - 30), abs=1e-4)


def test_checkin_on_a_computed_key_result_is_refused(capsys, memory_env: MemoryEnv) -> None:
    code, out, err = run(capsys, "checkin", "-c", str(memory_env.config), "launch", "3")
    assert code == 2
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith("okrsync: launch: ") and "manual" in line
    assert not memory_env.store.exists(), "a refused check-in writes nothing"


def test_checkin_refuses_an_unknown_key_result_and_a_non_number(capsys, memory_config: Path) -> None:
    code, _, err = run(capsys, "checkin", "-c", str(memory_config), "nope", "3")
    assert code == 2 and len(err.splitlines()) == 1 and "nope" in err
    code, _, err = run(capsys, "checkin", "-c", str(memory_config), "nps", "lots")
    assert code == 2 and len(err.splitlines()) == 1 and "lots" in err


@pytest.mark.parametrize("value", ["nan", "inf", "Infinity"])
def test_checkin_refuses_a_value_that_is_not_finite(capsys, memory_env: MemoryEnv, value: str) -> None:
    code, out, err = run(capsys, "checkin", "-c", str(memory_env.config), "nps", value)
    assert code == 2
    assert out == ""
    assert err.splitlines() == [f"okrsync: {value!r}: not a finite number"]
    assert not memory_env.store.exists()


def test_explain_lists_the_items_and_the_rule_that_matched(capsys, memory_config: Path) -> None:
    assert run(capsys, "sync", "-c", str(memory_config))[0] == 0
    code, out, err = run(capsys, "explain", "-c", str(memory_config), "launch")
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip().startswith("MEM-")}
    assert set(rows) == {"MEM-2", "MEM-3", "MEM-4", "MEM-5", "MEM-6", "MEM-7"}
    assert all("EPIC-1" in row for row in rows.values()), "each row names the rule (parent EPIC-1)"
    assert "excluded" in rows["MEM-7"]
    assert "done" in rows["MEM-2"] and "in_progress" in rows["MEM-5"]
    assert "MEM-10" not in out and "MEM-20" not in out
    code, out, _ = run(capsys, "explain", "-c", str(memory_config), "bugs")
    assert code == 0
    assert {line.split()[0] for line in out.splitlines() if line.strip().startswith("MEM-")} == {
        "MEM-10", "MEM-11", "MEM-12", "MEM-13", "MEM-14"}
    assert "labels bug" in out


def test_explain_an_unknown_key_result_is_exit_2(capsys, memory_config: Path) -> None:
    code, _, err = run(capsys, "explain", "-c", str(memory_config), "nope")
    assert code == 2
    assert err.splitlines() == [f"okrsync: nope: no such key result in {memory_config}"]


# -- dry run / failures ---------------------------------------------------------------------------


def test_dry_run_leaves_the_store_bytes_unchanged(capsys, memory_env: MemoryEnv) -> None:
    assert run(capsys, "sync", "-c", str(memory_env.config))[0] == 0
    before = store_files(memory_env)
    assert before, "the first sync created the store"
    items = json.loads(memory_env.items.read_text(encoding="utf-8"))
    items[5].update(state="done", updated_at="2099-01-01T00:00:00Z")  # MEM-6: the plan must show a change
    memory_env.write_items(items)
    code, out, err = run(capsys, "sync", "-c", str(memory_env.config), "--dry-run", "--format", "json")
    assert code == 0, err
    planned = json.loads(out)
    assert krs(planned)["launch"]["current"] == 80.0, "the dry run computes the new value"
    assert store_files(memory_env) == before
    assert krs(report_json(capsys, memory_env.config))["launch"]["current"] == 60.0


def test_dry_run_on_a_fresh_folder_creates_no_store(capsys, memory_env: MemoryEnv) -> None:
    code, _, err = run(capsys, "sync", "-c", str(memory_env.config), "--dry-run")
    assert code == 0, err
    assert store_files(memory_env) == {}


def test_a_broken_source_is_one_line_exit_1_and_the_other_source_still_syncs(
    capsys, memory_env: MemoryEnv
) -> None:
    assert run(capsys, "sync", "-c", str(memory_env.config))[0] == 0
    memory_env.ops.write_text("{not json", encoding="utf-8")
    items = json.loads(memory_env.items.read_text(encoding="utf-8"))
    items[5].update(state="done", updated_at="2099-01-01T00:00:00Z")
    memory_env.write_items(items)
    code, out, err = run(capsys, "sync", "-c", str(memory_env.config), "--format", "json")
    assert code == 1
    lines = [line for line in err.splitlines() if line.startswith("okrsync:")]
    assert len(lines) == 1, err
    assert lines[0].startswith("okrsync: source ops failed: ")
    assert "Traceback" not in err
    sources = {s["name"]: s for s in json.loads(out)["sources"]}
    assert sources["memory"]["ok"] and not sources["ops"]["ok"]
    by_id = krs(report_json(capsys, memory_env.config))
    assert by_id["launch"]["current"] == 80.0 and not by_id["launch"]["stale"]
    assert by_id["ops-uptime"]["current"] == 50.0 and by_id["ops-uptime"]["stale"]


def test_sync_one_source_only(capsys, memory_env: MemoryEnv) -> None:
    memory_env.ops.write_text("{not json", encoding="utf-8")
    code, out, err = run(capsys, "sync", "-c", str(memory_env.config), "--source", "memory", "--format", "json")
    assert code == 0, err
    assert [s["name"] for s in json.loads(out)["sources"] if s["ok"] is False] == []


# -- status / migrate ------------------------------------------------------------------------------


def test_status_lists_sources_and_runs(capsys, memory_config: Path) -> None:
    assert run(capsys, "sync", "-c", str(memory_config))[0] == 0
    code, out, err = run(capsys, "status", "-c", str(memory_config))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("store: sqlite:///")
    for name in ("memory", "ops"):
        [row] = [line for line in lines if line.split()[:1] == [name]]
        assert "last success 2" in row and row.rstrip().endswith("ok")
    assert sum(1 for line in lines if line.strip().startswith("#")) == 1
    code, out, _ = run(capsys, "status", "-c", str(memory_config), "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert set(data["sources"]) == {"memory", "ops"} and len(data["runs"]) == 1


def test_migrate_copies_every_row(capsys, memory_env: MemoryEnv, tmp_path: Path, monkeypatch) -> None:
    assert run(capsys, "sync", "-c", str(memory_env.config))[0] == 0
    assert run(capsys, "checkin", "-c", str(memory_env.config), "nps", "40")[0] == 0
    monkeypatch.chdir(tmp_path)
    (tmp_path / "okrsync.db").rename(tmp_path / "a.db")
    code, out, err = run(capsys, "migrate", "--from", "sqlite:///a.db", "--to", "sqlite:///b.db")
    assert code == 0, err
    counts = {line.split()[0]: (int(line.split()[1]), int(line.split()[3]))
              for line in out.splitlines() if "->" in line and not line.startswith("copied")}
    assert counts["items"] == (18, 18)
    assert counts["checkins"] == (1, 1)
    assert counts["snapshots"] == (5, 5)
    assert out.splitlines()[-1].endswith("row counts verified")
    with Store.open(f"sqlite:///{tmp_path / 'a.db'}") as a, Store.open(f"sqlite:///{tmp_path / 'b.db'}") as b:
        assert b.count_items() == a.count_items() == 18
        assert b.latest_checkins() == {"nps": 40.0}
        assert {k: v["current"] for k, v in b.latest_snapshots().items()} == {
            k: v["current"] for k, v in a.latest_snapshots().items()}


# -- the real entry point -----------------------------------------------------------------------


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_raises_wherever_it_is_written(capsys, tmp_path: Path, where: str) -> None:
    from syncer.errors import ConfigError

    missing = str(tmp_path / "missing.yaml")
    argv = ["--debug", "validate", "-c", missing] if where == "before" else ["validate", "-c", missing, "--debug"]
    with pytest.raises(ConfigError, match="no such file"):
        main(argv)
    assert run(capsys, "validate", "-c", missing)[0] == 2, "without --debug: an exit code, no exception"


def test_version_from_python_m_syncer(okrsync) -> None:
    code, out, _ = okrsync("--version")
    assert code == 0
    assert out.strip() == f"okrsync {__version__}"


def test_subprocess_validate_sync_and_report(okrsync, memory_config: Path) -> None:
    code, out, err = okrsync("validate", "-c", str(memory_config))
    assert (code, len(out.splitlines())) == (0, 1), err
    code, out, err = okrsync("sync", "-c", str(memory_config), "--format", "json")
    assert code == 0, err
    assert krs(json.loads(out))["launch"]["current"] == 60.0
    code, out, err = okrsync("report", "-c", str(memory_config), "--format", "markdown")
    assert code == 0 and "launch" in out, err
    # The process froze its heap before exiting (syncer.cli.run): the store was still closed.
    store = memory_config.parent / "okrsync.db"
    assert store.exists() and not Path(f"{store}-wal").exists() and not Path(f"{store}-shm").exists()


def test_subprocess_config_from_okrsync_config_variable(okrsync, memory_config: Path) -> None:
    code, out, _ = okrsync("validate", OKRSYNC_CONFIG=str(memory_config))
    assert code == 0
    assert out.startswith(f"{memory_config}: ok")


def test_subprocess_broken_source_exit_1(okrsync, memory_env: MemoryEnv) -> None:
    write_json(memory_env.ops, {"not": "a list"})
    code, _, err = okrsync("sync", "-c", str(memory_env.config), "-q")
    assert code == 1
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("okrsync:")] == [
        f"okrsync: source ops failed: {memory_env.ops}: expected a JSON list of items"
    ]


def test_traceback_only_with_debug(okrsync, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.yaml")
    code, out, err = okrsync("validate", "-c", missing)
    assert code == 2
    assert "Traceback" not in err
    assert err.splitlines() == [f"okrsync: {missing}: no such file"]
    code, out, err = okrsync("validate", "-c", missing, "--debug")
    assert code != 0
    assert "Traceback (most recent call last)" in err
    assert "ConfigError" in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:8080", ("127.0.0.1", 8080)), ("[::1]:9000", ("::1", 9000)), (":7000", ("127.0.0.1", 7000))],
)
def test_listen_addresses_parse(text: str, expected: tuple[str, int]) -> None:
    from syncer.cli import parse_listen

    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["8080", "localhost", "host:http", "127.0.0.1:70000"])
def test_bad_listen_addresses_are_usage_errors(text: str) -> None:
    from syncer.cli import parse_listen
    from syncer.errors import ConfigError

    with pytest.raises(ConfigError, match="write it HOST:PORT"):
        parse_listen(text)


def test_progress_lines_stay_until_the_last_source_finishes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sources report from their own threads: one finishing must not clear the others' lines."""
    import rich.progress

    from syncer import cli

    calls: list[str] = []

    class Recorder:
        def __init__(self, *args: object, **kwargs: object) -> None:
            self.tasks = 0

        def start(self) -> None:
            calls.append("start")

        def stop(self) -> None:
            calls.append("stop")

        def add_task(self, description: str, total: object = None) -> int:
            self.tasks += 1
            return self.tasks

        def update(self, task: int, description: str) -> None:
            calls.append(description)

        def stop_task(self, task: int) -> None:
            pass

    monkeypatch.setattr(rich.progress, "Progress", Recorder)
    hook = cli._progress_hook()
    hook("jira", 100, False)
    hook("github", 50, False)
    hook("jira", 200, True)
    hook("github", 80, True)
    assert calls == ["start", "jira: 100 items …", "github: 50 items …", "jira: 200 items ✓", "github: 80 items ✓",
                     "stop"]


def test_an_okrsync_process_collects_cyclic_garbage_less_often() -> None:
    # The default threshold (700) cost ~10% of a 200k full sync's CPU (bench/RESULTS.md).
    import gc

    from syncer.cli import GC_THRESHOLD

    before = gc.get_threshold()
    try:
        with pytest.raises(SystemExit):
            main(["--version"])
        assert gc.get_threshold() == GC_THRESHOLD
        assert GC_THRESHOLD[0] >= 10_000
    finally:
        gc.set_threshold(*before)


def test_the_okrsync_process_leaves_its_heap_to_the_os_at_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    # CPython's collections while it tears modules down took 0.3-0.4 s after a 1% pass at 200k
    # (bench/RESULTS.md); a frozen heap skips them. Only the process entry freezes: tests and
    # other callers of main keep a collectable heap.
    import gc
    import tomllib

    from syncer import cli

    root = Path(cli.__file__).parent.parent
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["scripts"] == {"okrsync": "syncer.cli:run"}
    assert "run()" in (root / "syncer" / "__main__.py").read_text(encoding="utf-8")

    gc.unfreeze()
    try:
        with pytest.raises(SystemExit):
            main(["--version"])  # main itself freezes nothing
        assert gc.get_freeze_count() == 0
        monkeypatch.setattr(cli, "main", lambda: 3)
        assert cli.run() == 3  # the exit code passes through
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_start_up_imports_neither_postgresql_nor_the_http_stack() -> None:
    # Every command pays its imports (0.3-0.5 s); these load when a PostgreSQL store or a
    # request needs them. A fresh interpreter: this test process has imported everything.
    import subprocess
    import sys

    probe = (
        "import sys; import syncer.cli, syncer.store, syncer.config;"
        "print(sorted(m for m in ('sqlalchemy.dialects.postgresql', 'requests', 'urllib3', 'tenacity')"
        " if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"
