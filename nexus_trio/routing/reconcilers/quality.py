"""Quality: exclusion and recovery of agents by their recent outcomes (docs/quality.md#exclusion,
docs/quality.md#ttft-penalty).

Theory of operation. The reconciler reads the store's last snapshot, one dict lookup per
candidate, and changes nothing in the store; the request path reports what it routed
(:meth:`QualityStore.probe_started`) and how attempts ended. For each candidate:

- **healthy** — kept;
- **excluded or probing, probe due** (:meth:`QualityStore.probe_due`) — the first such agent
  becomes ``forced`` with ``route_reason = "probe"`` and stays a candidate, provided the
  request has at least one other candidate that survives quality and nothing is forced yet:
  the scheduler then routes to it regardless of score, and the other candidates remain for
  a retry should the probe fail. Otherwise it is removed like the next case;
- **excluded otherwise** — removed with ``consecutive_failures`` when its run of failures is
  at the threshold, else ``high_error_rate``, the detail giving the snapshot's numbers and
  ``retry_after`` the seconds to its probe time. (Only a probe readmits an agent, so its rate
  may have fallen back below the threshold meanwhile; the detail then says so.)

Removals go through :meth:`RoutingIntent.remove_unless_all`: if every candidate would go,
none does and ``route_reason`` becomes ``quality_panic`` — the scheduler ranks them all by
score and the request path counts ``nexus_quality_panic_total`` from that reason. Quality
never turns a servable request into a 503.

TTFT probes (docs/quality.md#ttft-penalty) are decided here too, because forcing an agent is a
quality decision that must be made before the scheduler runs: for a streaming request with nothing
forced after the rules above, the first healthy candidate that the TTFT penalty hits and that had no
streaming attempt for ``probe_interval_seconds`` is forced with reason ``probe`` when another
candidate survives, so a backend that got fast again is measured again. The penalty exists only
under the ``smart`` strategy, so :meth:`Pipeline.standard` enables TTFT probes only then.
"""

from __future__ import annotations

from nexus_trio.quality import AgentQualityMetrics, AgentState, QualityStore, ttft_penalty_fraction
from nexus_trio.routing.intent import Agent, Rejection, RejectionReason, RoutingIntent


class QualityReconciler:
    """Excludes agents that fail too often and forces probes to excluded or slow ones."""

    name = "quality"

    def __init__(self, store: QualityStore, *, ttft_probes: bool = True) -> None:
        """Read quality from ``store`` (and its current ``config``).

        Args:
            store: The quality store whose snapshot is read at each decision.
            ttft_probes: Whether to force streaming requests to agents the TTFT penalty
                would starve (true under the ``smart`` strategy).
        """
        self._store = store
        self._ttft_probes = ttft_probes

    def reconcile(self, intent: RoutingIntent) -> None:
        store = self._store
        now = intent.request.now
        removals: list[tuple[Agent, Rejection]] = []
        due: Agent | None = None
        slow: Agent | None = None
        check_slow = self._ttft_probes and intent.request.stream
        for agent in intent.candidates:
            metrics = store.get(agent.key)
            if metrics.state is AgentState.HEALTHY:
                if check_slow and slow is None and self._starved(agent, metrics, now):
                    slow = agent
            elif due is None and store.probe_due(agent.key, now):
                due = agent
            else:
                removals.append((agent, self._rejection(agent, metrics, now)))
        if due is not None:
            if intent.forced is None and len(intent.candidates) - len(removals) >= 2:
                intent.forced, intent.route_reason = due, "probe"
            else:
                removals.append((due, self._rejection(due, store.get(due.key), now)))
        if not intent.remove_unless_all(removals):
            intent.route_reason = "quality_panic"
        elif slow is not None and intent.forced is None and len(intent.candidates) >= 2:
            intent.forced, intent.route_reason = slow, "probe"

    def _starved(self, agent: Agent, metrics: AgentQualityMetrics, now: float) -> bool:
        """Whether ``agent`` is penalised for TTFT and has had no streaming attempt lately."""
        config = self._store.config
        if ttft_penalty_fraction(metrics.avg_ttft_ms, config.ttft_penalty_threshold_ms) <= 0:
            return False
        last = self._store.last_streaming_attempt(agent.key)
        return last is None or now - last >= config.probe_interval_seconds

    def _rejection(self, agent: Agent, metrics: AgentQualityMetrics, now: float) -> Rejection:
        """Why the excluded ``agent`` is removed, with the seconds to its probe time."""
        config = self._store.config
        if metrics.consecutive_failures >= config.consecutive_failures:
            reason = RejectionReason.CONSECUTIVE_FAILURES
            detail = f"{metrics.consecutive_failures} consecutive failures"
        else:
            reason = RejectionReason.HIGH_ERROR_RATE
            rate, threshold = metrics.error_rate_1h, config.error_rate_threshold
            sample = f"over 1h ({metrics.successes_1h + metrics.failures_1h} requests)"
            if rate > threshold:
                detail = f"error rate {rate:.0%} > {threshold:.0%} {sample}"
            else:  # its failures are ageing out, but only a probe readmits it
                detail = f"error rate {rate:.0%} {sample}, waiting for a probe"
        probe_at = self._store.next_probe_time(agent.key)
        retry_after = None if probe_at is None else max(probe_at - now, 0.0)
        return Rejection(agent.backend.name, self.name, reason, detail, retry_after)
