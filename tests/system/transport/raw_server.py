"""Raw HTTP/1.1 servers for the transport tests, written to misbehave on cue, and the client
side's small helpers (a request, a response body, one whole fetch)."""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import h11
import httpx
import trio

from nexus_trio.upstream.transport import KeepAliveTransport, ResponseStream

#: Every test is bounded by this many seconds.
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


async def fetch(transport: KeepAliveTransport, url: str) -> bytes:
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
