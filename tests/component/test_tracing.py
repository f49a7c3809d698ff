"""The spans of proxied requests (docs/operations.md#tracing): a SERVER span per request with
the GenAI conventions' attributes and the gateway's, a CLIENT span per attempt as its child,
``traceparent`` accepted from the client and sent to each backend as the attempt's span."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx
import pytest
import trio
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from nexus_trio.config import parse_config
from nexus_trio.runtime.wiring import Wiring
from nexus_trio.upstream.client import upstream_http_client
from tests.component.client import CHAT, bearer
from tests.component.fake_upstream import (
    ChunkStream,
    Upstream,
    answer,
    chunk,
    refuse,
    sse,
    stream_response,
)
from tests.component.in_process import Gateway
from tests.component.readings import sample
from tests.system.polling import poll

TRACED = """
[tracing]
otlp_endpoint = "http://127.0.0.1:1"
service_name = "gw-under-test"
[health_check]
enabled = false
[[keys]]
name = "team-a"
key_env = "TEAM_A_KEY"
[[backends]]
name = "a"
url = "http://a.test"
type = "openai"
priority = 10
models = ["m"]
[[backends]]
name = "b"
url = "http://b.test"
type = "vllm"
priority = 20
models = ["m"]
[[pricing]]
backend = "a"
input_usd_per_million = 1000000.0
output_usd_per_million = 1000000.0
"""
SECRET = "sk-team-a-secret"
CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"
HEX_PARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-01")


@dataclass
class Traced:
    gateway: Gateway
    exporter: InMemorySpanExporter
    stop: Callable[[], None]
    stopped: trio.Event

    async def spans(self) -> list[ReadableSpan]:
        """Every span exported, once the export service was stopped (after its last flush)."""
        self.stop()
        await self.stopped.wait()
        return list(self.exporter.get_finished_spans())


class StuckCollector(InMemorySpanExporter):
    """A collector that takes the first batch and does not answer until released."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.entered.set()
        self.release.wait(10)
        return super().export(spans)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def traced(
    nursery: trio.Nursery, exporter: InMemorySpanExporter, request: pytest.FixtureRequest
) -> Traced:
    upstream = Upstream()
    transport = httpx.MockTransport(upstream)
    extra = getattr(request, "param", "")
    wiring = Wiring.build(
        parse_config(TRACED.replace("[tracing]\n", f"[tracing]\n{extra}")),
        {"TEAM_A_KEY": SECRET},
        upstream_http_client(transport),
        transport=transport,
        span_exporter=exporter,
    )
    export = wiring.span_export
    assert export is not None
    nursery.start_soon(wiring.disconnects.run)
    scope = trio.CancelScope()
    stopped = trio.Event()

    async def run_export() -> None:
        with scope:
            await export.run()
        stopped.set()

    nursery.start_soon(run_export)
    gateway = Gateway(app=wiring.app(), wiring=wiring, upstream=upstream)
    return Traced(gateway, exporter, scope.cancel, stopped)


def by_kind(spans: list[ReadableSpan], kind: SpanKind) -> list[ReadableSpan]:
    return [span for span in spans if span.kind is kind]


