"""Drain on SIGTERM, forced exit, keep-alive handling (docs/operations.md#drain) — real process,
real signals."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable

import httpx
import pytest
import trio

from nexus_trio.simulator import SimulatedBackend
from tests.system.configs import gateway_config
from tests.system.gateway_process import GatewayFactory
from tests.system.polling import poll
from tests.system.raw_connection import RawConnection

JSON_HEADERS = {"content-type": "application/json"}

pytestmark = pytest.mark.system

STREAM_BODY = b'{"model": "%s", "stream": true, "messages": [{"role": "user", "content": "hi"}]}'


async def _stream(
    client: httpx.AsyncClient,
    url: str,
    model: str,
    committed: trio.Semaphore | None,
    out: list[bytes],
) -> None:
    async with client.stream(
        "POST",
        f"{url}/v1/chat/completions",
        content=STREAM_BODY % model.encode(),
        headers=JSON_HEADERS,
    ) as response:
        assert response.status_code == 200
        body = b""
        async for chunk in response.aiter_raw():
            if not body and committed is not None:
                committed.release()
            body += chunk
    out.append(body)


async def _listener_closed(port: int) -> bool:
    try:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
    except OSError:
        return True
    await stream.aclose()
    return False


async def test_sigterm_drains_streams_and_closes_idle_connections(
    start_backend: Callable[..., Awaitable[SimulatedBackend]],
    start_gateway: GatewayFactory,
) -> None:
    # 20 tokens at 10/s: each stream lasts ~2 s
    backend = await start_backend(
        name="sim", models=("demo",), ttft_ms=50, tokens_per_second=10, completion_tokens=20
    )
    gateway = await start_gateway(gateway_config(backend))
    idle = await RawConnection.open(gateway.port)
    await idle.send_request("GET", "/health/live")
    status, _, _ = await idle.read_response()
    assert status == 200

    bodies: list[bytes] = []
    committed = trio.Semaphore(10, max_value=10)
    for _ in range(10):
        await committed.acquire()
    limits = httpx.Limits(max_connections=20)
    async with (
        httpx.AsyncClient(limits=limits, timeout=10) as client,
        trio.open_nursery() as nursery,
    ):
        for _ in range(10):
            nursery.start_soon(_stream, client, gateway.url, "demo", committed, bodies)
        for _ in range(10):
            with trio.fail_after(5):
                await committed.acquire()
        await trio.sleep(0.5 - 0.05)  # SIGTERM about 0.5 s into the streams
        gateway.send_signal(signal.SIGTERM)
        signalled_at = trio.current_time()

        with trio.fail_after(1):
            assert await idle.wait_eof() == b""
        with trio.fail_after(1):
            await poll(lambda: _listener_closed(gateway.port))
        with trio.fail_after(10):
            status_code = await gateway.wait_exit()
        exit_after = trio.current_time() - signalled_at

    await idle.aclose()
    assert status_code == 0
    assert len(bodies) == 10
    for body in bodies:
        assert body.endswith(b"data: [DONE]\n\n")
        assert b"stream_truncated" not in body
    # the streams had ~1.5 s left: the process leaves when they end, not at the 30 s budget
    assert exit_after < 4.0, exit_after
    assert "drain complete" in gateway.log_text()


async def test_drain_deadline_truncates_busy_and_paused_streams(
    start_backend: Callable[..., Awaitable[SimulatedBackend]],
    start_gateway: GatewayFactory,
) -> None:
    busy = await start_backend(
        name="busy", models=("busy",), ttft_ms=20, tokens_per_second=10, completion_tokens=60
    )
    # one event every 3 s: the relay is blocked waiting for upstream when the deadline hits
    paused = await start_backend(
        name="paused", models=("paused",), ttft_ms=20, tokens_per_second=1 / 3, completion_tokens=5
    )
    gateway = await start_gateway(gateway_config(busy, paused, server="drain_timeout_seconds = 1"))
    bodies: list[bytes] = []
    committed = trio.Semaphore(5, max_value=5)
    for _ in range(5):
        await committed.acquire()
    async with httpx.AsyncClient(timeout=15) as client, trio.open_nursery() as nursery:
        for model in ("busy", "busy", "busy", "busy", "paused"):
            nursery.start_soon(_stream, client, gateway.url, model, committed, bodies)
        for _ in range(5):
            with trio.fail_after(5):
                await committed.acquire()
        gateway.send_signal(signal.SIGTERM)
        signalled_at = trio.current_time()
        with trio.fail_after(10):
            status_code = await gateway.wait_exit()
        exit_after = trio.current_time() - signalled_at

    assert status_code == 0
    assert exit_after < 3.0, exit_after
    assert len(bodies) == 5
    for body in bodies:
        events = body.rstrip(b"\n").split(b"\n\n")
        assert events[-1] == b"data: [DONE]"
        assert b'"code":"stream_truncated"' in events[-2]


async def test_second_signal_forces_exit(
    start_backend: Callable[..., Awaitable[SimulatedBackend]],
    start_gateway: GatewayFactory,
) -> None:
    backend = await start_backend(
        name="sim", models=("demo",), ttft_ms=20, tokens_per_second=2, completion_tokens=100
    )
    gateway = await start_gateway(gateway_config(backend))
    bodies: list[bytes] = []
    committed = trio.Semaphore(1, max_value=1)
    await committed.acquire()
    async with httpx.AsyncClient(timeout=15) as client, trio.open_nursery() as nursery:

        async def stream() -> None:
            try:
                await _stream(client, gateway.url, "demo", committed, bodies)
            except httpx.HTTPError:
                bodies.append(b"<connection dropped>")

        nursery.start_soon(stream)
        with trio.fail_after(5):
            await committed.acquire()
        gateway.send_signal(signal.SIGTERM)
        await trio.sleep(0.2)
        gateway.send_signal(signal.SIGINT)
        signalled_at = trio.current_time()
        with trio.fail_after(5):
            status_code = await gateway.wait_exit()
        exit_after = trio.current_time() - signalled_at
    assert status_code == 1
    assert exit_after < 2.0
    assert "dropping 1 request(s) in flight" in gateway.log_text()


async def test_idle_keep_alive_closed_after_timeout_and_connection_close_honoured(
    start_backend: Callable[..., Awaitable[SimulatedBackend]],
    start_gateway: GatewayFactory,
) -> None:
    backend = await start_backend(name="sim", models=("demo",))
    gateway = await start_gateway(gateway_config(backend, server="keep_alive_timeout_seconds = 1"))

    idle = await RawConnection.open(gateway.port)
    await idle.send_request("GET", "/health/live")
    assert (await idle.read_response())[0] == 200
    idle_since = trio.current_time()
    with trio.fail_after(3):
        assert await idle.wait_eof() == b""
    idle_for = trio.current_time() - idle_since
    await idle.aclose()
    assert 0.8 <= idle_for < 2.5, idle_for

    closing = await RawConnection.open(gateway.port)
    await closing.send_request("GET", "/health/live", headers=[("connection", "close")])
    assert (await closing.read_response())[0] == 200
    with trio.fail_after(0.5):
        assert await closing.wait_eof() == b""
    await closing.aclose()
