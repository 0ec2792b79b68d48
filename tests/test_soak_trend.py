"""The soak's memory and fd verdicts (``bench.soak.resource_trend``) over made-up samples."""

from __future__ import annotations

from bench.soak import resource_trend


def _samples(fds: list[int], rss: float = 80.0) -> list[tuple[float, float, int]]:
    return [(5.0 * n, rss, count) for n, count in enumerate(fds)]


def test_a_last_sample_inside_a_pass_is_not_a_leak() -> None:
    # the daemon rests at 4 fds and holds 11 while a pass runs; the run ends mid-pass
    trend = resource_trend(_samples([11, 4, 4, 11, 4, 4, 4, 11, 4, 4, 4, 11]), warmup=0)
    assert trend["fds_at_rest_after_warmup"] == 4 and trend["fds_at_rest_end"] == 4
    assert trend["fds_max"] == 11 and trend["samples"] == 12


def test_a_rising_count_at_rest_is_seen() -> None:
    trend = resource_trend(_samples([4, 11, 5, 12, 7, 14, 9, 16, 11, 18, 13, 20]), warmup=0)
    assert trend["fds_at_rest_after_warmup"] == 4
    assert trend["fds_at_rest_end"] == 13  # +9: more than the soak's +5 allows


def test_rss_is_judged_by_window_medians_after_warm_up() -> None:
    samples = [(0.0, 50.0, 4), (5.0, 80.0, 4), (10.0, 80.0, 4), (15.0, 82.0, 4), (20.0, 100.0, 4),
               (25.0, 84.0, 4), (30.0, 88.0, 4), (35.0, 88.0, 4), (40.0, 88.0, 4)]
    trend = resource_trend(samples, warmup=5.0)  # the 50 MB start-up sample is left out
    assert trend["rss_mb_after_warmup"] == 80.0 and trend["rss_mb_end"] == 88.0
    assert trend["rss_growth_pct"] == 10.0 and trend["rss_mb_max"] == 100.0


def test_too_few_samples_give_no_verdict() -> None:
    assert resource_trend(_samples([4, 4, 4]), warmup=0) == {"samples": 3}
