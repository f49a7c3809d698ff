"""The h11 transport over real sockets on 127.0.0.1: keep-alive, limits, misbehaving servers.

Small raw servers written per test misbehave on cue (close an idle connection, reset mid-body,
stall); the simulated backend stands in for a well-behaved one. Every wait is on an event or
``wait_all_tasks_blocked``, each test bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import h11
import httpx
import pytest
import trio
import trio.testing

from nexus_trio.simulator import SimulatedBackend, SimulatorOptions
from nexus_trio.upstream.transport import (
    POOL_EXTENSION,
    H11Transport,
    PoolSpec,
    ResponseStream,
    StaleConnectionError,
)

pytestmark = pytest.mark.system

DEADLINE = 5
Handler = Callable[[trio.SocketStream], Awaitable[None]]
HEAD_10 = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


@dataclass
class RawServer:
    """A listener on 127.0.0.1 running ``handler`` per connection."""

    port: int
    accepted: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/chat/completions"


@pytest.fixture
async def serve(nursery: trio.Nursery) -> Callable[[Handler], Awaitable[RawServer]]:
    async def start(handler: Handler) -> RawServer:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        server = RawServer(listeners[0].socket.getsockname()[1])

        async def counted(stream: trio.SocketStream) -> None:
            server.accepted += 1
            with contextlib.suppress(trio.BrokenResourceError):  # the client reset it
                await handler(stream)

        await nursery.start(trio.serve_listeners, counted, listeners)
        return server

    return start


@pytest.fixture
async def transport() -> AsyncIterator[H11Transport]:
    transport = H11Transport()
    yield transport
    await transport.aclose()


async def read_request(stream: trio.SocketStream, conn: h11.Connection) -> bool:
    """Read one whole request; False if the client closed the connection instead."""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(65536))
        elif type(event) is h11.EndOfMessage:
            return True
        elif type(event) is h11.ConnectionClosed:
            return False


async def wait_eof(stream: trio.SocketStream) -> None:
    """Wait until the client closes (or resets) the connection."""
    with contextlib.suppress(trio.BrokenResourceError):
        while await stream.receive_some(65536):
            pass


def reset(stream: trio.SocketStream) -> None:
    """Abort the connection with a TCP RST."""
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stream.socket.close()


def post(url: str, **extensions: object) -> httpx.Request:
    return httpx.Request("POST", url, content=b'{"model": "demo"}', extensions=extensions)


def body(response: httpx.Response) -> ResponseStream:
    """The body of a response whose end had not arrived with its head."""
    stream = response.stream
    assert isinstance(stream, ResponseStream)
    return stream


async def fetch(transport: H11Transport, url: str) -> bytes:
    response = await transport.handle_async_request(post(url))
    try:
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        return b"".join([chunk async for chunk in stream])
    finally:
        await response.aclose()


async def keep_alive(stream: trio.SocketStream) -> None:
    """A well-behaved keep-alive server answering ``ok``.

    Responses are raw bytes that bypass h11's server state, so each request gets a fresh parser
    (the client never pipelines, so nothing buffered is lost).
    """
    conn = h11.Connection(h11.SERVER)
    while await read_request(stream, conn):
        await stream.send_all(OK)
        conn = h11.Connection(h11.SERVER)


# --- keep-alive and limits -----------------------------------------------------------------------


async def test_sequential_requests_share_one_connection(nursery: trio.Nursery) -> None:
    with trio.fail_after(DEADLINE):
        backend = SimulatedBackend(SimulatorOptions(ttft_ms=0, tokens_per_second=0))
        await nursery.start(backend.run)
        url = f"http://127.0.0.1:{backend.port}/v1/chat/completions"
        chat = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
        async with httpx.AsyncClient(transport=H11Transport()) as client:
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


async def fetch_from_pool(transport: H11Transport, url: str, spec: PoolSpec) -> bytes:
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

    async def one(transport: H11Transport) -> None:
        bodies.append(await fetch(transport, server.url))

    with trio.fail_after(DEADLINE):
        limited = H11Transport(max_connections_per_host=2)
        async with limited, trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(one, limited)
            await trio.testing.wait_all_tasks_blocked(cushion=0.05)
            assert server.accepted == 2
            gate.go.set()
        assert bodies == [b"ok"] * 5
        assert server.accepted == 2


async def test_each_named_pool_has_its_own_size_and_none_is_a_hidden_limit(
    serve: Callable[[Handler], Awaitable[RawServer]],
) -> None:
    gate = Gate(trio.Event())
    server = await serve(gate)
    bodies: list[bytes] = []

    async def one(transport: H11Transport, spec: PoolSpec) -> None:
        bodies.append(await fetch_from_pool(transport, server.url, spec))

    with trio.fail_after(DEADLINE):
        transport = H11Transport()
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
        transport = H11Transport()
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
        single = H11Transport(max_connections_per_host=1)
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
    serve: Callable[[Handler], Awaitable[RawServer]], transport: H11Transport
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
    serve: Callable[[Handler], Awaitable[RawServer]], transport: H11Transport, close: str
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
    serve: Callable[[Handler], Awaitable[RawServer]], transport: H11Transport
) -> None:
    async def close_unanswered(stream: trio.SocketStream) -> None:
        await read_request(stream, h11.Connection(h11.SERVER))

    with trio.fail_after(DEADLINE):
        server = await serve(close_unanswered)
        with pytest.raises(httpx.RemoteProtocolError) as caught:
            await fetch(transport, server.url)
        assert not isinstance(caught.value, StaleConnectionError)


@pytest.mark.parametrize(
    "response",
    [
        pytest.param(
            b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok", id="close"
        ),
        pytest.param(OK + b"HTTP/1.1 200 OK\r\n", id="bytes-after-response"),
    ],
)
async def test_connection_not_reused_after(
    serve: Callable[[Handler], Awaitable[RawServer]], transport: H11Transport, response: bytes
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


# --- bodies --------------------------------------------------------------------------------------


async def test_chunked_body_is_streamed_as_it_arrives(
    serve: Callable[[Handler], Awaitable[RawServer]], transport: H11Transport
) -> None:
    second = trio.Event()

    async def chunked(stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        while await read_request(stream, conn):
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n"
            )
            await second.wait()
            await stream.send_all(b"6\r\n world\r\n0\r\n\r\n")
            conn = h11.Connection(h11.SERVER)

    with trio.fail_after(DEADLINE):
        server = await serve(chunked)
        response = await transport.handle_async_request(post(server.url))
        assert await anext(body(response)) == b"hello"
        second.set()
        assert [chunk async for chunk in body(response)] == [b" world"]
        await response.aclose()
        assert await fetch(transport, server.url) == b"hello world"
        assert server.accepted == 1


async def test_close_delimited_body_reads_to_eof(
    serve: Callable[[Handler], Awaitable[RawServer]], transport: H11Transport
) -> None:
    async def http_10(stream: trio.SocketStream) -> None:
        await read_request(stream, h11.Connection(h11.SERVER))
        await stream.send_all(b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil ")
        await trio.testing.wait_all_tasks_blocked()
        await stream.send_all(b"the end")

    with trio.fail_after(DEADLINE):
        server = await serve(http_10)
        response = await transport.handle_async_request(post(server.url))
        assert response.extensions["http_version"] == b"HTTP/1.0"
        assert b"".join([c async for c in body(response)]) == b"until the end"
        await response.aclose()
        assert await fetch(transport, server.url) == b"until the end"
        assert server.accepted == 2


@pytest.mark.parametrize("ending", ["reset", "eof"])
async def test_connection_lost_mid_body(
    serve: Callable[[Handler], Awaitable[RawServer]], transport: H11Transport, ending: str
) -> None:
    first_read = trio.Event()

    async def half_then_lost(stream: trio.SocketStream) -> None:
        await read_request(stream, h11.Connection(h11.SERVER))
        await stream.send_all(HEAD_10 + b"12345")
        await first_read.wait()
        reset(stream) if ending == "reset" else stream.socket.close()

    with trio.fail_after(DEADLINE):
        server = await serve(half_then_lost)
        response = await transport.handle_async_request(post(server.url))
        assert await anext(body(response)) == b"12345"
        first_read.set()
        expected = httpx.ReadError if ending == "reset" else httpx.RemoteProtocolError
        with pytest.raises(expected):
            await anext(body(response))
        await response.aclose()
        assert server.accepted == 1


# --- closing early and cancellation --------------------------------------------------------------


async def never_answers(stream: trio.SocketStream, client_closed: trio.Event) -> None:
    await read_request(stream, h11.Connection(h11.SERVER))
    await wait_eof(stream)
    client_closed.set()


async def half_then_wait(stream: trio.SocketStream, client_closed: trio.Event) -> None:
    await read_request(stream, h11.Connection(h11.SERVER))
    await stream.send_all(HEAD_10 + b"12345")
    await wait_eof(stream)
    client_closed.set()


async def test_aclose_before_the_end_closes_the_connection(
    serve: Callable[[Handler], Awaitable[RawServer]], transport: H11Transport
) -> None:
    with trio.fail_after(DEADLINE):
        client_closed = trio.Event()
        server = await serve(lambda stream: half_then_wait(stream, client_closed))
        response = await transport.handle_async_request(post(server.url))
        assert await anext(body(response)) == b"12345"
        await response.aclose()
        await client_closed.wait()


async def test_cancellation_mid_body_closes_the_connection(
    serve: Callable[[Handler], Awaitable[RawServer]], transport: H11Transport
) -> None:
    with trio.fail_after(DEADLINE):
        client_closed = trio.Event()
        server = await serve(lambda stream: half_then_wait(stream, client_closed))
        response = await transport.handle_async_request(post(server.url))
        assert await anext(body(response)) == b"12345"
        async with trio.open_nursery() as nursery:
            nursery.start_soon(body(response).__anext__)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        await client_closed.wait()
        await response.aclose()


async def test_cancellation_before_the_head_closes_the_connection(
    serve: Callable[[Handler], Awaitable[RawServer]], transport: H11Transport
) -> None:
    client_closed = trio.Event()
    with trio.fail_after(DEADLINE):
        server = await serve(lambda stream: never_answers(stream, client_closed))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(transport.handle_async_request, post(server.url))
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        await client_closed.wait()


# --- errors and timeouts -------------------------------------------------------------------------


async def test_refused_connect_is_a_connect_error(transport: H11Transport) -> None:
    with trio.fail_after(DEADLINE):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with pytest.raises(httpx.ConnectError, match="refused"):
            await transport.handle_async_request(post(f"http://127.0.0.1:{port}/"))


async def test_read_timeout_from_the_request(
    serve: Callable[[Handler], Awaitable[RawServer]], transport: H11Transport
) -> None:
    client_closed = trio.Event()
    with trio.fail_after(DEADLINE):
        server = await serve(lambda stream: never_answers(stream, client_closed))
        timeout = httpx.Timeout(None, read=0.05).as_dict()
        with pytest.raises(httpx.ReadTimeout):
            await transport.handle_async_request(post(server.url, timeout=timeout))
        await client_closed.wait()


async def test_aclose_closes_idle_connections(
    serve: Callable[[Handler], Awaitable[RawServer]],
) -> None:
    client_closed = trio.Event()

    async def answer_then_wait(stream: trio.SocketStream) -> None:
        await keep_alive(stream)
        client_closed.set()

    with trio.fail_after(DEADLINE):
        server = await serve(answer_then_wait)
        transport = H11Transport()
        assert await fetch(transport, server.url) == b"ok"
        await transport.aclose()
        await client_closed.wait()
        with pytest.raises(RuntimeError):
            await fetch(transport, server.url)
