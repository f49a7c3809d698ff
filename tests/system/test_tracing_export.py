"""Traces from a real ``nexus-trio serve`` to an OTLP/HTTP receiver over 127.0.0.1
(docs/operations.md#tracing): the spans arrive as protobuf, continue the client's
``traceparent``, and a stuck, refusing or absent collector never delays a request — its spans
are dropped and counted; malformed collector headers stop start-up."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable

import httpx
import pytest
import trio
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from nexus_trio.simulator import SimulatedBackend
from tests.system.configs import gateway_config
from tests.system.gateway_process import GatewayFactory
from tests.system.otlp_receiver import attributes, otlp_receiver
from tests.system.polling import poll
from tests.system.ports import free_port

CHAT = {"model": "demo", "messages": [{"role": "user", "content": "hello there"}]}
BackendFactory = Callable[..., Awaitable[SimulatedBackend]]
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


def tracing_config(backend: SimulatedBackend, endpoint: str, extra: str = "") -> str:
    tracing = f'[tracing]\notlp_endpoint = "{endpoint}"\nservice_name = "edge-gw"\n{extra}'
    return gateway_config(backend, extra=tracing)


async def metric(client: httpx.AsyncClient, url: str, sample: str) -> float:
    for line in (await client.get(f"{url}/metrics")).text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return 0.0


async def test_spans_arrive_over_otlp_http_in_the_clients_trace(
    start_gateway: GatewayFactory, start_backend: BackendFactory, client: httpx.AsyncClient
) -> None:
    backend = await start_backend(ttft_ms=1.0, tokens_per_second=100000.0, completion_tokens=5)
    with otlp_receiver() as receiver:
        gateway = await start_gateway(tracing_config(backend, receiver.endpoint))
        parent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
        response = await client.post(
            f"{gateway.url}/v1/chat/completions", json=CHAT, headers={"traceparent": parent}
        )
        assert response.status_code == 200
        with trio.fail_after(10):
            await poll(lambda: len(receiver.snapshot()) >= 2)
        received = receiver.snapshot()
    assert {service for service, _ in received} == {"edge-gw"}
    spans = {span.kind: span for _, span in received}
    assert sorted(spans) == [Span.SPAN_KIND_SERVER, Span.SPAN_KIND_CLIENT]
    server, attempt = spans[Span.SPAN_KIND_SERVER], spans[Span.SPAN_KIND_CLIENT]
    assert server.trace_id.hex() == attempt.trace_id.hex() == CLIENT_TRACE
    assert server.parent_span_id.hex() == CLIENT_SPAN
    assert attempt.parent_span_id == server.span_id
    assert server.name == "chat demo"
    server_attributes = attributes(server)
    assert server_attributes["gen_ai.request.model"] == "demo"
    assert server_attributes["gen_ai.response.model"] == "demo"
    assert server_attributes["gen_ai.provider.name"] == "generic"
    assert server_attributes["gen_ai.usage.output_tokens"] == 5
    assert server_attributes["nexus.backend"] == backend.options.name
    assert attributes(attempt)["nexus.attempt.outcome"] == "success"
    assert server.start_time_unix_nano <= attempt.start_time_unix_nano
    assert attempt.end_time_unix_nano <= server.end_time_unix_nano


async def test_a_stuck_collector_never_delays_requests_or_the_exit_and_drops_are_counted(
    start_gateway: GatewayFactory, start_backend: BackendFactory, client: httpx.AsyncClient
) -> None:
    backend = await start_backend(ttft_ms=1.0, tokens_per_second=100000.0, completion_tokens=5)
    with otlp_receiver(stuck=True) as receiver:
        config = tracing_config(backend, receiver.endpoint, "max_queued_requests = 2")
        gateway = await start_gateway(config)
        url = f"{gateway.url}/v1/chat/completions"
        assert (await client.post(url, json=CHAT)).status_code == 200
        with trio.fail_after(10):  # the first export is sent, and never answered
            await poll(lambda: receiver.exports == 1)
        with trio.fail_after(5):  # each takes milliseconds; waiting on the collector, 10 s
            for _ in range(12):
                assert (await client.post(url, json=CHAT)).status_code == 200
        # Two requests wait in the queue; the ten others are dropped, two spans each.
        dropped = 'nexus_trace_spans_dropped_total{reason="queue_full"}'
        assert await metric(client, gateway.url, dropped) == 20
        # Nor does it hold up the end: the last export is abandoned after a second.
        gateway.send_signal(signal.SIGTERM)
        with trio.fail_after(5):
            assert await gateway.wait_exit() == 0


async def wait_export_failed(client: httpx.AsyncClient, url: str, spans: int) -> None:
    failed = 'nexus_trace_spans_dropped_total{reason="export_failed"}'

    async def counted() -> bool:
        return await metric(client, url, failed) == spans

    with trio.fail_after(10):
        await poll(counted)


async def test_a_refusing_collector_is_counted_and_logged_once(
    start_gateway: GatewayFactory, start_backend: BackendFactory, client: httpx.AsyncClient
) -> None:
    backend = await start_backend(ttft_ms=1.0, tokens_per_second=100000.0, completion_tokens=5)
    with otlp_receiver(refuse=True) as receiver:
        gateway = await start_gateway(tracing_config(backend, receiver.endpoint))
        url = f"{gateway.url}/v1/chat/completions"
        for _ in range(3):
            assert (await client.post(url, json=CHAT)).status_code == 200
        await wait_export_failed(client, gateway.url, 6)
    warnings = [line for line in gateway.lines if "span export failed" in line]
    assert len(warnings) == 1


async def test_a_collector_that_is_down_costs_requests_nothing(
    start_gateway: GatewayFactory, start_backend: BackendFactory, client: httpx.AsyncClient
) -> None:
    backend = await start_backend(ttft_ms=1.0, tokens_per_second=100000.0, completion_tokens=5)
    gateway = await start_gateway(tracing_config(backend, f"http://127.0.0.1:{free_port()}"))
    url = f"{gateway.url}/v1/chat/completions"
    with trio.fail_after(5):
        for _ in range(3):
            assert (await client.post(url, json=CHAT)).status_code == 200
    await wait_export_failed(client, gateway.url, 6)


async def test_malformed_collector_headers_stop_start_up_naming_the_variable(
    start_gateway: GatewayFactory, start_backend: BackendFactory
) -> None:
    backend = await start_backend()
    secret = "Authorization: Bearer sk-collector"  # a colon, not key=value
    with pytest.raises(AssertionError, match="gateway exited early") as info:
        await start_gateway(
            tracing_config(backend, "http://127.0.0.1:4318"),
            env={"OTEL_EXPORTER_OTLP_TRACES_HEADERS": secret},
        )
    assert "$OTEL_EXPORTER_OTLP_TRACES_HEADERS must be comma-separated" in str(info.value)
    assert "sk-collector" not in str(info.value)
