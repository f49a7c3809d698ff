"""Routing one proxy request's next attempt: the pipeline's decision, and the admission queue
while every candidate is at capacity (docs/routing.md#queue-and-overload).

A :class:`RoutePlan` is what one request has spent and learned on its way through its
attempts (agents tried, backends skipped, rejections, its place in the queue) and the
:class:`~nexus_trio.gateway.generation.Generation` it is served under, read once when it
started. :class:`RequestRouter` turns a plan and a model into a :class:`~nexus_trio.routing.Route`
or a :class:`~nexus_trio.routing.Reject`, waiting in the queue at most
``min(max_wait_seconds, remaining deadline)`` in all.
"""

from __future__ import annotations

import time

import trio

from nexus_trio import errors
from nexus_trio.api.admission_queue import AdmissionQueue, Ticket
from nexus_trio.api.bodies import RequestView
from nexus_trio.api.refusals import queue_timeout
from nexus_trio.asgi.context import RequestContext
from nexus_trio.gateway.generation import Generation
from nexus_trio.keys import ClientKey
from nexus_trio.metrics import Metrics
from nexus_trio.quality import QualityStore
from nexus_trio.routing import (
    CloudUse,
    Decision,
    Queue,
    Reject,
    Rejection,
    RejectionReason,
    Requirements,
    Route,
    RoutingRequest,
)


class RoutePlan:
    """What one request has spent and learned on its way through its attempts."""

    def __init__(
        self,
        generation: Generation,
        view: RequestView,
        requirements: Requirements,
        *,
        high_priority: bool,
        cloud_use: CloudUse,
        key: ClientKey | None,
    ) -> None:
        self.generation = generation
        self.view = view
        self.cloud_use = cloud_use
        self.key = key
        #: The key is ``privacy = "restricted"`` (docs/keys.md#keys).
        self.restricted = key is not None and key.restricted
        self.requirements = requirements
        self.high_priority = high_priority
        self.tried: set[tuple[str, str]] = set()
        self.skip_backends: set[str] = set()
        self.fresh_connection_used: set[str] = set()
        self.rejects: list[Reject] = []
        self.last_error: errors.UpstreamError | None = None
        self.ticket: Ticket | None = None
        self.queued_at: float | None = None
        #: True while waiting in the admission queue (a deadline then means queue_timeout).
        self.waiting = False


class RequestRouter:
    """Decides each attempt's agent; queues while everything is at capacity."""

    def __init__(self, queue: AdmissionQueue, quality: QualityStore, metrics: Metrics) -> None:
        self._queue = queue
        self._quality = quality
        self._metrics = metrics

    async def route(
        self, ctx: RequestContext, plan: RoutePlan, model: str, deadline: float
    ) -> Route | Reject:
        """Ask the pipeline; wait in the admission queue while everything is at capacity.

        A queued request's client is watched from the moment it queues (it leaves the queue at
        once if it disconnects).

        Raises:
            QueueTimeout: the wait ran out (``queue_timeout``).
        """
        while True:
            decision = self._decide(plan, model)
            if not isinstance(decision, Queue):
                return decision
            queue = plan.generation.config.queue
            if not queue.enabled:
                return _at_capacity(decision)
            now = trio.current_time()
            if plan.ticket is None or plan.queued_at is None:
                plan.ticket = self._queue.ticket(
                    decision.resolved_model, high_priority=plan.high_priority
                )
                plan.queued_at = now
            if ctx.watch is not None:
                ctx.watch.expedite()
            wait_until = min(plan.queued_at + queue.max_wait_seconds, deadline)
            with trio.move_on_at(wait_until) as wait_scope:
                plan.waiting = True  # stays set if the request deadline ends the wait
                await self._queue.wait_for_slot(plan.ticket, max_size=queue.max_size)
                plan.waiting = False
            if wait_scope.cancelled_caught:
                raise queue_timeout(decision.resolved_model, plan.queued_at)

    def _decide(self, plan: RoutePlan, model: str) -> Decision:
        request = RoutingRequest(
            model=model,
            stream=plan.view.stream,
            requirements=plan.requirements,
            now=trio.current_time(),
            tried=frozenset(plan.tried),
            skip_backends=frozenset(plan.skip_backends),
            cloud_use=plan.cloud_use,
            restricted=plan.restricted,
            model_allowed=plan.key is None or plan.key.allows_model(model),
        )
        started = time.perf_counter()
        decision = plan.generation.pipeline.decide(request)
        metrics = self._metrics
        metrics.routing_duration.observe(time.perf_counter() - started)
        if not isinstance(decision, Queue):
            for rejection in decision.rejections:
                metrics.exclusions.labels(rejection.reconciler, rejection.reason.value).inc()
        if isinstance(decision, Route):
            if decision.reason == "probe":
                self._quality.probe_started(decision.agent.key, now=request.now)
            elif decision.reason == "quality_panic":
                metrics.quality_panic.labels(decision.resolved_model).inc()
        return decision


def _at_capacity(decision: Queue) -> Reject:
    """With the queue off: every candidate at capacity is a rejection."""
    rejections = tuple(
        Rejection(
            agent.backend.name,
            "scheduler",
            RejectionReason.AT_CAPACITY,
            f"{agent.backend.config.max_concurrent_requests} requests in flight",
            1.0,
        )
        for agent in decision.agents
    )
    return Reject(decision.resolved_model, rejections, model_known=True)
