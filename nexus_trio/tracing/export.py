"""Exporting the spans of traced requests without the event loop ever waiting on it
(docs/operations.md#tracing).

Theory of operation. :meth:`SpanExport.submit` is the request sink: it puts a traced request's
record on a bounded deque, or — the deque full because the collector is slow or down — drops it
and counts its spans (``queue_full``). It never blocks and never does I/O. :meth:`SpanExport.run`
is the service: every ``interval`` seconds, or at once when a batch is waiting, it takes up to
a batch of records off the deque and hands them to a worker thread, which encodes their spans
(:func:`~nexus_trio.tracing.spans.request_spans`, :mod:`~nexus_trio.tracing.otlp`) and sends
them to the collector (:class:`OTLPSender`: one POST, bounded by its timeout). While the thread
works the deque fills; only the service task awaits the thread. A batch the collector refuses or
does not answer is dropped and counted (``export_failed``): spans are telemetry, never worth the
gateway's memory or a retry's wait. When the service is cancelled (the end of the drain) what is
queued gets one more export, bounded by ``flush_seconds``; a thread still exporting then is
abandoned.

Not the SDK's ``BatchSpanProcessor`` and OTLP exporter: the processor drops spans when its queue
is full but counts nothing, and the exporter's encoding alone cost more CPU per request than the
rest of the gateway (bench/README.md's tracing section).
"""

from __future__ import annotations

import collections
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol
from urllib.parse import unquote

import httpx
import trio

from nexus_trio.config import TracingConfig
from nexus_trio.errors import ConfigError
from nexus_trio.tracing import otlp
from nexus_trio.tracing.spans import FinishedRequest, request_spans

log = logging.getLogger("nexus_trio.tracing")

#: Records taken off the queue for one export.
BATCH_REQUESTS = 256
#: Seconds one export may take.
EXPORT_TIMEOUT_SECONDS = 10.0
#: The variables holding the collector's headers (``key=value,...``), the first set wins.
HEADERS_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEADER_VALUE = re.compile(r"[\x20-\x7e]*")


class Sender(Protocol):
    """Sends one encoded export to the collector; called from a worker thread only."""

    def send(self, body: bytes) -> bool:
        """POST ``body`` (an ``ExportTraceServiceRequest``); whether the collector took it."""
        ...

    def close(self) -> None:
        """Release the connections."""
        ...


class OTLPSender:
    """OTLP/HTTP with protobuf bodies to one endpoint: one POST per export, no retry."""

    def __init__(self, endpoint: str, headers: Mapping[str, str], timeout: float) -> None:
        self._endpoint = endpoint
        headers = {**headers, "content-type": "application/x-protobuf"}
        self._client = httpx.Client(headers=headers, timeout=timeout, trust_env=False)

    def send(self, body: bytes) -> bool:
        """Blocks up to the timeout; a transport error or a non-2xx answer is False."""
        try:
            response = self._client.post(self._endpoint, content=body)
        except httpx.HTTPError:
            return False
        return response.is_success

    def close(self) -> None:
        self._client.close()


def collector_headers(env: Mapping[str, str]) -> dict[str, str]:
    """The collector's headers from ``OTEL_EXPORTER_OTLP_TRACES_HEADERS`` (else
    ``OTEL_EXPORTER_OTLP_HEADERS``): ``key=value`` pairs, comma-separated, values URL-encoded.

    Raises:
        ConfigError: the variable is malformed; the message names it, never its value.
    """
    name = next((n for n in HEADERS_VARIABLES if env.get(n, "").strip()), None)
    if name is None:
        return {}
    headers = {}
    for pair in env[name].split(","):
        key, equals, value = pair.partition("=")
        key, value = key.strip(), unquote(value.strip())
        if not (equals and _HEADER_NAME.fullmatch(key) and _HEADER_VALUE.fullmatch(value)):
            raise ConfigError(
                f"${name} must be comma-separated key=value pairs, each value printable once "
                "URL-decoded (docs/operations.md#tracing)"
            )
        headers[key.lower()] = value
    return headers


#: ``(reason, spans)``: spans dropped, ``queue_full`` or ``export_failed``.
DropCounter = Callable[[str, int], None]


class SpanExport:
    """The bounded queue of traced requests and the service that exports their spans."""

    def __init__(
        self,
        sender: Sender,
        service_name: str,
        *,
        on_dropped: DropCounter,
        on_exported: Callable[[int], None],
        max_queued: int,
        interval: float = 1.0,
        flush_seconds: float = 1.0,
    ) -> None:
        """``sender`` is called from a worker thread only; ``on_dropped`` and ``on_exported``
        count spans on the event loop."""
        self._sender = sender
        self._prefix = otlp.export_prefix(service_name, "nexus_trio")
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
        then one last export, bounded by ``flush_seconds``; then close the sender."""
        task_status.started()
        try:
            while True:
                with trio.move_on_after(self._interval) as waited:
                    await self._batch_waiting.wait()
                self._batch_waiting = trio.Event()
                await self._export_queued(everything=waited.cancelled_caught)
        finally:
            with trio.move_on_after(self._flush_seconds, shield=True):
                await self._export_queued(everything=True)
            self._sender.close()

    async def _export_queued(self, *, everything: bool) -> None:
        """Export full batches while they wait, and with ``everything`` (the interval is over,
        or the last export) the records queued when it began too; count what each batch became.

        Records that arrive during an export wait for a full batch or the next interval: a
        busy gateway posts full batches, never one small batch after each export.
        """
        queue = self._queue
        due = len(queue) if everything else 0
        while len(queue) >= BATCH_REQUESTS or due > 0:
            batch = [queue.popleft() for _ in range(min(len(queue), BATCH_REQUESTS))]
            due -= len(batch)
            spans, ok = await trio.to_thread.run_sync(self._export, batch, abandon_on_cancel=True)
            if ok:
                self._on_exported(spans)
            else:
                self._on_dropped("export_failed", spans)
            self._note(ok)

    def _export(self, batch: Sequence[FinishedRequest]) -> tuple[int, bool]:
        """In a worker thread: encode ``batch``'s spans and send them; (spans, exported)."""
        spans = []
        for record in batch:
            assert record.trace is not None  # submit() queues traced requests only
            spans += request_spans(record, record.trace)
        try:
            return len(spans), self._sender.send(otlp.export_request(self._prefix, spans))
        except Exception:
            log.exception("sending spans to the collector failed")
            return len(spans), False

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
    env: Mapping[str, str],
    *,
    sender: Sender | None = None,
    on_dropped: DropCounter,
    on_exported: Callable[[int], None],
) -> SpanExport:
    """The export of ``[tracing]``: OTLP/HTTP to ``otlp_endpoint`` with the collector's headers
    from ``env`` (:func:`collector_headers`), unless another ``sender`` is given.

    Raises:
        ConfigError: the headers variable is malformed.
    """
    assert config.otlp_endpoint is not None
    if sender is None:
        headers = collector_headers(env)
        sender = OTLPSender(config.otlp_endpoint, headers, EXPORT_TIMEOUT_SECONDS)
    return SpanExport(
        sender,
        config.service_name,
        on_dropped=on_dropped,
        on_exported=on_exported,
        max_queued=config.max_queued_requests,
    )
