"""Budget: what the month's spend leaves of cloud backends (docs/spend.md#budgets).

The request path reads the spend book's in-memory budget state before routing and hands the
result in as ``RoutingRequest.cloud_use``; this reconciler only applies it, so routing stays
synchronous and free of I/O. ``last_resort`` (past the soft limit) keeps cloud agents as
candidates but marks them for the scheduler, which chooses them only when no local agent is
available. ``none`` (past the hard limit, ``hard_limit_action = "local_only"``) removes them with
the permanent reason ``budget_exhausted``; local backends keep serving.
"""

from __future__ import annotations

from nexus_trio.routing.intent import CloudUse, RejectionReason, RoutingIntent


class BudgetReconciler:
    """Applies ``RoutingRequest.cloud_use`` to the cloud candidates."""

    name = "budget"

    def reconcile(self, intent: RoutingIntent) -> None:
        cloud_use = intent.request.cloud_use
        if cloud_use is CloudUse.ALLOWED:
            return
        for agent in list(intent.candidates):
            if agent.backend.location != "cloud":
                continue
            if cloud_use is CloudUse.NONE:
                intent.remove(
                    agent,
                    self.name,
                    RejectionReason.BUDGET_EXHAUSTED,
                    "the monthly budget is spent; cloud backends are off until the month ends",
                )
            else:
                intent.last_resort.add(agent.key)
