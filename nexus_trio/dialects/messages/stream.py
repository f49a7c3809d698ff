"""Chat-completions stream chunks → Messages API stream events
(docs/messages-api.md#streams).

Theory of operation. :class:`MessagesStream` is fed the ``data`` of each upstream chunk, in
order, and returns the bytes of complete ``event: …\\ndata: …\\n\\n`` blocks. The first call
opens the message (``message_start``, ``ping``). Each delta goes to the open content block if
it is of the same kind, else the open block is closed and a new one started at the next
index: ``reasoning_content``/``reasoning`` → a ``thinking`` block (``thinking_delta``),
``content`` → a ``text`` block (``text_delta``), each tool call (by its ``index``) → a
``tool_use`` block. A tool call's argument fragments are gathered and sent as one
``input_json_delta`` when its block closes, checked to be a JSON object (``{}`` otherwise, as
in a whole answer), so a client never parses broken input. Backends send parallel calls one
after another; a fragment for a call whose block is already closed is dropped.

``finish_reason`` and usage (from any chunk, the usage-only chunk at the end included) are
kept; :meth:`MessagesStream.done` closes the open block and sends ``message_delta`` and
``message_stop``. :meth:`MessagesStream.truncated` is the ``error`` event that makes
Anthropic's SDKs raise.
"""

from __future__ import annotations

import msgspec

from nexus_trio.dialects.anthropic.shapes import Text, ToolUse
from nexus_trio.dialects.messages.answers import (
    Chunk,
    MessageOut,
    ThinkingOut,
    ToolCall,
    new_id,
    stop_reason,
    tool_input,
    usage_out,
)
from nexus_trio.dialects.messages.errors import envelope
from nexus_trio.upstream.chunks import Usage

__all__ = ["MessagesStream"]

_DECODER = msgspec.json.Decoder(Chunk)
_ENCODER = msgspec.json.Encoder()
_EMPTY_INPUT = msgspec.Raw(b"{}")
_PING = b'event: ping\ndata: {"type":"ping"}\n\n'
_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
_DELTA_TAIL = b"}}\n\n"


class _MessageStart(msgspec.Struct, tag="message_start", tag_field="type"):
    message: MessageOut


class _BlockStart(msgspec.Struct, tag="content_block_start", tag_field="type"):
    index: int
    content_block: ThinkingOut | Text | ToolUse


class _DeltaUsage(msgspec.Struct):
    output_tokens: int
    input_tokens: int | msgspec.UnsetType = msgspec.UNSET
    cache_read_input_tokens: int | msgspec.UnsetType = msgspec.UNSET


class _StopDelta(msgspec.Struct):
    stop_reason: str
    stop_sequence: str | None


class _MessageDelta(msgspec.Struct, tag="message_delta", tag_field="type"):
    delta: _StopDelta
    usage: _DeltaUsage


def _event(name: bytes, payload: msgspec.Struct) -> bytes:
    return b"event: " + name + b"\ndata: " + _ENCODER.encode(payload) + b"\n\n"


def _delta_head(index: int, kind: bytes, field: bytes) -> bytes:
    return (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
        b'"delta":{"type":"%s","%s":' % (index, kind, field)
    )


