"""Quality metrics: the immutable snapshot entry of one agent, and how entries aggregate.

Theory of operation. The :class:`~nexus_trio.quality.store.QualityStore` counts outcomes in
time buckets; each recompute turns one agent's counts into an :class:`AgentQualityMetrics`
with :func:`from_counts` (docs/quality.md#store). Besides the numbers that are rendered (rates, TTFT
average and 90th percentile, state) an entry carries the raw 1 h and 24 h counts they were
computed from, so that the quality of a backend — the aggregate of its agents (docs/api.md#stats) —
is exact: :func:`aggregate` sums the counts and passes the sums through the same
:func:`from_counts`, never averaging rates.

TTFT percentiles come from a histogram with the fixed upper bounds :data:`TTFT_BUCKETS_MS`
(a sample falls in the first bucket whose bound is >= it). :func:`ttft_quantile`
interpolates linearly inside the bucket where the cumulative count reaches the wanted
fraction of the samples, as Prometheus' ``histogram_quantile`` does (the first bucket starts
at 0 ms). When that bucket is the +Inf one, it reports the largest finite bound (30 000 ms):
all that is known is that the percentile is at least that.

The TTFT penalty of docs/quality.md#ttft-penalty is here as well (:func:`ttft_penalty_fraction`):
the Scheduler applies it and Quality needs to know which agents it penalises.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: Upper bounds (ms) of the TTFT histogram buckets, the last one +Inf (docs/quality.md#store).
TTFT_BUCKETS_MS: tuple[float, ...] = (
    50.0,
    100.0,
    250.0,
    500.0,
    1000.0,
    2500.0,
    5000.0,
    10000.0,
    30000.0,
    math.inf,
)


class AgentState(enum.StrEnum):
    """Where an agent stands with quality (docs/quality.md#exclusion)."""

    #: Routed normally.
    HEALTHY = "healthy"
    #: Removed from routing until its probe time.
    EXCLUDED = "excluded"
    #: Excluded, but its probe time has come: the next request with another candidate tries it.
    PROBING = "probing"


#: Aggregation keeps the worst state: excluded > probing > healthy.
_SEVERITY = {AgentState.HEALTHY: 0, AgentState.PROBING: 1, AgentState.EXCLUDED: 2}


@dataclass(frozen=True, slots=True)
class AgentQualityMetrics:
    """One agent's quality as of the last recompute (docs/quality.md#store), plus the counts behind
    it."""

    #: failures / (successes + failures) over 1 h; 0.0 without either.
    error_rate_1h: float
    #: successes / (successes + failures) over 24 h; 1.0 without either.
    success_rate_24h: float
    #: Mean TTFT of streaming attempts over 1 h; None without samples.
    avg_ttft_ms: float | None
    #: 90th percentile TTFT over 1 h from the histogram (see the module docstring); None without.
    p90_ttft_ms: float | None
    #: successes + failures + client errors over 1 h (cancelled attempts are not counted).
    request_count_1h: int
    #: Wall-clock epoch seconds of the last failure (for rendering only); None if none yet.
    last_failure_time: float | None
    consecutive_failures: int
    state: AgentState
    successes_1h: int
    failures_1h: int
    client_errors_1h: int
    cancelled_1h: int
    ttft_count_1h: int
    #: TTFT samples over 1 h per bucket of :data:`TTFT_BUCKETS_MS`.
    ttft_histogram_1h: tuple[int, ...]
    successes_24h: int
    failures_24h: int


#: The metrics of an agent without history: nothing excluded, nothing penalised.
NEUTRAL = AgentQualityMetrics(
    error_rate_1h=0.0,
    success_rate_24h=1.0,
    avg_ttft_ms=None,
    p90_ttft_ms=None,
    request_count_1h=0,
    last_failure_time=None,
    consecutive_failures=0,
    state=AgentState.HEALTHY,
    successes_1h=0,
    failures_1h=0,
    client_errors_1h=0,
    cancelled_1h=0,
    ttft_count_1h=0,
    ttft_histogram_1h=(0,) * len(TTFT_BUCKETS_MS),
    successes_24h=0,
    failures_24h=0,
)


def ttft_quantile(histogram: Sequence[int], fraction: float) -> float | None:
    """The TTFT (ms) below which ``fraction`` of the samples in ``histogram`` lie.

    Args:
        histogram: Sample counts per bucket of :data:`TTFT_BUCKETS_MS`.
        fraction: The quantile wanted, in (0, 1].

    Returns:
        The linearly interpolated quantile; the largest finite bound when it lies in the +Inf
        bucket; None when there are no samples.
    """
    rank = fraction * sum(histogram)
    if rank <= 0:
        return None
    below, lower = 0, 0.0
    for count, upper in zip(histogram, TTFT_BUCKETS_MS, strict=True):
        if count and below + count >= rank:
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * (rank - below) / count
        below, lower = below + count, upper
    return lower


def ttft_penalty_fraction(avg_ttft_ms: float | None, threshold_ms: float) -> float:
    """The share of the ``smart`` score an agent loses to its TTFT (docs/quality.md#ttft-penalty),
    in [0, 1].

    ``min((A - T) / T, 1)`` for an average A above the threshold T: 1.5·T loses half,
    2·T or more loses all. 0 when T is 0 (disabled) or A is None or at most T.
    """
    if threshold_ms <= 0 or avg_ttft_ms is None or avg_ttft_ms <= threshold_ms:
        return 0.0
    return min((avg_ttft_ms - threshold_ms) / threshold_ms, 1.0)


def from_counts(
    *,
    successes_1h: int,
    failures_1h: int,
    client_errors_1h: int,
    cancelled_1h: int,
    ttft_sum_ms: float,
    ttft_histogram_1h: tuple[int, ...],
    successes_24h: int,
    failures_24h: int,
    last_failure_time: float | None,
    consecutive_failures: int,
    state: AgentState,
) -> AgentQualityMetrics:
    """The entry whose rates and TTFT statistics are computed from these counts
    (docs/quality.md#store).

    ``ttft_sum_ms`` is the sum of the samples counted in ``ttft_histogram_1h``.
    """
    ttft_count = sum(ttft_histogram_1h)
    sample_1h = successes_1h + failures_1h
    sample_24h = successes_24h + failures_24h
    return AgentQualityMetrics(
        error_rate_1h=failures_1h / sample_1h if sample_1h else 0.0,
        success_rate_24h=successes_24h / sample_24h if sample_24h else 1.0,
        avg_ttft_ms=ttft_sum_ms / ttft_count if ttft_count else None,
        p90_ttft_ms=ttft_quantile(ttft_histogram_1h, 0.9),
        request_count_1h=sample_1h + client_errors_1h,
        last_failure_time=last_failure_time,
        consecutive_failures=consecutive_failures,
        state=state,
        successes_1h=successes_1h,
        failures_1h=failures_1h,
        client_errors_1h=client_errors_1h,
        cancelled_1h=cancelled_1h,
        ttft_count_1h=ttft_count,
        ttft_histogram_1h=ttft_histogram_1h,
        successes_24h=successes_24h,
        failures_24h=failures_24h,
    )


def aggregate(metrics: Iterable[AgentQualityMetrics]) -> AgentQualityMetrics | None:
    """The quality of a backend from its agents' entries (docs/api.md#stats).

    Counts are summed and rates recomputed from the sums; the TTFT average is weighted by
    sample count and the 90th percentile comes from the merged histogram; the state is the
    worst, ``last_failure_time`` the latest and ``consecutive_failures`` the longest run.

    Returns:
        The aggregate, or None when there is no data: no entries, or only :data:`NEUTRAL` ones.
    """
    entries = [entry for entry in metrics if entry != NEUTRAL]
    if not entries:
        return None
    failure_times = [e.last_failure_time for e in entries if e.last_failure_time is not None]
    histograms = (e.ttft_histogram_1h for e in entries)
    return from_counts(
        successes_1h=sum(e.successes_1h for e in entries),
        failures_1h=sum(e.failures_1h for e in entries),
        client_errors_1h=sum(e.client_errors_1h for e in entries),
        cancelled_1h=sum(e.cancelled_1h for e in entries),
        ttft_sum_ms=sum(e.avg_ttft_ms * e.ttft_count_1h for e in entries if e.avg_ttft_ms),
        ttft_histogram_1h=tuple(map(sum, zip(*histograms, strict=True))),
        successes_24h=sum(e.successes_24h for e in entries),
        failures_24h=sum(e.failures_24h for e in entries),
        last_failure_time=max(failure_times, default=None),
        consecutive_failures=max(e.consecutive_failures for e in entries),
        state=max((e.state for e in entries), key=_SEVERITY.__getitem__),
    )
