"""The config file's models (pydantic v2, strict and frozen).

Loading (YAML with line numbers, ``${ENV}`` interpolation, every error as ``FILE:LINE: message``)
lives in ``load()``. Source blocks, match rules and publish targets are tracker-specific: their
models come from the connector plugins (``connectors.plugins()``), so this module names no tracker.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import typing
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import ErrorDetails

from connectors.base import ConnectorPlugin, PublishConfig, RuleConfig, SourceConfig
from syncer.errors import ConfigError
from syncer.yamlload import MAX_BYTES, Loaded, Loc, Problem, load_yaml

__all__ = [
    "METRICS",
    "Config",
    "Cycle",
    "Duration",
    "KeyResult",
    "Objective",
    "Schedule",
    "Unaligned",
    "json_schema",
    "load",
    "parse_duration",
    "resolve_store_url",
    "schema_text",
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


def format_duration(value: timedelta) -> str:
    """``timedelta`` -> the way users write it (``15m``, ``1d``, ``90s``)."""
    return _format_duration(value)


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

    @field_validator("end")
    @classmethod
    def _ends_after_start(cls, end: date, info: ValidationInfo) -> date:
        start = info.data.get("start")
        if isinstance(start, date) and end < start:
            raise ValueError(f"the cycle ends ({end}) before it starts ({start})")
        return end

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

    def store_url(self) -> str:
        """The store URL, a relative SQLite path resolved next to the config file (else the cwd)."""
        return resolve_store_url(self.store, self.path.parent if self.path else Path.cwd())

    def secrets(self) -> tuple[str, ...]:
        """Every secret value in the config, for redaction."""
        found: list[str] = []
        for source in self.sources.values():
            found.extend(s for s in source.secrets() if s)
        return tuple(found)



# --- loading -------------------------------------------------------------------------------

_COUNT_METRICS = ("count_done", "sum_points_done")
_PERCENT_METRICS = ("percent_done", "points_percent_done")
_NUMBER_ERRORS = ("float_type", "float_parsing", "int_type", "int_parsing", "int_from_float", "finite_number")
_BOUNDS = {"greater_than_equal": ">=", "greater_than": ">", "less_than": "<", "less_than_equal": "<="}
_M = typing.TypeVar("_M", bound=BaseModel)
_SQLITE = "sqlite:///"


def resolve_store_url(url: str, base: Path) -> str:
    """``sqlite:///okrsync.db`` -> ``sqlite:////<base>/okrsync.db``; other URLs unchanged.

    A relative SQLite path means "next to the config file", not "wherever the daemon was
    started", so two invocations from different directories share one store.
    """
    if not url.startswith(_SQLITE):
        return url
    path, sep, query = url[len(_SQLITE):].partition("?")
    if path in ("", ":memory:") or path.startswith("/"):
        return url
    return f"{_SQLITE}{(base.absolute() / path)}{sep}{query}"


def _store_problem(url: str, secret: bool) -> str | None:
    """Why ``url`` is not a store URL we can open, or ``None``. Never echoes the URL itself."""
    scheme = url.partition(":")[0] if ":" in url else ""
    if scheme == "sqlite":
        if url.startswith(_SQLITE) or url == "sqlite://":
            return None
        return "store: write SQLite as sqlite:///relative/path.db or sqlite:////absolute/path.db"
    if scheme in ("postgres", "postgresql") or scheme.startswith("postgresql+"):
        return None
    shown = f" '{scheme}'" if scheme and not secret else ""
    return f"store: unsupported database URL{shown}: use sqlite:///FILE.db or postgresql://HOST/DB"


def _hint(word: object, known: list[str]) -> str:
    """`` (did you mean 'x'?)`` when ``word`` is a likely typo of one of ``known``."""
    close = difflib.get_close_matches(str(word), known, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _where(loc: Loc) -> str:
    """``objectives[1].key_results[0].match[2]``, or ``the top level`` for ``()``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "the top level"


