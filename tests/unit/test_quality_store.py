"""The quality store: windows, rates, TTFT statistics, the exclusion state machine
(docs/quality.md#quality-tracking)."""

from __future__ import annotations

import logging
import tracemalloc
from typing import Any

import pytest

from nexus_trio.config import QualityConfig
from nexus_trio.quality import (
    NEUTRAL,
    AgentQualityMetrics,
    AgentState,
    Outcome,
    QualityStore,
    aggregate,
    ttft_quantile,
)

S, F, CE, C = Outcome.SUCCESS, Outcome.FAILURE, Outcome.CLIENT_ERROR, Outcome.CANCELLED
KEY = ("gpu-a", "llama3:8b")
OTHER = ("gpu-b", "llama3:8b")
WALL = 1_700_000_000.0


def store(**config: Any) -> QualityStore:
    return QualityStore(QualityConfig(**config))


def record(
    quality: QualityStore, *outcomes: Outcome, at: float = 0.0, key: tuple[str, str] = KEY
) -> None:
    for outcome in outcomes:
        quality.record_outcome(key, outcome, now=at, wall=WALL + at)


def recompute(quality: QualityStore, at: float, *keys: tuple[str, str]) -> AgentQualityMetrics:
    quality.recompute(at, keys or (KEY,))
    return quality.get(keys[0] if keys else KEY)


def eject(quality: QualityStore, at: float = 0.0) -> None:
    record(quality, *[F] * quality.config.consecutive_failures, at=at)


# windows and rates --------------------------------------------------------------------------


def test_fresh_agent_has_neutral_metrics() -> None:
    quality = store()
    assert quality.get(KEY) is NEUTRAL
    assert recompute(quality, 10.0) is NEUTRAL
    assert dict(quality.snapshot) == {}
    assert NEUTRAL.error_rate_1h == 0.0
    assert NEUTRAL.success_rate_24h == 1.0
    assert (NEUTRAL.avg_ttft_ms, NEUTRAL.p90_ttft_ms, NEUTRAL.state) == (None, None, "healthy")


def test_rates_change_only_at_recompute() -> None:
    quality = store()
    record(quality, S, F, S, S)
    assert quality.get(KEY) is NEUTRAL
    metrics = recompute(quality, 1.0)
    assert metrics.error_rate_1h == 0.25
    assert metrics.success_rate_24h == 0.75
    assert (metrics.request_count_1h, metrics.successes_1h, metrics.failures_1h) == (4, 3, 1)
    assert metrics.last_failure_time == WALL


def test_client_errors_not_counted() -> None:
    quality = store()
    record(quality, F, CE, F, S, CE, CE)
    assert quality.get(KEY) is NEUTRAL
    metrics = recompute(quality, 1.0)
    assert metrics.error_rate_1h == pytest.approx(2 / 3)
    assert metrics.success_rate_24h == pytest.approx(1 / 3)
    assert metrics.request_count_1h == 6  # client errors are requests, just not failures
    assert metrics.client_errors_1h == 3
    # They also leave the run of failures alone: F, CE, F is two in a row.
    record(quality, F, CE, F, at=2.0)
    assert recompute(quality, 3.0).consecutive_failures == 2


def test_cancelled_not_counted() -> None:
    quality = store()
    record(quality, F, C, C, C, F)
    metrics = recompute(quality, 1.0)
    assert metrics.error_rate_1h == 1.0
    assert metrics.request_count_1h == 2
    assert metrics.cancelled_1h == 3
    assert metrics.consecutive_failures == 2


def test_window_forgets_after_an_hour() -> None:
    quality = store(min_requests=100)
    record(quality, F, F, S, at=0.0)  # minute 0
    record(quality, S, at=1800.0)  # minute 30
    assert recompute(quality, 3599.0).failures_1h == 2  # minute 59: minutes 0..59
    metrics = recompute(quality, 3600.0)  # minute 60: minute 0 has left the window
    assert (metrics.successes_1h, metrics.failures_1h, metrics.error_rate_1h) == (1, 0, 0.0)
    assert (metrics.successes_24h, metrics.failures_24h) == (2, 2)
    assert recompute(quality, 1800.0 + 3600.0).request_count_1h == 0


