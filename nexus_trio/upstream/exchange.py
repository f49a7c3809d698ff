"""One HTTP/1.1 exchange on a pooled connection: the request out, the response head in.

Used by :mod:`nexus_trio.upstream.transport` (whose docstring tells the whole theory). Socket
and h11 failures become httpx exceptions here, once: a reused connection that fails before any
byte of the response arrived raises :class:`StaleConnectionError` (safe to retry once on a
fresh connection), any other failure a plain ``httpx.TransportError``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping

import h11
import httpx
import trio

from nexus_trio.upstream.pool import Connection

_RECEIVE_SIZE = 65536
_NO_DEADLINE = contextlib.nullcontext()
READ_TIMEOUT = "Timed out waiting for the server."
_STALE = "Server disconnected without sending a response (stale keep-alive connection)."


class StaleConnectionError(httpx.RemoteProtocolError):
    """A reused keep-alive connection failed before any byte of the response arrived.

    The server closed the connection before it read the request: retrying once on a fresh
    connection is safe.
    """


def deadline(seconds: float | None) -> contextlib.AbstractContextManager[object]:
    """``trio.fail_after(seconds)``, or nothing at all for ``None`` (no limit, no cost)."""
    return _NO_DEADLINE if seconds is None else trio.fail_after(seconds)


async def _send(connection: Connection, data: bytes) -> None:
    """Write ``data``; a reused connection failing here raises :class:`StaleConnectionError`.

    One non-blocking write first: a request fits the socket's buffer, so it usually goes out
    without a trip through the scheduler (the read of the answer that follows checkpoints);
    the rest, if any, with ``send_all``.
    """
    stream = connection.stream
    try:
        try:
            written = os.write(stream.socket.fileno(), data)
        except BlockingIOError:
            written = 0
        if written < len(data):
            await stream.send_all(memoryview(data)[written:])
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
        if connection.reused:
            raise StaleConnectionError(_STALE) from exc
        raise httpx.WriteError("The connection broke while sending the request.") from exc


async def receive(connection: Connection) -> bytes:
    """Read what has arrived (``b""`` at EOF), mapping failures to httpx exceptions."""
    try:
        data = await connection.stream.receive_some(_RECEIVE_SIZE)
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        if connection.silent and connection.reused:
            raise StaleConnectionError(_STALE) from exc
        raise httpx.ReadError("The connection was reset.") from exc
    if data:
        connection.silent = False
    elif connection.silent:
        if connection.reused:
            raise StaleConnectionError(_STALE)
        raise httpx.RemoteProtocolError("Server closed the connection before responding.")
    return data


async def next_event(connection: Connection) -> h11.Event:
    """The next h11 event, reading from the socket while h11 needs data."""
    state = connection.h11
    while True:
        try:
            event = state.next_event()
        except h11.RemoteProtocolError as exc:
            raise httpx.RemoteProtocolError(str(exc)) from exc
        if isinstance(event, h11.Event):
            return event
        if event is h11.PAUSED:
            raise httpx.RemoteProtocolError("Unexpected data after the response.")
        state.receive_data(await receive(connection))


async def _receive_head(connection: Connection) -> h11.Response:
    """Read until the final response head, skipping informational (1xx) responses."""
    while True:
        event = await next_event(connection)
        if type(event) is h11.Response:
            return event
        if type(event) is not h11.InformationalResponse:
            raise httpx.RemoteProtocolError(f"Expected a response, got {type(event).__name__}.")


async def exchange(
    connection: Connection, request: httpx.Request, timeouts: Mapping[str, float | None]
) -> h11.Response:
    """Send ``request`` in one write and read until the final response head."""
    state = connection.h11
    connection.silent = True
    target = request.url.raw_path
    body = await request.aread()
    try:
        head = h11.Request(method=request.method, target=target, headers=request.headers.raw)
        data = state.send(head) or b""
        if body:
            data += state.send(h11.Data(data=body)) or b""
        data += state.send(h11.EndOfMessage()) or b""
    except h11.LocalProtocolError as exc:
        raise httpx.LocalProtocolError(str(exc)) from exc
    try:
        with deadline(timeouts.get("write")):
            await _send(connection, data)
    except trio.TooSlowError as exc:
        raise httpx.WriteTimeout("Timed out sending the request.") from exc
    try:
        with deadline(timeouts.get("read")):
            return await _receive_head(connection)
    except trio.TooSlowError as exc:
        raise httpx.ReadTimeout(READ_TIMEOUT) from exc


def buffered_body(connection: Connection) -> tuple[list[bytes], bool]:
    """The body bytes h11 already holds after the head, and whether the body's end is there.

    Never reads from the socket.

    Raises:
        httpx.RemoteProtocolError: the buffered bytes break HTTP.
    """
    state = connection.h11
    received: list[bytes] = []
    while True:
        try:
            event = state.next_event()
        except h11.RemoteProtocolError as exc:
            raise httpx.RemoteProtocolError(str(exc)) from exc
        if type(event) is h11.Data:
            received.append(bytes(event.data))
        else:
            if event is h11.NEED_DATA:
                return received, False
            if type(event) is h11.EndOfMessage:
                return received, True
            raise httpx.RemoteProtocolError(f"Unexpected {type(event).__name__} in a body.")