class MessagesStream:
    """Translates one chat-completions stream; see the module docstring. Sync, no I/O."""

    def __init__(self, *, model: str, message_id: str) -> None:
        self.model = model
        self.message_id = message_id
        self._started = False
        #: The open block's kind (``text``, ``thinking``, ``tool``) and index; the next index.
        self._kind: str | None = None
        self._index = -1
        self._next = 0
        #: The open text or thinking block's ``content_block_delta`` bytes up to its text.
        self._head = b""
        #: Tool call ``index`` → its argument fragments; the open tool block's fragments.
        self._calls: dict[int, list[str]] = {}
        self._call: list[str] | None = None
        self._finish: str | None = None
        self._matched: str | int | None = None
        self._usage: Usage | None = None

    def feed(self, data: str) -> bytes:
        """The events for one ``chat.completion.chunk``'s JSON text (never ``[DONE]``); a
        chunk that is not one adds nothing."""
        try:
            chunk = _DECODER.decode(data)
        except (msgspec.DecodeError, RecursionError):
            return b""
        if chunk.usage is not None:
            self._usage = chunk.usage
        out = [] if self._started else [self._opening()]
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            delta = choice.delta
            if delta is not None:
                reasoning = delta.reasoning_content or delta.reasoning
                if reasoning:
                    out.append(self._text("thinking", reasoning))
                if delta.content:
                    out.append(self._text("text", delta.content))
                for call in delta.tool_calls or ():
                    out.append(self._tool(call))
            if choice.finish_reason:
                self._finish = choice.finish_reason
                self._matched = choice.stop_reason
        return b"".join(out)

    def done(self) -> bytes:
        """The end of a stream that ended well: the open block closed (an empty text block
        when there was none), ``message_delta`` with the stop reason and usage,
        ``message_stop``."""
        out = [b"" if self._started else self._opening(), self._close()]
        if self._next == 0:
            out += [self._open("text", Text("")), self._close()]
        reason, sequence = stop_reason(
            self._finish, called_tools=bool(self._calls), matched=self._matched
        )
        usage = usage_out(self._usage)
        delta_usage = _DeltaUsage(
            usage.output_tokens, cache_read_input_tokens=usage.cache_read_input_tokens
        )
        if self._usage is not None and self._usage.prompt_tokens is not None:
            delta_usage.input_tokens = usage.input_tokens
        out.append(
            _event(b"message_delta", _MessageDelta(_StopDelta(reason, sequence), delta_usage))
        )
        out.append(_STOP)
        return b"".join(out)

    def truncated(self, message: str) -> bytes:
        """The ``error`` event (``api_error``) for a stream that broke off: Anthropic's SDKs
        raise on it (docs/messages-api.md#streams)."""
        return b"event: error\ndata: " + envelope("api_error", message) + b"\n\n"

    def _opening(self) -> bytes:
        self._started = True
        usage = usage_out(self._usage)
        usage.output_tokens = 0
        message = MessageOut(
            id=self.message_id, model=self.model, content=[], stop_reason=None, usage=usage
        )
        return _event(b"message_start", _MessageStart(message)) + _PING

    def _text(self, kind: str, text: str) -> bytes:
        """A ``text_delta`` or ``thinking_delta``, in a new block unless one of ``kind`` is
        open: the hot path, written from the block's prebuilt head."""
        opened = b""
        if self._kind != kind:
            opened = self._close()
            start = ThinkingOut("") if kind == "thinking" else Text("")
            opened += self._open(kind, start)
            name = b"thinking" if kind == "thinking" else b"text"
            self._head = _delta_head(self._index, name + b"_delta", name)
        return opened + self._head + _ENCODER.encode(text) + _DELTA_TAIL

    def _tool(self, delta: ToolCall) -> bytes:
        call = self._calls.get(delta.index)
        opened = b""
        function = delta.function
        if call is None:
            opened = self._close()
            name = function.name if function is not None and function.name else ""
            opened += self._open("tool", ToolUse(delta.id or new_id("toolu_"), name, _EMPTY_INPUT))
            call = self._call = self._calls[delta.index] = []
        if function is not None and function.arguments:
            call.append(function.arguments)
        return opened

    def _open(self, kind: str, block: ThinkingOut | Text | ToolUse) -> bytes:
        self._kind, self._index = kind, self._next
        self._next += 1
        return _event(b"content_block_start", _BlockStart(self._index, block))

    def _close(self) -> bytes:
        """``content_block_stop`` for the open block (a tool's input first), if one is."""
        if self._kind is None:
            return b""
        out = b""
        if self._call is not None:
            arguments = tool_input("".join(self._call)).decode()
            head = _delta_head(self._index, b"input_json_delta", b"partial_json")
            out = head + _ENCODER.encode(arguments) + _DELTA_TAIL
            self._call = None
        self._kind = None
        stop = b'event: content_block_stop\ndata: {"type":"content_block_stop","index":%d}\n\n'
        return out + stop % self._index
