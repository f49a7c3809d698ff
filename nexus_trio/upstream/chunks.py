"""What the gateway reads inside streamed chunks: content (TTFT), endings, usage.

Each SSE ``data`` payload of an OpenAI-style stream is decoded into a tiny view; everything
else in it is skipped by the decoder. A payload that is not JSON is simply not content.
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


class Usage(msgspec.Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class _Chunk(msgspec.Struct):
    choices: list[_Choice] = msgspec.field(default_factory=list)
    usage: Usage | None = None


class _Body(msgspec.Struct):
    usage: Usage | None = None


_CHUNK = msgspec.json.Decoder(_Chunk)
_BODY = msgspec.json.Decoder(_Body)


class ChunkInfo(msgspec.Struct, frozen=True):
    has_content: bool
    finished: bool
    usage: Usage | None


_NOT_JSON = ChunkInfo(has_content=False, finished=False, usage=None)


def inspect_chunk(data: str) -> ChunkInfo:
    """Read one event's ``data``: generated content? a ``finish_reason``? usage?

    Content is a non-empty ``delta.content``/``delta.reasoning_content``/``text`` string or a
    non-empty ``delta.tool_calls`` (docs/quality.md#outcomes): a first chunk with empty content is
    not.
    """
    try:
        chunk = _CHUNK.decode(data)
    except msgspec.DecodeError:
        return _NOT_JSON
    has_content = False
    finished = False
    for choice in chunk.choices:
        delta = choice.delta
        if choice.text or (
            delta is not None and (delta.content or delta.reasoning_content or delta.tool_calls)
        ):
            has_content = True
        if choice.finish_reason is not None:
            finished = True
    return ChunkInfo(
        has_content=has_content,
        finished=finished,
        usage=chunk.usage,
    )


def body_usage(body: bytes) -> Usage | None:
    """Validate a non-streaming JSON body and return its ``usage``.

    Raises:
        msgspec.DecodeError: the body is not a JSON object.
    """
    return _BODY.decode(body).usage
