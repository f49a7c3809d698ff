"""What the gateway reads inside streamed chunks: content (TTFT), endings, usage.

Each SSE ``data`` payload of an OpenAI-style stream is decoded into a tiny view; everything
else in it is skipped by the decoder. A payload that is not JSON is simply not content. The
characters of generated content are counted for the cost estimate of a stream that reports no
usage (docs/spend.md#estimates).
"""

from __future__ import annotations

import msgspec


class _Delta(msgspec.Struct):
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[msgspec.Raw] | None = None


class _Choice(msgspec.Struct):
    delta: _Delta | None = None
    text: str | None = None
    finish_reason: str | None = None


class PromptTokensDetails(msgspec.Struct):
    cached_tokens: int | None = None


class Usage(msgspec.Struct, omit_defaults=True):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prompt_tokens_details: PromptTokensDetails | None = None
    #: Uses of the provider's server-side tools by kind, as the native dialects report them
    #: (docs/spend.md#server-tool-fees); kept raw, read only where fees are priced.
    server_tool_use: msgspec.Raw = msgspec.Raw()

    @property
    def cached_tokens(self) -> int:
        """Prompt tokens served from the upstream's prompt cache (0 when not reported)."""
        details = self.prompt_tokens_details
        if details is None or details.cached_tokens is None:
            return 0
        return details.cached_tokens


class _Chunk(msgspec.Struct):
    choices: list[_Choice] = msgspec.field(default_factory=list)
    usage: Usage | None = None
    #: A server's error reported in the stream (vLLM, llama.cpp: ``data: {"error": ...}``).
    error: msgspec.Raw = msgspec.Raw()


class _Body(msgspec.Struct):
    usage: Usage | None = None


class _Message(msgspec.Struct):
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: msgspec.Raw = msgspec.Raw()


class _BodyChoice(msgspec.Struct):
    message: _Message | None = None
    text: str | None = None


class _BodyOutput(msgspec.Struct):
    choices: list[_BodyChoice] = msgspec.field(default_factory=list)


_CHUNK = msgspec.json.Decoder(_Chunk)
_BODY = msgspec.json.Decoder(_Body)
_BODY_OUTPUT = msgspec.json.Decoder(_BodyOutput)


class ChunkInfo(msgspec.Struct, frozen=True):
    has_content: bool
    finished: bool
    usage: Usage | None
    #: Characters of generated content (text, reasoning, tool-call deltas).
    content_chars: int = 0
    #: No choices, only usage: the chunk ``stream_options.include_usage`` adds at the end.
    usage_only: bool = False
    #: The upstream reported an error in the stream: it did not end well, whatever follows.
    failed: bool = False


_NOT_JSON = ChunkInfo(has_content=False, finished=False, usage=None)


def inspect_chunk(data: str) -> ChunkInfo:
    """Read one event's ``data``: generated content? a ``finish_reason``? usage?

    Content is a non-empty ``delta.content``/``delta.reasoning_content``/``text`` string or a
    non-empty ``delta.tool_calls`` (docs/quality.md#outcomes): a first chunk with empty content is
    not.
    """
    try:
        chunk = _CHUNK.decode(data)
    except (msgspec.DecodeError, RecursionError):
        return _NOT_JSON
    chars = 0
    finished = False
    for choice in chunk.choices:
        delta = choice.delta
        if choice.text:
            chars += len(choice.text)
        if delta is not None:
            if delta.content:
                chars += len(delta.content)
            if delta.reasoning_content:
                chars += len(delta.reasoning_content)
            if delta.tool_calls:
                chars += sum(len(call) for call in delta.tool_calls)
        if choice.finish_reason is not None:
            finished = True
    usage = chunk.usage
    return ChunkInfo(
        has_content=chars > 0,
        finished=finished,
        usage=usage,
        content_chars=chars,
        usage_only=usage is not None and not chunk.choices,
        failed=bool(chunk.error) and bytes(chunk.error) != b"null",
    )


def body_usage(body: bytes) -> Usage | None:
    """Validate a non-streaming JSON body and return its ``usage``.

    Raises:
        msgspec.DecodeError: the body is not a JSON object.
    """
    return _BODY.decode(body).usage


def body_output_chars(body: bytes) -> int:
    """Characters of generated content in a non-streaming answer (for the cost estimate).

    Decoded only when a priced backend's answer carried no usage; 0 when it is not JSON.
    """
    try:
        output = _BODY_OUTPUT.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return 0
    chars = 0
    for choice in output.choices:
        if choice.text:
            chars += len(choice.text)
        message = choice.message
        if message is not None:
            chars += len(message.content or "") + len(message.reasoning_content or "")
            chars += len(message.tool_calls)
    return chars
