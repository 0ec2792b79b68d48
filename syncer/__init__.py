"""okrsync: links issue trackers to OKRs."""

__version__ = "0.1.0"
