"""A finished request's spans (docs/operations.md#tracing): one SERVER span for the request,
with the OpenTelemetry GenAI semantic conventions' attributes and the gateway's own, and one
CLIENT span per attempt, its child.

:func:`request_spans` runs in the export worker thread, never on the event loop: it reads a
finished request's record (any object with the fields of :class:`FinishedRequest`) and its
:class:`~nexus_trio.tracing.context.RequestTrace`, complete once the request was accounted
for, and returns its spans encoded (:mod:`~nexus_trio.tracing.otlp`). The spans are built from
what was recorded, so the request path holds no span object and pays nothing when a request is
not traced. Times are ``trio.current_time()`` readings, placed on the wall clock by the
record's end (``at_wall``).
"""

from __future__ import annotations

from typing import Protocol

from nexus_trio.tracing import otlp
from nexus_trio.tracing.context import AttemptSpan, RequestTrace
from nexus_trio.tracing.otlp import AttributeValue, attribute, repeated_attribute

#: ``gen_ai.operation.name`` by the route of the request.
OPERATIONS = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "text_completion",
    "/v1/embeddings": "embeddings",
    "/v1/messages": "chat",
    "/v1/responses": "chat",
}


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
    @property
    def unauthenticated(self) -> bool: ...


def request_spans(record: FinishedRequest, trace: RequestTrace) -> list[bytes]:
    """The SERVER span of ``record`` and the CLIENT span of each of its attempts, encoded."""
    end = record.started + record.elapsed_seconds
    offset = record.at_wall - end  # trio time + offset = wall time
    operation = OPERATIONS.get(record.path, "chat")
    spans = [
        otlp.span(
            trace_id=trace.trace_id,
            span_id=trace.span_id,
            parent_span_id=trace.parent_span_id,
            remote_parent=trace.parent_span_id is not None,
            name=f"{operation} {record.requested_model or ''}".rstrip(),
            kind=otlp.SERVER,
            start_ns=_ns(record.started + offset),
            end_ns=_ns(end + offset),
            attributes=_server_attributes(record, trace, operation),
            error=_server_error(record),
        )
    ]
    for attempt in trace.attempts:
        spans.append(
            otlp.span(
                trace_id=trace.trace_id,
                span_id=attempt.span_id,
                parent_span_id=trace.span_id,
                remote_parent=False,
                name=f"{operation} {attempt.model}",
                kind=otlp.CLIENT,
                start_ns=_ns(attempt.started + offset),
                end_ns=_ns((end if attempt.ended is None else attempt.ended) + offset),
                attributes=_attempt_attributes(attempt, operation),
                error=(attempt.error or "failure") if attempt.outcome == "failure" else None,
            )
        )
    return spans


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _server_attributes(record: FinishedRequest, trace: RequestTrace, operation: str) -> list[bytes]:
    """The GenAI conventions' attributes of the request, the HTTP ones and the gateway's."""
    attributes = [
        repeated_attribute("gen_ai.operation.name", operation),
        repeated_attribute("http.request.method", record.method),
        repeated_attribute("url.path", record.path),
        attribute("nexus.request_id", record.request_id),
        repeated_attribute("nexus.attempts", record.attempts),
        repeated_attribute("nexus.stream", record.stream),
        attribute("nexus.cost_usd", record.cost_usd),
        repeated_attribute("nexus.cost_estimated", record.cost_estimated),
    ]
    repeated: tuple[tuple[str, AttributeValue | None], ...] = (
        ("gen_ai.request.model", record.requested_model),
        ("gen_ai.response.model", record.served_model),
        ("gen_ai.provider.name", trace.attempts[-1].provider if trace.attempts else None),
        ("http.response.status_code", record.status),
        ("error.type", record.error_code),
        ("nexus.backend", record.backend),
        ("nexus.route_reason", record.route_reason),
        ("nexus.key", None if record.unauthenticated else record.key_name),
    )
    attributes += [repeated_attribute(key, value) for key, value in repeated if value is not None]
    for key, tokens in (
        ("gen_ai.usage.input_tokens", record.prompt_tokens),
        ("gen_ai.usage.output_tokens", record.completion_tokens),
    ):
        if tokens is not None:
            attributes.append(attribute(key, tokens))
    return attributes


def _server_error(record: FinishedRequest) -> str | None:
    """The ERROR status's message when the gateway failed the request: a 5xx, no answer, a
    truncated stream — but not a client that went away."""
    if record.failed and not record.cancelled:
        return record.error_code or "failed"
    return None


def _attempt_attributes(attempt: AttemptSpan, operation: str) -> list[bytes]:
    attributes = [
        repeated_attribute("gen_ai.operation.name", operation),
        repeated_attribute("gen_ai.request.model", attempt.model),
        repeated_attribute("gen_ai.provider.name", attempt.provider),
        repeated_attribute("nexus.backend", attempt.backend),
        repeated_attribute("nexus.attempt.outcome", attempt.outcome or "cancelled"),
    ]
    for key, value in (
        ("nexus.attempt.reason", attempt.reason),
        ("http.response.status_code", attempt.status),
        ("error.type", attempt.error),
    ):
        if value is not None:
            attributes.append(repeated_attribute(key, value))
    return attributes
