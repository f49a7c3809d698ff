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
from collections.abc import Sequence

import trio

from nexus_trio import errors
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
from nexus_trio.api.request_router import RequestRouter, RoutePlan
from nexus_trio.asgi.context import RequestContext
from nexus_trio.asgi.reply import Reply
from nexus_trio.dialects import dialect_for
from nexus_trio.drain import Drain
from nexus_trio.gateway.generation import Generations
from nexus_trio.metrics import Metrics
from nexus_trio.registry import Registry
from nexus_trio.routing import Agent, CloudUse, Decision, Reject, Route

log = logging.getLogger("nexus_trio.routing")


class Forwarder:
    """Routes and forwards proxy requests: the retry and fallback loop under one deadline."""

    def __init__(
        self,
        generations: Generations,
        router: RequestRouter,
        attempts: AttemptRunner,
        budgets: BudgetGate,
        *,
        registry: Registry,
        drain: Drain,
        metrics: Metrics,
    ) -> None:
        self._generations = generations
        self._router = router
        self.attempts = attempts
        self.budgets = budgets
        self._registry = registry
        self._drain = drain
        self._metrics = metrics

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
        plan = self._plan(ctx, view, client_headers)
        ctx.estimated_prompt_tokens = input_estimate(view, len(body))
        server = plan.generation.config.server
        budget = 1 + plan.generation.config.routing.max_retries
        deadline = ctx.started + server.request_timeout_seconds
        models = [view.model]
        with trio.move_on_at(deadline) as request_scope:
            self._drain.watch(request_scope)
            index = 0
            while index < len(models) and ctx.attempts < budget:
                decision = await self._router.route(ctx, plan, models[index], deadline)
                if index == 0 and len(models) == 1:
                    models += self._fallbacks(plan, decision, view.model)
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
            if self._drain.expired():
                raise errors.ShuttingDown()
            if plan.waiting and plan.queued_at is not None:
                raise queue_timeout(view.model, plan.queued_at)
            plan.last_error = errors.BackendTimeout(
                f"No backend answered within {server.request_timeout_seconds:g} s."
            )
        raise self._final_error(ctx, plan)

    def _plan(
        self,
        ctx: RequestContext,
        view: RequestView,
        client_headers: Sequence[tuple[bytes, bytes]],
    ) -> RoutePlan:
        """The request's plan under the current generation, once its key may ask its model.

        Raises:
            ModelNotAllowed: the key's allow-list does not name the model.
            BudgetExceeded: a budget is spent or reserved, and its action is ``reject``.
        """
        ctx.stream = view.stream
        ctx.requested_model = shown_model(view.model)  # as logged (docs/proxying.md#request-body)
        if isinstance(view.user, str):
            ctx.end_user = shown_model(view.user)  # the same bound (docs/operations.md#logging)
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
        return RoutePlan(
            self._generations.current,
            view,
            requirements_of(view),
            high_priority=high,
            cloud_use=self.budgets.cloud_use(key),
            key=key,
        )

    async def _try(
        self,
        ctx: RequestContext,
        plan: RoutePlan,
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
        forwarded, ask_usage = _upstream_body(plan, agent, body)
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
            self._metrics.fallbacks.labels(view.model, agent.model).inc()
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
        self, ctx: RequestContext, plan: RoutePlan, agent: Agent, exc: errors.UpstreamError
    ) -> None:
        """Learn from a failed attempt: never this agent again, maybe not this backend. It cost
        nothing: its reservation is released."""
        self.budgets.release(ctx)
        if ctx.trace is not None:
            ctx.trace.failed(exc.code)
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
        if ctx.attempts < 1 + plan.generation.config.routing.max_retries:
            self._metrics.retries.labels(backend.name).inc()

    @staticmethod
    def _fallbacks(plan: RoutePlan, decision: Decision, requested: str) -> list[str]:
        chains = plan.generation.config.routing.fallbacks
        return list(chains.get(decision.resolved_model) or chains.get(requested) or [])

    def _final_error(self, ctx: RequestContext, plan: RoutePlan) -> errors.APIError:
        error: errors.APIError
        if plan.last_error is not None:
            error = plan.last_error
        elif not any(reject.model_known for reject in plan.rejects):
            error = model_not_found(plan.view.model, self._known_models(plan))
        else:
            # Every model of the chain that was routed says why it could not serve.
            first = next(reject for reject in plan.rejects if reject.model_known)
            rejections = tuple(r for reject in plan.rejects for r in reject.rejections)
            error = no_available_backend(Reject(first.resolved_model, rejections, True))
        if ctx.attempts >= 2:
            error.headers["x-should-retry"] = "false"
        return error

    def _known_models(self, plan: RoutePlan) -> list[str]:
        """Every model and alias, as far as the plan's key may ask for them (docs/keys.md#keys)."""
        key = plan.key
        known = self._registry.known_models() | set(plan.generation.config.routing.aliases)
        return sorted(m for m in known if key is None or key.allows_model(m))


def _upstream_body(plan: RoutePlan, agent: Agent, body: bytes) -> tuple[bytes, bool]:
    """The body the attempt sends, and whether the gateway asked the stream for its usage.

    A priced stream must report usage: an OpenAI-compatible backend is asked for it unless the
    client did (docs/proxying.md#request-body); the relay then drops the chunk that answers it.
    A translated backend (anthropic) always reports usage to the gateway. The model is
    rewritten when the agent serves another name than the one asked for.
    """
    view = plan.view
    backend = agent.backend
    ask_usage = (
        view.stream
        and not view.asks_usage
        and not dialect_for(backend.config.type).reports_stream_usage
        and plan.generation.prices.lookup(backend.name, agent.model) is not None
    )
    model = None if agent.model == view.model else agent.model
    if model is None and not ask_usage:
        return body, False
    return rewritten(body, model=model, include_usage=ask_usage), ask_usage
