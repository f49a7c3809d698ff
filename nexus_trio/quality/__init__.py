"""Quality tracking (docs/quality.md#quality-tracking): outcomes per agent, exclusion and probing,
TTFT penalty.

``outcome`` names how an attempt ended, ``metrics`` the immutable per-agent snapshot entry and
its aggregation, ``record`` one agent's buckets and exclusion state, ``store`` the agents'
records and the exclusion state machine. All of it is synchronous; time is passed in.
"""

from nexus_trio.quality.metrics import (
    NEUTRAL,
    TTFT_BUCKETS_MS,
    AgentQualityMetrics,
    AgentState,
    aggregate,
    from_counts,
    ttft_penalty_fraction,
    ttft_quantile,
)
from nexus_trio.quality.outcome import Outcome, outcome_for_status
from nexus_trio.quality.store import AgentKey, QualityStore

__all__ = [
    "NEUTRAL",
    "TTFT_BUCKETS_MS",
    "AgentKey",
    "AgentQualityMetrics",
    "AgentState",
    "Outcome",
    "QualityStore",
    "aggregate",
    "from_counts",
    "outcome_for_status",
    "ttft_penalty_fraction",
    "ttft_quantile",
]
