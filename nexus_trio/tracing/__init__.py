"""OpenTelemetry traces of proxy requests (docs/operations.md#tracing).

What it owns: the W3C trace context of a request — the ``traceparent`` a client sends, whether
the request is sampled, the ids of its spans and the ``traceparent`` each attempt sends
(:mod:`~nexus_trio.tracing.context`); the spans of a finished request, a SERVER span with the
GenAI semantic conventions' attributes and a CLIENT span per attempt
(:mod:`~nexus_trio.tracing.spans`) and their protobuf encoding (:mod:`~nexus_trio.tracing.otlp`);
and their export over OTLP/HTTP from a worker thread through a bounded queue that drops, and
counts, what a slow or absent collector cannot take (:mod:`~nexus_trio.tracing.export`).

What it never touches: the request path's state, the registry, metrics (drops are counted
through the callbacks it is given) or the network outside the exporter's thread. It reads a
finished request's record, never the request; prompts, completions and key secrets are not in
any span — only the key's configured name.
"""

from nexus_trio.tracing.context import AttemptSpan, RequestTrace, Sampler, parse_traceparent
from nexus_trio.tracing.export import Sender, SpanExport, otlp_export

__all__ = [
    "AttemptSpan",
    "RequestTrace",
    "Sampler",
    "Sender",
    "SpanExport",
    "otlp_export",
    "parse_traceparent",
]