def test_success_rate_24h_window() -> None:
    quality = store(min_requests=100)
    record(quality, F, F, F, at=0.0)  # hour 0
    record(quality, S, at=5 * 3600.0)  # hour 5
    assert recompute(quality, 23 * 3600.0 + 3599.0).success_rate_24h == 0.25  # hours 0..23
    metrics = recompute(quality, 24 * 3600.0)  # hour 24: hour 0 has left the window
    assert (metrics.success_rate_24h, metrics.successes_24h, metrics.failures_24h) == (1.0, 1, 0)
    assert recompute(quality, 29 * 3600.0).success_rate_24h == 1.0  # no data: 1.0


def test_a_bucket_reused_after_a_long_silence_starts_from_zero() -> None:
    quality = store(min_requests=100)
    record(quality, F, F, at=0.0)
    record(quality, S, at=2 * 3600.0)  # the same minute slot, two hours later
    metrics = recompute(quality, 2 * 3600.0)
    assert (metrics.successes_1h, metrics.failures_1h) == (1, 0)
    assert (metrics.successes_24h, metrics.failures_24h) == (1, 2)


# TTFT ---------------------------------------------------------------------------------------


def test_ttft_average_and_p90_over_streaming_samples_only() -> None:
    quality = store()
    for ttft in (100.0, 200.0, 300.0, 400.0):
        quality.record_outcome(KEY, S, now=0.0, wall=WALL, ttft_ms=ttft, streaming=True)
    quality.record_outcome(KEY, S, now=0.0, wall=WALL)  # non-streaming: no sample
    metrics = recompute(quality, 1.0)
    assert metrics.avg_ttft_ms == 250.0
    assert metrics.ttft_count_1h == 4
    # Buckets: <=100: 1, <=250: 1, <=500: 2. Rank 3.6 lies in (250, 500]: 250 + 250 * 1.6 / 2.
    assert metrics.ttft_histogram_1h[:4] == (0, 1, 1, 2)
    assert metrics.p90_ttft_ms == pytest.approx(450.0)


def test_no_streaming_samples_means_no_ttft() -> None:
    quality = store()
    record(quality, S, S)
    metrics = recompute(quality, 1.0)
    assert (metrics.avg_ttft_ms, metrics.p90_ttft_ms, metrics.ttft_count_1h) == (None, None, 0)


