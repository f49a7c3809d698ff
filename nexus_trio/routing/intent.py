"""What the routing pipeline works on: one request's intent, its candidates and rejections.

The request path describes a request as a :class:`RoutingRequest`. The pipeline turns it into a
:class:`RoutingIntent` and hands that to every reconciler in turn (docs/routing.md#pipeline). A
reconciler may only remove candidates — each removal records a :class:`Rejection` — or annotate the
intent: scores, a route reason, an agent it forces (a quality probe), and, for the scheduler, the
route. Everything here is synchronous, in memory and free of I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from nexus_trio.registry import Backend

if TYPE_CHECKING:
    from nexus_trio.routing.decision import Route


class RejectionReason(enum.StrEnum):
    """Why an agent was removed: the closed set of docs/proxying.md#when-nothing-can-serve."""

    UNHEALTHY = "unhealthy"
    UNKNOWN_HEALTH = "unknown_health"
    MISSING_CAPABILITY = "missing_capability"
    CONTEXT_TOO_LONG = "context_too_long"
    PRIVACY_ZONE = "privacy_zone"
    TIER_TOO_LOW = "tier_too_low"
    HIGH_ERROR_RATE = "high_error_rate"
    CONSECUTIVE_FAILURES = "consecutive_failures"
    RATE_LIMITED = "rate_limited"
    AT_CAPACITY = "at_capacity"
    BUDGET_EXHAUSTED = "budget_exhausted"
    MODEL_NOT_ALLOWED = "model_not_allowed"


class CloudUse(enum.StrEnum):
    """What the spend budget leaves of cloud backends (docs/spend.md#budgets)."""

    #: Cloud backends are candidates like any other.
    ALLOWED = "allowed"
    #: Past the soft limit: chosen only when no local candidate is available.
    LAST_RESORT = "last_resort"
    #: Past the hard limit with ``local_only``: removed (``budget_exhausted``).
    NONE = "none"


#: Reasons that no amount of waiting cures: a retry of the same request will fail the same way.
PERMANENT_REASONS = frozenset(
    {
        RejectionReason.MISSING_CAPABILITY,
        RejectionReason.CONTEXT_TOO_LONG,
        RejectionReason.PRIVACY_ZONE,
        RejectionReason.TIER_TOO_LOW,
        RejectionReason.BUDGET_EXHAUSTED,
        RejectionReason.MODEL_NOT_ALLOWED,
    }
)


@dataclass(frozen=True, slots=True)
class Agent:
    """One (backend, model) pair: what a request is routed to and quality is tracked for."""

    backend: Backend
    model: str

    @property
    def key(self) -> tuple[str, str]:
        """``(backend name, model)``: the agent's identity across reloads."""
        return (self.backend.name, self.model)


@dataclass(frozen=True, slots=True)
class Rejection:
    """One agent removed from the candidates, as the 503 body reports it
    (docs/proxying.md#when-nothing-can-serve)."""

    backend: str
    reconciler: str
    reason: RejectionReason
    detail: str
    #: Seconds until the agent may recover; None = permanent or unknown.
    retry_after: float | None = None

    @property
    def permanent(self) -> bool:
        return self.reason in PERMANENT_REASONS

    def as_dict(self) -> dict[str, str]:
        """The entry of the error envelope's ``rejections`` list."""
        return {
            "backend": self.backend,
            "reconciler": self.reconciler,
            "reason": self.reason.value,
            "detail": self.detail,
        }


@dataclass(slots=True)
class Requirements:
    """What the request needs from a model (docs/routing.md#request-analysis), computed by the
    request path."""

    #: Σ characters of all text parts / 4; 0 = unknown (no context check).
    estimated_tokens: int = 0
    needs_vision: bool = False
    needs_tools: bool = False
    needs_json_mode: bool = False
    needs_embeddings: bool = False


@dataclass(slots=True)
class RoutingRequest:
    """What the request path asks the pipeline; ask again with more ``tried`` for a retry."""

    model: str
    stream: bool
    requirements: Requirements
    #: Trio time of the decision; compared with cooldown ends and probe times.
    now: float
    #: Agent keys already attempted for this request: not candidates again.
    tried: frozenset[tuple[str, str]] = frozenset()
    #: Backends that failed with a connect error or timeout: skipped for the rest of the request.
    skip_backends: frozenset[str] = frozenset()
    #: What the budget leaves of cloud backends, read by the request path before routing.
    cloud_use: CloudUse = CloudUse.ALLOWED
    #: The request's key is ``privacy = "restricted"``: no backend in the open zone.
    restricted: bool = False
    #: False when the request's key may not use ``model`` (a fallback outside its allow-list):
    #: every agent is rejected with ``model_not_allowed`` (docs/routing.md#fallbacks).
    model_allowed: bool = True


@dataclass(slots=True)
class RoutingIntent:
    """One request on its way through the reconcilers."""

    request: RoutingRequest
    #: The model after alias resolution; the request's model until the analyzer runs.
    resolved_model: str
    #: Surviving agents in configuration order.
    candidates: list[Agent] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    #: ``smart`` scores by agent key, penalty applied (for logs and tests).
    scores: dict[tuple[str, str], float] = field(default_factory=dict)
    #: A reason that overrides the scheduler's own (``quality_panic``, ``probe``).
    route_reason: str | None = None
    #: An agent to route to regardless of score if it survives and has a free slot (a probe).
    forced: Agent | None = None
    #: Agent keys with a required capability nobody declared: kept, but the scheduler
    #: chooses them only when no agent whose capabilities are all known is available.
    unconfirmed: set[tuple[str, str]] = field(default_factory=set)
    #: Agent keys the scheduler chooses only when no other candidate is available (cloud
    #: backends past the budget's soft limit).
    last_resort: set[tuple[str, str]] = field(default_factory=set)
    #: False when no backend serves the resolved model at all, whatever its health, or the
    #: request may not use it (``model_allowed``): for this request the model does not exist.
    model_known: bool = True
    #: The scheduler's choice; None when nothing survived or everything is at capacity.
    route: Route | None = None

    def remove(
        self,
        agent: Agent,
        reconciler: str,
        reason: RejectionReason,
        detail: str,
        retry_after: float | None = None,
    ) -> None:
        """Remove ``agent`` from the candidates and record why."""
        self.candidates.remove(agent)
        self.rejections.append(
            Rejection(agent.backend.name, reconciler, reason, detail, retry_after)
        )

    def remove_unless_all(self, removals: Sequence[tuple[Agent, Rejection]]) -> bool:
        """Remove these agents, unless that would leave no candidate: then remove none.

        This is the guard of cooldown and quality (docs/routing.md#health-filter,
        docs/quality.md#exclusion): they reorder the fleet but never turn a servable request into a
        503.

        Args:
            removals: Distinct current candidates, each with the rejection to record.

        Returns:
            True when the agents were removed (or there were none); False when every
            remaining candidate would have gone, so all were kept.
        """
        if not removals:
            return True
        if len(removals) >= len(self.candidates):
            return False
        removed = {agent for agent, _ in removals}
        self.candidates = [agent for agent in self.candidates if agent not in removed]
        self.rejections.extend(rejection for _, rejection in removals)
        return True


class Reconciler(Protocol):
    """One step of the pipeline: synchronous, no I/O, removes or annotates only."""

    name: str

    def reconcile(self, intent: RoutingIntent) -> None:
        """Remove candidates from ``intent`` (recording why) or annotate it."""
