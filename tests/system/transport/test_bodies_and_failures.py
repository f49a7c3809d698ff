"""The keep-alive transport over real sockets on 127.0.0.1: chunked and close-delimited bodies, a
connection lost mid-body, closing early and cancellation, refused connects and timeouts.

Small raw servers written per test misbehave on cue; the simulated backend stands in for a
well-behaved one. Every wait is on an event or ``wait_all_tasks_blocked``, each test bounded by
``trio.fail_after``.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable

import h11
import httpx
import pytest
import trio
import trio.testing

from nexus_trio.upstream.transport import KeepAliveTransport
from tests.system.transport.raw_server import (
    DEADLINE,
    HEAD_10,
    Handler,
    RawServer,
    body,
    fetch,
    keep_alive,
    post,
    read_request,
    reset,
    wait_eof,
)

pytestmark = pytest.mark.system


# --- bodies --------------------------------------------------------------------------------------


async def test_chunked_body_is_streamed_as_it_arrives(
    serve: Callable[[Handler], Awaitable[RawServer]], transport: KeepAliveTransport
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
    serve: Callable[[Handler], Awaitable[RawServer]], transport: KeepAliveTransport
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
    serve: Callable[[Handler], Awaitable[RawServer]], transport: KeepAliveTransport, ending: str
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
    serve: Callable[[Handler], Awaitable[RawServer]], transport: KeepAliveTransport
) -> None:
    with trio.fail_after(DEADLINE):
        client_closed = trio.Event()
        server = await serve(lambda stream: half_then_wait(stream, client_closed))
        response = await transport.handle_async_request(post(server.url))
        assert await anext(body(response)) == b"12345"
        await response.aclose()
        await client_closed.wait()


async def test_cancellation_mid_body_closes_the_connection(
    serve: Callable[[Handler], Awaitable[RawServer]], transport: KeepAliveTransport
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
    serve: Callable[[Handler], Awaitable[RawServer]], transport: KeepAliveTransport
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


async def test_refused_connect_is_a_connect_error(transport: KeepAliveTransport) -> None:
    with trio.fail_after(DEADLINE):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with pytest.raises(httpx.ConnectError, match="refused"):
            await transport.handle_async_request(post(f"http://127.0.0.1:{port}/"))


async def test_read_timeout_from_the_request(
    serve: Callable[[Handler], Awaitable[RawServer]], transport: KeepAliveTransport
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
        transport = KeepAliveTransport()
        assert await fetch(transport, server.url) == b"ok"
        await transport.aclose()
        await client_closed.wait()
        with pytest.raises(RuntimeError):
            await fetch(transport, server.url)
