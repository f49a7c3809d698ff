"""The transport under test and raw servers on 127.0.0.1 (``serve(handler)``, one handler per
connection)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import trio

from nexus_trio.upstream.transport import KeepAliveTransport
from tests.system.transport.raw_server import Handler, RawServer


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
async def transport() -> AsyncIterator[KeepAliveTransport]:
    transport = KeepAliveTransport()
    yield transport
    await transport.aclose()
