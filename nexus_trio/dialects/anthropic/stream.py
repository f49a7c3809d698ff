"""Anthropic Messages API stream events → OpenAI ``chat.completion.chunk`` events.

Theory of operation. :class:`StreamTranslator` is fed the ``data`` of each upstream event, in
order, and returns the bytes of the OpenAI events it stands for (often none):

========================  ==================================================================
Anthropic event           OpenAI events
========================  ==================================================================
``message_start``         the first chunk: ``role: assistant``, empty content
``content_block_start``   ``tool_use``: a tool-call delta with ``index``, ``id``, ``name``
``content_block_delta``   ``text_delta``: a content delta; ``input_json_delta``: an argument
                          fragment of that tool call
``message_delta``         the chunk with ``finish_reason``
``message_stop``          a usage chunk (``stream_options.include_usage`` only), ``[DONE]``
``error``                 nothing: :attr:`failed` is set, the relay ends the stream truncated
``ping``, others          nothing (the bytes still reset the relay's idle timer)
========================  ==================================================================

:attr:`content_started` turns true with the first text or tool-call delta (TTFT), :attr:`done`
at ``message_stop``. A stream that ends without ``message_stop`` never counts as ended well.
"""

from __future__ import annotations

import msgspec

from nexus_trio.dialects.anthropic.errors import translate_error_event
from nexus_trio.dialects.anthropic.response import (
    FINISH_REASONS,
    AnthropicUsage,
    Usage,
    usage_of,
)
from nexus_trio.upstream.chunks import PromptTokensDetails
from nexus_trio.upstream.chunks import Usage as StreamUsage

__all__ = ["StreamTranslator"]


class _StartedMessage(msgspec.Struct):
    id: str = ""
    model: str = ""
    usage: AnthropicUsage = msgspec.field(default_factory=AnthropicUsage)


class _Block(msgspec.Struct):
    type: str
    id: str | None = None
    name: str | None = None


class _Delta(msgspec.Struct):
    type: str | None = None
    text: str | None = None
    partial_json: str | None = None
    stop_reason: str | None = None


class _Event(msgspec.Struct):
    type: str
    message: _StartedMessage | None = None
    index: int = 0
    content_block: _Block | None = None
    delta: _Delta | None = None
    usage: AnthropicUsage | None = None


class _FunctionDelta(msgspec.Struct, omit_defaults=True):
    name: str | None = None
    arguments: str | None = None


class _ToolCallDelta(msgspec.Struct, omit_defaults=True):
    index: int
    function: _FunctionDelta
    id: str | None = None
    type: str | None = None


class _DeltaOut(msgspec.Struct, omit_defaults=True):
    role: str | None = None
    content: str | None = None
    tool_calls: list[_ToolCallDelta] | None = None


class _Choice(msgspec.Struct):
    delta: _DeltaOut
    finish_reason: str | None = None
    index: int = 0


class _Chunk(msgspec.Struct):
    id: str
    created: int
    model: str
    choices: list[_Choice]
    object: str = "chat.completion.chunk"
    usage: Usage | msgspec.UnsetType = msgspec.UNSET


_DECODER = msgspec.json.Decoder(_Event)
_ENCODER = msgspec.json.Encoder()
_DONE = b"data: [DONE]\n\n"
_DELTA_TAIL = b"}}]}\n\n"


