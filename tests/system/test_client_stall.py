"""A client that stops reading a stream is disconnected after
``server.client_stall_timeout_seconds`` (docs/proxying.md#timeouts): a real gateway, a raw
client whose receive window closes, and an upstream that keeps streaming large events.

Without the listener's ``TCP_USER_TIMEOUT`` the gateway's send to that client waits forever,
holding the request, its slot and its upstream connection.
"""

from __future__ import annotations

import socket

import httpx
import pytest
import trio

from nexus_trio.runtime.front_end import bind_listener
from tests.system.gateway_process import GatewayFactory, in_flight
from tests.system.polling import poll
from tests.system.raw_upstream import SSE_HEAD, RawUpstream, chunk

pytestmark = pytest.mark.system

#: One event's content: 64 of them (16 MiB) are more than the gateway's socket can hold
#: (net.core.wmem_max, 4 MiB here) plus the client's small receive buffer.
CONTENT = "x" * (256 * 1024)
EVENT = ('data: {"choices": [{"index": 0, "delta": {"content": "' + CONTENT + '"}}]}\n\n').encode()
STREAM = b'{"model": "demo", "stream": true, "messages": [{"role": "user", "content": "hi"}]}'
#: The stall timeout the gateway is given, and the bound asserted: the kernel aborts the
#: connection at its first zero-window probe after the timeout (probes back off from 200 ms).
STALL_SECONDS = 1.0
BOUND_SECONDS = 10.0


class Upstream(RawUpstream):
    """Streams 64 large events to each request; notes when its connection was closed."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = trio.Event()

    async def answer(self, stream: trio.SocketStream) -> None:
        try:
            await stream.send_all(SSE_HEAD + b"\r\n")
            for _ in range(64):
                await stream.send_all(chunk(EVENT))
            await trio.sleep_forever()  # never ends the stream: only the gateway can
        except trio.BrokenResourceError:
            pass
        finally:
            self.closed.set()


def test_listeners_carry_the_stall_timeout() -> None:
    listener = bind_listener("127.0.0.1", 0, reuse_port=False, stall_timeout_seconds=2.5)
    with listener:
        assert listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 2500


async def test_a_client_that_stops_reading_is_disconnected(
    nursery: trio.Nursery, start_gateway: GatewayFactory
) -> None:
    upstream = Upstream()
    await nursery.start(upstream.run)
    gateway = await start_gateway(
        "[server]\n"
        'host = "127.0.0.1"\nport = 0\n'
        f"client_stall_timeout_seconds = {STALL_SECONDS}\n"
        "[health_check]\nenabled = false\n"
        "[[backends]]\n"
        f'name = "big"\nurl = "http://127.0.0.1:{upstream.port}"\ntype = "generic"\n'
        'models = ["demo"]\n'
    )
    client = trio.socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await client.connect(("127.0.0.1", gateway.port))
    await client.send(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(STREAM), STREAM)
    )
    assert (await client.recv(1024)).startswith(b"HTTP/1.1 200")  # then it reads no more
    async with httpx.AsyncClient() as http:

        async def streaming() -> bool:
            return await in_flight(http, gateway.url) == 1

        async def over() -> bool:
            return await in_flight(http, gateway.url) == 0

        with trio.fail_after(5):
            await poll(streaming)
        with trio.fail_after(BOUND_SECONDS):
            await poll(over)
            await upstream.closed.wait()
    with pytest.raises(ConnectionResetError):
        await _read_to_the_end(client)
    client.close()


async def _read_to_the_end(client: trio.socket.SocketType) -> None:
    """Read what the socket holds until it ends (or fails)."""
    while await client.recv(1 << 20):
        pass
