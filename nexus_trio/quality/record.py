"""What the quality store keeps about one agent: its two rings of buckets, its exclusion state
(docs/quality.md#exclusion), and its snapshot entry at a given time.
"""

from __future__ import annotations

from nexus_trio.quality.buckets import (
    CANCELLED,
    CLIENT_ERROR,
    FAILURE,
    HISTOGRAM,
    SUCCESS,
    TTFT_SUM_US,
    Ring,
)
from nexus_trio.quality.metrics import AgentQualityMetrics, AgentState, from_counts


class AgentRecord:
    """Everything the store keeps about one agent."""

    __slots__ = (
        "backoff_factor",
        "consecutive_failures",
        "day",
        "excluded",
        "exclusion_reason",
        "hour",
        "last_failure_wall",
        "last_streaming",
        "probe_at",
        "probe_since",
    )

    def __init__(self, now: float) -> None:
        self.hour = Ring(60, 60, now)
        self.day = Ring(3600, 24, now)
        self.consecutive_failures = 0
        self.excluded = False
        #: Why the agent was last excluded: ``consecutive_failures``, ``high_error_rate`` or
        #: ``probe_failed``; kept for display only.
        self.exclusion_reason = ""
        #: When an excluded agent may be probed.
        self.probe_at = 0.0
        #: When the probe in flight was routed; None when none is.
        self.probe_since: float | None = None
        self.backoff_factor = 1.0
        self.last_failure_wall: float | None = None
        self.last_streaming: float | None = None

    def exclude(self, now: float, probe_interval_seconds: float, reason: str) -> None:
        """Exclude the agent for ``reason``; its probe is due after the interval times the
        backoff factor."""
        self.excluded = True
        self.exclusion_reason = reason
        self.probe_at = now + probe_interval_seconds * self.backoff_factor
        self.probe_since = None

    def metrics(self, now: float) -> AgentQualityMetrics:
        """The agent's entry at ``now`` (expiring old buckets first)."""
        self.hour.expire(now)
        self.day.expire(now)
        hour, day = self.hour.totals, self.day.totals
        if not self.excluded:
            state = AgentState.HEALTHY
        else:
            state = AgentState.PROBING if now >= self.probe_at else AgentState.EXCLUDED
        return from_counts(
            successes_1h=hour[SUCCESS],
            failures_1h=hour[FAILURE],
            client_errors_1h=hour[CLIENT_ERROR],
            cancelled_1h=hour[CANCELLED],
            ttft_sum_ms=hour[TTFT_SUM_US] / 1000.0,
            ttft_histogram_1h=tuple(hour[HISTOGRAM:]),
            successes_24h=day[SUCCESS],
            failures_24h=day[FAILURE],
            last_failure_time=self.last_failure_wall,
            consecutive_failures=self.consecutive_failures,
            state=state,
        )
