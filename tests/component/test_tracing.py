"""The spans of proxied requests (docs/operations.md#tracing): a SERVER span per request with
the GenAI conventions' attributes and the gateway's, a CLIENT span per attempt as its child,
``traceparent`` accepted from the client and sent to each backend as the attempt's span."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest
import trio
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

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
from tests.system.otlp_receiver import attributes, decoded
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
class Collector:
    """The sender of the export service: decodes each export (``opentelemetry-proto``)."""

    exports: list[list[tuple[str, Span]]] = field(default_factory=list)

    def send(self, body: bytes) -> bool:
        self.exports.append(decoded(body))
        return True

    def close(self) -> None:
        pass

    def spans(self) -> list[Span]:
        return [span for export in self.exports for _, span in export]


class StuckCollector(Collector):
    """A collector that takes the first export and does not answer until released."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def send(self, body: bytes) -> bool:
        self.entered.set()
        self.release.wait(10)
        return super().send(body)


@dataclass
class Traced:
    gateway: Gateway
    collector: Collector
    stop: Callable[[], None]
    stopped: trio.Event

    async def spans(self) -> list[Span]:
        """Every span exported, once the export service was stopped (after its last flush)."""
        self.stop()
        await self.stopped.wait()
        return self.collector.spans()


@pytest.fixture
def collector() -> Collector:
    return Collector()


