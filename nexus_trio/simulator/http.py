"""HTTP plumbing of the simulated backend: one request/response exchange over h11."""

from __future__ import annotations

import enum
import socket
import struct

import h11
import trio

JSON = b"application/json"
RECEIVE_BYTES = 65_536
"""How much one ``receive_some`` on a connection asks for."""

_RST_LINGER = struct.pack("ii", 1, 0)


async def reset(stream: trio.SocketStream) -> None:
    """Abort the connection with a TCP RST (``SO_LINGER`` 0, then close)."""
    stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST_LINGER)
    await stream.aclose()


class After(enum.Enum):
    """What a connection does once an exchange is over."""

    KEEP_ALIVE = enum.auto()
    CLOSE = enum.auto()
    RESET = enum.auto()


class Exchange:
    """One request being answered on a connection: the parsed request plus a way to reply."""

    __slots__ = ("at", "body", "conn", "gone", "method", "path", "request_id", "stream")

    def __init__(
        self,
        stream: trio.SocketStream,
        conn: h11.Connection,
        request: h11.Request,
        body: bytes,
        request_id: bytes,
    ) -> None:
        self.stream = stream
        self.conn = conn
        self.method = request.method
        self.path = request.target.partition(b"?")[0]
        self.body = body
        self.request_id = request_id
        self.at = trio.current_time()
        self.gone = False

    def headers(
        self, content_type: bytes, *extra: tuple[bytes, bytes]
    ) -> list[tuple[bytes, bytes]]:
        return [
            (b"content-type", content_type),
            (b"server", b"nexus-trio-simulator"),
            (b"x-request-id", self.request_id),
            *extra,
        ]

    async def send(self, *events: h11.Response | h11.Data | h11.EndOfMessage) -> None:
        """Serialise ``events`` and write them in one go; blocks until the kernel took them."""
        await self.stream.send_all(b"".join([self.conn.send(event) for event in events]))

    async def respond(
        self, status: int, body: bytes, content_type: bytes = JSON, *extra: tuple[bytes, bytes]
    ) -> After:
        """Send a complete response with a ``Content-Length``."""
        length = (b"content-length", b"%d" % len(body))
        headers = self.headers(content_type, length, *extra)
        await self.send(
            h11.Response(status_code=status, headers=headers),
            h11.Data(data=body),
            h11.EndOfMessage(),
        )
        return After.KEEP_ALIVE
