"""YAML to plain Python data, remembering the line of every key and item.

``okrsync validate`` must point at the offending line, so the file is composed into PyYAML's
node tree (which keeps positions) and walked by hand instead of ``yaml.safe_load``. The walk
also interpolates ``${NAME}`` from the environment, refuses duplicate keys, and bounds the
work a hostile file can cause (size, node count, alias references, alias expansion, depth).

Nothing here knows the config's shape; ``syncer.config`` validates the result.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = [
    "MAX_ALIASES",
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
    "Loc",
    "Loaded",
    "Problem",
    "load_yaml",
]

MAX_BYTES = 1024 * 1024
MAX_NODES = 100_000
MAX_ALIASES = 100
MAX_DEPTH = 64

Loc = tuple[str | int, ...]
"""A path into the data, shaped like a pydantic error ``loc``: keys are str, indices int."""

_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
# `$${` is a literal `${`; `${NAME}` is a variable; a `${` without `}` is a mistake.
_VARIABLE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the file; ``line`` is 1-based, ``None`` for the file as a whole."""

    line: int | None
    message: str


@dataclass(slots=True)
class Loaded:
    """The file's data plus what validation needs to explain itself.

    ``lines`` maps a loc to the line of its key (mapping entries) or of the item (sequence
    items); ``()`` is the document's first line. ``interpolated`` holds the locs whose value came
    through ``${...}``, and ``secrets`` the substituted values, so no message ever echoes them.
    """

    data: Any = None
    lines: dict[Loc, int] = field(default_factory=dict)
    interpolated: set[Loc] = field(default_factory=set)
    secrets: set[str] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)
    broken: set[Loc] = field(default_factory=set)
    """Locs whose ``${...}`` could not be filled: validation errors there would only repeat it."""

    def line_of(self, loc: Loc) -> int:
        """The line of ``loc``, or of its nearest ancestor that has one."""
        for end in range(len(loc), -1, -1):
            line = self.lines.get(tuple(loc[:end]))
            if line is not None:
                return line
        return 1

    def failed_at(self, loc: Loc) -> bool:
        """True when ``loc`` is, or holds, a value whose interpolation failed."""
        return any(b[: len(loc)] == loc or loc[: len(b)] == b for b in self.broken)


class _LimitExceeded(Exception):
    """Raised from inside the composer to stop reading a hostile file at once."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


class _CountingLoader(yaml.SafeLoader):
    """A safe loader whose composer counts nodes, alias references and depth as it goes."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.node_count = 0
        self.alias_count = 0
        self.depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            self.alias_count += 1
            if self.alias_count > MAX_ALIASES:
                raise _LimitExceeded(
                    Problem(line, f"more than {MAX_ALIASES} alias references (*name); refusing the file")
                )
        else:
            self.node_count += 1
            if self.node_count > MAX_NODES:
                raise _LimitExceeded(Problem(line, f"more than {MAX_NODES} YAML nodes; refusing the file"))
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _LimitExceeded(
                    Problem(line, f"nested deeper than {MAX_DEPTH} levels; refusing the file")
                )
            node: Node | None = super().compose_node(parent, index)
        finally:
            self.depth -= 1
        return node


def _syntax_problem(error: yaml.YAMLError, text_of_file: str = "") -> Problem:
    """PyYAML's error as one line. Snippets of the file are left out: they may hold a token."""
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        text = error.problem or error.context or "invalid YAML"
        if error.context and error.problem and error.context_mark is not None:
            text = f"{text} ({error.context} on line {error.context_mark.line + 1})"
        line = mark.line + 1 if mark else 1
        if _unquoted_variable_in_flow(text_of_file, line):
            text += "; a ${NAME} inside {...} or [...] must be quoted: '${NAME}'"
        return Problem(line, f"YAML syntax error: {text}")
    if isinstance(error, yaml.reader.ReaderError):
        return Problem(None, f"YAML syntax error: unacceptable character #x{error.character:04x} "
                       f"at byte {error.position}")
    return Problem(None, f"YAML syntax error: {type(error).__name__}")


def _unquoted_variable_in_flow(text: str, line: int) -> bool:
    """The commonest YAML mistake in okrsync configs: ``auth: {token: ${JIRA_TOKEN}}``."""
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return False
    source = lines[line - 1]
    return "${" in source and ("{" in source.replace("${", "") or "[" in source)


