"""Routing (docs/routing.md#routing): synchronous, pure reconcilers that turn a request into a
decision."""

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