async def test_a_request_is_a_server_span_with_genai_attributes_and_a_client_span(
    traced: Traced,
) -> None:
    gateway = traced.gateway
    gateway.upstream.handlers["a.test"] = answer()
    response = await gateway.post("/v1/chat/completions", CHAT, **bearer(SECRET))
    assert response.status_code == 200
    spans = await traced.spans()
    [server] = by_kind(spans, SpanKind.SERVER)
    [client] = by_kind(spans, SpanKind.CLIENT)
    assert server.name == "chat m"
    assert server.resource.attributes["service.name"] == "gw-under-test"
    attributes = dict(server.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == "m"
    assert attributes["gen_ai.response.model"] == "m"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.usage.input_tokens"] == 3
    assert attributes["gen_ai.usage.output_tokens"] == 2
    assert attributes["http.response.status_code"] == 200
    assert attributes["nexus.backend"] == "a"
    assert attributes["nexus.key"] == "team-a"
    assert attributes["nexus.route_reason"] == "best_score"
    assert attributes["nexus.cost_usd"] == pytest.approx(5.0)
    assert server.status.status_code is StatusCode.UNSET
    assert SECRET not in repr(spans)
    assert server.parent is None  # no traceparent: a new trace
    assert client.context.trace_id == server.context.trace_id
    assert client.parent is not None
    assert client.parent.span_id == server.context.span_id
    assert dict(client.attributes or {})["nexus.attempt.outcome"] == "success"
    assert server.start_time <= client.start_time <= client.end_time <= server.end_time
    # The backend was sent the CLIENT span's context.
    [(request, _)] = gateway.upstream.requests
    sent = HEX_PARENT.fullmatch(request.headers["traceparent"])
    assert sent is not None
    assert int(sent.group(1), 16) == server.context.trace_id
    assert int(sent.group(2), 16) == client.context.span_id


async def test_the_clients_traceparent_is_continued_and_each_attempt_is_a_child(
    traced: Traced,
) -> None:
    gateway = traced.gateway
    gateway.upstream.handlers["a.test"] = refuse
    gateway.upstream.handlers["b.test"] = answer()
    parent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    response = await gateway.post(
        "/v1/chat/completions", CHAT, traceparent=parent, **bearer(SECRET)
    )
    assert response.status_code == 200
    spans = await traced.spans()
    [server] = by_kind(spans, SpanKind.SERVER)
    first, second = sorted(by_kind(spans, SpanKind.CLIENT), key=lambda span: span.start_time or 0)
    assert server.context.trace_id == int(CLIENT_TRACE, 16)
    assert server.parent is not None
    assert server.parent.span_id == int(CLIENT_SPAN, 16)
    assert server.parent.is_remote
    for span in (first, second):
        assert span.context.trace_id == int(CLIENT_TRACE, 16)
        assert span.parent is not None
        assert span.parent.span_id == server.context.span_id
    one, two = dict(first.attributes or {}), dict(second.attributes or {})
    assert (one["nexus.backend"], one["nexus.attempt.outcome"]) == ("a", "failure")
    assert one["error.type"] == "backend_unavailable"
    assert first.status.status_code is StatusCode.ERROR
    assert (two["nexus.backend"], two["nexus.attempt.reason"]) == ("b", "retry")
    assert two["http.response.status_code"] == 200
    assert dict(server.attributes or {})["gen_ai.provider.name"] == "vllm"
    # Each attempt sent its own span as the parent, in the client's trace.
    sent = [request.headers["traceparent"] for request, _ in gateway.upstream.requests]
    assert sent == [
        f"00-{CLIENT_TRACE}-{first.context.span_id:016x}-01",
        f"00-{CLIENT_TRACE}-{second.context.span_id:016x}-01",
    ]


@pytest.mark.parametrize(
    "header",
    [
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",  # three fields
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",  # zero trace id
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # version ff
        "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",  # upper case
        "not a traceparent",
    ],
)
async def test_a_malformed_traceparent_starts_a_new_trace(traced: Traced, header: str) -> None:
    gateway = traced.gateway
    gateway.upstream.handlers["a.test"] = answer()
    response = await gateway.post(
        "/v1/chat/completions", CHAT, traceparent=header, **bearer(SECRET)
    )
    assert response.status_code == 200
    [server] = by_kind(await traced.spans(), SpanKind.SERVER)
    assert server.parent is None
    assert server.context.trace_id != int(CLIENT_TRACE, 16)


async def test_an_unsampled_traceparent_is_not_traced_and_passes_untouched(
    traced: Traced,
) -> None:
    gateway = traced.gateway
    gateway.upstream.handlers["a.test"] = answer()
    parent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-00"
    await gateway.post("/v1/chat/completions", CHAT, traceparent=parent, **bearer(SECRET))
    assert await traced.spans() == []
    [(request, _)] = gateway.upstream.requests
    assert request.headers["traceparent"] == parent


async def test_a_failed_request_has_an_error_status(traced: Traced) -> None:
    gateway = traced.gateway
    gateway.upstream.handlers["a.test"] = answer(500)
    gateway.upstream.handlers["b.test"] = answer(502)
    response = await gateway.post("/v1/chat/completions", CHAT, **bearer(SECRET))
    assert response.status_code == 502
    spans = await traced.spans()
    [server] = by_kind(spans, SpanKind.SERVER)
    assert server.status.status_code is StatusCode.ERROR
    assert dict(server.attributes or {})["http.response.status_code"] == 502
    assert [span.status.status_code for span in by_kind(spans, SpanKind.CLIENT)] == [
        StatusCode.ERROR,
        StatusCode.ERROR,
    ]


async def test_a_refused_key_is_a_span_without_attempts(traced: Traced) -> None:
    response = await traced.gateway.post("/v1/chat/completions", CHAT, **bearer("wrong"))
    assert response.status_code == 401
    [server] = await traced.spans()
    attributes = dict(server.attributes or {})
    assert (attributes["http.response.status_code"], attributes["error.type"]) == (
        401,
        "invalid_api_key",
    )
    assert server.status.status_code is StatusCode.UNSET  # the client's error, not ours


async def test_a_stream_ends_its_spans_when_it_ends(traced: Traced) -> None:
    gateway = traced.gateway
    events = sse(chunk("a"), chunk("b", finish="stop"), "[DONE]")

    async def streaming(request: httpx.Request, body: bytes) -> httpx.Response:
        return stream_response(ChunkStream(events))

    gateway.upstream.handlers["a.test"] = streaming
    response = await gateway.post(
        "/v1/chat/completions", {**CHAT, "stream": True}, **bearer(SECRET)
    )
    assert response.status_code == 200
    spans = await traced.spans()
    [server] = by_kind(spans, SpanKind.SERVER)
    [client] = by_kind(spans, SpanKind.CLIENT)
    assert dict(server.attributes or {})["nexus.stream"] is True
    assert dict(client.attributes or {})["nexus.attempt.outcome"] == "success"


async def test_tracing_off_sends_no_traceparent(gateway: Gateway) -> None:
    gateway.upstream.handlers["a.test"] = answer()
    await gateway.post("/v1/chat/completions", CHAT)
    assert gateway.wiring.span_export is None
    [(request, _)] = gateway.upstream.requests
    assert "traceparent" not in request.headers


@pytest.mark.parametrize("exporter", [StuckCollector()], indirect=False)
@pytest.mark.parametrize("traced", ["max_queued_requests = 2\n"], indirect=True)
async def test_a_stuck_collector_never_delays_requests_and_drops_are_counted(
    traced: Traced, exporter: StuckCollector
) -> None:
    gateway = traced.gateway
    gateway.upstream.handlers["a.test"] = answer()
    await gateway.post("/v1/chat/completions", CHAT, **bearer(SECRET))
    # The export thread now holds the first request's spans, and does not come back.
    await trio.to_thread.run_sync(exporter.entered.wait, 5)
    assert exporter.entered.is_set()
    with trio.fail_after(2):  # a request takes milliseconds; waiting on the export, forever
        for _ in range(5):
            response = await gateway.post("/v1/chat/completions", CHAT, **bearer(SECRET))
            assert response.status_code == 200
    # Two queued; three requests of two spans each dropped.
    assert sample(gateway, "nexus_trace_spans_dropped_total", reason="queue_full") == 3 * 2
    exporter.release.set()
    with trio.fail_after(5):  # the first request's spans, then the two queued requests'
        await poll(lambda: sample(gateway, "nexus_trace_spans_exported_total") == 3 * 2)
    assert len(by_kind(await traced.spans(), SpanKind.SERVER)) == 3