@pytest.fixture
async def traced(
    nursery: trio.Nursery, collector: Collector, request: pytest.FixtureRequest
) -> Traced:
    upstream = Upstream()
    transport = httpx.MockTransport(upstream)
    extra = getattr(request, "param", "")
    wiring = Wiring.build(
        parse_config(TRACED.replace("[tracing]\n", f"[tracing]\n{extra}")),
        {"TEAM_A_KEY": SECRET},
        upstream_http_client(transport),
        transport=transport,
        span_sender=collector,
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
    return Traced(gateway, collector, scope.cancel, stopped)


SERVER, CLIENT = Span.SPAN_KIND_SERVER, Span.SPAN_KIND_CLIENT
UNSET, ERROR = Status.STATUS_CODE_UNSET, Status.STATUS_CODE_ERROR
REMOTE_PARENT = 0x200


def by_kind(spans: list[Span], kind: int) -> list[Span]:
    return [span for span in spans if span.kind == kind]


def as_int(span_or_trace_id: bytes) -> int:
    return int.from_bytes(span_or_trace_id, "big")


async def test_a_request_is_a_server_span_with_genai_attributes_and_a_client_span(
    traced: Traced,
) -> None:
    gateway = traced.gateway
    gateway.upstream.handlers["a.test"] = answer()
    response = await gateway.post("/v1/chat/completions", CHAT, **bearer(SECRET))
    assert response.status_code == 200
    spans = await traced.spans()
    [server] = by_kind(spans, SERVER)
    [client] = by_kind(spans, CLIENT)
    assert server.name == "chat m"
    assert {service for export in traced.collector.exports for service, _ in export} == {
        "gw-under-test"
    }
    values = attributes(server)
    assert values["gen_ai.operation.name"] == "chat"
    assert values["gen_ai.request.model"] == "m"
    assert values["gen_ai.response.model"] == "m"
    assert values["gen_ai.provider.name"] == "openai"
    assert values["gen_ai.usage.input_tokens"] == 3
    assert values["gen_ai.usage.output_tokens"] == 2
    assert values["http.response.status_code"] == 200
    assert values["nexus.backend"] == "a"
    assert values["nexus.key"] == "team-a"
    assert values["nexus.route_reason"] == "best_score"
    assert values["nexus.cost_usd"] == pytest.approx(5.0)
    assert values["nexus.stream"] is False
    assert server.status.code == UNSET
    assert SECRET not in repr(spans)
    assert server.parent_span_id == b""  # no traceparent: a new trace
    assert not server.flags & REMOTE_PARENT
    assert client.trace_id == server.trace_id
    assert client.parent_span_id == server.span_id
    assert attributes(client)["nexus.attempt.outcome"] == "success"
    assert (
        server.start_time_unix_nano
        <= client.start_time_unix_nano
        <= client.end_time_unix_nano
        <= server.end_time_unix_nano
    )
    # The backend was sent the CLIENT span's context.
    [(request, _)] = gateway.upstream.requests
    sent = HEX_PARENT.fullmatch(request.headers["traceparent"])
    assert sent is not None
    assert int(sent.group(1), 16) == as_int(server.trace_id)
    assert int(sent.group(2), 16) == as_int(client.span_id)


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
    [server] = by_kind(spans, SERVER)
    first, second = sorted(by_kind(spans, CLIENT), key=lambda span: span.start_time_unix_nano)
    assert server.trace_id.hex() == CLIENT_TRACE
    assert server.parent_span_id.hex() == CLIENT_SPAN
    assert server.flags & REMOTE_PARENT
    for span in (first, second):
        assert span.trace_id.hex() == CLIENT_TRACE
        assert span.parent_span_id == server.span_id
    one, two = attributes(first), attributes(second)
    assert (one["nexus.backend"], one["nexus.attempt.outcome"]) == ("a", "failure")
    assert (one["nexus.attempt.reason"], one["error.type"]) == ("best_score", "backend_unavailable")
    assert first.status.code == ERROR
    assert (two["nexus.backend"], two["nexus.attempt.reason"]) == ("b", "retry")
    assert two["http.response.status_code"] == 200
    assert attributes(server)["gen_ai.provider.name"] == "vllm"
    # Each attempt sent its own span as the parent, in the client's trace.
    sent = [request.headers["traceparent"] for request, _ in gateway.upstream.requests]
    assert sent == [
        f"00-{CLIENT_TRACE}-{first.span_id.hex()}-01",
        f"00-{CLIENT_TRACE}-{second.span_id.hex()}-01",
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
    [server] = by_kind(await traced.spans(), SERVER)
    assert server.parent_span_id == b""
    assert server.trace_id.hex() != CLIENT_TRACE


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
    [server] = by_kind(spans, SERVER)
    assert server.status.code == ERROR
    assert attributes(server)["http.response.status_code"] == 502
    assert [span.status.code for span in by_kind(spans, CLIENT)] == [ERROR, ERROR]


async def test_a_refused_key_is_a_span_without_attempts(traced: Traced) -> None:
    response = await traced.gateway.post("/v1/chat/completions", CHAT, **bearer("wrong"))
    assert response.status_code == 401
    [server] = await traced.spans()
    values = attributes(server)
    assert (values["http.response.status_code"], values["error.type"]) == (401, "invalid_api_key")
    assert "nexus.key" not in values  # it presented none that is valid
    assert server.status.code == UNSET  # the client's error, not ours


async def test_a_refused_request_does_not_continue_the_clients_trace(traced: Traced) -> None:
    gateway = traced.gateway
    never = TRACED.replace("[tracing]\n", "[tracing]\nsample_ratio = 0.0\n")
    gateway.wiring.apply_config(parse_config(never))
    parent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    refused = await gateway.post("/v1/chat/completions", CHAT, traceparent=parent, **bearer("x"))
    assert refused.status_code == 401
    gateway.upstream.handlers["a.test"] = answer()
    served = await gateway.post("/v1/chat/completions", CHAT, traceparent=parent, **bearer(SECRET))
    assert served.status_code == 200
    # The refused request was sampled by the ratio (0 here), not by the client's flag; the
    # authenticated one continues the client's trace.
    [server] = by_kind(await traced.spans(), SERVER)
    assert attributes(server)["http.response.status_code"] == 200
    assert server.trace_id.hex() == CLIENT_TRACE


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
    [server] = by_kind(spans, SERVER)
    [client] = by_kind(spans, CLIENT)
    assert attributes(server)["nexus.stream"] is True
    assert attributes(client)["nexus.attempt.outcome"] == "success"
    assert client.end_time_unix_nano <= server.end_time_unix_nano


async def test_tracing_off_sends_no_traceparent(gateway: Gateway) -> None:
    gateway.upstream.handlers["a.test"] = answer()
    await gateway.post("/v1/chat/completions", CHAT)
    assert gateway.wiring.span_export is None
    [(request, _)] = gateway.upstream.requests
    assert "traceparent" not in request.headers


@pytest.mark.parametrize("collector", [StuckCollector()])
@pytest.mark.parametrize("traced", ["max_queued_requests = 2\n"], indirect=True)
async def test_a_stuck_collector_never_delays_requests_and_drops_are_counted(
    traced: Traced, collector: StuckCollector
) -> None:
    gateway = traced.gateway
    gateway.upstream.handlers["a.test"] = answer()
    await gateway.post("/v1/chat/completions", CHAT, **bearer(SECRET))
    # The export thread now holds the first request's spans, and does not come back.
    await trio.to_thread.run_sync(collector.entered.wait, 5)
    assert collector.entered.is_set()
    with trio.fail_after(2):  # a request takes milliseconds; waiting on the export, forever
        for _ in range(5):
            response = await gateway.post("/v1/chat/completions", CHAT, **bearer(SECRET))
            assert response.status_code == 200
    # Two queued; three requests of two spans each dropped.
    assert sample(gateway, "nexus_trace_spans_dropped_total", reason="queue_full") == 3 * 2
    collector.release.set()
    with trio.fail_after(5):  # the first request's spans, then the two queued requests'
        await poll(lambda: sample(gateway, "nexus_trace_spans_exported_total") == 3 * 2)
    assert len(by_kind(await traced.spans(), SERVER)) == 3


@pytest.mark.parametrize("collector", [StuckCollector()])
async def test_what_arrives_during_an_export_waits_for_a_batch_or_the_interval(
    traced: Traced, collector: StuckCollector
) -> None:
    gateway = traced.gateway
    gateway.upstream.handlers["a.test"] = answer()
    await gateway.post("/v1/chat/completions", CHAT, **bearer(SECRET))
    await trio.to_thread.run_sync(collector.entered.wait, 5)
    for _ in range(5):
        await gateway.post("/v1/chat/completions", CHAT, **bearer(SECRET))
    collector.release.set()
    with trio.fail_after(5):
        await poll(lambda: sample(gateway, "nexus_trace_spans_exported_total") == 2)
    # Not one small export right after the other: the five wait for the next interval (1 s).
    await trio.sleep(0.3)
    assert len(collector.exports) == 1
    with trio.fail_after(5):
        await poll(lambda: sample(gateway, "nexus_trace_spans_exported_total") == 6 * 2)
    assert [len(export) for export in collector.exports] == [2, 5 * 2]


async def test_a_reloaded_sample_ratio_applies_to_the_next_request(traced: Traced) -> None:
    gateway = traced.gateway
    gateway.upstream.handlers["a.test"] = answer()
    await gateway.post("/v1/chat/completions", CHAT, **bearer(SECRET))
    never = TRACED.replace("[tracing]\n", "[tracing]\nsample_ratio = 0.0\n")
    gateway.wiring.apply_config(parse_config(never))
    for _ in range(3):
        await gateway.post("/v1/chat/completions", CHAT, **bearer(SECRET))
    assert len(by_kind(await traced.spans(), SERVER)) == 1
    assert len(gateway.upstream.requests) == 4
    assert [("traceparent" in request.headers) for request, _ in gateway.upstream.requests] == [
        True,
        False,
        False,
        False,
    ]
