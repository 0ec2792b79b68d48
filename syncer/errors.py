"""The exception tree, with the process exit code on each class.

    OkrsyncError                 exit 1   anything okrsync raises on purpose
    ├── ConfigError              exit 2   bad usage or an invalid config: nothing is written
    ├── SyncBusyError            exit 1   another pass holds the sync lock
    ├── StoreError               exit 1   the database refused an operation
    └── SourceError              exit 1   one tracker failed; the others still sync
        ├── AuthError                     401/403 on credentials: retry only after a config change
        ├── RateLimitedError              a wait past the pass deadline: resume at `resume_at`
        ├── TransientError                network, 5xx, truncated JSON: retried next pass
        ├── VisibilityLostError           a project or repository vanished as a whole
        └── CompatibilityError            a removed endpoint (410) or an unsupported server

The CLI prints ``str(error)`` as one line on stderr and exits with ``error.exit_code``.
Messages never contain secrets: the HTTP layer redacts before raising.
"""

from __future__ import annotations

from datetime import datetime

__all__ = [
    "AuthError",
    "CompatibilityError",
    "ConfigError",
    "OkrsyncError",
    "RateLimitedError",
    "SourceError",
    "StoreError",
    "SyncBusyError",
    "TransientError",
    "VisibilityLostError",
]


class OkrsyncError(Exception):
    """Base of every error okrsync raises on purpose."""

    exit_code = 1


class ConfigError(OkrsyncError):
    """Invalid usage or configuration; carries every problem found, one per line."""

    exit_code = 2

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class SyncBusyError(OkrsyncError):
    """Another sync pass (a daemon or a manual sync) holds the lock on this store."""


class StoreError(OkrsyncError):
    """The store refused an operation (disk full, schema too new, connection lost)."""


class SourceError(OkrsyncError):
    """A tracker failed during a pass. ``source`` names it; the message is already redacted."""

    def __init__(self, source: str, message: str) -> None:
        self.source = source
        self.message = message
        super().__init__(f"{source}: {message}")


class AuthError(SourceError):
    """Credentials were refused; retrying before the config changes only burns quota."""


class RateLimitedError(SourceError):
    """The tracker asked us to wait past the pass deadline; the source resumes at ``resume_at``."""

    def __init__(self, source: str, message: str, resume_at: datetime | None = None) -> None:
        super().__init__(source, message)
        self.resume_at = resume_at


class TransientError(SourceError):
    """Network trouble, 5xx or a malformed page: nothing was committed, the next pass retries."""


class VisibilityLostError(SourceError):
    """A whole project or repository disappeared: kept as it was, not emptied."""


class CompatibilityError(SourceError):
    """The server does not offer an endpoint we need (for example 410 on Jira Cloud's old search)."""
