"""Decoding a chunked response body (RFC 9112, section 7.1) as it arrives: sans-IO, no copies
on the usual path.

The transport hands each network read of a ``Transfer-Encoding: chunked`` body to
:meth:`ChunkedDecoder.feed`, which returns the body bytes that read completed — every chunk's
data in order, a chunk's data handed over as soon as any of it arrives — and notes when the
last chunk and the trailer section have ended. h11 parses the same framing with an event, a
state-machine step and a buffer copy per chunk; a streamed answer is mostly one small chunk per
read (one SSE event), which the decoder takes in one pass over the bytes.

Rules, as h11 applies them: a chunk-size line is hex digits (at most 20), optional extensions
after ``;`` (ignored) and optional trailing spaces or tabs, ended by CRLF; chunk data is
followed by CRLF; the last chunk (size 0) is followed by trailer field lines (ignored) and an
empty line, each ended by LF with an optional CR before it. A size line or a trailer section
longer than :data:`MAX_LINE_BYTES` is refused, so no input makes the decoder buffer without
bound; so is any byte that breaks the framing. Bytes after the end are :attr:`trailing`: the
connection then cannot be reused.
"""

from __future__ import annotations

import re

import httpx

__all__ = ["MAX_LINE_BYTES", "ChunkedDecoder"]

#: The longest chunk-size line or trailer section accepted (h11's limit on an incomplete event).
MAX_LINE_BYTES = 16 * 1024
_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;[^\r\n]*)?[ \t]*")

_SIZE, _DATA, _DATA_END, _TRAILER, _DONE = range(5)


class ChunkedDecoder:
    """The state of one chunked body being decoded.

    Attributes:
        done: the last chunk and the trailer section have arrived.
        trailing: bytes received after the end of the body (only once ``done``).
    """

    __slots__ = ("_buffer", "_left", "_state", "_trailer_bytes", "done", "trailing")

    def __init__(self) -> None:
        self._buffer = b""
        self._state = _SIZE
        #: Data bytes of the current chunk not yet received.
        self._left = 0
        self._trailer_bytes = 0
        self.done = False
        self.trailing = b""

    def feed(self, data: bytes) -> bytes:
        """Take the next bytes received; return the body bytes they complete.

        Raises:
            httpx.RemoteProtocolError: the framing is broken, or a line is too long.
        """
        if self.done:
            self.trailing += data
            return b""
        if self._buffer:
            data = self._buffer + data
            self._buffer = b""
        out: list[bytes] = []
        at = 0
        end = len(data)
        while at < end:
            state = self._state
            if state == _DATA:
                take = min(self._left, end - at)
                out.append(data[at : at + take] if take < end - at or at else data)
                at += take
                self._left -= take
                if not self._left:
                    self._state = _DATA_END
            elif state == _DATA_END:
                if end - at < 2:
                    break
                if data[at : at + 2] != b"\r\n":
                    raise httpx.RemoteProtocolError(
                        "Malformed chunked body: no CRLF after a chunk."
                    )
                at += 2
                self._state = _SIZE
            elif state == _SIZE:
                line_end = data.find(b"\r\n", at)
                if line_end < 0:
                    break
                self._size_line(data, at, line_end)
                at = line_end + 2
            else:
                next_line = self._trailer_line(data, at)
                if next_line is None:
                    break
                at = next_line
                if self.done:
                    self.trailing = data[at:]
                    return b"".join(out)
        rest = data[at:]
        if len(rest) > MAX_LINE_BYTES:
            raise httpx.RemoteProtocolError("Malformed chunked body: a line is too long.")
        self._buffer = rest
        return out[0] if len(out) == 1 else b"".join(out)

    def _size_line(self, data: bytes, at: int, line_end: int) -> None:
        match = _SIZE_LINE.fullmatch(data, at, line_end)
        if match is None:
            raise httpx.RemoteProtocolError("Malformed chunked body: a bad chunk-size line.")
        size = int(match[1], 16)
        if size:
            self._left = size
            self._state = _DATA
        else:
            self._state = _TRAILER

    def _trailer_line(self, data: bytes, at: int) -> int | None:
        """Consume one trailer line starting at ``at``; return where the next begins, or None
        when the line is not complete yet."""
        line_end = data.find(b"\n", at)
        if line_end < 0:
            return None
        self._trailer_bytes += line_end + 1 - at
        if self._trailer_bytes > MAX_LINE_BYTES:
            raise httpx.RemoteProtocolError("Malformed chunked body: the trailer is too long.")
        if data[at:line_end] in (b"", b"\r"):
            self.done = True
            self._state = _DONE
        return line_end + 1
