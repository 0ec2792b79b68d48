"""``python -m bench.calibrate``: a fixed CPU workload, to tell a slow machine from slow code.

The bench machines change speed by up to a half within minutes (bench/RESULTS.md), more than a
change under test moves a 200k full sync. Run this right before each pass of an A/B comparison
and divide the pass's CPU by what it prints: the ratio moves much less than the raw seconds. The
work is what a sync spends its time on: building Python objects, and SQLite inserts into a
B-tree in random key order (in memory, so no disk is involved).
"""

from __future__ import annotations

import sqlite3
import time


def workload() -> float:
    """CPU seconds of the fixed workload (process time)."""
    started = time.process_time()
    rows: dict[str, tuple[int, str]] = {}
    for i in range(1_500_000):
        rows[str(i)] = (i, str(i * 7))
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (a TEXT PRIMARY KEY, b)")
    db.executemany("INSERT INTO t VALUES (?, ?)", ((str(i * 7919 % 200_003), i) for i in range(200_000)))
    db.close()
    del rows
    return time.process_time() - started


def main() -> None:
    print(f"{workload():.3f}")


if __name__ == "__main__":
    main()
