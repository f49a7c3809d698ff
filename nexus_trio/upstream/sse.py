"""Incremental Server-Sent-Events parser for the stream relay (docs/proxying.md#streaming).

Theory of operation
-------------------
The relay forwards upstream events byte-exactly, so the parser finds *blocks* (the bytes of
one event, up to and including the blank line that ends it) and parses each block's fields
only for the gateway to look at; :attr:`SSEEvent.raw` is what gets forwarded.

Parsing follows the WHATWG EventSource rules: lines end with ``\\n``, ``\\r\\n`` or a lone
``\\r``; one UTF-8 BOM at the very start of the stream is ignored; a line starting with ``:``
is a comment; ``name:value`` loses one leading space of the value; a line without ``:`` is a
field with an empty value; an ``id`` containing NUL is ignored; unknown fields (``retry``
included) are not parsed but stay in ``raw``. Every block is returned, comment-only blocks
and blocks without ``data`` too. Lines are split and field names matched on bytes; only the
values kept are decoded, as UTF-8 with ``errors="replace"``, so garbage never raises.

Bytes between blocks. Line terminators that come before a block's first line (extra blank
lines) and the BOM belong to the *prefix* of the next block: they start its ``raw`` but never
make an event of their own, and they do not count in :attr:`SSEParser.buffered`. So the
``raw`` of all events concatenates to the input, except for line terminators after the last
block. A lone ``\\r`` ends a line at once, so an event whose final blank line is a ``\\r`` at
the end of a chunk is returned without waiting for the next chunk; a ``\\n`` that then starts
the next chunk (the rest of a split ``\\r\\n``) lands in the next block's prefix. That is the
one case where ``raw`` boundaries depend on how the input was chunked.

Speed. The buffer holds the bytes after the last returned block. Its state between feeds is
``_body`` (offset of the current block's first line, -1 while only the prefix has arrived)
and ``_scan`` (where the next search resumes), so a block arriving one byte at a time is
scanned once overall, not once per feed. When nothing received so far contained ``\\r``
(OpenAI, vLLM, llama.cpp, Ollama), a block ends at the first ``\\n\\n``, found with
:meth:`bytes.find` (first for the next ``\\n``: in the usual block, a single ``data:`` line,
that is already the end, and the block is parsed without splitting it into lines; so is an
``event:`` line followed by one ``data:`` line, Anthropic's usual block); after the
first ``\\r`` the parser switches for good to a regular expression that finds two consecutive
line terminators of any kind. A chunk arriving on an empty buffer is scanned in place, without
copying it into the buffer.

Size limit. A block (with its prefix) longer than ``max_event_bytes`` raises
:class:`~nexus_trio.errors.BadUpstreamResponse`, whether it is still incomplete or arrived whole,
so the limit does not depend on chunking. Events completed earlier in the same chunk are lost
with the exception; the stream is broken anyway.
"""

from __future__ import annotations

import re

import msgspec

from nexus_trio.errors import BadUpstreamResponse

_BOM = b"\xef\xbb\xbf"
#: Two line terminators in a row: the end of a line, then a blank line. ``\r`` followed by
#: ``\n`` is one terminator, never "a line, then a blank line".
_BLOCK_END = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r|\n)")
#: The first byte of a block's first line (anything but a line terminator).
_LINE_START = re.compile(rb"[^\r\n]")


class SSEEvent(msgspec.Struct, frozen=True, gc=False):
    """One SSE block as received, and the fields the gateway reads from it.

    Attributes:
        raw: The exact bytes of the block, including its terminating blank line (and any
            prefix, see the module docstring).
        data: The ``data`` lines joined with ``"\\n"``; None when the block had no ``data``.
        event: The last ``event`` field, None if absent.
        id: The last ``id`` field, None if absent.
    """

    raw: bytes
    data: str | None = None
    event: str | None = None
    id: str | None = None

    @property
    def is_done(self) -> bool:
        """Whether this is the OpenAI end-of-stream marker ``data: [DONE]``."""
        return self.data == "[DONE]"


