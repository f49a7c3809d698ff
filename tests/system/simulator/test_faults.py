"""The simulated backend's faults, read per request: the seeded error rate, failing statuses,
resets, hangs and garbage, mid-body and mid-stream; clients that leave; many streams at once;
a stopped backend.
"""

from __future__ import annotations

import json
import random
import socket
import struct

import httpx
import pytest
import trio

from nexus_trio.simulator import FailMode, SimulatedBackend, SimulatorOptions
from tests.system.simulator.exchanges import (
    CHAT,
    HEALTH_REQUEST,
    ConnectionReset,
    chat,
    raw_chat,
    read_lines,
    sse_data,
    wait_until,
)

pytestmark = pytest.mark.system


async def test_options_are_read_per_request(
    client: httpx.AsyncClient, options: SimulatorOptions
) -> None:
    assert (await client.post(CHAT, json=chat())).status_code == 200
    options.error_rate = 1.0
    assert (await client.post(CHAT, json=chat())).status_code == 500
    options.error_rate = 0.0
    assert (await client.post(CHAT, json=chat())).status_code == 200


async def test_error_rate_follows_seeded_random(
    client: httpx.AsyncClient, options: SimulatorOptions
) -> None:
    options.error_rate = 0.5
    statuses = [(await client.post(CHAT, json=chat())).status_code for _ in range(20)]
    rng = random.Random(options.seed)
    assert statuses == [500 if rng.random() < 0.5 else 200 for _ in range(20)]
    assert {200, 500} <= set(statuses)


@pytest.mark.parametrize("stream", [False, True])
async def test_fail_500_429_and_html_502(
    client: httpx.AsyncClient, options: SimulatorOptions, stream: bool
) -> None:
    options.error_rate = 1.0
    options.retry_after_seconds = 3
    failed = await client.post(CHAT, json=chat(stream=stream))
    assert failed.status_code == 500
    assert failed.json()["error"]["code"]
    options.fail_mode = FailMode.HTTP_429
    limited = await client.post(CHAT, json=chat(stream=stream))
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "3")
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    options.fail_mode = FailMode.HTML_502
    proxy = await client.post(CHAT, json=chat(stream=stream))
    assert proxy.status_code == 502
    assert proxy.headers["content-type"] == "text/html"
    assert "<html>" in proxy.text


@pytest.mark.parametrize("stream", [False, True])
async def test_fail_reset(
    client: httpx.AsyncClient, options: SimulatorOptions, stream: bool
) -> None:
    options.error_rate = 1.0
    options.fail_mode = FailMode.RESET
    with pytest.raises(ConnectionReset):
        await client.post(CHAT, json=chat(stream=stream))


async def test_fail_hang_until_client_leaves(
    client: httpx.AsyncClient, backend: SimulatedBackend, options: SimulatorOptions
) -> None:
    options.error_rate = 1.0
    options.fail_mode = FailMode.HANG
    with pytest.raises(httpx.ReadTimeout):
        await client.post(CHAT, json=chat(), timeout=0.2)
    with trio.fail_after(1):
        await wait_until(lambda: backend.disconnects != [] and backend.active_responses == 0)


async def test_fail_garbage(client: httpx.AsyncClient, options: SimulatorOptions) -> None:
    options.error_rate = 1.0
    options.fail_mode = FailMode.GARBAGE
    whole = await client.post(CHAT, json=chat())
    assert (whole.status_code, whole.headers["content-type"]) == (200, "application/json")
    with pytest.raises(json.JSONDecodeError):
        whole.json()
    streamed = await client.post(CHAT, json=chat(stream=True))
    assert streamed.status_code == 200
    assert streamed.headers["content-type"] == "text/event-stream"
    assert streamed.headers["connection"] == "close"
    assert streamed.content
    assert b"data:" not in streamed.content
    assert b"\n" not in streamed.content


async def test_fail_reset_mid_whole(client: httpx.AsyncClient, options: SimulatorOptions) -> None:
    options.error_rate = 1.0
    options.fail_mode = FailMode.RESET_MID
    received: list[bytes] = []

    async def read_raw(response: httpx.Response) -> None:
        async for chunk in response.aiter_raw():
            received.append(chunk)

    async with client.stream("POST", CHAT, json=chat()) as response:
        assert response.status_code == 200
        with pytest.raises(ConnectionReset):
            await read_raw(response)
    assert 0 < len(b"".join(received)) < int(response.headers["content-length"])


