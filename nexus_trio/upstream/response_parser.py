"""Parsing one HTTP/1.1 response as it arrives, with llhttp (``httptools``): sans-IO.

The transport feeds each network read of a response to :meth:`ResponseParser.feed` and takes
the body bytes it completed (:meth:`ResponseParser.take`): the head once, then every piece of
the body in order, whatever its framing (``Content-Length``, chunked, or until the server
closes: :meth:`ResponseParser.eof`). llhttp, the C parser Node.js uses, does the work h11 did in
Python (an event and a state-machine step per head and per chunk) for a small part of its cost
(bench/README.md#fresh-connections-and-paced-events---paced---hold).

Rules, stricter than the RFC's minimum where llhttp is: informational (1xx) heads are skipped;
``101`` (this client never asks to switch), a transfer coding other than chunked, and any byte
that breaks the framing are refused; a response to ``HEAD`` ends with its head (its connection
is then not kept); trailers are read and dropped. Bounds: a head of more than
:data:`MAX_HEAD_BYTES` (give or take one read) or of more than :data:`MAX_FIELDS` fields, or
as many bytes after it that complete nothing (a chunk-size line or a trailer that never ends),
is refused, so no input makes the parser buffer without bound. Every refusal is an
``httpx.RemoteProtocolError``.

The connection may serve another request (:attr:`ResponseParser.reusable`) only when the
response ended cleanly: its end seen (never at EOF), HTTP/1.1 without ``Connection: close``,
and nothing received after it. An informational head with a body is refused (it would join
the final body).
"""

from __future__ import annotations

import httptools
import httpx

__all__ = ["MAX_FIELDS", "MAX_HEAD_BYTES", "ResponseParser", "asks_to_close"]

#: The largest response head, and the most bytes after it that complete nothing.
MAX_HEAD_BYTES = 64 * 1024
#: The most fields a response head may have.
MAX_FIELDS = 256


def asks_to_close(value: bytes) -> bool:
    """Whether a ``Connection`` field's value holds the ``close`` token (either message's)."""
    return b"close" in value.lower().replace(b" ", b"").replace(b"\t", b"").split(b",")


class _Extra(Exception):
    """A second response began after the first one ended."""


class ResponseParser:
    """The state of one response being parsed (llhttp calls the ``on_*`` methods).

    Attributes:
        status: the final status code (0 until the head ended).
        reason: the reason phrase.
        headers: the head's fields, names in lower case, in order.
        head_done: the final head has ended.
        done: the whole response has ended.
        reusable: it ended cleanly and the connection may serve another request.
    """

    __slots__ = (
        "_body",
        "_closing",
        "_framed",
        "_head",
        "_parser",
        "_progress",
        "_skip_body",
        "_stalled",
        "done",
        "head_done",
        "headers",
        "reason",
        "reusable",
        "status",
        "version",
    )

    def __init__(self, method: str) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._skip_body = method == "HEAD"
        self._body: list[bytes] = []
        self._head: list[tuple[bytes, bytes]] = []
        self._framed = False
        self._closing = False
        self._stalled = 0
        self._progress = False
        self.status = 0
        self.reason = b""
        self.version = b"HTTP/1.1"
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_done = False
        self.done = False
        self.reusable = False

    def feed(self, data: bytes) -> None:
        """Parse ``data``, the next bytes read from the connection.

        Raises:
            httpx.RemoteProtocolError: the bytes break HTTP or a bound.
        """
        if self.done:
            self.reusable = False  # bytes after the end: never reuse the connection
            return
        self._progress = False
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self.done:  # a HEAD response's end, or bytes after the end
                self.reusable = False
                return
            if isinstance(exc.__context__, httpx.RemoteProtocolError):
                raise exc.__context__ from None
            raise httpx.RemoteProtocolError(f"Invalid HTTP response: {exc}.") from None
        except httptools.HttpParserUpgrade:
            raise httpx.RemoteProtocolError("Unexpected protocol upgrade.") from None
        if self.done:
            return
        if self._progress and self.head_done:
            self._stalled = 0
        else:
            self._stalled += len(data)
        if self._stalled > MAX_HEAD_BYTES:
            what = "head" if not self.head_done else "chunk-size line or trailer"
            raise httpx.RemoteProtocolError(f"The response's {what} is too long.")

    def eof(self) -> None:
        """The server closed the connection: the end of a body framed by the close.

        Raises:
            httpx.RemoteProtocolError: the response was not complete.
        """
        if self.head_done and not self._framed and not self.done:
            self.done = True
            self.reusable = False
            return
        if not self.done:
            raise httpx.RemoteProtocolError("Server closed the connection mid-response.")

    def take(self) -> list[bytes]:
        """The body bytes parsed since the last call, in order."""
        body, self._body = self._body, []
        return body

    # --- llhttp's callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.done:
            raise _Extra

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.head_done:
            return  # a trailer field: dropped, and no progress (the trailers count as stalled)
        name = name.lower()
        if name == b"transfer-encoding" and value.rstrip(b" ").lower() != b"chunked":
            # llhttp reads only this exact value as chunked (a trailing tab is not).
            raise httpx.RemoteProtocolError("Unsupported Transfer-Encoding (only chunked).")
        if name in (b"content-length", b"transfer-encoding"):
            self._framed = True
        elif name == b"connection" and asks_to_close(value):
            self._closing = True
        if len(self._head) == MAX_FIELDS:
            raise httpx.RemoteProtocolError(f"The response's head has over {MAX_FIELDS} fields.")
        self._head.append((name, value.strip(b" \t")))

    def on_headers_complete(self) -> None:
        self._progress = True
        parser = self._parser
        status = parser.get_status_code()
        if status == 101:
            raise httpx.RemoteProtocolError("Unexpected 101 Switching Protocols.")
        if status < 200:  # informational: the final head follows
            self._head, self.reason, self._framed, self._closing = [], b"", False, False
            return
        self.status = status
        self.version = b"HTTP/" + parser.get_http_version().encode()
        self.headers, self._head = self._head, []
        self.head_done = True
        if self._skip_body:
            self._finish(parser.should_keep_alive())
            raise _Extra  # stop parsing: a HEAD response has no body, whatever its head says
        if status in (204, 304):
            self._framed = True

    def on_body(self, body: bytes) -> None:
        if not self.head_done:
            raise httpx.RemoteProtocolError("An informational (1xx) response had a body.")
        self._progress = True
        self._body.append(body)

    def on_chunk_header(self) -> None:
        self._progress = True

    def on_chunk_complete(self) -> None:
        self._progress = True

    def on_message_complete(self) -> None:
        if self.head_done:
            self._finish(self._parser.should_keep_alive())

    def _finish(self, keep_alive: bool) -> None:
        """The response ended: reusable if llhttp says keep-alive, it is HTTP/1.1 and no
        ``Connection`` field said ``close`` (llhttp ignores one in HTTP/1.0)."""
        self.done = True
        self.reusable = keep_alive and self.version == b"HTTP/1.1" and not self._closing
