"""An OTLP/HTTP traces receiver on 127.0.0.1 for the tests: it decodes each export with
``opentelemetry-proto`` (``ExportTraceServiceRequest``) and keeps the spans; it can also hold
every export unanswered (a stuck collector) or refuse them (400). :func:`decoded` and
:func:`attributes` read an export's bytes and a span's attributes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span


def decoded(body: bytes) -> list[tuple[str, Span]]:
    """The spans of one ``ExportTraceServiceRequest``, each with its ``service.name``."""
    spans = []
    for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans:
        service = next(
            a.value.string_value
            for a in resource_spans.resource.attributes
            if a.key == "service.name"
        )
        for scope_spans in resource_spans.scope_spans:
            spans += [(service, span) for span in scope_spans.spans]
    return spans


def attributes(span: Span) -> dict[str, object]:
    """A span's attributes by key, each the value set in its ``AnyValue``."""
    values: dict[str, object] = {}
    for attribute in span.attributes:
        value = attribute.value
        values[attribute.key] = getattr(value, value.WhichOneof("value"))
    return values


@dataclass
class Received:
    """What the receiver got: spans with their resource's ``service.name``."""

    spans: list[tuple[str, Span]] = field(default_factory=list)
    exports: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Set: every export waits until ``release`` is set (a stuck collector).
    stuck: bool = False
    release: threading.Event = field(default_factory=threading.Event)
    #: Set: every export is answered 400.
    refuse: bool = False
    port: int = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def snapshot(self) -> list[tuple[str, Span]]:
        with self.lock:
            return list(self.spans)


def _handler(received: Received) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            with received.lock:
                received.exports += 1
            if received.stuck:
                received.release.wait(30)
            if received.refuse or self.path != "/v1/traces":
                self.send_response(400)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            spans = decoded(body)
            with received.lock:
                received.spans += spans
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def otlp_receiver(**options: bool) -> Iterator[Received]:
    """A running receiver (``stuck`` or ``refuse`` from ``options``), stopped on exit."""
    received = Received(**options)  # type: ignore[arg-type]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(received))
    server.daemon_threads = True
    received.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received
    finally:
        received.release.set()
        server.shutdown()
        server.server_close()
