"""Quality: exclusion and recovery of agents by their recent outcomes (SPEC §6.3).

Its place in the pipeline — after Tier, before the Scheduler (SPEC §5.5) — is fixed now; what
it does is filled in with quality tracking. When it is, it reads the last
``AgentQualityMetrics`` snapshot (one dict lookup per agent) and:

- removes agents with a high 1 h error rate (``high_error_rate``, minimum sample respected) or
  too many failures in a row (``consecutive_failures``), each with ``retry_after`` = the time
  to its next probe, through :meth:`RoutingIntent.remove_unless_all` — if every remaining
  candidate would go, none does and ``route_reason`` becomes ``quality_panic``;
- sets ``forced`` (and ``route_reason = "probe"``) to a probing agent when the request has at
  least one other surviving candidate.
"""

from __future__ import annotations

from nexus_trio.routing.intent import RoutingIntent


class QualityReconciler:
    """Excludes agents that fail too often; until quality tracking exists, removes nothing."""

    name = "quality"

    def reconcile(self, intent: RoutingIntent) -> None:
        """Leave ``intent`` as it is: no quality data is recorded yet."""