def test_p90_interpolates_inside_the_bucket_and_reports_the_last_bound_for_inf() -> None:
    assert ttft_quantile((10, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0.9) == pytest.approx(45.0)
    assert ttft_quantile((0, 0, 0, 10, 0, 0, 0, 0, 0, 0), 0.9) == pytest.approx(475.0)
    assert ttft_quantile((5, 0, 0, 0, 0, 0, 0, 0, 0, 5), 0.9) == 30000.0
    assert ttft_quantile((0,) * 10, 0.9) is None


# exclusion and probing ----------------------------------------------------------------------


def test_excludes_agent_above_error_threshold() -> None:
    quality = store(error_rate_threshold=0.5, min_requests=10)
    record(quality, S, F, F, S, F, F, S, F, F, S)  # 6 failures of 10, never 5 in a row
    metrics = recompute(quality, 1.0)
    assert metrics.state is AgentState.EXCLUDED
    assert metrics.error_rate_1h == 0.6
    assert quality.next_probe_time(KEY) == 31.0


def test_keeps_agent_at_exact_threshold() -> None:
    quality = store(error_rate_threshold=0.5, min_requests=10)
    record(quality, S, F, S, F, S, F, S, F, S, F)
    metrics = recompute(quality, 1.0)
    assert (metrics.error_rate_1h, metrics.state) == (0.5, AgentState.HEALTHY)


def test_neutral_below_min_requests() -> None:
    quality = store(min_requests=10, consecutive_failures=100)
    record(quality, *[F] * 9)
    metrics = recompute(quality, 1.0)
    assert (metrics.error_rate_1h, metrics.state) == (1.0, AgentState.HEALTHY)
    record(quality, F, at=2.0)
    assert recompute(quality, 3.0).state is AgentState.EXCLUDED


def test_min_sample_ignores_client_errors() -> None:
    quality = store(min_requests=10)
    record(quality, F, F, F, *[CE] * 20, *[C] * 20)
    metrics = recompute(quality, 1.0)
    assert metrics.request_count_1h == 23
    assert (metrics.error_rate_1h, metrics.state) == (1.0, AgentState.HEALTHY)


def test_consecutive_failures_eject_fast() -> None:
    quality = store(consecutive_failures=3)
    recompute(quality, 0.0)
    record(quality, F, F, S, F, F, at=5.0)  # the success ends the run
    assert quality.get(KEY) is NEUTRAL
    before = quality.snapshot
    record(quality, F, at=6.0)  # three in a row: excluded at once, no recompute needed
    metrics = quality.get(KEY)
    assert (metrics.state, metrics.consecutive_failures) == (AgentState.EXCLUDED, 3)
    assert KEY not in before  # a snapshot once handed out never changes
    assert quality.next_probe_time(KEY) == 36.0


def test_excluded_agent_probed_and_readmitted() -> None:
    quality = store(probe_interval_seconds=30.0, min_requests=5)
    record(quality, S, S, S, S)
    eject(quality, at=100.0)
    assert not quality.probe_due(KEY, 129.9)
    assert recompute(quality, 129.9).state is AgentState.EXCLUDED
    assert quality.probe_due(KEY, 130.0)
    assert recompute(quality, 130.0).state is AgentState.PROBING
    quality.probe_started(KEY, now=131.0)
    assert not quality.probe_due(KEY, 132.0)  # one probe at a time
    record(quality, S, at=133.0)
    metrics = quality.get(KEY)  # replaced at once
    assert (metrics.state, metrics.consecutive_failures) == (AgentState.HEALTHY, 0)
    assert (metrics.failures_1h, metrics.error_rate_1h) == (0, 0.0)
    assert metrics.failures_24h == 5  # only the 1 h failure counts are forgotten
    assert quality.next_probe_time(KEY) is None
    # The error-rate rule does not exclude it again at the next recompute.
    assert recompute(quality, 140.0).state is AgentState.HEALTHY


def test_failed_probe_doubles_interval_up_to_ten_times() -> None:
    quality = store(probe_interval_seconds=30.0)
    eject(quality, at=0.0)
    now, waits = 0.0, []
    for _ in range(6):
        probe_at = quality.next_probe_time(KEY)
        assert probe_at is not None
        waits.append(probe_at - now)
        now = probe_at
        quality.probe_started(KEY, now=now)
        record(quality, F, at=now)
        assert quality.get(KEY).state is AgentState.EXCLUDED
    assert waits == [30.0, 60.0, 120.0, 240.0, 300.0, 300.0]
    record(quality, S, at=now + 300.0)  # a success ends the backoff
    eject(quality, at=now + 400.0)
    assert quality.next_probe_time(KEY) == now + 430.0


def test_cancelled_or_client_error_probe_only_clears_the_in_flight_mark() -> None:
    quality = store()
    eject(quality)
    for outcome in (C, CE):
        quality.probe_started(KEY, now=30.0)
        assert not quality.probe_due(KEY, 31.0)
        record(quality, outcome, at=31.0)
        assert quality.probe_due(KEY, 31.0)
        assert quality.get(KEY).state is AgentState.EXCLUDED


def test_a_probe_whose_outcome_never_comes_is_presumed_lost() -> None:
    quality = store(probe_interval_seconds=30.0)
    eject(quality)
    quality.probe_started(KEY, now=30.0)
    assert not quality.probe_due(KEY, 329.0)
    assert quality.probe_due(KEY, 330.0)  # after the longest backoff, 10 x 30 s


def test_any_outcome_after_the_probe_time_is_the_probe() -> None:
    # With one candidate no probe is forced (panic routes to it); its outcome still decides.
    quality = store()
    eject(quality)
    record(quality, S, at=10.0)  # before the probe time: still excluded
    assert quality.get(KEY).state is AgentState.EXCLUDED
    record(quality, S, at=30.0)
    assert quality.get(KEY).state is AgentState.HEALTHY


def test_reloaded_thresholds_apply_at_the_next_recompute() -> None:
    quality = store(consecutive_failures=5, error_rate_threshold=0.9)
    record(quality, S, F, F, F, F, S, F, F, F, F)  # 80 %, 4 in a row
    assert recompute(quality, 1.0).state is AgentState.HEALTHY
    quality.configure(QualityConfig(consecutive_failures=3, error_rate_threshold=0.9))
    assert recompute(quality, 2.0).state is AgentState.EXCLUDED


def test_last_streaming_attempt() -> None:
    quality = store()
    assert quality.last_streaming_attempt(KEY) is None
    quality.record_outcome(KEY, C, now=5.0, wall=WALL, streaming=True)
    quality.record_outcome(KEY, S, now=9.0, wall=WALL)
    assert quality.last_streaming_attempt(KEY) == 5.0
    quality.probe_started(KEY, now=12.0)  # a TTFT probe of a healthy agent counts as one
    assert quality.last_streaming_attempt(KEY) == 12.0


# purge, memory, aggregation ----------------------------------------------------------------


def test_recompute_purges_unconfigured_agents() -> None:
    quality = store()
    record(quality, F, F)
    record(quality, S, key=OTHER)
    quality.recompute(1.0, [OTHER])
    assert set(quality.snapshot) == {OTHER}
    assert quality.get(KEY) is NEUTRAL
    quality.recompute(2.0, [KEY, OTHER])  # configured again: a fresh history
    assert quality.get(KEY) is NEUTRAL
    assert quality.last_streaming_attempt(KEY) is None


def test_record_outcome_uses_constant_memory() -> None:
    quality = store(consecutive_failures=1000)
    pattern = (S, F, S, CE, C, S, S)

    def traffic(start: float, seconds: float, step: float) -> None:
        now = start
        while now < start + seconds:
            quality.record_outcome(
                KEY, pattern[int(now) % 7], now=now, wall=now, ttft_ms=now % 40000, streaming=True
            )
            now += step

    tracemalloc.start()  # it sees objects allocated after this, so warm up under it too
    try:
        traffic(0.0, 25 * 3600.0, 6.0)  # every bucket of both windows used at this rate
        quality.recompute(25 * 3600.0, [KEY])
        before = tracemalloc.get_traced_memory()[0]
        traffic(25 * 3600.0, 25 * 3600.0, 6.0)  # 15,000 outcomes more
        quality.recompute(50 * 3600.0, [KEY])
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 1_000  # nothing per outcome: the buckets are reused, never added


def test_backend_quality_aggregates_agents() -> None:
    quality = store(min_requests=100)
    for ttft in (40.0, 60.0, 70.0):
        quality.record_outcome(KEY, S, now=0.0, wall=WALL, ttft_ms=ttft, streaming=True)
    record(quality, F, at=1.0)
    record(quality, S, S, S, F, F, F, CE, C, key=OTHER, at=2.0)
    quality.record_outcome(OTHER, S, now=2.0, wall=WALL, ttft_ms=1200.0, streaming=True)
    quality.recompute(3.0, [KEY, OTHER])
    record(quality, F, F, F, F, at=4.0)  # five in a row: excluded, entry replaced at once
    a, b = quality.get(KEY), quality.get(OTHER)
    total = aggregate([a, b, NEUTRAL])
    assert total is not None
    assert (total.successes_1h, total.failures_1h, total.request_count_1h) == (7, 8, 16)
    assert total.error_rate_1h == pytest.approx(8 / 15)  # from the sums, not a mean of rates
    assert total.success_rate_24h == pytest.approx(7 / 15)
    assert total.avg_ttft_ms == pytest.approx((40 + 60 + 70 + 1200) / 4)
    assert total.ttft_histogram_1h == (1, 2, 0, 0, 0, 1, 0, 0, 0, 0)
    assert total.p90_ttft_ms == ttft_quantile(total.ttft_histogram_1h, 0.9)
    assert total.cancelled_1h == 1
    assert total.state is AgentState.EXCLUDED
    assert total.last_failure_time == WALL + 4.0
    assert total.consecutive_failures == max(a.consecutive_failures, b.consecutive_failures)
    assert aggregate([b]) == b


def test_aggregate_without_data_is_none() -> None:
    assert aggregate([]) is None
    assert aggregate([NEUTRAL, NEUTRAL]) is None


def test_aggregate_state_is_the_worst() -> None:
    probing = aggregate([NEUTRAL, _with_state(AgentState.PROBING)])
    assert probing is not None
    assert probing.state is AgentState.PROBING
    worst = aggregate([_with_state(AgentState.PROBING), _with_state(AgentState.EXCLUDED)])
    assert worst is not None
    assert worst.state is AgentState.EXCLUDED


def _with_state(state: AgentState) -> AgentQualityMetrics:
    quality = store()
    eject(quality)
    return recompute(quality, 30.0 if state is AgentState.PROBING else 1.0)


def test_exclusion_and_readmission_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="nexus_trio.quality")
    config = QualityConfig(consecutive_failures=2, probe_interval_seconds=30)
    store = QualityStore(config)
    key = ("gpu-a", "m")
    for at in (1.0, 2.0):
        store.record_outcome(key, Outcome.FAILURE, now=at, wall=at)
    store.record_outcome(key, Outcome.SUCCESS, now=40.0, wall=40.0)
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        "agent gpu-a/m excluded: 2 consecutive failures; probe in 30 s",
        "agent gpu-a/m readmitted: its probe succeeded",
    ]