class _Walker:
    """Turns a node tree into plain data, filling ``Loaded`` as it goes."""

    def __init__(self, env: Mapping[str, str], out: Loaded) -> None:
        self.env = env
        self.out = out
        self.visited = 0
        self.active: set[int] = set()
        self.constructor = SafeConstructor()

    def walk(self, node: Node, loc: Loc) -> Any:
        self.visited += 1
        if self.visited > MAX_NODES:
            # Only aliases can get here (the composer capped real nodes): name the top-level key.
            raise _LimitExceeded(
                Problem(
                    self.out.line_of(loc[:1]),
                    f"aliases expand to more than {MAX_NODES} nodes; refusing the file",
                )
            )
        if id(node) in self.active:
            raise _LimitExceeded(
                Problem(node.start_mark.line + 1, "an alias refers to itself; refusing the file")
            )
        self.active.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node, loc)
            if isinstance(node, SequenceNode):
                return [self._item(child, loc + (i,)) for i, child in enumerate(node.value)]
            assert isinstance(node, ScalarNode)
            return self._scalar(node, loc)
        finally:
            self.active.discard(id(node))

    def _item(self, node: Node, loc: Loc) -> Any:
        self.out.lines[loc] = node.start_mark.line + 1
        return self.walk(node, loc)

    def _pairs(self, node: MappingNode) -> tuple[list[tuple[Node, Node]], list[tuple[Node, Node]]]:
        """Split explicit pairs from pairs brought in by ``<<: *anchor`` merge keys."""
        explicit: list[tuple[Node, Node]] = []
        merged: list[tuple[Node, Node]] = []
        for key, value in node.value:
            if key.tag != _MERGE_TAG:
                explicit.append((key, value))
                continue
            sources = value.value if isinstance(value, SequenceNode) else [value]
            for source in sources:
                if not isinstance(source, MappingNode):
                    self.out.problems.append(
                        Problem(key.start_mark.line + 1, "`<<` merges only mappings (<<: *name)")
                    )
                    continue
                inner_explicit, inner_merged = self._pairs(source)
                merged.extend(inner_explicit + inner_merged)
        return explicit, merged

    def _mapping(self, node: MappingNode, loc: Loc) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        explicit, merged = self._pairs(node)
        for key_node, value_node in explicit:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, ScalarNode):
                self.out.problems.append(Problem(line, "a key must be a plain name, not a list or mapping"))
                continue
            key = str(key_node.value)
            if key in first_line:
                self.out.problems.append(
                    Problem(line, f"duplicate key '{key}' (first on line {first_line[key]})")
                )
                continue
            first_line[key] = line
            self.out.lines[loc + (key,)] = line
            result[key] = self.walk(value_node, loc + (key,))
        for key_node, value_node in merged:
            if not isinstance(key_node, ScalarNode) or str(key_node.value) in result:
                continue  # explicit keys win over merged ones, as in YAML's merge spec
            key = str(key_node.value)
            self.out.lines[loc + (key,)] = key_node.start_mark.line + 1
            result[key] = self.walk(value_node, loc + (key,))
        return result

    def _scalar(self, node: ScalarNode, loc: Loc) -> Any:
        if node.tag == _STR_TAG:
            return self._interpolate(str(node.value), node, loc)
        try:
            return self.constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError):
            # e.g. 2026-13-01 looks like a date but is not one: keep the text, validation explains.
            return str(node.value)

    def _interpolate(self, text: str, node: ScalarNode, loc: Loc) -> str:
        if "$" not in text:
            return text
        line = node.start_mark.line + 1
        used = False
        problems = len(self.out.problems)

        def replace(match: re.Match[str]) -> str:
            nonlocal used
            whole = match.group(0)
            if whole == "$${":
                return "${"
            name = match.group(1)
            if name is None:
                self.out.problems.append(Problem(line, "'${' without a closing '}'"))
                return whole
            if not _NAME.match(name):
                self.out.problems.append(
                    Problem(line, f"'${{{name}}}' is not a variable name (letters, digits, _)")
                )
                return whole
            value = self.env.get(name)
            if value is None:
                self.out.problems.append(Problem(line, f"environment variable {name} is not set"))
                return ""
            if value == "":
                self.out.problems.append(Problem(line, f"environment variable {name} is empty"))
                return ""
            used = True
            self.out.secrets.add(value)
            return value

        result = _VARIABLE.sub(replace, text)
        if used:
            self.out.interpolated.add(loc)
        if len(self.out.problems) > problems:
            self.out.broken.add(loc)
        return result


def load_yaml(text: str, env: Mapping[str, str]) -> Loaded:
    """Parse one YAML document from ``text``; problems are collected, never raised.

    When ``problems`` is not empty the data may be partial; callers still validate it so that
    every mistake in the file is reported in one go.
    """
    out = Loaded()
    try:
        # PyYAML checks the whole text for unprintable characters (a NUL byte) when the
        # loader is built, so building it can fail like parsing can.
        loader = _CountingLoader(text)
    except yaml.YAMLError as exc:
        out.problems.append(_syntax_problem(exc, text))
        return out
    try:
        root = loader.get_single_node()
    except _LimitExceeded as exc:
        out.problems.append(exc.problem)
        return out
    except RecursionError:
        out.problems.append(Problem(None, "nested too deeply; refusing the file"))
        return out
    except yaml.YAMLError as exc:
        out.problems.append(_syntax_problem(exc, text))
        return out
    finally:
        loader.dispose()
    if root is None:
        return out
    out.lines[()] = root.start_mark.line + 1
    walker = _Walker(env, out)
    try:
        out.data = walker.walk(root, ())
    except _LimitExceeded as exc:
        out.problems.append(exc.problem)
        out.data = None
    except RecursionError:
        out.problems.append(Problem(None, "aliases nest too deeply; refusing the file"))
        out.data = None
    return out
