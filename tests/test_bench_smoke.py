"""The issue-7 bench harness at a small size: every request row is at its floor (no timings).

Runs ``bench.run.run_bench`` for real: the sandbox in its own process, ``okrsync sync`` (full,
incremental after 1% changed, idle, idle once the
overlap has passed) and the naive script as subprocesses, requests counted from
the sandbox's log. Asserts the request counts against the floors, the idle pass's zero GitHub
quota and single Jira request, and that okrsync and the naive script agree on all 40 key results.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.run import run_bench, table


def test_a_500_issue_bench_is_at_the_request_floor_and_agrees_with_the_naive_script(tmp_path: Path) -> None:
    result = run_bench(500, workdir=tmp_path, step_timeout=60, log=lambda _text: None)
    rendered = table(result)
    rows = {(r.phase, r.source): r for r in result.rows}
    phases = ("full", "incremental", "idle", "idle later")
    assert set(rows) == {(p, s) for p in phases for s in ("jira", "github")}, rendered
    assert all(r.ok for r in result.rows), rendered
    assert all(r.requests <= r.floor + r.floor // 100 for r in result.rows), rendered
    # GitHub: 100 repositories of 2-3 issues, one page each; idle costs no quota at all.
    assert rows["full", "github"].requests == rows["full", "github"].floor == 100
    assert rows["idle", "github"].quota == 0 and rows["idle", "github"].requests == 100
    assert rows["idle", "jira"].requests == 1
    assert rows["idle later", "jira"].requests == 1 and rows["idle later", "github"].quota == 0
    # 1% of 250 GitHub issues is 2 (or 3) changes: only those repositories cost quota.
    assert 1 <= (rows["incremental", "github"].quota or 0) <= 3
    assert result.fetched["full"] == 500 and result.fetched["idle"] == result.fetched["idle later"] == 0
    assert result.agree == {"full": [], "incremental": []}, rendered
    assert result.naive_requests["full"] > rows["full", "jira"].requests + rows["full", "github"].requests
    assert result.passed and "RESULT: PASS" in rendered


def test_the_cpu_breakdown_runs_every_stage_of_a_full_sync_and_stores_every_issue(tmp_path: Path) -> None:
    from bench.breakdown import STAGES, run
    from bench.breakdown import table as breakdown_table
    from syncer.store import Store

    token_before = os.environ.get("BENCH_JIRA_TOKEN")
    book = run(500, False, lambda _text: None, tmp_path)
    rendered = breakdown_table(book)
    assert book.issues == 500, rendered
    # The same requests as the bench's full sync: 100 GitHub pages and the Jira floor's few.
    assert 100 < book.requests < 110, rendered
    assert book.replayed == book.requests, "the transport floor sends every request again"
    assert set(book.cpu) == set(STAGES) and all(seconds > 0 for seconds in book.cpu.values()), rendered
    store = Store.open(f"sqlite:///{tmp_path / 'stages.db'}")
    try:
        assert len(store.live_ids("jira")) == len(store.live_ids("github")) == 250
        assert not store.deferred_indexes_left()
    finally:
        store.close()
    # Again into the same folder: every stage starts from an empty store again (a first load),
    # and the whole pass timed twice (where GNU time is there to time it), the lowest kept.
    from bench.run import TIME

    whole = 2 if TIME is not None else 0
    again = run(500, whole, lambda _text: None, tmp_path)
    assert again.issues == 500 and again.requests == book.requests, breakdown_table(again)
    assert len(again.whole_cpus) == whole
    if whole:
        assert again.whole_cpu == min(again.whole_cpus) > 0
        assert "the lowest of 2" in breakdown_table(again)
    assert os.environ.get("BENCH_JIRA_TOKEN") == token_before  # tokens go to the config, not this process
