"""``python -m syncer`` is the ``okrsync`` command."""

from syncer.cli import run

raise SystemExit(run())
