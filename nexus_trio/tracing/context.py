"""A request's trace context (docs/operations.md#tracing): the W3C ``traceparent`` it arrived
with, the ids of its spans, its attempts, and the ``traceparent`` each attempt sends.

:meth:`Sampler.begin` decides once, when a proxy request arrives, whether it is traced: a valid
``traceparent`` from the client decides by its ``sampled`` flag (the request's span continues the
client's trace); without one, or with a malformed one, a new trace is started and sampled by
``[tracing] sample_ratio`` on its trace id (as OpenTelemetry's ``TraceIdRatioBased`` does). A
traced request carries a :class:`RequestTrace`; each of its attempts adds an
:class:`AttemptSpan`, whose id is the parent-id of the ``traceparent`` sent to the backend.
Nothing here does I/O, and nothing here runs for a request that is not traced.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_SAMPLED = 0x01
_RATIO_BITS = 1 << 64


@dataclass(frozen=True, slots=True)
class TraceParent:
    """A valid W3C ``traceparent``: the client's trace, its span, and its sampled flag."""

    trace_id: int
    span_id: int
    sampled: bool


def parse_traceparent(headers: Iterable[tuple[bytes, bytes]]) -> TraceParent | None:
    """The request's ``traceparent``, or None when it has none, several, or a malformed one.

    Follows W3C Trace Context level 1: version ``ff`` and all-zero ids are invalid, version
    ``00`` has exactly four fields, a later version may have more after them.
    """
    found: bytes | None = None
    for name, value in headers:
        if name == b"traceparent":
            if found is not None:
                return None
            found = value
    if found is None:
        return None
    match = _TRACEPARENT.fullmatch(found.strip(b" \t"))
    if match is None:
        return None
    version, trace_hex, span_hex, flags_hex, rest = match.groups()
    if version == b"ff" or (version == b"00" and rest is not None):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if trace_id == 0 or span_id == 0:
        return None
    return TraceParent(trace_id, span_id, sampled=bool(int(flags_hex, 16) & _SAMPLED))


def traceparent(trace_id: int, span_id: int) -> bytes:
    """The ``traceparent`` value naming span ``span_id`` of trace ``trace_id``, sampled."""
    return b"00-%032x-%016x-01" % (trace_id, span_id)


@dataclass(eq=False, slots=True)
class AttemptSpan:
    """One attempt of a traced request: the CLIENT span, filled in as the attempt goes."""

    span_id: int
    backend: str
    #: The model sent to the backend, and the backend's type (``gen_ai.provider.name``).
    model: str
    provider: str
    #: Why this attempt was made: the routing reason, ``retry`` or ``fallback``.
    reason: str | None
    #: ``trio.current_time()`` at its start and its end (None until it ended).
    started: float
    ended: float | None = None
    #: ``success``, ``failure``, ``client_error`` or ``cancelled`` once it ended.
    outcome: str | None = None
    #: The backend's HTTP status, when one arrived.
    status: int | None = None
    #: The error code the attempt failed with, when it raised one.
    error: str | None = None

    def end(self, now: float, outcome: str) -> None:
        """The attempt ended at ``now`` with ``outcome``."""
        self.ended = now
        self.outcome = outcome


@dataclass(eq=False, slots=True)
class RequestTrace:
    """A traced request: its trace, its SERVER span and the client's span it continues."""

    trace_id: int
    span_id: int
    #: The client's span (its ``traceparent``), the parent of the SERVER span; None at a root.
    parent_span_id: int | None
    attempts: list[AttemptSpan] = field(default_factory=list)

    def attempt(
        self, backend: str, model: str, provider: str, reason: str | None, now: float
    ) -> AttemptSpan:
        """A new attempt's span, started at ``now``."""
        span = AttemptSpan(random.getrandbits(64) or 1, backend, model, provider, reason, now)
        self.attempts.append(span)
        return span

    def failed(self, code: str) -> None:
        """The last attempt failed with the error ``code``."""
        if self.attempts:
            self.attempts[-1].error = code

    def propagate(
        self, span: AttemptSpan, headers: list[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, bytes]]:
        """``headers`` with the attempt's ``traceparent`` in place of any the client sent."""
        out = [pair for pair in headers if pair[0] != b"traceparent"]
        out.append((b"traceparent", traceparent(self.trace_id, span.span_id)))
        return out


class Sampler:
    """Decides which proxy requests are traced; ``ratio`` reads ``sample_ratio`` as reloaded."""

    def __init__(self, ratio: Callable[[], float]) -> None:
        self._ratio = ratio

    def begin(self, headers: Iterable[tuple[bytes, bytes]]) -> RequestTrace | None:
        """The trace of a request with ``headers``, or None when it is not traced."""
        parent = parse_traceparent(headers)
        span_id = random.getrandbits(64) or 1
        if parent is not None:
            if not parent.sampled:
                return None
            return RequestTrace(parent.trace_id, span_id, parent.span_id)
        trace_id = random.getrandbits(128) or 1
        if (trace_id & (_RATIO_BITS - 1)) >= self._ratio() * _RATIO_BITS:
            return None
        return RequestTrace(trace_id, span_id, None)

    def refused(self, trace: RequestTrace) -> RequestTrace | None:
        """The trace of a request refused before any route ran (no key, a wrong one, a bad
        target): a client's trace is not continued — an unauthenticated client may neither force
        sampling nor add spans to a trace of its choosing — and the request is sampled by
        ``sample_ratio`` as one without ``traceparent``."""
        if trace.parent_span_id is None:
            return trace
        return self.begin(())
