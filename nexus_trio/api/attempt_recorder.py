"""The start and the finish of every upstream attempt (docs/quality.md#outcomes).

:class:`AttemptRecorder` owns what an attempt changes outside the request: its backend's
pending count and totals, the admission queue's free slots, the quality store's outcomes and
the attempt metrics. Every attempt is started once and finished exactly once; a second finish
is ignored, so every way out of an attempt may finish it without checking.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import trio

from nexus_trio.api.admission_queue import AdmissionQueue
from nexus_trio.metrics import Metrics
from nexus_trio.quality import Outcome, QualityStore
from nexus_trio.registry import Backend, ModelResidency, Residency
from nexus_trio.residency import WATCHED_TYPES
from nexus_trio.tracing import AttemptSpan

#: What a successful attempt says of its model: the server holds it now.
LOADED = ModelResidency(Residency.LOADED)
#: What an attempt for an unloaded model says of it: the server loads it now.
LOADING = ModelResidency(Residency.LOADING)


@dataclass(eq=False)
class Attempt:
    """One upstream exchange for one agent; finished exactly once."""

    backend: Backend
    model: str
    stream: bool
    started: float
    outcome: Outcome | None = None
    ttft_ms: float | None = None
    #: The model was not loaded when the attempt began: it waits for a load
    #: (docs/quality.md#cold-starts).
    cold: bool = False
    #: Its span when the request is traced (docs/operations.md#tracing).
    span: AttemptSpan | None = None


class AttemptRecorder:
    """Records attempts in the registry's counters, the queue, the quality store and metrics."""

    def __init__(self, queue: AdmissionQueue, quality: QualityStore, metrics: Metrics) -> None:
        self._queue = queue
        self._quality = quality
        self._metrics = metrics

    def start(self, backend: Backend, model: str, *, stream: bool) -> Attempt:
        """An attempt to ``backend`` for ``model`` begins: it holds one of its slots."""
        backend.counters.pending += 1
        backend.counters.requests_total += 1
        state = backend.residency_of(model)
        if state is Residency.UNLOADED:  # this request makes the server load it
            backend.residency[model] = LOADING
        return Attempt(
            backend=backend,
            model=model,
            stream=stream,
            started=trio.current_time(),
            cold=state.cold,
        )

    def finish(
        self, attempt: Attempt, outcome: Outcome, *, completion_tokens: int | None = None
    ) -> None:
        """Record how an attempt ended; later calls for the same attempt are ignored."""
        if attempt.outcome is not None:
            return
        attempt.outcome = outcome
        counters = attempt.backend.counters
        counters.pending -= 1
        self._queue.slot_freed(attempt.backend)
        now = trio.current_time()
        if attempt.span is not None:
            attempt.span.end(now, outcome)
        name = attempt.backend.name
        if outcome is Outcome.SUCCESS:
            self._succeeded(attempt, now, completion_tokens)
        ttft_ms = None if attempt.cold else attempt.ttft_ms
        self._quality.record_outcome(
            (name, attempt.model),
            outcome,
            now=now,
            wall=time.time(),
            ttft_ms=ttft_ms,
            streaming=attempt.stream,
        )
        self._metrics.upstream_attempts.labels(name, attempt.model, outcome).inc()
        if ttft_ms is not None:
            self._metrics.agent_ttft.labels(name, attempt.model).observe(ttft_ms / 1000.0)

    def _succeeded(self, attempt: Attempt, now: float, completion_tokens: int | None) -> None:
        """Fold a success into the backend's latencies, or record its cold start; either way
        the model is loaded there now (docs/routing.md#residency)."""
        backend, model = attempt.backend, attempt.model
        if attempt.cold:
            self._cold_start(attempt, now)
        else:
            backend.counters.observe_success(
                latency_ms=(now - attempt.started) * 1000.0,
                ttft_ms=attempt.ttft_ms,
                completion_tokens=None if attempt.stream else completion_tokens,
            )
        untold = model not in backend.residency and backend.config.type in WATCHED_TYPES
        if untold or backend.residency_of(model).cold:
            backend.residency[model] = LOADED

    def _cold_start(self, attempt: Attempt, now: float) -> None:
        """A successful attempt that waited for its model: its time to first token (streams)
        or to the answer is a cold start, not the backend's latency."""
        waited_ms = attempt.ttft_ms
        if waited_ms is None:
            waited_ms = (now - attempt.started) * 1000.0
        backend = attempt.backend
        backend.cold_starts += 1
        backend.cold_start_ms_total += waited_ms
        self._metrics.cold_start.labels(backend.name, attempt.model).observe(waited_ms / 1000.0)
