"""Pure matching: which key results an item serves.

Rules come from the config (``KeyResult.match``); each tracker's rule model decides on one item
with its own ``matches()``. This module only orders the rules, indexes them by source (so an
item is tried against the rules of its own source only: 200k items x every rule would not do),
and applies the counting rules of CONTRACT §3 that hold for every tracker: sub-tasks never match
(they follow their parent) and an item matched twice within one key result counts once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import overload

from connectors.base import RuleConfig
from syncer.config import Config
from syncer.model import ItemKind, WorkItem

__all__ = [
    "CompiledRule",
    "RuleIndex",
    "build_index",
    "compile_rules",
    "match_all",
    "match_item",
    "rules_needing_members",
]

_EMPTY: frozenset[str] = frozenset()

Predicate = Callable[[WorkItem, Mapping[str, frozenset[str]]], bool]
"""``rule.matches`` as a plain function: a rule model may offer a faster one (``predicate()``)
with its values normalised once instead of for every item."""


def predicate_of(rule: RuleConfig) -> Predicate:
    """The rule's own fast ``predicate()`` when it has one, else its ``matches``."""
    make = getattr(rule, "predicate", None)
    if callable(make):
        made: Predicate = make()
        return made
    return rule.matches


@dataclass(frozen=True)
class CompiledRule:
    """One match rule with the key result it feeds and its position in that KR's ``match`` list.

    ``index`` is what ``explain`` shows as "which rule matched".
    """

    kr_id: str
    index: int
    rule: RuleConfig


def compile_rules(config: Config) -> tuple[CompiledRule, ...]:
    """Every key result's rules in config order (manual key results have none)."""
    return tuple(
        CompiledRule(kr.id, index, rule)
        for _, kr in config.key_results()
        if kr.metric != "manual"
        for index, rule in enumerate(kr.match)
    )


_ITEM_KEYS: dict[str, Callable[[WorkItem], str]] = {
    "container_upper": lambda item: item.container.upper(),
    "container_casefold": lambda item: item.container.casefold(),
    "parent_upper": lambda item: (item.parent_key or "").upper(),
}
"""What a rule's ``index_key()`` may name: the item value it must equal, normalised as the rule
compares it (Jira projects and epics upper-case, GitHub repositories case-folded)."""


@dataclass(frozen=True, slots=True)
class _Entry:
    position: int
    compiled: CompiledRule
    fingerprint: str | None
    test: Predicate


class _KeyedRules:
    """One source's rules, split into those keyed on one item value (``rule.index_key()``, e.g.
    an epic or a project: a dict lookup finds the few that can match) and the rest (always tried).
    At 200k items x 20 rules per source, testing every rule was most of the matching time."""

    __slots__ = ("_by_key", "_plain")

    def __init__(self, entries: Sequence[_Entry]) -> None:
        by_key: dict[str, dict[str, list[_Entry]]] = {}
        plain: list[_Entry] = []
        for entry in entries:
            make = getattr(entry.compiled.rule, "index_key", None)
            key = make() if callable(make) else None
            if isinstance(key, tuple) and len(key) == 2 and key[0] in _ITEM_KEYS:
                by_key.setdefault(key[0], {}).setdefault(str(key[1]), []).append(entry)
            else:
                plain.append(entry)
        self._plain = tuple(plain)
        self._by_key = [
            (_ITEM_KEYS[name], {value: tuple(group) for value, group in values.items()})
            for name, values in by_key.items()
        ]

    def candidates(self, item: WorkItem) -> Sequence[_Entry]:
        found: list[_Entry] | None = None
        for value_of, table in self._by_key:
            hit = table.get(value_of(item))
            if hit:
                found = [*(found or self._plain), *hit]
        if found is None:
            return self._plain
        found.sort(key=_position)  # config order: the first rule of a key result wins
        return found


def _position(entry: _Entry) -> int:
    return entry.position


