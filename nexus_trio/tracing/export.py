"""Exporting the spans of traced requests without the event loop ever waiting on it
(docs/operations.md#tracing).

Theory of operation. :meth:`SpanExport.submit` is the request sink: it puts a traced request's
record on a bounded deque, or — the deque full because the collector is slow or down — drops it
and counts its spans (``queue_full``). It never blocks and never does I/O. :meth:`SpanExport.run`
is the service: every ``interval`` seconds, or at once when a batch is waiting, it takes up to
a batch of records off the deque and hands them to a worker thread, which builds their spans
(:func:`~nexus_trio.tracing.spans.request_spans`) and exports them with the OTLP/HTTP exporter
(its own retries end by its timeout). While the thread works the deque fills; only the service
task awaits the thread. A batch the exporter refuses or cannot send is dropped and counted
(``export_failed``): spans are telemetry, never worth the gateway's memory. When the service is
cancelled (the end of the drain) what is queued gets one more export, bounded by
``flush_seconds``; a thread still exporting then is abandoned.

Built on the SDK's span data and exporter, not its ``BatchSpanProcessor``: that one drops spans
when its queue is full but counts nothing, and takes each span on the thread that ends it.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Sequence

import trio
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from nexus_trio.config import TracingConfig
from nexus_trio.tracing.spans import FinishedRequest, request_spans

log = logging.getLogger("nexus_trio.tracing")

#: Records taken off the queue for one export.
BATCH_REQUESTS = 256
#: Seconds one export may take, its retries included.
EXPORT_TIMEOUT_SECONDS = 10.0

#: ``(reason, spans)``: spans dropped, ``queue_full`` or ``export_failed``.
DropCounter = Callable[[str, int], None]


class SpanExport:
    """The bounded queue of traced requests and the service that exports their spans."""

    def __init__(
        self,
        exporter: SpanExporter,
        resource: Resource,
        *,
        on_dropped: DropCounter,
        on_exported: Callable[[int], None],
        max_queued: int,
        interval: float = 1.0,
        flush_seconds: float = 1.0,
    ) -> None:
        """``exporter`` is called from a worker thread only; ``on_dropped`` and
        ``on_exported`` count spans on the event loop."""
        self._exporter = exporter
        self._resource = resource
        self._scope = InstrumentationScope("nexus_trio")
        self._on_dropped = on_dropped
        self._on_exported = on_exported
        self._queue: collections.deque[FinishedRequest] = collections.deque()
        self._max_queued = max_queued
        self._interval = interval
        self._flush_seconds = flush_seconds
        self._batch_waiting = trio.Event()
        self._failing = False

    def submit(self, record: FinishedRequest) -> None:
        """The request sink: queue ``record`` if it was traced; drop it, counted, when the queue
        is full. Synchronous and O(1); never blocks."""
        trace = record.trace
        if trace is None:
            return
        queue = self._queue
        if len(queue) >= self._max_queued:
            self._on_dropped("queue_full", 1 + len(trace.attempts))
            return
        queue.append(record)
        if len(queue) >= BATCH_REQUESTS:
            self._batch_waiting.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Export what is queued every ``interval`` (sooner when a batch waits) until cancelled;
        then one last export, bounded by ``flush_seconds``; then shut the exporter down."""
        task_status.started()
        try:
            while True:
                with trio.move_on_after(self._interval):
                    await self._batch_waiting.wait()
                self._batch_waiting = trio.Event()
                await self._export_queued()
        finally:
            with trio.move_on_after(self._flush_seconds, shield=True):
                await self._export_queued()
            self._exporter.shutdown()

    async def _export_queued(self) -> None:
        """Export the queue in batches until it is empty; count what each batch became."""
        queue = self._queue
        while queue:
            batch = [queue.popleft() for _ in range(min(len(queue), BATCH_REQUESTS))]
            spans, ok = await trio.to_thread.run_sync(self._export, batch, abandon_on_cancel=True)
            if ok:
                self._on_exported(spans)
            else:
                self._on_dropped("export_failed", spans)
            self._note(ok)

    def _export(self, batch: Sequence[FinishedRequest]) -> tuple[int, bool]:
        """In a worker thread: build ``batch``'s spans and export them; (spans, exported)."""
        spans = []
        for record in batch:
            assert record.trace is not None  # submit() queues traced requests only
            spans += request_spans(record, record.trace, self._resource, self._scope)
        try:
            result = self._exporter.export(spans)
        except Exception:
            log.exception("the span exporter failed")
            return len(spans), False
        return len(spans), result is SpanExportResult.SUCCESS

    def _note(self, ok: bool) -> None:
        """Log when exports start failing and when they work again, not every batch."""
        if ok == self._failing:
            self._failing = not ok
            if ok:
                log.info("span export works again")
            else:
                log.warning("span export failed: spans are dropped until the collector answers")


def otlp_export(
    config: TracingConfig,
    *,
    exporter: SpanExporter | None = None,
    on_dropped: DropCounter,
    on_exported: Callable[[int], None],
) -> SpanExport:
    """The export of ``[tracing]``: OTLP/HTTP (protobuf) to ``otlp_endpoint``, unless another
    ``exporter`` is given.

    The exporter also reads the ``OTEL_EXPORTER_OTLP_TRACES_*`` variables it documents (headers,
    certificates, compression), and the resource ``OTEL_RESOURCE_ATTRIBUTES``; ``service.name``
    is ``service_name``.
    """
    assert config.otlp_endpoint is not None
    if exporter is None:
        exporter = OTLPSpanExporter(endpoint=config.otlp_endpoint, timeout=EXPORT_TIMEOUT_SECONDS)
    resource = Resource.create({"service.name": config.service_name})
    return SpanExport(
        exporter,
        resource,
        on_dropped=on_dropped,
        on_exported=on_exported,
        max_queued=config.max_queued_requests,
    )
