"""The simulated backend's HTTP/1.1: keep-alive, chunked request bodies, pipelining during a
stream, ``Expect: 100-continue`` and malformed requests.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from nexus_trio.simulator import SimulatedBackend, SimulatorOptions
from tests.system.simulator.exchanges import CHAT, HEALTH_REQUEST, chat, raw_chat, raw_exchange

pytestmark = pytest.mark.system


async def test_keep_alive_and_received(
    client: httpx.AsyncClient, backend: SimulatedBackend
) -> None:
    await client.get("/health", headers={"x-test": "one"})
    await client.post(CHAT + "?trace=1", json=chat())
    assert backend.connections_accepted == 1
    health, completion = backend.received
    assert (health.method, health.path, health.body) == ("GET", "/health", b"")
    assert (b"x-test", b"one") in health.headers
    assert (completion.method, completion.path) == ("POST", CHAT + "?trace=1")
    assert json.loads(completion.body) == chat()
    assert health.at <= completion.at <= trio.current_time()


async def test_chunked_request_body(client: httpx.AsyncClient) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b'{"model": "demo", '
        yield b'"prompt": "hello"}'

    response = await client.post("/v1/completions", content=body())
    assert response.status_code == 200
    assert response.json()["object"] == "text_completion"


async def test_pipelined_request_during_a_stream_waits_its_turn(
    backend: SimulatedBackend, options: SimulatorOptions
) -> None:
    options.tokens_per_second = 50  # the stream lasts ~100 ms: the next request comes meanwhile
    head, body = raw_chat(stream=True)
    async with await trio.open_tcp_stream("127.0.0.1", backend.port) as stream:
        await stream.send_all(head + body)
        received = b""
        while b"data: " not in received:
            received += await stream.receive_some()
        await stream.send_all(HEALTH_REQUEST)
        with trio.fail_after(2):
            while b'{"status":"ok"}' not in received:
                received += await stream.receive_some()
    assert received.index(b"data: [DONE]") < received.index(b"HTTP/1.1 200", 1)
    assert [request.path for request in backend.received] == [CHAT, "/health"]
    assert backend.disconnects == []
    assert backend.connections_accepted == 1


async def test_expect_100_continue(backend: SimulatedBackend) -> None:
    head, body = raw_chat(stream=False, expect_continue=True)
    async with await trio.open_tcp_stream("127.0.0.1", backend.port) as stream:
        await stream.send_all(head)
        assert (await stream.receive_some()).startswith(b"HTTP/1.1 100 ")
        await stream.send_all(body)
        assert (await stream.receive_some()).startswith(b"HTTP/1.1 200 ")


async def test_malformed_request_gets_400(backend: SimulatedBackend) -> None:
    reply = await raw_exchange(backend.port, b"NOT HTTP AT ALL\r\n\r\n", until=b"}")
    assert reply.startswith(b"HTTP/1.1 400 ")
