"""A response body read straight from its pooled connection (the transport's theory is in
:mod:`nexus_trio.upstream.transport`).

A chunked body — every streamed answer — is decoded by
:class:`~nexus_trio.upstream.chunked.ChunkedDecoder` from the socket's reads, h11 having parsed
only the head: one pass over each read instead of an h11 event per chunk. The connection is
then reused with a fresh h11 state when the exchange ended cleanly: nothing after the body, and
h11, having seen the request and the head, did not mark the connection for closing
(``Connection: close``, HTTP/1.0). Any other body (``Content-Length``, or read until the
server closes) is read through h11.
"""

from __future__ import annotations

from typing import Self

import h11
import httpx
import trio

from nexus_trio.upstream.chunked import ChunkedDecoder
from nexus_trio.upstream.exchange import READ_TIMEOUT, deadline, next_event, receive
from nexus_trio.upstream.pool import Connection, HostPool

__all__ = ["ResponseStream", "chunked_decoder"]

_INCOMPLETE = "Server closed the connection before the end of the chunked body."


def chunked_decoder(
    connection: Connection, head: h11.Response, method: str
) -> ChunkedDecoder | None:
    """A decoder for ``head``'s body if it is chunked (h11 refuses any other transfer coding),
    else None. Whether the connection may then be kept is h11's to say, from the head and the
    request (:meth:`Connection.renew`)."""
    if (
        connection.h11.their_state is not h11.SEND_BODY
        or method == "HEAD"
        or head.status_code in (204, 304)
        or not any(name == b"transfer-encoding" for name, _ in head.headers)
    ):
        return None
    return ChunkedDecoder()


class ResponseStream(httpx.AsyncByteStream):
    """The body of one response, read straight from its connection.

    Iterating blocks until the next bytes arrive (the request's ``read`` timeout applies to each
    wait). At the end of the body the connection goes back to the pool at once. Cancellation or
    any failure while reading closes the connection; so does :meth:`aclose` before the end.
    ``decoder`` reads a chunked body without h11.
    """

    def __init__(
        self,
        pool: HostPool,
        connection: Connection,
        read_timeout: float | None,
        received: list[bytes],
        decoder: ChunkedDecoder | None = None,
    ) -> None:
        self._pool = pool
        self._connection: Connection | None = connection
        self._read_timeout = read_timeout
        #: Body bytes that came with the head, handed over first.
        self._received = received
        self._decoder = decoder

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        """The next piece of the body as it arrived from the network.

        Raises:
            StopAsyncIteration: the body is complete.
            httpx.ReadError: the connection was reset.
            httpx.RemoteProtocolError: it closed before the body was complete, or broke HTTP.
            httpx.ReadTimeout: nothing arrived within the ``read`` timeout.
        """
        if self._received:
            return self._received.pop(0)
        connection = self._connection
        if connection is None:
            raise StopAsyncIteration
        if self._decoder is not None:
            return await self._next_chunked(connection, self._decoder)
        received = False
        try:
            with deadline(self._read_timeout):
                event = await next_event(connection)
            received = True
        except trio.TooSlowError as exc:
            raise httpx.ReadTimeout(READ_TIMEOUT) from exc
        finally:
            if not received:
                self._finish(connection, keep=False)
        if type(event) is h11.Data:
            return bytes(event.data)
        self._finish(connection, keep=connection.start_next_cycle())
        raise StopAsyncIteration

    async def _next_chunked(self, connection: Connection, decoder: ChunkedDecoder) -> bytes:
        """The next body bytes of a chunked body, reading until a read completes some."""
        received = False
        try:
            with deadline(self._read_timeout):
                while True:
                    data = await receive(connection)
                    if not data:
                        raise httpx.RemoteProtocolError(_INCOMPLETE)
                    body = decoder.feed(data)
                    if body or decoder.done:
                        break
            received = True
        except trio.TooSlowError as exc:
            raise httpx.ReadTimeout(READ_TIMEOUT) from exc
        finally:
            if not received:
                self._finish(connection, keep=False)
        if decoder.done:
            self._finish(connection, keep=not decoder.trailing and connection.renew())
            if not body:
                raise StopAsyncIteration
        return body

    async def aclose(self) -> None:
        """Release the connection: pooled if the whole response is already buffered, else closed.

        Never blocks and never raises.
        """
        connection = self._connection
        if connection is not None:
            if self._decoder is not None:
                self._finish(connection, keep=False)
                return
            self._finish(
                connection, keep=connection.skip_to_end() and connection.start_next_cycle()
            )

    def _finish(self, connection: Connection, *, keep: bool) -> None:
        self._connection = None
        self._pool.release(connection, keep=keep)
