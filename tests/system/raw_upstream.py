"""A loopback backend written by hand, for system tests that need an answer no simulator gives
(an event sent only once the client has the last one, events of hundreds of KiB)."""

from __future__ import annotations

import trio

#: The head of a streamed answer (an OpenAI-style SSE stream, chunked).
SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"


class RawUpstream:
    """Listens on 127.0.0.1 and runs :meth:`answer` for each request, once its head is read."""

    def __init__(self) -> None:
        self.port = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._serve, listeners)

    async def _serve(self, stream: trio.SocketStream) -> None:
        received = b""
        while b"\r\n\r\n" not in received:
            received += await stream.receive_some(65536)
        await self.answer(stream)

    async def answer(self, stream: trio.SocketStream) -> None:
        """Write the response (the body the gateway sent, if any, is left unread)."""
        raise NotImplementedError


def chunk(data: bytes) -> bytes:
    """``data`` as one chunk of a chunked body."""
    return b"%x\r\n%s\r\n" % (len(data), data)
