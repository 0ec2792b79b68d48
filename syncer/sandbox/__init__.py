"""Loopback sandbox trackers (Jira and GitHub) for the demo, the tests and the benchmarks."""
