"""Accounting for one finished proxy request: totals, cost, metrics and the access-log line.

:func:`record_request` is called exactly once per proxy request, when its last byte was sent or
the client went away (docs/operations.md#logging: streams are logged when they end).
:func:`settle_cost` prices what the request used (docs/spend.md#pricing): a non-streaming answer
when it is judged (its ``X-Nexus-Cost-USD`` header needs it), a committed stream when it ends.
The cost is charged, and the answering attempt's reservation released, in one synchronous step
(docs/spend.md#reservations): the budget never sees the request twice, nor misses it.
"""

from __future__ import annotations

import logging

import msgspec
import trio

from nexus_trio.asgi.context import RequestContext
from nexus_trio.metrics import status_class
from nexus_trio.runtime.services import RequestCounts, Services
from nexus_trio.spend.pricing import PriceList, estimated_tokens

access_log = logging.getLogger("nexus_trio.access")

#: Error codes of requests refused for the gateway's own capacity.
CAPACITY_CODES = frozenset({"overloaded", "queue_full", "queue_timeout"})


class AccessRecord(msgspec.Struct, omit_defaults=False):
    """One access-log line (docs/operations.md#logging). Never message contents, never keys."""

    request_id: str
    method: str
    path: str
    requested_model: str | None
    served_model: str | None
    backend: str | None
    attempts: int
    status: int | None
    stream: bool
    ttft_ms: float | None
    latency_ms: float
    prompt_tokens: int | None
    completion_tokens: int | None
    route_reason: str | None
    error_code: str | None
    cost_usd: float
    cost_estimated: bool


def settle_cost(prices: PriceList, ctx: RequestContext) -> None:
    """Set ``ctx.cost_usd`` (once) from the tokens the served agent reported.

    An unpriced agent costs 0. Without reported usage the tokens are estimated — the request's
    input estimate and the generated characters / 4 — and ``ctx.cost_estimated`` is set
    (docs/spend.md#estimates): so an attempt cut short after it was sent, which got no answer,
    costs its input estimate (docs/spend.md#pricing).
    """
    if ctx.cost_usd is not None or ctx.backend is None or ctx.served_model is None:
        return
    price = prices.lookup(ctx.backend, ctx.served_model)
    if price is None:
        ctx.cost_usd = 0.0
        return
    prompt = ctx.prompt_tokens
    completion = ctx.completion_tokens or 0
    if prompt is None:
        ctx.cost_estimated = True
        prompt = ctx.estimated_prompt_tokens
        completion = estimated_tokens(ctx.output_chars)
    ctx.cost_usd = price.cost(prompt, completion, ctx.cached_tokens)


def _tokens_used(ctx: RequestContext) -> int:
    """Prompt plus completion tokens: reported, else estimated (docs/keys.md#rate-limits)."""
    if ctx.backend is None:
        return 0
    prompt = ctx.prompt_tokens
    if prompt is None:
        return ctx.estimated_prompt_tokens + estimated_tokens(ctx.output_chars)
    return prompt + (ctx.completion_tokens or 0)


def _charge(services: Services, ctx: RequestContext) -> float:
    """Settle and charge the request's cost and release its reservation, whatever happens;
    the cost (0 when it has none).

    Settled here: a committed stream, and an attempt cut short after it was sent (the client
    gone, the request deadline, the drain), which the provider bills for its input at least.
    An attempt that failed (an error status, a connection failure) costs nothing.
    """
    try:
        if (ctx.stream and ctx.committed_at is not None) or ctx.cut_short_after_send:
            settle_cost(services.prices, ctx)
        cost = ctx.cost_usd or 0.0
        if cost > 0 and ctx.backend is not None:
            estimated = "true" if ctx.cost_estimated else "false"
            key_name = ctx.key_name
            model = ctx.served_model or "none"
            services.metrics.spend.labels(key_name, ctx.backend, model, estimated).inc(cost)
            services.spend.charge(key_name, ctx.backend, model, cost, estimated=ctx.cost_estimated)
    finally:
        reservation = ctx.reservation
        if reservation is not None:
            ctx.reservation = None
            services.spend.release(reservation)
    return cost


