"""Benchmarks for issue 7: okrsync against the sandbox trackers over loopback HTTP (not CI)."""
