"""``python -m syncer`` is the ``okrsync`` command."""

from syncer.cli import main

raise SystemExit(main())
