"""Health: agents that cannot serve the request now or ever (docs/routing.md#health-filter).

Each agent gets at most one rejection, the first that applies, in this order:

1. ``missing_capability`` — the model is *known* to lack vision, tools or JSON mode the request
   needs (the detail names every missing one, comma-separated). A capability nobody declared
   is no reason to refuse: such an agent stays, marked unconfirmed, and the scheduler prefers
   agents whose every required capability is known;
2. ``context_too_long`` — the estimated tokens exceed a known context length;
3. ``unhealthy`` / ``unknown_health`` — the backend is not ``healthy``; it may recover at the
   next health probe, so ``retry_after`` counts down to the checker's next sweep;
4. ``rate_limited`` — the agent is in 429 cooldown until a known time.

Permanent reasons come first so that a request no backend can ever serve is answered as
permanent (no ``Retry-After``, ``x-should-retry: false``) even while some backend is down.
Cooldown is a soft exclusion: it never removes the last remaining candidates — if every
survivor is cooling down, all stay and the scheduler picks among them.
"""

from __future__ import annotations

import math

from nexus_trio.registry import Backend, HealthState, Registry
from nexus_trio.routing.intent import (
    Agent,
    Rejection,
    RejectionReason,
    RoutingIntent,
)


class HealthReconciler:
    """Removes unhealthy, incapable and rate-limited agents."""

    name = "health"

    def __init__(self, registry: Registry, interval_seconds: float) -> None:
        """Read the next health sweep from ``registry``; ``interval_seconds`` if none is set."""
        self._registry = registry
        self._interval_seconds = interval_seconds

    def reconcile(self, intent: RoutingIntent) -> None:
        requirements = intent.request.requirements
        wanted = tuple(
            name
            for name, needed in (
                ("vision", requirements.needs_vision),
                ("tools", requirements.needs_tools),
                ("json_mode", requirements.needs_json_mode),
            )
            if needed
        )
        tokens = requirements.estimated_tokens
        check_model = bool(wanted) or tokens > 0
        now = intent.request.now
        cooling: list[tuple[Agent, Rejection]] = []
        for agent in list(intent.candidates):
            if check_model and self._reject_model(intent, agent, wanted, tokens):
                continue
            backend = agent.backend
            if backend.health is not HealthState.HEALTHY:
                self._reject_health(intent, agent, backend)
                continue
            until = backend.cooldown_until.get(agent.model, 0.0)
            if until > now:
                rejection = Rejection(
                    backend.name,
                    self.name,
                    RejectionReason.RATE_LIMITED,
                    f"429 cooldown for {until - now:.1f} s more",
                    until - now,
                )
                cooling.append((agent, rejection))
        intent.remove_unless_all(cooling)

    def _reject_model(
        self, intent: RoutingIntent, agent: Agent, wanted: tuple[str, ...], tokens: int
    ) -> bool:
        """Remove ``agent`` if its model lacks a ``wanted`` capability or the context.

        ``wanted`` holds names of boolean :class:`Capabilities` fields. Only a known ``False``
        removes; an unknown one marks the agent unconfirmed. Returns True if removed.
        """
        capabilities = agent.backend.capabilities(agent.model)
        missing = [name for name in wanted if getattr(capabilities, name) is False]
        if missing:
            reason = RejectionReason.MISSING_CAPABILITY
            intent.remove(agent, self.name, reason, ", ".join(missing))
            return True
        if any(getattr(capabilities, name) is None for name in wanted):
            intent.unconfirmed.add(agent.key)
        limit = capabilities.context_length
        if limit is not None and tokens > limit:
            detail = f"~{tokens} tokens > context length {limit}"
            intent.remove(agent, self.name, RejectionReason.CONTEXT_TOO_LONG, detail)
            return True
        return False

    def _reject_health(self, intent: RoutingIntent, agent: Agent, backend: Backend) -> None:
        if backend.health is HealthState.UNKNOWN:
            reason, detail = RejectionReason.UNKNOWN_HEALTH, "not probed yet"
        else:
            reason, detail = RejectionReason.UNHEALTHY, "failing health checks"
        next_sweep = self._registry.next_health_sweep_at
        if math.isinf(next_sweep):
            retry_after = self._interval_seconds
        else:
            retry_after = max(next_sweep - intent.request.now, 0.0)
        intent.remove(agent, self.name, reason, detail, retry_after)