async def test_fail_reset_mid_stream(client: httpx.AsyncClient, options: SimulatorOptions) -> None:
    options.error_rate = 1.0
    options.fail_mode = FailMode.RESET_MID
    lines: list[str] = []
    async with client.stream("POST", CHAT, json=chat(stream=True)) as response:
        assert response.status_code == 200
        with pytest.raises(ConnectionReset):
            await read_lines(response, lines)
    data = sse_data("\n".join(lines))
    assert len(data) == 1 + 3  # the start event and three tokens
    assert "[DONE]" not in data


async def test_fail_hang_mid_stream(
    client: httpx.AsyncClient, backend: SimulatedBackend, options: SimulatorOptions
) -> None:
    options.error_rate = 1.0
    options.fail_mode = FailMode.HANG_MID
    lines: list[str] = []
    async with client.stream("POST", CHAT, json=chat(stream=True), timeout=0.3) as response:
        with pytest.raises(httpx.ReadTimeout):
            await read_lines(response, lines)
    assert len(sse_data("\n".join(lines))) == 1 + 3
    with trio.fail_after(1):
        await wait_until(lambda: len(backend.disconnects) == 1 and backend.active_responses == 0)


async def test_fail_hang_mid_whole(client: httpx.AsyncClient, options: SimulatorOptions) -> None:
    options.error_rate = 1.0
    options.fail_mode = FailMode.HANG_MID
    async with client.stream("POST", CHAT, json=chat(), timeout=0.2) as response:
        assert response.status_code == 200
        with pytest.raises(httpx.ReadTimeout):
            await response.aread()


@pytest.mark.parametrize("abort", [False, True], ids=["close", "reset"])
async def test_client_leaving_mid_stream_is_noticed_at_once(
    backend: SimulatedBackend, options: SimulatorOptions, abort: bool
) -> None:
    options.tokens_per_second = 5  # a token every 200 ms: a failing write would notice late
    options.completion_tokens = 100
    head, body = raw_chat(stream=True)
    async with await trio.open_tcp_stream("127.0.0.1", backend.port) as stream:
        await stream.send_all(head + body)
        received = b""
        while b"data: " not in received:
            received += await stream.receive_some()
        assert backend.active_responses == 1
        if abort:
            stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    left_at = trio.current_time()
    with trio.fail_after(0.1):
        await wait_until(lambda: len(backend.disconnects) == 1 and backend.active_responses == 0)
    assert backend.disconnects[0] - left_at < 0.1


async def test_many_concurrent_streams(
    backend: SimulatedBackend, options: SimulatorOptions
) -> None:
    options.ttft_ms = 50
    done: list[str] = []
    limits = httpx.Limits(max_connections=None)
    base_url = f"http://127.0.0.1:{backend.port}"
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=10) as many:

        async def one() -> None:
            response = await many.post(CHAT, json=chat(stream=True))
            done.append(sse_data(response.text)[-1])

        async with trio.open_nursery() as nursery:
            for _ in range(200):
                nursery.start_soon(one)
    assert done == ["[DONE]"] * 200
    assert backend.connections_accepted == 200
    with trio.fail_after(1):
        await wait_until(lambda: backend.active_responses == 0)
    assert backend.disconnects == []


async def test_stopped_backend_refuses_connections(options: SimulatorOptions) -> None:
    backend = SimulatedBackend(options)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(backend.run)
        idle = await trio.open_tcp_stream("127.0.0.1", port)
        await idle.send_all(HEALTH_REQUEST)
        assert (await idle.receive_some()).startswith(b"HTTP/1.1 200 ")
        nursery.cancel_scope.cancel()
    async with idle:
        assert await idle.receive_some() == b""  # the idle keep-alive connection was closed
    with pytest.raises(OSError, match="all attempts to connect"):
        await trio.open_tcp_stream("127.0.0.1", port)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("/health")
