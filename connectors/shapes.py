"""Body shapes: decoders that build only the members of a tracker's answer a connector reads.

A GitHub issue in a list page is ~3 KB of JSON: its author, its labels' colours and URLs, its
reactions, its milestone's creator. okrsync reads ~15 of those members. Decoding the whole
object and throwing most of it away was the largest cost of a 200k full sync above the HTTP and
SQLite floors (every dict built, then freed, then walked by the collector): a shape decodes the
same bytes into the same plain dicts and lists, holding only the declared members
(``bench/RESULTS.md``: 0.74 s less CPU for GitHub's 100k issues, 0.3–0.4 s for Jira's).

A shape never changes what the mapping sees. A declared member holds exactly what the whole
decode would hold (nested objects keep their declared members only, every leaf is taken as
it is), an undeclared one is absent, and an answer that does not fit the declared types (drift:
a label that is a number, ``fields`` that is a list) raises ``ValueError``, so that
``HttpClient`` decodes it whole instead and the mapping meets the drift as before. The mapping
must therefore read declared members only; ``tests/connectors/test_shapes.py`` checks that on
payloads of every kind by recording what the mapping reads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypedDict

import msgspec

__all__ = ["BodyShape", "Named", "list_of", "members", "object_with_list"]

BodyShape = Callable[[bytes], Any]
"""Decode a body into plain JSON values, or raise ``ValueError`` when it does not fit."""

_typed_dict: Any = TypedDict  # called with names and members known only at run time


def members(name: str, declared: Mapping[str, Any]) -> Any:
    """An object type keeping only ``declared`` members (each of the given type; ``Any`` keeps
    a value whole). A missing member stays missing, as in the answer."""
    return _typed_dict(name, dict(declared), total=False)


Named = members("Named", {"name": Any})
"""An object of which only its ``name`` is read (a label, a component, a version)."""


def list_of(item: Any) -> BodyShape:
    """A top-level JSON array of ``item`` objects (GitHub's issue lists)."""
    decoder = msgspec.json.Decoder(list[item])
    return decoder.decode


def object_with_list(key: str, item: Any) -> BodyShape:
    """A JSON object whose ``key`` member is an array of ``item`` objects (Jira's ``issues``);
    every other member is decoded whole, so paging members (``nextPageToken``, ``total``) and
    any the connector may read later are kept as they came."""
    outer = msgspec.json.Decoder(dict[str, msgspec.Raw])
    inner = msgspec.json.Decoder(list[item])
    whole = msgspec.json.Decoder()

    def decode(body: bytes) -> Any:
        return {name: (inner if name == key else whole).decode(raw) for name, raw in outer.decode(body).items()}

    return decode
