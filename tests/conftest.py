"""Shared fixtures: a realistic config over two JSON-file trackers, and a way to run ``okrsync``.

The cycle is the current calendar quarter (computed from today, UTC) and every "done" date sits
at the cycle's first instant, so the numbers below hold whatever day the suite runs:

    launch (percent_done, children of EPIC-1)   3 of 5 done, a won't-do child left out -> 60.0
    bugs   (count_done, label bug, target 10)   3 done in the cycle, 1 before it, 1 open  -> 3
    perf   (sum_points_done, label perf, 20)    5 + 3 points done in the cycle, 8 open     -> 8
    ops-uptime (percent_done, ops source)       1 of 2 done                                -> 50.0
    nps    (manual, 30 -> 45)                   from check-ins
    unaligned: MEM-20 (open, no rule); MEM-21 carries `chore` and is ignored
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]

if (Path(__file__).with_name("store_fixtures.py")).exists():
    from tests.store_fixtures import *  # noqa: F403


def current_cycle(today: date | None = None) -> tuple[str, date, date]:
    """(name, start, end) of the calendar quarter containing ``today`` (UTC)."""
    today = today or datetime.now(UTC).date()
    quarter = (today.month - 1) // 3
    start = date(today.year, quarter * 3 + 1, 1)
    next_start = date(today.year + 1, 1, 1) if quarter == 3 else date(today.year, quarter * 3 + 4, 1)
    return f"{today.year}-Q{quarter + 1}", start, next_start - timedelta(days=1)


@dataclass(frozen=True)
class MemoryEnv:
    """Where the memory-source fixture wrote its files."""

    config: Path
    items: Path
    ops: Path
    store: Path
    cycle_start: date

    def write_items(self, items: list[dict[str, Any]]) -> None:
        write_json(self.items, items)


def write_json(path: Path, data: Any) -> None:
    """Replace ``path`` atomically (a daemon may read it at any moment)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    tmp.replace(path)


def memory_items(cycle_start: date) -> list[dict[str, Any]]:
    """The ``memory`` tracker's items (see the module docstring for the numbers they give)."""
    in_cycle = f"{cycle_start.isoformat()}T00:00:00Z"
    before = f"{(cycle_start - timedelta(days=10)).isoformat()}T12:00:00Z"

    def issue(n: int, state: str = "todo", **extra: Any) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": f"m{n}", "key": f"MEM-{n}", "title": f"Memory item {n}", "state": state,
            "url": f"https://tracker.example.test/MEM-{n}", "container": "MEM", "issue_type": "Story",
            "updated_at": in_cycle, "created_at": before,
        }
        if state == "done":
            item["done_at"] = in_cycle
        item.update(extra)
        return item

    return [
        issue(1, "in_progress", kind="epic", issue_type="Epic", title="Launch epic", key="EPIC-1"),
        issue(2, "done", parent_key="EPIC-1"),
        issue(3, "done", parent_key="EPIC-1"),
        issue(4, "done", parent_key="EPIC-1", done_at=before),  # before the cycle: still done for percent
        issue(5, "in_progress", parent_key="EPIC-1"),
        issue(6, "todo", parent_key="EPIC-1"),
        issue(7, "done", parent_key="EPIC-1", excluded=True, title="Won't do"),
        issue(10, "done", labels=["bug"]),
        issue(11, "done", labels=["bug"]),
        issue(12, "done", labels=["bug", "perf"], points=5),
        issue(13, "done", labels=["bug"], done_at=before),  # closed last quarter: not counted
        issue(14, "todo", labels=["bug"]),
        issue(15, "done", labels=["perf"], points=3),
        issue(16, "in_progress", labels=["perf"], points=8),
        issue(20, "todo", title="Nobody planned this"),
        issue(21, "todo", labels=["chore"], title="Bump a dependency"),
    ]


def ops_items(cycle_start: date) -> list[dict[str, Any]]:
    """The ``ops`` tracker's items: one of two uptime tasks done."""
    at = f"{cycle_start.isoformat()}T00:00:00Z"
    return [
        {"id": "o1", "key": "OPS-1", "title": "Add a second region", "state": "done", "labels": ["uptime"],
         "updated_at": at, "done_at": at, "container": "OPS"},
        {"id": "o2", "key": "OPS-2", "title": "Chaos drill", "state": "todo", "labels": ["uptime"],
         "updated_at": at, "container": "OPS"},
    ]


CONFIG_TEMPLATE = """\
version: 1
cycle: {{name: {name}, start: {start}, end: {end}}}
store: sqlite:///okrsync.db
schedule:
  interval: 15m
  jitter: 1s
sources:
  memory:
    type: memory
    path: items.json
  ops:
    type: memory
    path: ops.json
objectives:
  - id: company
    title: Ship what matters
  - id: product
    parent: company
    title: Launch the new product
    owner: product-team
    key_results:
      - id: launch
        title: Finish the launch epic
        metric: percent_done
        match:
          - {{source: memory, parent: EPIC-1}}
      - id: bugs
        title: Close 10 bugs
        metric: count_done
        target: 10
        match:
          - {{source: memory, labels: [bug]}}
      - id: perf
        title: Deliver 20 points of performance work
        metric: sum_points_done
        target: 20
        match:
          - {{source: memory, labels: [perf]}}
      - id: nps
        title: Reach an NPS of 45
        metric: manual
        start: 30
        target: 45
  - id: reliability
    parent: company
    title: Stay up
    key_results:
      - id: ops-uptime
        title: Finish the uptime work
        match:
          - {{source: ops, labels: [uptime]}}
unaligned:
  ignore_labels: [chore]
"""


def write_memory_config(directory: Path) -> MemoryEnv:
    """Write ``okrs.yaml``, ``items.json`` and ``ops.json`` into ``directory``."""
    name, start, end = current_cycle()
    config = directory / "okrs.yaml"
    config.write_text(CONFIG_TEMPLATE.format(name=name, start=start, end=end), encoding="utf-8")
    env = MemoryEnv(config=config, items=directory / "items.json", ops=directory / "ops.json",
                    store=directory / "okrsync.db", cycle_start=start)
    env.write_items(memory_items(start))
    write_json(env.ops, ops_items(start))
    return env


@pytest.fixture
def memory_env(tmp_path: Path) -> MemoryEnv:
    """A config with two memory sources and their JSON files, in a fresh folder."""
    return write_memory_config(tmp_path)


@pytest.fixture
def memory_config(memory_env: MemoryEnv) -> Path:
    """The path of a valid config whose sources are JSON files (no network)."""
    return memory_env.config


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """A minimal environment for a child ``okrsync``: its own HOME, no inherited OKRSYNC_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")}
    env.update({"HOME": str(home), "PYTHONPATH": str(REPO), "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def run_okrsync(*args: str, cwd: Path | None = None, timeout: float = 60,
                env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run ``python -m syncer ARGS`` in a subprocess; returns (exit code, stdout, stderr)."""
    home = (cwd or Path.cwd()) if env is None else Path(env.get("HOME", "."))
    proc = subprocess.run(
        [sys.executable, "-m", "syncer", *args], cwd=cwd, env=env or clean_env(home),
        capture_output=True, text=True, timeout=timeout, check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture
def okrsync(tmp_path: Path):
    """``okrsync(*args)`` -> (code, stdout, stderr), run in ``tmp_path`` with HOME there."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)

    def run(*args: str, timeout: float = 60, **extra_env: str) -> tuple[int, str, str]:
        return run_okrsync(*args, cwd=tmp_path, timeout=timeout, env=clean_env(home, **extra_env))

    return run
