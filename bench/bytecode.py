"""Compile okrsync's own modules before a bench measures processes that import them.

``pip install okrsync`` writes the ``.pyc`` files at install time; an editable install under
``PYTHONDONTWRITEBYTECODE=1`` (set on the machines these benches ran on) never does, and then
every measured process compiled ~11 000 lines of okrsync first: ~0.15 s of CPU and wall per
process, which is start-up a user does not pay. Only okrsync's packages are compiled, into
their ``__pycache__`` folders (ignored by git), and only where a file changed.
"""

from __future__ import annotations

import compileall
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("syncer", "connectors", "bench")


def compile_okrsync() -> bool:
    """Compile what is stale; True when every module compiled."""
    ok = True
    for package in PACKAGES:
        ok = bool(compileall.compile_dir(ROOT / package, quiet=1, workers=1)) and ok
    if not ok:
        print("bench: some okrsync modules did not compile (see above)", file=sys.stderr)
    return ok
