"""Writing a streamed body's chunks straight to the client's socket, hypercorn keeping the
connection.

Theory of operation. Every body message sent through hypercorn's ASGI ``send`` goes through
its HTTP stream, its h11 protocol and its TCP server: h11 frames the chunk, a lock is taken,
a shielded cancel scope opened, and the socket written with trio's ``send_all`` — two trips
through the scheduler and a dozen calls per chunk, which a committed stream pays for every
relayed event (docs/proxying.md#streaming). :class:`DirectWriter` frames a chunk itself
(HTTP/1.1 chunked encoding) and writes it with one non-blocking ``os.write`` when nothing else is
being sent on the connection; only what the socket does not take at once (a client reading
slowly), and any failure, goes through hypercorn's own send path, with its flow control and its
handling of a connection that broke. The response's head and its end (the last chunk, the
keep-alive bookkeeping) are always hypercorn's: its h11 state machine never needs to know, since
chunked framing carries no count.

It relies on hypercorn's internals: the ``send`` callable is a bound ``HTTPStream.app_send``
whose stream sends through an ``H11Protocol``, whose events go to the trio ``TCPServer`` of a
plain (not TLS) socket. :func:`direct_writer` checks each link by type and returns None when
any differs (another server, TLS, HTTP/1.0, a test client): the caller then sends every chunk
through ``send`` as before. ``tests/system/test_direct_writer.py`` fails if a hypercorn upgrade
breaks the chain.

Owns nothing but the write; never decides what a chunk holds or when a stream ends.
"""

from __future__ import annotations

import os

import h11
import trio
from hypercorn.events import RawData
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.protocol.http_stream import ASGIHTTPState, HTTPStream
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.typing import ASGISendCallable

__all__ = ["DirectWriter", "direct_writer"]


class DirectWriter:
    """Writes body chunks of one streamed HTTP/1.1 response on hypercorn's connection."""

    __slots__ = ("_fd", "_http", "_lock", "_send", "_server")

    def __init__(
        self, send: ASGISendCallable, http: HTTPStream, server: TCPServer, fd: int
    ) -> None:
        self._send = send
        self._http = http
        self._server = server
        self._lock = server.send_lock
        self._fd = fd

    async def write(self, chunk: bytes) -> None:
        """Send ``chunk`` as one body piece (``more_body``); an empty chunk sends nothing.

        Never checkpoints when the socket takes the whole chunk at once; otherwise blocks while
        the client reads, through hypercorn's send (shielded once part of the frame is written:
        a cancelled write never leaves a broken frame behind).
        """
        if not chunk:
            return
        if self._lock.locked() or self._http.closed or self._http.state is not _RESPONSE:
            await self._send({"type": "http.response.body", "body": chunk, "more_body": True})
            return
        framed = b"%x\r\n%b\r\n" % (len(chunk), chunk)
        try:
            written = os.write(self._fd, framed)
        except BlockingIOError:
            written = 0
        except OSError:  # the client is gone: hypercorn's path notices and closes
            await self._send({"type": "http.response.body", "body": chunk, "more_body": True})
            return
        if written < len(framed):  # the rest of a frame begun: never cut short (shielded)
            with trio.CancelScope(shield=True):
                await self._server.protocol_send(RawData(data=framed[written:]))


_RESPONSE = ASGIHTTPState.RESPONSE


def direct_writer(send: ASGISendCallable) -> DirectWriter | None:
    """A writer for the body of the response just started through ``send``, or None when
    ``send`` is not hypercorn's trio HTTP/1.1 path on a plain socket (the caller then sends
    every chunk through ``send``).

    Call it after ``http.response.start`` was sent: the h11 state must be sending a chunked body.
    """
    http = getattr(send, "__self__", None)
    if (
        type(http) is not HTTPStream
        or http.state is not _RESPONSE
        or http.scope["method"] == "HEAD"
        or int(http.response["status"]) in (204, 304)
    ):
        return None
    protocol = getattr(http.send, "__self__", None)
    if type(protocol) is not H11Protocol:
        return None
    connection = protocol.connection
    server = getattr(protocol.send, "__self__", None)
    stream: object = getattr(server, "stream", None)  # typed as TLS; a plain socket's when not
    if (
        type(server) is not TCPServer
        or type(connection) is not h11.Connection
        or connection.our_state is not h11.SEND_BODY
        or connection.their_http_version != b"1.1"
        or type(stream) is not trio.SocketStream
    ):
        return None
    return DirectWriter(send, http, server, stream.socket.fileno())
