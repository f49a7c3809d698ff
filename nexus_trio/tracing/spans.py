"""A finished request's spans (docs/operations.md#tracing): one SERVER span for the request,
with the OpenTelemetry GenAI semantic conventions' attributes and the gateway's own, and one
CLIENT span per attempt, its child.

:func:`request_spans` runs in the export worker thread, never on the event loop: it reads a
finished request's record (any object with the fields of :class:`FinishedRequest`) and its
:class:`~nexus_trio.tracing.context.RequestTrace`, complete once the request was accounted
for. The SDK's ``ReadableSpan`` is the data its exporters take; the spans are built as such
from what was recorded rather than through the SDK's ``Tracer``, so the request path holds no
span object and pays nothing when a request is not traced. Times are ``trio.current_time()``
readings, placed on the wall clock by the record's end (``at_wall``).
"""

from __future__ import annotations

from typing import Protocol

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util.types import AttributeValue

from nexus_trio.tracing.context import AttemptSpan, RequestTrace

#: ``gen_ai.operation.name`` by the route of the request.
OPERATIONS = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "text_completion",
    "/v1/embeddings": "embeddings",
    "/v1/messages": "chat",
    "/v1/responses": "chat",
}
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_OK = Status(StatusCode.UNSET)


class FinishedRequest(Protocol):
    """What the spans read of a finished request (its ``RequestRecord``)."""

    @property
    def trace(self) -> RequestTrace | None: ...
    @property
    def request_id(self) -> str: ...
    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def started(self) -> float: ...
    @property
    def elapsed_seconds(self) -> float: ...
    @property
    def at_wall(self) -> float: ...
    @property
    def requested_model(self) -> str | None: ...
    @property
    def served_model(self) -> str | None: ...
    @property
    def backend(self) -> str | None: ...
    @property
    def attempts(self) -> int: ...
    @property
    def status(self) -> int | None: ...
    @property
    def cancelled(self) -> bool: ...
    @property
    def failed(self) -> bool: ...
    @property
    def stream(self) -> bool: ...
    @property
    def error_code(self) -> str | None: ...
    @property
    def route_reason(self) -> str | None: ...
    @property
    def prompt_tokens(self) -> int | None: ...
    @property
    def completion_tokens(self) -> int | None: ...
    @property
    def cost_usd(self) -> float: ...
    @property
    def cost_estimated(self) -> bool: ...
    @property
    def key_name(self) -> str: ...


def request_spans(
    record: FinishedRequest, trace: RequestTrace, resource: Resource, scope: InstrumentationScope
) -> list[ReadableSpan]:
    """The SERVER span of ``record`` and the CLIENT span of each of its attempts."""
    end = record.started + record.elapsed_seconds
    offset = record.at_wall - end  # trio time + offset = wall time
    operation = OPERATIONS.get(record.path, "chat")
    server = SpanContext(trace.trace_id, trace.span_id, False, _SAMPLED)
    parent = None
    if trace.parent_span_id is not None:
        parent = SpanContext(trace.trace_id, trace.parent_span_id, True, _SAMPLED)
    spans = [
        ReadableSpan(
            name=f"{operation} {record.requested_model or ''}".rstrip(),
            context=server,
            parent=parent,
            resource=resource,
            attributes=_server_attributes(record, trace, operation),
            kind=SpanKind.SERVER,
            status=_server_status(record),
            start_time=_ns(record.started + offset),
            end_time=_ns(end + offset),
            instrumentation_scope=scope,
        )
    ]
    for attempt in trace.attempts:
        spans.append(
            ReadableSpan(
                name=f"{operation} {attempt.model}",
                context=SpanContext(trace.trace_id, attempt.span_id, False, _SAMPLED),
                parent=server,
                resource=resource,
                attributes=_attempt_attributes(attempt, operation),
                kind=SpanKind.CLIENT,
                status=_attempt_status(attempt),
                start_time=_ns(attempt.started + offset),
                end_time=_ns((end if attempt.ended is None else attempt.ended) + offset),
                instrumentation_scope=scope,
            )
        )
    return spans


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _server_attributes(
    record: FinishedRequest, trace: RequestTrace, operation: str
) -> dict[str, AttributeValue]:
    """The GenAI conventions' attributes of the request, the HTTP ones and the gateway's."""
    attributes: dict[str, AttributeValue] = {
        "gen_ai.operation.name": operation,
        "http.request.method": record.method,
        "url.path": record.path,
        "nexus.request_id": record.request_id,
        "nexus.key": record.key_name,
        "nexus.attempts": record.attempts,
        "nexus.stream": record.stream,
        "nexus.cost_usd": record.cost_usd,
        "nexus.cost_estimated": record.cost_estimated,
    }
    optional: dict[str, AttributeValue | None] = {
        "gen_ai.request.model": record.requested_model,
        "gen_ai.response.model": record.served_model,
        "gen_ai.provider.name": trace.attempts[-1].provider if trace.attempts else None,
        "gen_ai.usage.input_tokens": record.prompt_tokens,
        "gen_ai.usage.output_tokens": record.completion_tokens,
        "http.response.status_code": record.status,
        "error.type": record.error_code,
        "nexus.backend": record.backend,
        "nexus.route_reason": record.route_reason,
    }
    attributes.update((name, value) for name, value in optional.items() if value is not None)
    return attributes


def _server_status(record: FinishedRequest) -> Status:
    """An error when the gateway failed the request: a 5xx, no answer, a truncated stream — but
    not a client that went away."""
    if record.failed and not record.cancelled:
        return Status(StatusCode.ERROR, record.error_code or "failed")
    return _OK


def _attempt_attributes(attempt: AttemptSpan, operation: str) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {
        "gen_ai.operation.name": operation,
        "gen_ai.request.model": attempt.model,
        "gen_ai.provider.name": attempt.provider,
        "nexus.backend": attempt.backend,
        "nexus.attempt.outcome": attempt.outcome or "cancelled",
    }
    if attempt.reason is not None:
        attributes["nexus.attempt.reason"] = attempt.reason
    if attempt.status is not None:
        attributes["http.response.status_code"] = attempt.status
    if attempt.error is not None:
        attributes["error.type"] = attempt.error
    return attributes


def _attempt_status(attempt: AttemptSpan) -> Status:
    if attempt.outcome == "failure":
        return Status(StatusCode.ERROR, attempt.error or "failure")
    return _OK
