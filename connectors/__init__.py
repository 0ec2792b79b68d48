"""Tracker connectors. Each module exposing ``PLUGIN`` is one tracker; see ``base.py``."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from connectors.base import ConnectorPlugin

__all__ = ["plugins"]

_NOT_TRACKERS = {"base", "http"}


@cache
def plugins() -> dict[str, ConnectorPlugin]:
    """Every tracker module in this package, by its ``type`` name (discovered, not listed)."""
    found: dict[str, ConnectorPlugin] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.name in _NOT_TRACKERS:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        plugin = getattr(module, "PLUGIN", None)
        if isinstance(plugin, ConnectorPlugin):
            found[plugin.type] = plugin
    return found
