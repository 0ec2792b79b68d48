"""The memory connector's JSON items (``okrsync demo`` and file-backed sources)."""

from __future__ import annotations

from connectors.memory import MemoryRule, item_from_json
from syncer.matching import CompiledRule, match_item
from syncer.model import State


def test_a_json_item_holds_its_optional_ids_as_text_whatever_json_type_they_came_as() -> None:
    item = item_from_json("mem", {"id": 5, "key": "A-5", "state": "done", "parent_key": 7, "parent_id": 0})
    assert (item.id, item.parent_key, item.parent_id, item.state) == ("5", "7", "0", State.DONE)
    assert item_from_json("mem", {"id": "6"}).parent_key is None
    # a rule names the parent as text: a number in the JSON used to match nothing
    rule = CompiledRule("kr-1", 0, MemoryRule(source="mem", parent="7"))
    assert match_item(item, [rule], {}) == {"kr-1": 0}
