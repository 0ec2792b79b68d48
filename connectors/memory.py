"""A tracker held in a JSON file (or in memory): for trying okrsync without credentials, for tests,
and for importing work from a tool that has no connector yet (export it as JSON).

```yaml
sources:
  backlog:
    type: memory
    path: backlog.json          # a JSON list of items, relative to the config file
```

Each item: ``{"id", "key", "title", "state": "todo|in_progress|done", "updated_at", ...}`` with the
optional fields of ``WorkItem`` (``labels``, ``points``, ``parent_key``, ``container``, ``kind``,
``done_at``, ``excluded``...). Rules: ``container``, ``labels``, ``issue_type``, ``parent``, ``kind``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from connectors.base import ConnectorContext, ConnectorPlugin, PublishConfig, RuleConfig, SourceConfig
from syncer.errors import SourceError, TransientError
from syncer.model import ItemKind, Page, PlannedWrite, State, WorkItem

__all__ = ["PLUGIN", "MemoryConnector", "MemoryPublish", "MemoryRule", "MemorySource", "item_from_json"]


class MemorySource(SourceConfig):
    """Items read from a JSON file on every pass (``path`` relative to the config file)."""

    type: Literal["memory"]
    path: str | None = None
    items: tuple[dict[str, Any], ...] = ()


class MemoryRule(RuleConfig):
    container: str | None = None
    labels: tuple[str, ...] = ()
    issue_type: str | None = None
    parent: str | None = None
    """Children of this item key (like a Jira epic rule)."""
    kind: Literal["issue", "pull_request", "any"] = "issue"

    def matches(self, item: WorkItem, members: Mapping[str, frozenset[str]]) -> bool:
        if item.source != self.source or item.kind is ItemKind.SUBTASK:
            return False
        is_pr = item.kind is ItemKind.PULL_REQUEST
        if (self.kind == "issue" and is_pr) or (self.kind == "pull_request" and not is_pr):
            return False
        if self.container and item.container != self.container:
            return False
        if self.labels and not set(self.labels) <= set(item.labels):
            return False
        if self.issue_type and item.issue_type.casefold() != self.issue_type.casefold():
            return False
        return not (self.parent and item.parent_key != self.parent)


class MemoryPublish(PublishConfig):
    """Write-back into the in-memory tracker (recorded in ``MemoryConnector.written``)."""

    issue: str
    field: str | None = None

    def target(self) -> str:
        return f"{self.issue}:{self.field or 'body'}"


def _dt(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _text(value: Any) -> str | None:
    """An optional text field as ``WorkItem`` holds it: a JSON number (``"parent_id": 12``) as text."""
    return None if value is None else str(value)


def item_from_json(source: str, raw: Mapping[str, Any]) -> WorkItem:
    """One JSON object -> WorkItem; unknown states become ``unknown`` rather than an error."""
    state_text = str(raw.get("state", "todo"))
    state = State(state_text) if state_text in State._value2member_map_ else State.UNKNOWN
    kind_text = str(raw.get("kind", "issue"))
    kind = ItemKind(kind_text) if kind_text in ItemKind._value2member_map_ else ItemKind.ISSUE
    updated = _dt(raw.get("updated_at")) or datetime(1970, 1, 1, tzinfo=UTC)
    key = str(raw.get("key") or raw["id"])
    return WorkItem(
        source=source,
        id=str(raw["id"]),
        key=key,
        title=str(raw.get("title", key)),
        url=str(raw.get("url", "")),
        kind=kind,
        state=state,
        updated_at=updated,
        container=str(raw.get("container", "")),
        issue_type=str(raw.get("issue_type", "")),
        created_at=_dt(raw.get("created_at")),
        done_at=_dt(raw.get("done_at")),
        excluded=bool(raw.get("excluded", False)),
        points=float(raw["points"]) if isinstance(raw.get("points"), int | float) else None,
        labels=tuple(str(x) for x in raw.get("labels", ())),
        parent_key=_text(raw.get("parent_key")),
        parent_id=_text(raw.get("parent_id")),
        in_scope=bool(raw.get("in_scope", True)),
        unknown_fields=("state",) if state is State.UNKNOWN else (),
    )


class MemoryConnector:
    """Serves a fixed list of items; ``fail`` makes the next fetch raise (for failure tests)."""

    def __init__(self, name: str, items: Sequence[WorkItem] = (), *, base: Path | None = None,
                 path: str | None = None) -> None:
        self.name = name
        self.items = list(items)
        self.path = (base / path) if (base and path) else (Path(path) if path else None)
        self.fail: SourceError | None = None
        self.fetches = 0
        self.written: list[PlannedWrite] = []

    @property
    def requests(self) -> int:
        return self.fetches

    def check(self) -> None:
        if self.fail:
            raise self.fail

    def _load(self) -> list[WorkItem]:
        if self.path is None:
            return self.items
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SourceError(self.name, f"{self.path}: no such file") from None
        except ValueError as exc:
            raise TransientError(self.name, f"{self.path}: not valid JSON ({exc})") from None
        if not isinstance(raw, list):
            raise TransientError(self.name, f"{self.path}: expected a JSON list of items")
        return [item_from_json(self.name, entry) for entry in raw]

    def fetch(
        self, cursor: Mapping[str, Any] | None, *, full: bool, census: bool, rules: Sequence[RuleConfig]
    ) -> Iterator[Page]:
        self.fetches += 1
        if self.fail:
            raise self.fail
        items = [i._replace(source=self.name) if i.source != self.name else i for i in self._load()]
        by_key = {i.key: i.id for i in items}
        # A parent named only by key gets its id, as the real connectors do: unaligned work and
        # roll-ups follow parents by id.
        items = [i._replace(parent_id=by_key[i.parent_key]) if i.parent_key in by_key and not i.parent_id else i
                 for i in items]
        since = _dt(cursor.get("since")) if cursor and not full else None
        changed = tuple(i for i in items if since is None or i.updated_at >= since)
        high = max((i.updated_at for i in items), default=None)
        yield Page(
            items=changed,
            cursor={"since": high.isoformat() if high else None},
            census=frozenset(i.id for i in items) if (full or census) else None,
        )

    def publish(self, write: PlannedWrite) -> None:
        self.written.append(write)


def _factory(name: str, config: SourceConfig, context: ConnectorContext) -> MemoryConnector:
    assert isinstance(config, MemorySource)
    items = [item_from_json(name, raw) for raw in config.items]
    base = Path(context.config_dir) if context.config_dir else None
    return MemoryConnector(name, items, base=base, path=config.path)


PLUGIN = ConnectorPlugin(
    type="memory",
    source_model=MemorySource,
    rule_model=MemoryRule,
    publish_model=MemoryPublish,
    factory=_factory,
)