def _parse_block(raw: bytes, body: int, any_cr: bool) -> SSEEvent:
    """Parse the fields of one complete block whose first line starts at ``body``.

    ``any_cr`` is false when ``raw`` is known to hold no ``\\r``, which allows the fast paths
    for the usual blocks: one ``data: `` line (OpenAI-style streams), or an ``event: `` line
    then one ``data: `` line (Anthropic's).
    """
    if not any_cr:
        if raw.startswith(b"data: ", body):
            if raw.find(b"\n", body) == len(raw) - 2:
                return SSEEvent(raw, raw[body + 6 : -2].decode("utf-8", "replace"))
        elif raw.startswith(b"event: ", body):
            data_at = raw.find(b"\n", body) + 1
            if raw.startswith(b"data: ", data_at) and raw.find(b"\n", data_at) == len(raw) - 2:
                return SSEEvent(
                    raw,
                    raw[data_at + 6 : -2].decode("utf-8", "replace"),
                    raw[body + 7 : data_at - 1].decode("utf-8", "replace"),
                )
    data: list[bytes] = []
    event: bytes | None = None
    id_: bytes | None = None
    for line in raw[body:].splitlines():
        if not line or line[0] == 0x3A:  # blank line or ":" comment
            continue
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event = value
        elif name == b"id" and b"\0" not in value:
            id_ = value
    return SSEEvent(
        raw,
        b"\n".join(data).decode("utf-8", "replace") if data else None,
        None if event is None else event.decode("utf-8", "replace"),
        None if id_ is None else id_.decode("utf-8", "replace"),
    )


class SSEParser:
    """Splits an upstream byte stream into SSE events, one network chunk at a time.

    Sans-IO and synchronous: the caller reads the network and feeds each chunk. A stream that
    ends with :attr:`buffered` > 0 was cut inside an event.

    Args:
        max_event_bytes: The longest block accepted, counting its prefix (see the module
            docstring).
    """

    def __init__(self, *, max_event_bytes: int = 1 << 20) -> None:
        self._max = max_event_bytes
        self._buf = bytearray()
        self._body = -1
        self._scan = 0
        self._any_cr = False
        self._at_start = True

    @property
    def buffered(self) -> int:
        """Bytes held of an incomplete block (not counting its prefix of blank lines)."""
        return len(self._buf) - self._body if self._body >= 0 else 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Add the next bytes of the stream; return the events they complete, in order.

        Raises:
            BadUpstreamResponse: a block is longer than ``max_event_bytes``.
        """
        buf = self._buf
        data: bytes | bytearray
        if buf:
            buf += chunk
            data = buf
        else:
            data = chunk
        n = len(data)
        start, body, scan = 0, self._body, self._scan
        if self._at_start:
            if n < len(_BOM) and _BOM.startswith(data):
                if data is chunk:
                    buf += chunk
                return []
            self._at_start = False
            if data.startswith(_BOM):
                scan = len(_BOM)
        any_cr = self._any_cr = self._any_cr or b"\r" in chunk
        events: list[SSEEvent] = []
        while True:
            if body < 0:
                if scan < n and data[scan] not in b"\r\n":
                    body = scan
                else:
                    line = _LINE_START.search(data, scan)
                    if line is None:
                        scan = n
                        break
                    body = scan = line.start()
            if any_cr:
                match = _BLOCK_END.search(data, scan)
                end = -1 if match is None else match.end()
            else:  # a "\n" followed by "\n"; mostly the first "\n" is the one
                end = data.find(b"\n", scan)
                if 0 <= end < n - 1 and data[end + 1] != 0x0A:
                    end = data.find(b"\n\n", end + 1)
                end = end + 2 if 0 <= end < n - 1 else -1
            if end < 0:  # resume where the last bytes could begin a block end
                scan = max(body, n - 2)
                break
            if end - start > self._max:
                raise self._too_large()
            events.append(_parse_block(bytes(data[start:end]), body - start, any_cr))
            start = scan = end
            body = -1
        if n - start > self._max:
            raise self._too_large()
        if data is buf:
            del buf[:start]
        elif start < n:
            buf += data[start:]
        self._body = body - start if body >= 0 else -1
        self._scan = scan - start
        return events

    def _too_large(self) -> BadUpstreamResponse:
        return BadUpstreamResponse(f"upstream SSE event exceeds {self._max} bytes")
