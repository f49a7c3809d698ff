"""A streamed reply's chunks written straight to hypercorn's socket (nexus_trio.asgi.direct_writer):
the writer engages on hypercorn's trio HTTP/1.1 path, the client gets every byte framed as
hypercorn would have framed it, also when the socket takes only part of a chunk, and the
connection stays usable for the next request."""

from __future__ import annotations

import hypercorn.trio
import pytest
import trio
from hypercorn.config import Config
from hypercorn.events import Event, RawData
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope

from nexus_trio.asgi.direct_writer import direct_writer
from nexus_trio.asgi.reply import Reply, Write
from tests.system.raw_connection import RawConnection

pytestmark = pytest.mark.system

#: More than the server's socket can hold (at most 4 MiB, ``net.core.wmem_max``) plus the
#: client's receive buffer (set small): the socket cannot take such a chunk at once.
HUGE = bytes(range(256)) * (32 * 1024)
CHUNKS = [b"data: one\n\n", b"", b"data: two\n\n", HUGE, b"data: three\n\n"]


class App:
    """Streams ``CHUNKS`` with :class:`Reply`; notes whether the direct writer could engage
    once the response had started."""

    def __init__(self) -> None:
        self.engaged: list[bool] = []

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        while (await receive()).get("more_body"):
            pass

        async def pump(write: Write) -> None:
            self.engaged.append(direct_writer(send) is not None)  # the head went out
            for chunk in CHUNKS:
                await write(chunk)

        await Reply.streamed(200, {"content-type": "text/event-stream"}, pump).send(send, [])


async def _lifespan(receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    while True:
        kind = (await receive())["type"]  # lifespan.startup, then lifespan.shutdown
        await send({"type": f"{kind}.complete"})  # type: ignore[misc]
        if kind == "lifespan.shutdown":
            return


async def test_chunks_go_straight_to_the_socket_framed_and_the_connection_lives_on(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[int] = []
    protocol_send = TCPServer.protocol_send

    async def counting(self: TCPServer, event: Event) -> None:
        if isinstance(event, RawData):
            writes.append(len(event.data))
        await protocol_send(self, event)

    monkeypatch.setattr(TCPServer, "protocol_send", counting)
    app = App()
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    urls = await nursery.start(hypercorn.trio.serve, app, config)
    port = int(urls[0].rsplit(":", 1)[1])
    sock = trio.socket.socket()
    sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, 1 << 16)
    await sock.connect(("127.0.0.1", port))
    connection = RawConnection(trio.SocketStream(sock))
    try:
        for _ in range(2):  # the second request on the same connection
            writes.clear()
            await connection.send_request("POST", "/", b"{}")
            status, headers, body = await connection.read_response()
            assert status == 200
            assert headers["transfer-encoding"] == "chunked"
            assert body == b"".join(CHUNKS)
            # Through hypercorn: the head, what the socket did not take of HUGE at once, the end.
            assert len(writes) == 3, writes
            assert 0 < writes[1] < len(HUGE)
    finally:
        await connection.aclose()
    assert app.engaged == [True, True]