def _unwrap(annotation: Any, part: str | int) -> Any:
    """The type found one step (``part``) inside ``annotation``, or ``None``."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _unwrap(typing.get_args(annotation)[0], part)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel) and isinstance(part, str):
        info = annotation.model_fields.get(part)
        return info.annotation if info else None
    args = typing.get_args(annotation)
    if origin in (tuple, list) and isinstance(part, int) and args:
        return args[0]
    if origin is dict and isinstance(part, str) and len(args) == 2:
        return args[1]
    for arg in args:  # unions such as `X | None`
        found = _unwrap(arg, part)
        if found is not None:
            return found
    return None


def _model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at ``loc`` below ``root``."""
    current: Any = root
    for part in loc:
        current = _unwrap(current, part)
        if current is None:
            return None
    for candidate in (current, *typing.get_args(current)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _number(value: Any) -> float | None:
    """A YAML value as a number if it is one (ints, floats, numeric text from ``${...}``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _known(names: list[str], what: str) -> str:
    return f"known {what}: {', '.join(names)}" if names else f"no {what} are defined"


class _Validator:
    """Validates the loaded data piece by piece so that every problem gets its own line.

    Sources, match rules and publish targets are validated with their plugin's model first
    and replaced by the resulting instances (or a placeholder when they failed), then the
    whole ``Config`` is validated; cross-references (ids, parents, sources) are checked on the
    raw data, so one broken part never hides the problems in another.
    """

    def __init__(self, loaded: Loaded, plugins: Mapping[str, ConnectorPlugin]) -> None:
        self.loaded = loaded
        self.plugins = plugins
        self.problems: list[Problem] = []

    def error(self, loc: Loc, message: str) -> None:
        self.problems.append(Problem(self.loaded.line_of(loc), message))

    def is_secret(self, loc: Loc) -> bool:
        """True when the value at ``loc`` came through ``${...}`` (or lies inside one that did).

        Messages about such a value never quote it. Messages about an enclosing mapping (a model
        validator's) are kept, since they explain the mistake; any interpolated value they
        happen to contain is masked when the lines are formatted.
        """
        return any(loc[: len(s)] == s for s in self.loaded.interpolated)

    # -- entry point --------------------------------------------------------------------------

    def run(self, file: Path) -> Config | None:
        data = self.loaded.data
        if data is None:
            if not self.loaded.problems:
                self.error((), "the file is empty: expected a mapping with cycle, sources and objectives")
            return None
        if not isinstance(data, dict):
            self.error((), "expected a mapping at the top level (version, cycle, sources, objectives, …)")
            return None
        data = dict(data)
        if "path" in data:
            known = sorted(set(Config.model_fields) - {"path"})
            hint = _hint("path", known) or f" (known keys: {', '.join(known)})"
            self.error(("path",), "unknown key 'path' in the top level" + hint)
            del data["path"]

        types: dict[str, ConnectorPlugin] = {}
        sources = data.get("sources")
        source_names: list[str] = []
        if isinstance(sources, dict):
            source_names = sorted(sources)
            data["sources"] = {name: self.source(name, block, types) for name, block in sources.items()}

        objectives = data.get("objectives")
        if isinstance(objectives, list):
            self.check_ids_and_parents(objectives)
            data["objectives"] = [
                self.objective(obj, ("objectives", i), source_names, types)
                for i, obj in enumerate(objectives)
            ]

        store = data.setdefault("store", str(Config.model_fields["store"].default))
        if isinstance(store, str):
            problem = _store_problem(store, self.is_secret(("store",)))
            if problem:
                self.error(("store",), problem)
            data["store"] = resolve_store_url(store, file.absolute().parent)

        data["path"] = file.absolute()
        return self.validate(Config, data, ())

    # -- pieces -------------------------------------------------------------------------------

    def validate(self, model: type[_M], raw: Any, loc: Loc) -> _M | None:
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                if self.loaded.failed_at(loc + tuple(err["loc"])):
                    continue  # the missing ${VAR} is reported already; its empty value says nothing new
                self.error(loc + tuple(err["loc"]), self.describe(err, loc, model))
            return None

    def source(self, name: str, block: Any, types: dict[str, ConnectorPlugin]) -> SourceConfig:
        loc: Loc = ("sources", name)
        known = sorted(self.plugins)
        if not isinstance(block, dict):
            self.error(loc, f"sources.{name}: expected a mapping with a `type` ({_known(known, 'types')})")
            return SourceConfig.model_construct(type="")
        kind = block.get("type")
        if kind is None:
            self.error(loc, f"sources.{name}: missing required key 'type' ({_known(known, 'types')})")
        elif not isinstance(kind, str) or kind not in self.plugins:
            shown = "" if self.is_secret(loc + ("type",)) else f" '{kind}'"
            self.error(
                loc + ("type",),
                f"sources.{name}: unknown type{shown}{_hint(kind, known)} ({_known(known, 'types')})",
            )
        else:
            plugin = types[name] = self.plugins[kind]
            found = self.validate(plugin.source_model, block, loc)
            if found is not None:
                return found
        return SourceConfig.model_construct(type=str(kind or ""))

    def objective(
        self, raw: Any, loc: Loc, source_names: list[str], types: dict[str, ConnectorPlugin]
    ) -> Any:
        if not isinstance(raw, dict) or not isinstance(raw.get("key_results"), list):
            return raw
        krs = [
            self.key_result(kr, loc + ("key_results", j), source_names, types) if isinstance(kr, dict) else kr
            for j, kr in enumerate(raw["key_results"])
        ]
        return {**raw, "key_results": krs}

    def key_result(
        self, raw: dict[str, Any], loc: Loc, source_names: list[str], types: dict[str, ConnectorPlugin]
    ) -> dict[str, Any]:
        name = f"key result '{raw['id']}'" if isinstance(raw.get("id"), str) else _where(loc)
        metric = raw.get("metric", "percent_done")
        start, target = _number(raw.get("start")), _number(raw.get("target"))
        if metric in _COUNT_METRICS and "target" not in raw:
            where = loc + ("metric",) if "metric" in raw else loc
            self.error(where, f"{name}: metric {metric} needs a target")
        if metric == "manual":
            missing = [k for k in ("start", "target") if k not in raw]
            if missing:
                self.error(loc, f"{name}: metric manual needs {' and '.join(missing)}")
        given_bad = ("start" in raw and start is None) or ("target" in raw and target is None)
        if target is None and "target" not in raw:
            target = 100.0 if metric in _PERCENT_METRICS else 0.0 if metric == "count_open" else None
        if start is None and metric != "count_open":
            start = 0.0  # count_open without a start begins at its first snapshot: nothing to compare
        if metric == "count_open" and not given_bad and start is not None and target is not None and target > start:
            self.error(
                loc + ("target",),
                f"{name}: count_open is for reducing open work: target {target:g} must be below start {start:g}",
            )
        if not given_bad and start is not None and target is not None and start == target:
            self.error(
                loc + ("target",) if "target" in raw else loc + ("start",),
                f"{name}: start and target are both {start:g}; progress cannot move",
            )
        rules = raw.get("match")
        if metric == "manual" and rules:
            self.error(loc + ("match",), f"{name}: metric manual takes its value from check-ins; drop match")
        elif metric in METRICS and metric != "manual" and not rules and isinstance(rules, list | None):
            self.error(loc, f"{name}: no match rules: add `match:` or use metric: manual")
        result = dict(raw)
        for kind in ("match", "publish"):
            value = raw.get(kind)
            if isinstance(value, list):
                result[kind] = [
                    self.rule(item, loc + (kind, i), kind, source_names, types)
                    for i, item in enumerate(value)
                ]
        return result

    def rule(
        self,
        raw: Any,
        loc: Loc,
        kind: str,
        source_names: list[str],
        types: dict[str, ConnectorPlugin],
    ) -> RuleConfig | PublishConfig:
        placeholder = RuleConfig if kind == "match" else PublishConfig
        example = "{source: jira, epic: PLAT-1}" if kind == "match" else "{source: jira, issue: OKR-1}"
        if not isinstance(raw, dict):
            self.error(loc, f"{_where(loc)}: expected a mapping like {example}")
            return placeholder.model_construct(source="")
        source = raw.get("source")
        if source is None:
            known = _known(source_names, "sources")
            self.error(loc, f"{_where(loc)}: missing required key 'source' ({known})")
            return placeholder.model_construct(source="")
        if not isinstance(source, str) or source not in source_names:
            shown = "" if self.is_secret(loc + ("source",)) else f" '{source}'"
            self.error(
                loc + ("source",),
                f"{_where(loc)}: unknown source{shown}{_hint(source, source_names)}"
                f" ({_known(source_names, 'sources')})",
            )
            return placeholder.model_construct(source=str(source))
        plugin = types.get(source)
        if plugin is None:  # the source itself is broken, and already reported
            return placeholder.model_construct(source=source)
        model = plugin.rule_model if kind == "match" else plugin.publish_model
        found = self.validate(model, raw, loc)
        if found is None:
            return placeholder.model_construct(source=source)
        if isinstance(found, RuleConfig) and not found.conditions():
            keys = [k for k in model.model_fields if k != "source"]
            self.error(loc, f"{_where(loc)}: rule has no condition: add one of {', '.join(keys)}")
        return found

    # -- cross-references ---------------------------------------------------------------------

    def check_ids_and_parents(self, objectives: list[Any]) -> None:
        """Unique objective ids, unique key-result ids, parents that exist, no parent cycles."""
        objective_line: dict[str, int] = {}
        kr_line: dict[str, int] = {}
        parents: dict[str, tuple[str, Loc]] = {}
        for i, obj in enumerate(objectives):
            if not isinstance(obj, dict):
                continue
            loc: Loc = ("objectives", i)
            oid = obj.get("id")
            if isinstance(oid, str):
                if oid in objective_line:
                    self.error(
                        loc + ("id",), f"duplicate objective id '{oid}' (first on line {objective_line[oid]})"
                    )
                else:
                    objective_line[oid] = self.loaded.line_of(loc + ("id",))
                    parent = obj.get("parent")
                    if isinstance(parent, str):
                        parents[oid] = (parent, loc + ("parent",))
            for j, kr in enumerate(obj.get("key_results") or []):
                kid = kr.get("id") if isinstance(kr, dict) else None
                if not isinstance(kid, str):
                    continue
                kloc = loc + ("key_results", j, "id")
                if kid in kr_line:
                    self.error(kloc, f"duplicate key result id '{kid}' (first on line {kr_line[kid]})")
                else:
                    kr_line[kid] = self.loaded.line_of(kloc)
        known = list(objective_line)
        for oid, (parent, ploc) in parents.items():
            if parent not in objective_line:
                self.error(
                    ploc,
                    f"objective '{oid}': parent '{parent}' is not an objective id{_hint(parent, known)}",
                )
        reported: set[frozenset[str]] = set()
        for oid in parents:
            path: list[str] = []
            current: str | None = oid
            while current is not None and current in parents and current not in path:
                path.append(current)
                current = parents[current][0]
            if current is None or current not in path:
                continue
            cycle = path[path.index(current):]
            if frozenset(cycle) in reported:
                continue
            reported.add(frozenset(cycle))
            first = min(cycle, key=lambda o: objective_line[o])
            ordered = cycle[cycle.index(first):] + cycle[: cycle.index(first)]
            self.error(parents[first][1], "objectives form a parent cycle: " + " -> ".join([*ordered, first]))

    # -- pydantic errors as one line each -----------------------------------------------------

    def describe(self, err: ErrorDetails, prefix: Loc, model: type[BaseModel]) -> str:
        rel: Loc = tuple(err["loc"])
        loc = prefix + rel
        where = _where(loc)
        kind = err["type"]
        value = err.get("input")
        secret = self.is_secret(loc)
        shown = "" if secret or isinstance(value, dict | list) else f" {value!r}"
        last = loc[-1] if loc else ""
        if kind == "extra_forbidden":
            parent = _model_at(model, rel[:-1])
            known = sorted(set(parent.model_fields) - {"path"}) if parent else []
            hint = _hint(last, known) or (f" (known keys: {', '.join(known)})" if known else "")
            return f"unknown key '{last}' in {_where(loc[:-1])}{hint}"
        if kind == "missing":
            return f"{_where(loc[:-1])}: missing required key '{last}'"
        if kind == "literal_error":
            expected = str((err.get("ctx") or {}).get("expected", ""))
            if last == "metric":
                hint = _hint(value, list(METRICS))
                return f"{where}: unknown metric{shown}{hint} (known: {', '.join(METRICS)})"
            if last == "version":
                return f"version: unsupported version{shown}; this okrsync reads version 1"
            return f"{where}: must be {expected}" + (f", not{shown}" if shown else "")
        if kind == "string_type":
            quoted = isinstance(value, int | float | date)
            quote = " (put it in quotes: YAML read it as a number, date or boolean)" if quoted else ""
            return f"{where}: expected text{quote}"
        if kind in _NUMBER_ERRORS:
            return f"{where}: expected a number" + (f", not{shown}" if shown else "")
        if kind in ("bool_type", "bool_parsing"):
            return f"{where}: expected true or false"
        if kind.startswith("date") or kind.startswith("datetime"):
            return f"{where}: invalid date{shown}: write it as YYYY-MM-DD"
        if kind in ("tuple_type", "list_type", "iterable_type"):
            return f"{where}: expected a list"
        if kind in ("dict_type", "model_type", "model_attributes_type"):
            return f"{where}: expected a mapping"
        if kind in ("greater_than_equal", "greater_than", "less_than", "less_than_equal"):
            bound = next(iter((err.get("ctx") or {}).values()), "")
            return f"{where}: must be {_BOUNDS[kind]} {bound}"
        message = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        for part in reversed(loc):
            if isinstance(part, str) and message.startswith(f"{part}: "):
                message = message[len(part) + 2:]
                break
        if secret:
            # A validator's own message may quote the value it refused; say only that it failed.
            message = "invalid value (from an environment variable)"
        return f"{where}: {message}"


def _format(label: str, problems: list[Problem], secrets: set[str]) -> list[str]:
    """``FILE:LINE: message`` lines in file order, with any interpolated value masked."""
    lines: list[str] = []
    masks = sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True)
    for problem in sorted(problems, key=lambda p: p.line or 0):
        message = problem.message
        for secret in masks:
            message = message.replace(secret, "***")
        lines.append(f"{label}:{problem.line}: {message}" if problem.line else f"{label}: {message}")
    return lines


def load(
    path: str | Path,
    env: Mapping[str, str] | None = None,
    plugins: Mapping[str, ConnectorPlugin] | None = None,
) -> Config:
    """Read, interpolate and validate a config file; raises ``ConfigError`` with every problem.

    ``env`` replaces ``os.environ`` for ``${NAME}``; ``plugins`` replaces the discovered
    connector plugins (tests). Problems come back as ``FILE:LINE: message``, in file order.
    """
    label = str(path)
    file = Path(path)
    try:
        if file.is_dir():
            raise ConfigError(f"{label}: is a directory, not a config file")
        size = file.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError(f"{label}: the file is {size} bytes, over the 1 MiB limit; refusing to read it")
        with file.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{label}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read the file ({exc.strerror})") from None
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"{label}: the file is over the 1 MiB limit; refusing to read it")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{label}: not UTF-8 text (bad byte at offset {exc.start})") from None

    loaded = load_yaml(text, os.environ if env is None else env)
    if plugins is None:
        from connectors import plugins as discover  # late: the plugins import this module

        plugins = discover()
    validator = _Validator(loaded, plugins)
    config = validator.run(file)
    problems = loaded.problems + validator.problems
    if problems or config is None:
        raise ConfigError(_format(label, problems, loaded.secrets) or [f"{label}: invalid config"])
    return config


# --- JSON Schema ---------------------------------------------------------------------------


class _SchemaGenerator(GenerateJsonSchema):
    """Writes duration defaults as users write them (``15m``), not as ISO 8601 (``PT15M``)."""

    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, timedelta):
            return _format_duration(dft)
        return super().encode_default(dft)


def json_schema(plugins: Mapping[str, ConnectorPlugin] | None = None) -> dict[str, Any]:
    """The config file's JSON Schema (draft 2020-12), tracker blocks as ``anyOf`` alternatives.

    ``SourceConfig``, ``RuleConfig`` and ``PublishConfig`` are replaced by the union of every
    plugin's models, so editors can complete and check a whole file.
    """
    if plugins is None:
        from connectors import plugins as discover

        plugins = discover()
    ordered = [plugins[name] for name in sorted(plugins)]
    kinds: dict[str, list[type[BaseModel]]] = {
        "SourceConfig": [p.source_model for p in ordered],
        "RuleConfig": [p.rule_model for p in ordered],
        "PublishConfig": [p.publish_model for p in ordered],
    }
    models: list[type[BaseModel]] = [Config, *(m for group in kinds.values() for m in group)]
    refs, top = models_json_schema(
        [(m, "validation") for m in models],
        ref_template="#/$defs/{model}",
        schema_generator=_SchemaGenerator,
    )
    defs: dict[str, JsonSchemaValue] = top["$defs"]
    for base, group in kinds.items():
        if group and base in defs:
            description = defs[base].get("description", "")
            defs[base] = {"anyOf": [refs[(m, "validation")] for m in group], "description": description}
    root = defs.pop("Config")
    root["properties"].pop("path", None)
    root["title"] = "okrsync config"
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **root, "$defs": defs}


def schema_text(plugins: Mapping[str, ConnectorPlugin] | None = None) -> str:
    """``json_schema()`` as committed in ``config/okrs.schema.json``: sorted, indented, newline."""
    return json.dumps(json_schema(plugins), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
