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
from nexus_trio.registry import Backend
from nexus_trio.tracing import AttemptSpan


@dataclass(eq=False)
class Attempt:
    """One upstream exchange for one agent; finished exactly once."""

    backend: Backend
    model: str
    stream: bool
    started: float
    outcome: Outcome | None = None
    ttft_ms: float | None = None
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
        return Attempt(backend=backend, model=model, stream=stream, started=trio.current_time())

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
        if outcome is Outcome.SUCCESS:
            counters.observe_success(
                latency_ms=(now - attempt.started) * 1000.0,
                ttft_ms=attempt.ttft_ms,
                completion_tokens=None if attempt.stream else completion_tokens,
            )
        name = attempt.backend.name
        self._quality.record_outcome(
            (name, attempt.model),
            outcome,
            now=now,
            wall=time.time(),
            ttft_ms=attempt.ttft_ms,
            streaming=attempt.stream,
        )
        self._metrics.upstream_attempts.labels(name, attempt.model, outcome).inc()
        if attempt.ttft_ms is not None:
            self._metrics.agent_ttft.labels(name, attempt.model).observe(attempt.ttft_ms / 1000.0)
