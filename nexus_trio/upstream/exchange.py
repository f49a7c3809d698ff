"""One HTTP/1.1 exchange on a pooled connection: the request out, the response head in.

Used by :mod:`nexus_trio.upstream.transport` (whose docstring tells the whole theory). The
request is written here (:func:`request_bytes`: every field checked as h11 checks it, so
nothing a header holds can split the request); the response is parsed by
:class:`~nexus_trio.upstream.response_parser.ResponseParser`. Socket and parsing failures
become httpx exceptions here, once: a reused connection that fails before any byte of the
response arrived raises :class:`StaleConnectionError` (safe to retry once on a fresh
connection), any other failure a plain ``httpx.TransportError``.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Mapping

import httpx
import trio

from nexus_trio.upstream.pool import Connection
from nexus_trio.upstream.response_parser import ResponseParser, asks_to_close

_RECEIVE_SIZE = 65536
_NO_DEADLINE = contextlib.nullcontext()
READ_TIMEOUT = "Timed out waiting for the server."
_STALE = "Server disconnected without sending a response (stale keep-alive connection)."
#: RFC 9110's token (a method, a field name), a request target (visible ASCII) and a field
#: value (visible characters, inner spaces and tabs, none at either end; may be empty).
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_TARGET = re.compile(rb"[\x21-\x7e]+")
_VALUE = re.compile(rb"(?:[\x21-\x7e\x80-\xff](?:[ \t]*[\x21-\x7e\x80-\xff])*)?")


class StaleConnectionError(httpx.RemoteProtocolError):
    """A reused keep-alive connection failed before any byte of the response arrived.

    The server closed the connection before it read the request: retrying once on a fresh
    connection is safe.
    """


def deadline(seconds: float | None) -> contextlib.AbstractContextManager[object]:
    """``trio.fail_after(seconds)``, or nothing at all for ``None`` (no limit, no cost)."""
    return _NO_DEADLINE if seconds is None else trio.fail_after(seconds)


async def _send(connection: Connection, data: bytes, write_seconds: float | None) -> None:
    """Write ``data``; a reused connection failing here raises :class:`StaleConnectionError`.

    One non-blocking write first: a request fits the socket's buffer, so it usually goes out
    without a trip through the scheduler or a deadline (the read of the answer that follows
    checkpoints); the rest, if any, with ``send_all`` within ``write_seconds``.
    """
    stream = connection.stream
    try:
        try:
            written = os.write(stream.socket.fileno(), data)
        except BlockingIOError:
            written = 0
        if written < len(data):
            with deadline(write_seconds):
                await stream.send_all(memoryview(data)[written:])
    except trio.TooSlowError as exc:
        raise httpx.WriteTimeout("Timed out sending the request.") from exc
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


async def read_into(connection: Connection, parser: ResponseParser) -> None:
    """One read from ``connection`` into ``parser`` (the end of the stream, if it ended).

    Raises:
        httpx.TransportError: the read failed, or the bytes (or their end) break HTTP.
    """
    data = await receive(connection)
    if data:
        parser.feed(data)
    else:
        parser.eof()


def request_bytes(
    method: str, target: bytes, headers: Iterable[tuple[bytes, bytes]], body: bytes
) -> tuple[bytes, bool]:
    """The whole request as written on the wire, and whether it asks to close the connection.

    The body goes out as it is after one ``Content-Length`` field that gives its size, or as
    one chunk after ``Transfer-Encoding: chunked`` (httpx's framing of a streamed body).

    Raises:
        httpx.LocalProtocolError: the method, target or a field would break the request, or
            the body's framing is missing, doubled or wrong.
    """
    verb = method.encode("ascii", "replace")
    if not _TOKEN.fullmatch(verb) or not _TARGET.fullmatch(target):
        raise httpx.LocalProtocolError("Invalid request method or target.")
    lines = [verb, b" ", target, b" HTTP/1.1\r\n"]
    framing: list[tuple[bytes, bytes]] = []
    closing = False
    for name, value in headers:
        if not _TOKEN.fullmatch(name) or not _VALUE.fullmatch(value):
            raise httpx.LocalProtocolError("Invalid request header field.")
        lines += (name, b": ", value, b"\r\n")
        lowered = name.lower()
        if lowered in (b"content-length", b"transfer-encoding"):
            framing.append((lowered, value.lower()))
        elif lowered == b"connection":
            closing = closing or asks_to_close(value)
    lines.append(b"\r\n")
    lines += _framed_body(framing, body)
    return b"".join(lines), closing


def _framed_body(framing: list[tuple[bytes, bytes]], body: bytes) -> list[bytes]:
    """``body`` as its one framing field says: as it is, or as one chunk and the last chunk."""
    if not framing:
        if body:
            raise httpx.LocalProtocolError("A request body needs a Content-Length.")
        return []
    if len(framing) > 1:
        raise httpx.LocalProtocolError("A request may have one framing field for its body.")
    name, value = framing[0]
    if name == b"content-length":
        if value != b"%d" % len(body):
            raise httpx.LocalProtocolError("The request's Content-Length is not its body's.")
        return [body]
    if value != b"chunked":
        raise httpx.LocalProtocolError("A request body may only be chunked.")
    return [b"%x\r\n" % len(body), body, b"\r\n0\r\n\r\n"] if body else [b"0\r\n\r\n"]


async def exchange(
    connection: Connection, request: httpx.Request, timeouts: Mapping[str, float | None]
) -> ResponseParser:
    """Send ``request`` in one write and read until the final response head.

    Returns the response's parser, which holds the head and any body bytes that came with it.
    """
    data, closing = request_bytes(
        request.method, request.url.raw_path, request.headers.raw, await request.aread()
    )
    parser = connection.parser = ResponseParser(request.method)
    connection.closing = closing
    connection.silent = True
    await _send(connection, data, timeouts.get("write"))
    try:
        with deadline(timeouts.get("read")):
            while not parser.head_done:
                await read_into(connection, parser)
    except trio.TooSlowError as exc:
        raise httpx.ReadTimeout(READ_TIMEOUT) from exc
    return parser
