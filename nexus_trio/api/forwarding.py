"""Forwarding one proxy request: routing, retries, fallbacks, the queue (docs/proxying.md#retries,
docs/routing.md#fallbacks, docs/routing.md#queue-and-overload).

Theory of operation. Everything before a response is committed — routing, queue waits, every
attempt — runs inside one request-deadline scope (``request_timeout_seconds``, capped by the
drain deadline). The loop asks the routing pipeline for an agent, runs one attempt on it
(:mod:`nexus_trio.api.attempt`), and on a retryable failure asks again without the agents
already tried (and without backends that failed to connect or timed out). When the requested
model has no candidate left, the ``[routing.fallbacks]`` chain is tried in order, each model
through the full pipeline, sharing the deadline and the budget of ``1 + max_retries`` attempts.

A ``Queue`` decision waits in the admission queue until a slot frees on a backend serving the
model, at most ``min(max_wait_seconds, remaining deadline)`` in all. The final error is the last
attempt's (upstream status passed through as-is), or — when no attempt was possible — 404
``model_not_found`` or the actionable 503 ``no_available_backend`` with every rejection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import trio

from nexus_trio import errors
from nexus_trio.api.admission_queue import Ticket
from nexus_trio.api.analysis import input_estimate, requirements_of
from nexus_trio.api.attempt import AttemptRunner
from nexus_trio.api.bodies import RequestView, rewritten
from nexus_trio.api.budgets import BudgetGate
from nexus_trio.api.refusals import (
    model_not_found,
    no_available_backend,
    parse_retry_after,
    queue_timeout,
    shown_model,
)
from nexus_trio.asgi.context import RequestContext
from nexus_trio.asgi.reply import Reply
from nexus_trio.dialects import dialect_for
from nexus_trio.keys import ClientKey
from nexus_trio.routing import (
    Agent,
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
from nexus_trio.runtime.services import Services

log = logging.getLogger("nexus_trio.routing")


class _Plan:
    """What one request has spent and learned on its way through its attempts."""

    def __init__(
        self,
        view: RequestView,
        requirements: Requirements,
        high_priority: bool,
        cloud_use: CloudUse,
        key: ClientKey | None,
    ) -> None:
        self.view = view
        self.cloud_use = cloud_use
        self.key = key
        #: The key is ``privacy = "restricted"`` (docs/keys.md#keys).
        self.restricted = False
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


class Forwarder:
    """Routes and forwards proxy requests for one :class:`Services`."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.attempts = AttemptRunner(services)
        self.budgets = BudgetGate(services)

    async def forward(
        self,
        ctx: RequestContext,
        view: RequestView,
        path: str,
        body: bytes,
        client_headers: Sequence[tuple[bytes, bytes]],
    ) -> Reply:
        """Route, attempt, retry and fall back; return the committed response.

        Blocks until a response is committed (streams: until their first event). Raises the
        final :class:`APIError`. Cancellation (client gone) finishes open attempts as
        ``cancelled``, closes their upstream responses and leaves the queue.
        """
        services = self.services
        config = services.config
        ctx.stream = view.stream
        ctx.requested_model = shown_model(view.model)  # as logged (docs/proxying.md#request-body)
        key = ctx.key
        # A tenant key never jumps the queue (docs/routing.md#queue-and-overload).
        high = (key is None or key.admin) and any(
            k == b"x-nexus-priority" and v.lower() == b"high" for k, v in client_headers
        )
        if key is not None and not key.allows_model(view.model):
            raise errors.ModelNotAllowed(
                f"The key '{key.name}' may not use the model '{shown_model(view.model)}'.",
                param="model",
            )
        plan = _Plan(view, requirements_of(view), high, self.budgets.cloud_use(key), key)
        plan.restricted = key is not None and key.restricted
        ctx.estimated_prompt_tokens = input_estimate(view, len(body))
        budget = 1 + config.routing.max_retries
        deadline = ctx.started + config.server.request_timeout_seconds
        models = [view.model]
        with trio.move_on_at(deadline) as request_scope:
            services.drain.watch(request_scope)
            index = 0
            while index < len(models) and ctx.attempts < budget:
                decision = await self._route(ctx, plan, models[index], deadline)
                if index == 0 and len(models) == 1:
                    models += self._fallbacks(decision, view.model)
                if isinstance(decision, Reject):
                    plan.rejects.append(decision)
                    index += 1
                    continue
                response = await self._try(
                    ctx, plan, decision, index > 0, path, body, client_headers, deadline
                )
                if response is not None:
                    return response
        if request_scope.cancelled_caught:
            if services.drain.expired():
                raise errors.ShuttingDown()
            if plan.waiting and plan.queued_at is not None:
                raise queue_timeout(view.model, plan.queued_at)
            plan.last_error = errors.BackendTimeout(
                f"No backend answered within {config.server.request_timeout_seconds:g} s."
            )
        raise self._final_error(ctx, plan)

    async def _try(
        self,
        ctx: RequestContext,
        plan: _Plan,
        route: Route,
        fallback: bool,
        path: str,
        body: bytes,
        client_headers: Sequence[tuple[bytes, bytes]],
        deadline: float,
    ) -> Reply | None:
        """One attempt on the routed agent; None when it failed and the loop goes on.

        The attempt is admitted by the budgets first, reserving its worst case
        (docs/spend.md#reservations); a failed attempt releases it here, an answered one when
        its cost is charged, any other end when the request is accounted for.

        Raises:
            BudgetExceeded: a budget is spent or reserved and its action is ``reject``.
        """
        agent = route.agent
        view = plan.view
        if not self.budgets.admit(ctx, view, agent):
            plan.cloud_use = CloudUse.NONE  # local_only: route again without cloud backends
            return None
        self._label(ctx, route, fallback)
        # A priced stream must report usage: ask an OpenAI-compatible backend for it unless the
        # client did (docs/proxying.md#request-body); the relay then drops the chunk that
        # answers it. A translated backend (anthropic) always reports usage to the gateway.
        ask_usage = (
            view.stream
            and not view.asks_usage
            and not dialect_for(agent.backend.config.type).reports_stream_usage
            and self.services.prices.lookup(agent.backend.name, agent.model) is not None
        )
        model = None if agent.model == view.model else agent.model
        forwarded = body
        if model is not None or ask_usage:
            forwarded = rewritten(body, model=model, include_usage=ask_usage)
        ctx.attempts += 1
        try:
            response = await self.attempts.run(
                ctx,
                agent,
                view.stream,
                path,
                forwarded,
                client_headers,
                request_deadline=deadline,
                strip_usage=ask_usage,
            )
        except errors.UpstreamReset as exc:
            name = agent.backend.name
            if (
                exc.reused_connection
                and exc.before_response
                and name not in plan.fresh_connection_used
            ):
                # A keep-alive race, not a backend failure: once more, not counted.
                plan.fresh_connection_used.add(name)
                ctx.attempts -= 1
                self.budgets.release(ctx)
                return None
            self._failed(ctx, plan, agent, exc)
            return None
        except errors.UpstreamError as exc:
            self._failed(ctx, plan, agent, exc)
            return None
        if fallback:
            self.services.metrics.fallbacks.labels(view.model, agent.model).inc()
        return response

    def _label(self, ctx: RequestContext, route: Route, fallback: bool) -> None:
        backend = route.agent.backend
        ctx.backend = backend.name
        ctx.backend_location = backend.location
        ctx.privacy_zone = backend.config.privacy_zone()
        ctx.served_model = route.agent.model
        ctx.fallback_model = route.agent.model if fallback else None
        if fallback:
            ctx.route_reason = "fallback"
        elif ctx.attempts > 0:
            ctx.route_reason = "retry"
        else:
            ctx.route_reason = route.reason

    def _failed(
        self, ctx: RequestContext, plan: _Plan, agent: Agent, exc: errors.UpstreamError
    ) -> None:
        """Learn from a failed attempt: never this agent again, maybe not this backend. It cost
        nothing: its reservation is released."""
        services = self.services
        self.budgets.release(ctx)
        plan.last_error = exc
        plan.tried.add(agent.key)
        backend = agent.backend
        if exc.skip_backend:
            plan.skip_backends.add(backend.name)
        if isinstance(exc, errors.UpstreamStatusError) and exc.upstream_status == 429:
            seconds = parse_retry_after(exc.headers.get("retry-after"))
            if seconds is not None:
                backend.cooldown_until[agent.model] = trio.current_time() + seconds
                log.info(
                    "backend '%s' model '%s' rate limited: cooling down %.0f s",
                    backend.name,
                    agent.model,
                    seconds,
                )
        if ctx.attempts < 1 + services.config.routing.max_retries:
            services.metrics.retries.labels(backend.name).inc()

    async def _route(
        self, ctx: RequestContext, plan: _Plan, model: str, deadline: float
    ) -> Route | Reject:
        """Ask the pipeline; wait in the admission queue while everything is at capacity.

        A queued request's client is watched from the moment it queues (it leaves the queue at
        once if it disconnects).
        """
        services = self.services
        while True:
            decision = self._decide(plan, model)
            if not isinstance(decision, Queue):
                return decision
            queue = services.config.queue
            if not queue.enabled:
                return self._at_capacity(decision)
            now = trio.current_time()
            if plan.ticket is None or plan.queued_at is None:
                plan.ticket = services.queue.ticket(
                    decision.resolved_model, high_priority=plan.high_priority
                )
                plan.queued_at = now
            if ctx.watch is not None:
                ctx.watch.expedite()
            wait_until = min(plan.queued_at + queue.max_wait_seconds, deadline)
            with trio.move_on_at(wait_until) as wait_scope:
                plan.waiting = True  # stays set if the request deadline ends the wait
                await services.queue.wait_for_slot(plan.ticket, max_size=queue.max_size)
                plan.waiting = False
            if wait_scope.cancelled_caught:
                raise queue_timeout(decision.resolved_model, plan.queued_at)

    def _decide(self, plan: _Plan, model: str) -> Decision:
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
        services = self.services
        started = time.perf_counter()
        decision = services.pipeline.decide(request)
        metrics = services.metrics
        metrics.routing_duration.observe(time.perf_counter() - started)
        if not isinstance(decision, Queue):
            for rejection in decision.rejections:
                metrics.exclusions.labels(rejection.reconciler, rejection.reason.value).inc()
        if isinstance(decision, Route):
            if decision.reason == "probe":
                services.quality.probe_started(decision.agent.key, now=request.now)
            elif decision.reason == "quality_panic":
                metrics.quality_panic.labels(decision.resolved_model).inc()
        return decision

    def _fallbacks(self, decision: Decision, requested: str) -> list[str]:
        chains = self.services.config.routing.fallbacks
        return list(chains.get(decision.resolved_model) or chains.get(requested) or [])

    @staticmethod
    def _at_capacity(decision: Queue) -> Reject:
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

    def _final_error(self, ctx: RequestContext, plan: _Plan) -> errors.APIError:
        error: errors.APIError
        if plan.last_error is not None:
            error = plan.last_error
        elif not any(reject.model_known for reject in plan.rejects):
            error = model_not_found(plan.view.model, self._known_models(ctx.key))
        else:
            # Every model of the chain that was routed says why it could not serve.
            first = next(reject for reject in plan.rejects if reject.model_known)
            rejections = tuple(r for reject in plan.rejects for r in reject.rejections)
            error = no_available_backend(Reject(first.resolved_model, rejections, True))
        if ctx.attempts >= 2:
            error.headers["x-should-retry"] = "false"
        return error

    def _known_models(self, key: ClientKey | None) -> list[str]:
        """Every model and alias, as far as ``key`` may ask for them (docs/keys.md#keys)."""
        services = self.services
        known = services.registry.known_models() | set(services.config.routing.aliases)
        return sorted(m for m in known if key is None or key.allows_model(m))
