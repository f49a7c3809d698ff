"""The keep-alive transport over real sockets on 127.0.0.1: keep-alive, connection limits and named
pools, and servers that close idle or reused connections.

Small raw servers written per test misbehave on cue; the simulated backend stands in for a
well-behaved one. Every wait is on an event or ``wait_all_tasks_blocked``, each test bounded by
``trio.fail_after``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import h11
import httpx
import pytest
import trio
import trio.testing

from nexus_trio.simulator import SimulatedBackend, SimulatorOptions
from nexus_trio.upstream.transport import (
    POOL_EXTENSION,
    KeepAliveTransport,
    PoolSpec,
    ResponseStream,
    StaleConnectionError,
)
from tests.system.transport.raw_server import (
    DEADLINE,
    OK,
    Handler,
    RawServer,
    fetch,
    keep_alive,
    post,
    read_request,
    reset,
    wait_eof,
)

pytestmark = pytest.mark.system


# --- keep-alive and limits -----------------------------------------------------------------------


async def test_sequential_requests_share_one_connection(nursery: trio.Nursery) -> None:
    with trio.fail_after(DEADLINE):
        backend = SimulatedBackend(SimulatorOptions(ttft_ms=0, tokens_per_second=0))
        await nursery.start(backend.run)
        url = f"http://127.0.0.1:{backend.port}/v1/chat/completions"
        chat = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
        async with httpx.AsyncClient(transport=KeepAliveTransport()) as client:
            for stream in (False, True, False, True, False):
                response = await client.post(url, json={**chat, "stream": stream})
                assert response.status_code == 200
                assert response.http_version == "HTTP/1.1"
        assert backend.connections_accepted == 1


@dataclass
class Gate:
    """A server handler that reads each request and answers ``OK`` once ``go`` is set."""

    go: trio.Event
    #: Requests read and waiting for ``go``, over every connection.
    waiting: int = 0

    async def __call__(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        while await read_request(stream, conn):
            self.waiting += 1
            await self.go.wait()
            await stream.send_all(OK)
            conn = h11.Connection(h11.SERVER)


async def fetch_from_pool(transport: KeepAliveTransport, url: str, spec: PoolSpec) -> bytes:
    response = await transport.handle_async_request(post(url, **{POOL_EXTENSION: spec}))
    try:
        return await response.aread()
    finally:
        await response.aclose()


async def test_connection_limit_makes_requests_wait(
    serve: Callable[[Handler], Awaitable[RawServer]],
) -> None:
    gate = Gate(trio.Event())
    server = await serve(gate)
    bodies: list[bytes] = []

    async def one(transport: KeepAliveTransport) -> None:
        bodies.append(await fetch(transport, server.url))

    with trio.fail_after(DEADLINE):
        limited = KeepAliveTransport(max_connections_per_host=2)
        async with limited, trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(one, limited)
            await trio.testing.wait_all_tasks_blocked(cushion=0.05)
            assert server.accepted == 2
            gate.go.set()
        assert bodies == [b"ok"] * 5
        assert server.accepted == 2


async def test_a_burst_keeps_its_connections_and_an_ip_literal_needs_no_resolver(
    serve: Callable[[Handler], Awaitable[RawServer]], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def resolver(host: str, port: int) -> trio.SocketStream:
        raise AssertionError("an IP literal is connected to directly")

    monkeypatch.setattr(trio, "open_tcp_stream", resolver)
    burst = 100  # more than the 64 idle connections kept per host before
    gate = Gate(trio.Event())
    server = await serve(gate)
    with trio.fail_after(DEADLINE):
        async with KeepAliveTransport() as transport:
            async with trio.open_nursery() as nursery:
                for _ in range(burst):
                    nursery.start_soon(fetch, transport, server.url)
                await trio.testing.wait_all_tasks_blocked(cushion=0.05)
                gate.go.set()
            assert server.accepted == burst
            async with trio.open_nursery() as nursery:
                for _ in range(burst):
                    nursery.start_soon(fetch, transport, server.url)
        assert server.accepted == burst  # the second burst found every connection idle


async def test_each_named_pool_has_its_own_size_and_none_is_a_hidden_limit(
    serve: Callable[[Handler], Awaitable[RawServer]],
) -> None:
    gate = Gate(trio.Event())
    server = await serve(gate)
    bodies: list[bytes] = []

    async def one(transport: KeepAliveTransport, spec: PoolSpec) -> None:
        bodies.append(await fetch_from_pool(transport, server.url, spec))

    with trio.fail_after(DEADLINE):
        transport = KeepAliveTransport()
        async with transport, trio.open_nursery() as nursery:
            # Two backends on one host: one limited to 2, one unlimited; more than the old
            # hidden default of 256 connections per host.
            for _ in range(5):
                nursery.start_soon(one, transport, PoolSpec("limited", 2))
            for _ in range(300):
                nursery.start_soon(one, transport, PoolSpec("open", None))
            await trio.testing.wait_all_tasks_blocked(cushion=0.05)
            assert (server.accepted, gate.waiting) == (302, 302)
            gate.go.set()
        assert bodies == [b"ok"] * 305


async def test_a_pool_resized_by_a_reload_admits_waiters_at_once(
    serve: Callable[[Handler], Awaitable[RawServer]],
) -> None:
    gate = Gate(trio.Event())
    server = await serve(gate)

    with trio.fail_after(DEADLINE):
        transport = KeepAliveTransport()
        async with transport, trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(fetch_from_pool, transport, server.url, PoolSpec("b", 1))
            await trio.testing.wait_all_tasks_blocked(cushion=0.05)
            assert server.accepted == 1
            # the limit after a reload
            nursery.start_soon(fetch_from_pool, transport, server.url, PoolSpec("b", 3))
            await trio.testing.wait_all_tasks_blocked(cushion=0.05)
            assert server.accepted == 3
            gate.go.set()


async def test_body_that_came_with_the_head_frees_the_connection_at_once(
    serve: Callable[[Handler], Awaitable[RawServer]],
) -> None:
    with trio.fail_after(DEADLINE):
        server = await serve(keep_alive)
        single = KeepAliveTransport(max_connections_per_host=1)
        async with single:
            first = await single.handle_async_request(post(server.url))
            assert not isinstance(first.stream, ResponseStream)  # complete: already buffered
            # The only connection is back in the pool although nobody read the first body.
            second = await single.handle_async_request(post(server.url))
            assert await first.aread() == b"ok"
            assert await second.aread() == b"ok"
            await first.aclose()
            await second.aclose()
        assert server.accepted == 1


async def test_server_closing_an_idle_connection_is_transparent(
    serve: Callable[[Handler], Awaitable[RawServer]], transport: KeepAliveTransport
) -> None:
    closed = trio.Event()

    async def one_then_close(stream: trio.SocketStream) -> None:
        await read_request(stream, h11.Connection(h11.SERVER))
        await stream.send_all(OK)
        stream.socket.close()
        closed.set()

    with trio.fail_after(DEADLINE):
        server = await serve(one_then_close)
        assert await fetch(transport, server.url) == b"ok"
        await closed.wait()
        assert await fetch(transport, server.url) == b"ok"
        assert server.accepted == 2


@pytest.mark.parametrize("close", ["eof", "reset"])
async def test_close_racing_a_reused_request_is_stale(
    serve: Callable[[Handler], Awaitable[RawServer]], transport: KeepAliveTransport, close: str
) -> None:
    async def close_on_second_request(stream: trio.SocketStream) -> None:
        await read_request(stream, h11.Connection(h11.SERVER))
        await stream.send_all(OK)
        await read_request(stream, h11.Connection(h11.SERVER))
        reset(stream) if close == "reset" else stream.socket.close()

    with trio.fail_after(DEADLINE):
        server = await serve(close_on_second_request)
        assert await fetch(transport, server.url) == b"ok"
        with pytest.raises(StaleConnectionError):
            await fetch(transport, server.url)
        assert await fetch(transport, server.url) == b"ok"  # a fresh connection


async def test_fresh_connection_closed_before_responding_is_not_stale(
    serve: Callable[[Handler], Awaitable[RawServer]], transport: KeepAliveTransport
) -> None:
    async def close_unanswered(stream: trio.SocketStream) -> None:
        await read_request(stream, h11.Connection(h11.SERVER))

    with trio.fail_after(DEADLINE):
        server = await serve(close_unanswered)
        with pytest.raises(httpx.RemoteProtocolError) as caught:
            await fetch(transport, server.url)
        assert not isinstance(caught.value, StaleConnectionError)


#: ``ok`` as a chunked body (read without h11: nexus_trio.upstream.chunked).
CHUNKED_OK = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"


@pytest.mark.parametrize(
    "response",
    [
        pytest.param(
            b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok", id="close"
        ),
        pytest.param(OK + b"HTTP/1.1 200 OK\r\n", id="bytes-after-response"),
        pytest.param(
            CHUNKED_OK.replace(b"OK\r\n", b"OK\r\nconnection: close\r\n"), id="chunked-close"
        ),
        pytest.param(CHUNKED_OK + b"HTTP/1.1 200 OK\r\n", id="chunked-bytes-after-response"),
    ],
)
async def test_connection_not_reused_after(
    serve: Callable[[Handler], Awaitable[RawServer]], transport: KeepAliveTransport, response: bytes
) -> None:
    client_closed = trio.Event()

    async def answer_then_wait(stream: trio.SocketStream) -> None:
        await read_request(stream, h11.Connection(h11.SERVER))
        await stream.send_all(response)
        await wait_eof(stream)
        client_closed.set()

    with trio.fail_after(DEADLINE):
        server = await serve(answer_then_wait)
        assert await fetch(transport, server.url) == b"ok"
        await client_closed.wait()
        assert await fetch(transport, server.url) == b"ok"
        assert server.accepted == 2
