"""Accounting for one finished proxy request: totals, metrics and the access-log line.

Called exactly once per proxy request, when its last byte was sent or the client went away
(docs/operations.md#logging: streams are logged when they end).
"""

from __future__ import annotations

import logging

import msgspec
import trio

from nexus_trio.api.context import RequestContext
from nexus_trio.dashboard.request_log import RequestLog
from nexus_trio.metrics import Metrics, status_class
from nexus_trio.services import RequestTotals

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


def record_request(
    totals: RequestTotals,
    metrics: Metrics,
    ctx: RequestContext,
    request_log: RequestLog | None = None,
) -> None:
    """Count the request in ``totals`` by final result, observe ``metrics``, write the log line.

    With a ``request_log`` (the dashboard's ring buffer) the request is appended to it too.
    """
    elapsed = trio.current_time() - ctx.started
    cancelled = not ctx.completed
    status = ctx.status
    if cancelled:
        totals.cancelled += 1
    elif status is not None and 400 <= status < 500:
        totals.client_errors += 1
    elif status is None or status >= 500 or ctx.truncated:
        totals.errors += 1
    else:
        totals.success += 1

    model = ctx.served_model if ctx.backend is not None else None
    if model is not None:
        totals.by_model[model] = totals.by_model.get(model, 0) + 1
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

    if request_log is not None:
        request_log.append(ctx, elapsed)
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
        )
        access_log.info("request", extra={"access": record})
