"""The config file's models (pydantic v2, strict and frozen).

Loading (YAML with line numbers, ``${ENV}`` interpolation, every error as ``FILE:LINE: message``)
lives in ``load()``. Source blocks, match rules and publish targets are tracker-specific: their
models come from the connector plugins (``connectors.plugins()``), so this module names no tracker.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator

from connectors.base import PublishConfig, RuleConfig, SourceConfig

__all__ = [
    "METRICS",
    "Config",
    "Cycle",
    "Duration",
    "KeyResult",
    "Objective",
    "Schedule",
    "Unaligned",
    "parse_duration",
]

METRICS = ("percent_done", "points_percent_done", "count_done", "sum_points_done", "count_open", "manual")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str | int | float | timedelta) -> timedelta:
    """``30s``, ``5m``, ``1h``, ``1d`` (a bare number is seconds) -> timedelta."""
    if isinstance(text, timedelta):
        return text
    if isinstance(text, int | float) and not isinstance(text, bool):
        return timedelta(seconds=float(text))
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"invalid duration {text!r}: write it like 30s, 5m, 1h or 1d")
    value = float(match.group(1)) * _UNITS[match.group(2)]
    if value <= 0:
        raise ValueError(f"duration {text!r} must be positive")
    return timedelta(seconds=value)


def _format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


Duration = Annotated[
    timedelta,
    PlainValidator(parse_duration),
    PlainSerializer(_format_duration, return_type=str),
    Field(json_schema_extra={"type": "string", "pattern": _DURATION.pattern}),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Cycle(_Strict):
    """The OKR period. It runs from ``start`` 00:00 UTC to ``end`` + 1 day 00:00 UTC."""

    name: str
    start: date
    end: date

    @property
    def starts_at(self) -> datetime:
        return datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC)

    @property
    def ends_at(self) -> datetime:
        return datetime(self.end.year, self.end.month, self.end.day, tzinfo=UTC) + timedelta(days=1)


class Schedule(_Strict):
    """How the daemon paces passes."""

    interval: Duration = timedelta(minutes=15)
    jitter: Duration = timedelta(seconds=30)
    full_every: Duration = timedelta(days=1)
    census_every: Duration = timedelta(hours=6)
    deadline: Duration = timedelta(minutes=10)
    """A pass gives up on a source (cursor unchanged) rather than wait past this."""


class KeyResult(_Strict):
    """One key result. ``match`` and ``publish`` hold the plugins' typed rule/target models."""

    id: str
    title: str
    metric: Literal[
        "percent_done", "points_percent_done", "count_done", "sum_points_done", "count_open", "manual"
    ] = "percent_done"
    start: float | None = None
    target: float | None = None
    weight: float = Field(default=1.0, ge=0)
    owner: str | None = None
    match: tuple[RuleConfig, ...] = ()
    publish: tuple[PublishConfig, ...] = ()

    @property
    def start_value(self) -> float:
        """``start`` with its default (0, or for ``count_open`` the first snapshot's value)."""
        return 0.0 if self.start is None else self.start

    @property
    def target_value(self) -> float:
        """``target`` with its default (100 for percentages)."""
        if self.target is not None:
            return self.target
        return 100.0 if self.metric in ("percent_done", "points_percent_done") else 0.0


class Objective(_Strict):
    """An objective; ``parent`` cascades its progress into another objective."""

    id: str
    title: str
    parent: str | None = None
    owner: str | None = None
    weight: float = Field(default=1.0, ge=0)
    key_results: tuple[KeyResult, ...] = ()


class Unaligned(_Strict):
    """How unaligned work is found and, optionally, labelled on the trackers."""

    ignore_labels: tuple[str, ...] = ()
    label: str | None = None


class Config(_Strict):
    """The whole file, after interpolation and validation."""

    version: Literal[1] = 1
    cycle: Cycle
    store: str = "sqlite:///okrsync.db"
    schedule: Schedule = Schedule()
    sources: dict[str, SourceConfig] = Field(default_factory=dict)
    objectives: tuple[Objective, ...] = ()
    unaligned: Unaligned = Unaligned()
    path: Path | None = Field(default=None, exclude=True)
    """Where the file was read from (relative store paths resolve next to it)."""

    def key_results(self) -> list[tuple[Objective, KeyResult]]:
        return [(o, kr) for o in self.objectives for kr in o.key_results]

    def key_result(self, kr_id: str) -> tuple[Objective, KeyResult] | None:
        return next(((o, kr) for o, kr in self.key_results() if kr.id == kr_id), None)

    def secrets(self) -> tuple[str, ...]:
        """Every secret value in the config, for redaction."""
        found: list[str] = []
        for source in self.sources.values():
            found.extend(s for s in source.secrets() if s)
        return tuple(found)


def load(path: str | Path, env: dict[str, str] | None = None) -> Config:  # pragma: no cover - replaced
    """Read, interpolate and validate a config file; raises ``ConfigError`` with every problem."""
    raise NotImplementedError


def _unused(_: Any) -> None:  # keeps imports referenced until load() lands
    return None
