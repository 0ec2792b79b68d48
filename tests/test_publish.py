"""What write-back puts in a tracker: the same whole percent the report shows."""

from __future__ import annotations

import pytest

from syncer.model import KeyResultProgress, Status, Tally
from syncer.publish import render_block, render_value


def _kr(progress: float, current: float) -> KeyResultProgress:
    return KeyResultProgress(
        id="k", objective_id="o", title="K", metric="percent_done", start=0, target=100,
        current=current, progress=progress, status=Status.ON_TRACK, tally=Tally(total=250, done=249),
    )  # fmt: skip


@pytest.mark.parametrize(("progress", "field"), [(0.996, "99"), (0.625, "62"), (0.3889, "38"), (1.0, "100")])
def test_a_number_field_gets_the_floored_percent(progress: float, field: str) -> None:
    # An unfinished key result must never be published as 100% (the report floors too).
    assert render_value("field", _kr(progress, progress * 100)) == field


def test_the_body_block_of_an_unfinished_key_result_is_not_full() -> None:
    block = render_block(_kr(0.996, 99.6))
    assert "`" + "█" * 19 + "░` 99% · 99% of 100%" in block
    assert "` 100%" not in block
