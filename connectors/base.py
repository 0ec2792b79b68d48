"""The one small interface every tracker implements, and the config shapes it plugs into.

A tracker is one module in ``connectors/`` that exposes ``PLUGIN = ConnectorPlugin(...)``:
its source config model, its match-rule model, its publish-target model and a factory for
the connector. ``connectors.plugins()`` discovers them, so adding GitLab or Linear means one new
module and nothing else. Raw tracker JSON never leaves that module: the connector yields
``Page``s of ``WorkItem``s.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict

from syncer.model import Page, PlannedWrite, WorkItem

if TYPE_CHECKING:
    import threading
    from datetime import datetime

    import requests

    from connectors.http import HttpPolicy

__all__ = [
    "Connector",
    "ConnectorContext",
    "ConnectorPlugin",
    "PublishConfig",
    "RuleConfig",
    "SourceConfig",
]


class SourceConfig(BaseModel):
    """Base of a tracker's ``sources.<name>`` block. ``type`` selects the plugin."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    ca_bundle: str | None = None
    """Extra CA bundle (PEM) to trust; certificate verification itself cannot be turned off."""
    retire_guard: float = 0.2
    """If more than this share of a scope disappears at once, retire nothing and fail the source."""

    def secrets(self) -> tuple[str, ...]:
        """Every secret value in this block, so logs and errors can redact them."""
        return ()


class RuleConfig(BaseModel):
    """Base of one ``match`` rule. Keys inside one rule are AND-ed; rules are OR-ed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str

    def conditions(self) -> dict[str, Any]:
        """The rule's conditions (everything but ``source``) that are set."""
        dumped = self.model_dump(exclude={"source"}, exclude_defaults=True)
        return {k: v for k, v in dumped.items() if v not in (None, [], ())}

    def fingerprint(self) -> str:
        """A stable string naming what this rule selects (shared by identical rules)."""
        parts = [f"{k}={v}" for k, v in sorted(self.conditions().items())]
        return f"{self.source}:" + "&".join(parts)

    def describe(self) -> str:
        """Short human text for ``explain`` ("epic PLAT-123", "labels bug+customer")."""
        return ", ".join(
            f"{k} {'+'.join(map(str, v)) if isinstance(v, list | tuple) else v}"
            for k, v in self.conditions().items()
        )

    def needs_members(self) -> bool:
        """True when only the tracker can evaluate the rule (JQL, descendants at any depth):
        the connector then reports its member ids in ``Page.members[fingerprint]``."""
        return False

    def matches(self, item: WorkItem, members: Mapping[str, frozenset[str]]) -> bool:
        """Pure: does this rule select ``item``? ``members`` holds tracker-evaluated sets."""
        raise NotImplementedError


class PublishConfig(BaseModel):
    """Base of one ``publish`` target of a key result."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str

    def target(self) -> str:
        """The tracker object written to (an issue key), for plans and idempotency records."""
        raise NotImplementedError

    def write_kind(self) -> str:
        """``field`` (a number field gets the progress %), ``comment`` or ``body_block``.

        Trackers override this; the default reads the common keys so a new tracker with a
        ``field:`` or ``comment:`` key works without more code.
        """
        if getattr(self, "field", None):
            return "field"
        if getattr(self, "comment", False):
            return "comment"
        return "body_block"


class Connector(Protocol):
    """A tracker, seen from ``run_once``. Every request goes through ``connectors.http``."""

    name: str

    @property
    def requests(self) -> int:
        """Requests sent so far (retries included)."""
        ...

    def check(self) -> None:
        """Cheap reachability and credentials check; raises a ``SourceError``."""
        ...

    def fetch(
        self,
        cursor: Mapping[str, Any] | None,
        *,
        full: bool,
        census: bool,
        rules: Sequence[RuleConfig],
    ) -> Iterator[Page]:
        """Yield pages of items changed since ``cursor`` (everything when ``full``).

        The scope fetched is the source's configured scope plus whatever ``rules`` select
        outside it (those items carry ``in_scope=False``). The last page carries the new cursor
        and, when ``full`` or ``census``, the complete id set of the scope in ``census``. Rules
        whose ``needs_members()`` is true get their member sets in ``Page.members``.
        Raises a ``SourceError`` subclass on failure; nothing yielded before is lost, but the
        cursor only moves with the last page.
        """
        ...

    def publish(self, write: PlannedWrite) -> None:
        """Carry out one write-back (a field value, a marked body block, a label)."""
        ...


@dataclass
class ConnectorContext:
    """What ``run_once`` hands a connector besides its config: seams for tests and shutdown.

    The connector builds its own ``connectors.http.HttpClient`` (auth is tracker-specific) from
    ``policy``, ``stop``, ``session`` and ``sleep``; ``now`` is the wall clock (UTC).
    """

    policy: HttpPolicy
    stop: threading.Event
    now: Any
    """``now() -> datetime`` (timezone-aware UTC)."""
    session: requests.Session | None = None
    sleep: Any = None
    """``sleep(seconds)`` override for tests; ``None`` waits on ``stop``."""
    state: dict[str, Any] | None = None
    """Slow-changing facts the connector may cache between passes (field ids, server flavour)."""
    config_dir: Any = None
    """The config file's folder (a ``Path``): relative paths in a source block resolve there."""


def utc_now() -> datetime:
    from datetime import UTC
    from datetime import datetime as _dt

    return _dt.now(UTC)


@dataclass(frozen=True)
class ConnectorPlugin:
    """What a tracker module registers: its config models and how to build its connector."""

    type: str
    source_model: builtins.type[SourceConfig]
    rule_model: builtins.type[RuleConfig]
    publish_model: builtins.type[PublishConfig]
    factory: Any
    """``factory(name: str, config: SourceConfig, context: ConnectorContext) -> Connector``"""

    def build(self, name: str, config: SourceConfig, context: ConnectorContext) -> Connector:
        connector: Connector = self.factory(name, config, context)
        return connector
