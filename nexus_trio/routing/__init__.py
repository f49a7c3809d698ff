"""Routing (docs/routing.md#routing): a request into a decision — a route, a wait in the queue,
or a refusal with every reason.

What it owns: the request's intent and the vocabulary of decisions
(:mod:`~nexus_trio.routing.intent`, :mod:`~nexus_trio.routing.decision`), the reconcilers and the
one fixed order they run in (:mod:`~nexus_trio.routing.pipeline`). Everything here is synchronous
and pure: it reads the registry and the quality store it is given, and never does I/O, never
awaits and never changes what it reads.
"""

from nexus_trio.routing.decision import Decision, Queue, Reject, Route
from nexus_trio.routing.intent import (
    PERMANENT_REASONS,
    Agent,
    CloudUse,
    Reconciler,
    Rejection,
    RejectionReason,
    Requirements,
    RoutingIntent,
    RoutingRequest,
)
from nexus_trio.routing.pipeline import Pipeline

__all__ = [
    "PERMANENT_REASONS",
    "Agent",
    "CloudUse",
    "Decision",
    "Pipeline",
    "Queue",
    "Reconciler",
    "Reject",
    "Rejection",
    "RejectionReason",
    "Requirements",
    "Route",
    "RoutingIntent",
    "RoutingRequest",
]