class RuleIndex(Sequence[CompiledRule]):
    """The compiled rules, also grouped by source name.

    It is still a ``Sequence`` (in the original order), so it can go wherever a list of rules
    goes; ``match_item`` notices it and only walks the rules of the item's source.
    """

    __slots__ = ("_by_source", "_gated", "_keyed", "_rules")

    def __init__(self, rules: Iterable[CompiledRule]) -> None:
        self._rules = tuple(rules)
        grouped: dict[str, list[CompiledRule]] = {}
        gated: dict[str, list[_Entry]] = {}
        for position, compiled in enumerate(self._rules):
            grouped.setdefault(compiled.rule.source, []).append(compiled)
            # A member rule can only select its members: test that set first, with the fingerprint
            # computed once here rather than by the rule for every item (a model dump each time).
            fingerprint = compiled.rule.fingerprint() if compiled.rule.needs_members() else None
            entry = _Entry(position, compiled, fingerprint, predicate_of(compiled.rule))
            gated.setdefault(compiled.rule.source, []).append(entry)
        self._by_source = {source: tuple(group) for source, group in grouped.items()}
        self._gated = {source: tuple(group) for source, group in gated.items()}
        self._keyed = {source: _KeyedRules(group) for source, group in gated.items()}

    def for_source(self, source: str) -> tuple[CompiledRule, ...]:
        """The rules that can select an item of ``source``, in config order."""
        return self._by_source.get(source, ())

    def gated(self, source: str) -> tuple[_Entry, ...]:
        """``for_source`` with each member rule's fingerprint (``None`` for the others) and the
        rule's predicate."""
        return self._gated.get(source, ())

    def candidates(self, item: WorkItem) -> Sequence[_Entry]:
        """The rules of the item's source that can select it, in config order: a rule keyed on a
        value the item lacks (another epic, another project or repository) is not tried."""
        keyed = self._keyed.get(item.source)
        return keyed.candidates(item) if keyed is not None else ()

    @property
    def sources(self) -> frozenset[str]:
        """Source names that at least one rule refers to."""
        return frozenset(self._by_source)

    @overload
    def __getitem__(self, index: int) -> CompiledRule: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[CompiledRule]: ...

    def __getitem__(self, index: int | slice) -> CompiledRule | Sequence[CompiledRule]:
        return self._rules[index]

    def __len__(self) -> int:
        return len(self._rules)

    def __iter__(self) -> Iterator[CompiledRule]:
        return iter(self._rules)


def build_index(rules: Iterable[CompiledRule]) -> RuleIndex:
    """Group rules by source once, so matching an item costs only the rules of its source."""
    return rules if isinstance(rules, RuleIndex) else RuleIndex(rules)


def match_item(
    item: WorkItem,
    rules: Sequence[CompiledRule],
    members: Mapping[str, frozenset[str]],
) -> dict[str, int]:
    """``{kr_id: index of the first rule of that KR that selects item}``.

    A dict because an item that two rules of one key result select still counts once there.
    Sub-tasks never match: they follow their parent, whatever the tracker's rule model says.
    Pass a ``RuleIndex`` (``build_index``) when matching many items.
    """
    if item.kind is ItemKind.SUBTASK:
        return {}
    found: dict[str, int] = {}
    if isinstance(rules, RuleIndex):
        for entry in rules.candidates(item):
            compiled = entry.compiled
            if compiled.kr_id in found:
                continue
            if entry.fingerprint is not None and item.id not in members.get(entry.fingerprint, _EMPTY):
                continue
            if entry.test(item, members):
                found[compiled.kr_id] = compiled.index
        return found
    for compiled in rules:
        if compiled.kr_id in found or compiled.rule.source != item.source:
            continue
        if compiled.rule.matches(item, members):
            found[compiled.kr_id] = compiled.index
    return found


def match_all(
    items: Iterable[WorkItem],
    rules: Sequence[CompiledRule],
    members: Mapping[str, frozenset[str]],
) -> dict[str, dict[str, int]]:
    """``{kr_id: {item_id: rule index}}`` over many items: what each key result is made of.

    Every key result with at least one rule appears, even with no items, so a KR whose work all
    went away reads as empty rather than missing.
    """
    index = build_index(rules)
    result: dict[str, dict[str, int]] = {compiled.kr_id: {} for compiled in index}
    for item in items:
        for kr_id, rule_index in match_item(item, index, members).items():
            result[kr_id][item.id] = rule_index
    return result


def rules_needing_members(rules: Iterable[CompiledRule | RuleConfig]) -> dict[str, RuleConfig]:
    """The rules only the tracker can evaluate (JQL, descendants), keyed by fingerprint.

    Identical rules in several key results share one fingerprint, so each is asked for once.
    """
    found: dict[str, RuleConfig] = {}
    for entry in rules:
        rule = entry.rule if isinstance(entry, CompiledRule) else entry
        if rule.needs_members():
            found.setdefault(rule.fingerprint(), rule)
    return found