def unauthenticated(services: Services, ctx: RequestContext) -> bool:
    """Inbound keys are on and the request presented none that is valid: it was refused before
    its key was checked (target, framing, host, drain) or for its key (401)."""
    return ctx.key is None and bool(services.keyring)


def record_request(services: Services, ctx: RequestContext) -> None:
    """Count the request by final result (in the totals, and its key's own when it presented
    one), charge its cost, observe metrics, write the log line.

    Called exactly once per proxy request (the ASGI layer's ``finally``): the request's
    reservation is released here at the latest. With the dashboard on, the request is appended
    to its ring buffer too, unless it presented no valid key while keys are on
    (docs/api.md#dashboard): anyone can send those, and they must not push real entries out of
    the ring. They still count in the
    totals, the metrics and the access log.
    """
    totals = services.totals
    metrics = services.metrics
    cost = _charge(services, ctx)
    elapsed = trio.current_time() - ctx.started
    cancelled = not ctx.completed
    status = ctx.status
    model = ctx.served_model if ctx.backend is not None else None
    failed = status is None or status >= 500 or ctx.truncated
    totals.count(status, cancelled=cancelled, failed=failed, model=model)
    if ctx.key is not None:
        name = ctx.key.name
        own = totals.by_key.get(name)
        if own is None:
            own = totals.by_key[name] = RequestCounts()
        own.count(status, cancelled=cancelled, failed=failed, model=model)
    backend = ctx.backend or "none"
    model_label = model or "none"
    stream = "true" if ctx.stream else "false"
    metrics.requests.labels(
        model_label, backend, status_class(status, cancelled=cancelled), stream
    ).inc()
    metrics.request_duration.labels(model_label, backend, stream).observe(elapsed)
    # Time not spent waiting on upstreams; for a committed stream, up to its first byte only
    # (client TTFB minus upstream TTFB): the rest of a stream is the backend's pace.
    until = ctx.committed_at - ctx.started if ctx.committed_at is not None else elapsed
    metrics.gateway_overhead.labels(stream).observe(max(until - ctx.upstream_seconds, 0.0))
    if ctx.error_code in CAPACITY_CODES:
        metrics.capacity_rejections.labels(ctx.error_code).inc()
    if ctx.backend is not None:
        if ctx.prompt_tokens:
            metrics.tokens.labels(model_label, backend, "prompt").inc(ctx.prompt_tokens)
        if ctx.completion_tokens:
            metrics.tokens.labels(model_label, backend, "completion").inc(ctx.completion_tokens)
    key = ctx.key
    if key is not None and key.config is not None and key.config.tokens_per_minute:
        services.limiter.charge_tokens(key.name, key.config, _tokens_used(ctx), ctx.started)

    if services.request_log is not None and not unauthenticated(services, ctx):
        services.request_log.append(ctx, elapsed)
    if access_log.isEnabledFor(logging.INFO):
        record = AccessRecord(
            request_id=ctx.request_id,
            method=ctx.method,
            path=ctx.path,
            requested_model=ctx.requested_model,
            served_model=model,
            backend=ctx.backend,
            attempts=ctx.attempts,
            status=None if cancelled else status,
            stream=ctx.stream,
            ttft_ms=None if ctx.ttft_ms is None else round(ctx.ttft_ms, 1),
            latency_ms=round(elapsed * 1000.0, 1),
            prompt_tokens=ctx.prompt_tokens,
            completion_tokens=ctx.completion_tokens,
            route_reason=ctx.route_reason,
            error_code="cancelled" if cancelled else ctx.error_code,
            cost_usd=round(cost, 8),
            cost_estimated=ctx.cost_estimated,
        )
        access_log.info("request", extra={"access": record})
