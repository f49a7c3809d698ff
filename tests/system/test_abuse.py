"""Abusive clients: header bombs, malformed HTTP, slow senders (docs/api.md#http-api, issue: bad
input)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

import httpx
import pytest
import trio

from nexus_trio.simulator import SimulatedBackend
from tests.system.configs import gateway_config
from tests.system.gateway_process import GatewayFactory, in_flight

JSON_HEADERS = {"content-type": "application/json"}

pytestmark = pytest.mark.system

PLAIN = b'{"model": "demo", "messages": [{"role": "user", "content": "hi"}]}'


async def _raw_exchange(port: int, data: bytes) -> bytes:
    """Send ``data``, read until the server closes; returns everything it sent."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    received = b""
    async with stream:
        # the server may answer and close before it has read everything (header bomb)
        with contextlib.suppress(trio.BrokenResourceError):
            await stream.send_all(data)
        with trio.fail_after(5):
            try:
                while chunk := await stream.receive_some(65536):
                    received += chunk
            except trio.BrokenResourceError:
                pass  # reset after the answer: what arrived before it is what we check
    return received


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
            + b"".join(b"x-bomb-%d: %s\r\n" % (i, b"a" * 1000) for i in range(100))
            + b"\r\n",
            b"431",
        ),
        (b"THIS IS NOT HTTP\r\n\r\n", b"400"),
        (b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: nope\r\n\r\n", b"400"),
    ],
    ids=["header-bomb", "garbage-request-line", "bad-content-length"],
)
async def test_protocol_abuse_answered_by_the_server_and_closed(
    start_backend: Callable[..., Awaitable[SimulatedBackend]],
    start_gateway: GatewayFactory,
    request_bytes: bytes,
    status: bytes,
) -> None:
    backend = await start_backend(name="sim", models=("demo",), ttft_ms=1, tokens_per_second=0)
    gateway = await start_gateway(gateway_config(backend))
    answer = await _raw_exchange(gateway.port, request_bytes)
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:80]
    assert backend.received == []
    async with httpx.AsyncClient() as client:
        ok = await client.post(
            f"{gateway.url}/v1/chat/completions", content=PLAIN, headers=JSON_HEADERS
        )
        assert ok.status_code == 200


async def test_a_slow_sender_blocks_nobody(
    start_backend: Callable[..., Awaitable[SimulatedBackend]],
    start_gateway: GatewayFactory,
) -> None:
    backend = await start_backend(name="sim", models=("demo",), ttft_ms=1, tokens_per_second=0)
    gateway = await start_gateway(gateway_config(backend))
    slow = await trio.open_tcp_stream("127.0.0.1", gateway.port)
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n"
        b"content-type: application/json\r\n\r\n"
    )
    await slow.send_all(head + PLAIN[:10])
    async with httpx.AsyncClient(timeout=5) as client:
        with trio.fail_after(2):
            for _ in range(20):
                response = await client.post(
                    f"{gateway.url}/v1/chat/completions", content=PLAIN, headers=JSON_HEADERS
                )
                assert response.status_code == 200
        # the slow one is still sending its body: it holds no in-flight slot
        # (docs/routing.md#queue-and-overload)
        assert await in_flight(client, gateway.url) == 0
        await slow.aclose()
    assert [r.path for r in backend.received].count("/v1/chat/completions") == 20
