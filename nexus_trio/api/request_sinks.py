"""The sinks of finished proxy requests on the request path's side: spend, metrics, the rate
limiter's token buckets and the access log (docs/operations.md#logging). Each is a synchronous
function of one :class:`~nexus_trio.gateway.record.RequestRecord`; the wiring registers them
with :class:`~nexus_trio.api.accounting.RequestAccounting` beside the totals and the
dashboard's request log.
"""

from __future__ import annotations

import logging

import msgspec

from nexus_trio.gateway.record import RequestRecord, RequestSink
from nexus_trio.keys import RateLimiter
from nexus_trio.metrics import Metrics, status_class
from nexus_trio.spend import SpendBook

access_log = logging.getLogger("nexus_trio.access")

#: Error codes of requests refused for the gateway's own capacity.
CAPACITY_CODES = frozenset({"overloaded", "queue_full", "queue_timeout"})


def spend_sink(book: SpendBook, metrics: Metrics) -> RequestSink:
    """Charge a request's cost to the month's spend (docs/spend.md#spend-and-budgets)."""

    def charge(record: RequestRecord) -> None:
        cost = record.cost_usd
        if cost > 0 and record.backend is not None:
            model = record.served_model or "none"
            estimated = "true" if record.cost_estimated else "false"
            key = metrics.key_label(record.key_name)
            metrics.spend.labels(key, record.backend, model, estimated).inc(cost)
            book.charge(
                record.key_name, record.backend, model, cost, estimated=record.cost_estimated
            )

    return charge


def metrics_sink(metrics: Metrics) -> RequestSink:
    """Observe a request in the request, duration, overhead, capacity and token metrics."""

    def observe(record: RequestRecord) -> None:
        backend = record.backend or "none"
        model = record.served_model or "none"
        stream = "true" if record.stream else "false"
        status = status_class(record.status, cancelled=record.cancelled)
        key = metrics.key_label(record.key_name)
        metrics.requests.labels(model, backend, status, stream, key).inc()
        metrics.request_duration.labels(model, backend, stream, key).observe(record.elapsed_seconds)
        # Time not spent waiting on upstreams; for a committed stream, up to its first byte
        # only (client TTFB minus upstream TTFB): the rest of a stream is the backend's pace.
        until = record.committed_after
        if until is None:
            until = record.elapsed_seconds
        metrics.gateway_overhead.labels(stream).observe(max(until - record.upstream_seconds, 0.0))
        if record.error_code in CAPACITY_CODES:
            metrics.capacity_rejections.labels(record.error_code).inc()
        if record.backend is not None:
            if record.prompt_tokens:
                metrics.tokens.labels(model, backend, "prompt").inc(record.prompt_tokens)
            if record.completion_tokens:
                metrics.tokens.labels(model, backend, "completion").inc(record.completion_tokens)

    return observe


def limiter_sink(limiter: RateLimiter) -> RequestSink:
    """Take a request's tokens from its key's per-minute bucket (docs/keys.md#rate-limits)."""

    def charge(record: RequestRecord) -> None:
        key = record.key
        if key is not None and key.config is not None and key.config.tokens_per_minute:
            limiter.charge_tokens(key.name, key.config, record.tokens_used, record.started)

    return charge


class AccessRecord(msgspec.Struct, omit_defaults=False):
    """One access-log line (docs/operations.md#logging). Never message contents, never keys."""

    request_id: str
    method: str
    path: str
    client: str
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
    #: The key's name (``default`` without one), never the key (docs/keys.md#keys).
    key: str = "default"
    user_agent: str | None = None
    #: The OpenAI ``user`` field of the body.
    user: str | None = None
    cold_start: bool = False


def log_access(record: RequestRecord) -> None:
    """The access-log sink: one ``request`` line at INFO (docs/operations.md#logging)."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    line = AccessRecord(
        request_id=record.request_id,
        method=record.method,
        path=record.path,
        client=record.client,
        requested_model=record.requested_model,
        served_model=record.served_model,
        backend=record.backend,
        attempts=record.attempts,
        status=record.status,
        stream=record.stream,
        ttft_ms=None if record.ttft_ms is None else round(record.ttft_ms, 1),
        latency_ms=round(record.elapsed_seconds * 1000.0, 1),
        prompt_tokens=record.prompt_tokens,
        completion_tokens=record.completion_tokens,
        route_reason=record.route_reason,
        error_code=record.error_code,
        cost_usd=round(record.cost_usd, 8),
        cost_estimated=record.cost_estimated,
        key=record.key_name,
        user_agent=record.user_agent,
        user=record.end_user,
        cold_start=record.cold_start,
    )
    access_log.info("request", extra={"access": line})
