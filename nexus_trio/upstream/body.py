"""A response body read straight from its pooled connection (the transport's theory is in
:mod:`nexus_trio.upstream.transport`).

Each read goes to the response's :class:`~nexus_trio.upstream.response_parser.ResponseParser`,
which hands back the body bytes it completed, whatever the framing (``Content-Length``,
chunked — every streamed answer — or until the server closes). At the body's end the
connection goes back to the pool, kept when the exchange ended cleanly.
"""

from __future__ import annotations

from typing import Self

import httpx
import trio

from nexus_trio.upstream.exchange import READ_TIMEOUT, deadline, read_into
from nexus_trio.upstream.pool import Connection, HostPool
from nexus_trio.upstream.response_parser import ResponseParser

__all__ = ["ResponseStream"]


class ResponseStream(httpx.AsyncByteStream):
    """The body of one response, read straight from its connection.

    Iterating blocks until the next bytes arrive (the request's ``read`` timeout applies to each
    wait). At the end of the body the connection goes back to the pool at once. Cancellation or
    any failure while reading closes the connection; so does :meth:`aclose` before the end.
    """

    def __init__(
        self,
        pool: HostPool,
        connection: Connection,
        parser: ResponseParser,
        read_timeout: float | None,
        received: list[bytes],
    ) -> None:
        self._pool = pool
        self._connection: Connection | None = connection
        self._parser = parser
        self._read_timeout = read_timeout
        #: Body bytes that came with the head, handed over first.
        self._received = received

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        """The next piece of the body: what one read from the network completed.

        Raises:
            StopAsyncIteration: the body is complete.
            httpx.ReadError: the connection was reset.
            httpx.RemoteProtocolError: it closed before the body was complete, or broke HTTP.
            httpx.ReadTimeout: nothing arrived within the ``read`` timeout.
        """
        if self._received:
            return self._received.pop(0)
        connection, parser = self._connection, self._parser
        if connection is None:
            raise StopAsyncIteration
        received = False
        try:
            with deadline(self._read_timeout):
                pieces = await _read_some(connection, parser)
            received = True
        except trio.TooSlowError as exc:
            raise httpx.ReadTimeout(READ_TIMEOUT) from exc
        finally:
            if not received:
                self._finish(connection, keep=False)
        if parser.done:
            self._finish(connection, keep=connection.reusable())
            if not pieces:
                raise StopAsyncIteration
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    async def aclose(self) -> None:
        """Release the connection: closed, since the body's end has not been read.

        Never blocks and never raises.
        """
        connection = self._connection
        if connection is not None:
            self._finish(connection, keep=False)

    def _finish(self, connection: Connection, *, keep: bool) -> None:
        self._connection = None
        self._pool.release(connection, keep=keep)


async def _read_some(connection: Connection, parser: ResponseParser) -> list[bytes]:
    """Read until a read completes some body bytes or the end of the response."""
    while True:
        await read_into(connection, parser)
        pieces = parser.take()
        if pieces or parser.done:
            return pieces