class StreamTranslator:
    """Translates one Anthropic stream; see the module docstring. Sync, no I/O."""

    def __init__(self, *, created: int, include_usage: bool) -> None:
        self.created = created
        self.include_usage = include_usage
        self.content_started = False
        self.done = False
        self.failed = False
        #: Prompt and completion tokens once ``message_delta`` reported them.
        self.usage: StreamUsage | None = None
        self._id = ""
        self._model = ""
        self._input = AnthropicUsage()
        self._output_tokens = 0
        #: Anthropic content block index → OpenAI tool call index.
        self._tools: dict[int, int] = {}
        #: A delta chunk's bytes up to the delta's fields (set at ``message_start``).
        self._delta_head = b""

    def feed(self, data: str) -> bytes:
        """The OpenAI events for one upstream event's ``data`` (empty bytes for none)."""
        try:
            event = _DECODER.decode(data)
        except (msgspec.DecodeError, RecursionError):
            self.failed = True
            return b""
        kind = event.type
        if kind == "content_block_delta" and event.delta is not None:
            return self._block_delta(event.index, event.delta)
        if kind == "content_block_start" and event.content_block is not None:
            return self._block_start(event.index, event.content_block)
        if kind == "message_start" and event.message is not None:
            self._start(event.message)
            return self._chunk(_DeltaOut(role="assistant", content=""))
        if kind == "message_delta":
            return self._message_delta(event)
        if kind == "message_stop":
            self.done = True
            if not self.include_usage:
                return _DONE
            usage = usage_of(self._input, self._output_tokens)
            return (
                self._encode(_Chunk(self._id, self.created, self._model, [], usage=usage)) + _DONE
            )
        if kind == "error":
            self.failed = True
        return b""

    def usage_so_far(self) -> StreamUsage | None:
        """The usage ``message_delta`` reported, else the input ``message_start`` reported
        (with no output count): what an abandoned stream is known to have used."""
        if self.usage is not None or not self._id:
            return self.usage
        whole = usage_of(self._input, 0)
        details = whole.prompt_tokens_details
        cached = None if details is None else PromptTokensDetails(details.cached_tokens)
        return StreamUsage(whole.prompt_tokens, None, cached)

    @staticmethod
    def opening_error(data: str) -> tuple[int, bytes] | None:
        """Status and OpenAI error body when the stream's first event is an ``error``."""
        return translate_error_event(data)

    def _start(self, message: _StartedMessage) -> None:
        self._id = message.id
        self._model = message.model
        self._input = message.usage
        self._delta_head = b"".join(
            (
                b'data: {"id":',
                _ENCODER.encode(message.id),
                b',"object":"chat.completion.chunk","created":',
                str(self.created).encode(),
                b',"model":',
                _ENCODER.encode(message.model),
                b',"choices":[{"index":0,"finish_reason":null,"delta":{',
            )
        )

    def _block_delta(self, index: int, delta: _Delta) -> bytes:
        """A text or argument delta: the hot path, written from a prebuilt head (the same
        JSON as :meth:`_chunk` would encode, without building Structs)."""
        if delta.type == "text_delta" and delta.text:
            self.content_started = True
            text = _ENCODER.encode(delta.text)
            return b"".join((self._delta_head, b'"content":', text, _DELTA_TAIL))
        tool = self._tools.get(index)
        if delta.type == "input_json_delta" and delta.partial_json and tool is not None:
            self.content_started = True
            fragment = _ENCODER.encode(delta.partial_json)
            call = b'"tool_calls":[{"index":%d,"function":{"arguments":%s}}]' % (tool, fragment)
            return b"".join((self._delta_head, call, _DELTA_TAIL))
        return b""

    def _block_start(self, index: int, block: _Block) -> bytes:
        if block.type != "tool_use" or not block.id or not block.name:
            return b""
        tool = self._tools[index] = len(self._tools)
        self.content_started = True
        function = _FunctionDelta(name=block.name, arguments="")
        call = _ToolCallDelta(tool, function, id=block.id, type="function")
        return self._chunk(_DeltaOut(tool_calls=[call]))

    def _message_delta(self, event: _Event) -> bytes:
        if event.usage is not None:
            usage = event.usage
            self._output_tokens = usage.output_tokens or self._output_tokens
            if usage.input_tokens is not None:  # newer API versions repeat the input counts
                self._input = usage
            elif usage.server_tool_use:
                self._input.server_tool_use = usage.server_tool_use
        final = usage_of(self._input, self._output_tokens)
        details = final.prompt_tokens_details
        cached = None if details is None else PromptTokensDetails(details.cached_tokens)
        self.usage = StreamUsage(final.prompt_tokens, final.completion_tokens, cached)
        if final.server_tool_use is not None:
            self.usage.server_tool_use = final.server_tool_use
        stop = event.delta.stop_reason if event.delta is not None else None
        reason = FINISH_REASONS.get(stop, "stop") if stop is not None else "stop"
        return self._chunk(_DeltaOut(), finish_reason=reason)

    def _chunk(self, delta: _DeltaOut, finish_reason: str | None = None) -> bytes:
        chunk = _Chunk(self._id, self.created, self._model, [_Choice(delta, finish_reason)])
        return self._encode(chunk)

    @staticmethod
    def _encode(chunk: _Chunk) -> bytes:
        return b"data: " + _ENCODER.encode(chunk) + b"\n\n"
