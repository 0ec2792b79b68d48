"""The README's YAML snippets are what users copy: each must at least be valid YAML for okrsync."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from syncer.yamlload import load_yaml

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
ENV = {name: "x" for name in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", README.read_text(encoding="utf-8"))}


def test_the_readme_has_yaml_snippets() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_every_readme_yaml_snippet_parses(block: str) -> None:
    # `${NAME}` inside a flow mapping `{...}` is a YAML syntax error: the config reference had one.
    problems = [p.message for p in load_yaml(block, ENV).problems]
    assert problems == []
