"""An Anthropic Messages API response → an OpenAI ``chat.completion``.

Text blocks are joined into ``message.content``; ``tool_use`` blocks become ``tool_calls``
(their ``input`` as the JSON string ``arguments``); other blocks (``thinking``…) are left
out. ``stop_reason`` maps to ``finish_reason``; ``usage`` to OpenAI's, where
``prompt_tokens`` counts every input token (Anthropic reports cache reads and writes apart
from ``input_tokens``) and cache reads are ``prompt_tokens_details.cached_tokens``. The OpenAI
shapes here are shared with the stream translation.
"""

from __future__ import annotations

import msgspec

from nexus_trio import errors

__all__ = ["FINISH_REASONS", "Usage", "translate_response", "usage_of"]

#: Anthropic ``stop_reason`` → OpenAI ``finish_reason`` (anything else: ``stop``).
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


class AnthropicUsage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    #: Server-tool uses by kind (``web_search_requests``…), as Anthropic sent them.
    server_tool_use: msgspec.Raw = msgspec.Raw()


class _Block(msgspec.Struct):
    type: str
    text: str | None = None
    id: str | None = None
    name: str | None = None
    input: msgspec.Raw = msgspec.Raw()


class _Message(msgspec.Struct):
    id: str
    model: str
    content: list[_Block]
    usage: AnthropicUsage
    stop_reason: str | None = None


class PromptDetails(msgspec.Struct):
    cached_tokens: int


class Usage(msgspec.Struct, omit_defaults=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptDetails | None = None
    #: Anthropic's ``server_tool_use``, for the gateway's pricing (docs/spend.md#server-tool-fees).
    server_tool_use: msgspec.Raw | None = None


class FunctionCall(msgspec.Struct):
    name: str
    arguments: str


class ToolCall(msgspec.Struct):
    id: str
    function: FunctionCall
    type: str = "function"


class _AssistantMessage(msgspec.Struct):
    content: str | None
    role: str = "assistant"
    tool_calls: list[ToolCall] | msgspec.UnsetType = msgspec.UNSET


class _Choice(msgspec.Struct):
    message: _AssistantMessage
    finish_reason: str | None
    index: int = 0
    logprobs: None = None


class _Completion(msgspec.Struct):
    id: str
    created: int
    model: str
    choices: list[_Choice]
    usage: Usage
    object: str = "chat.completion"


_DECODER = msgspec.json.Decoder(_Message)
_ENCODER = msgspec.json.Encoder()


def usage_of(input_usage: AnthropicUsage, output_tokens: int) -> Usage:
    """OpenAI usage from Anthropic's input counts and the output tokens."""
    cache_read = input_usage.cache_read_input_tokens or 0
    prompt = (input_usage.input_tokens or 0) + cache_read
    prompt += input_usage.cache_creation_input_tokens or 0
    details = PromptDetails(cache_read) if input_usage.cache_read_input_tokens is not None else None
    tools = input_usage.server_tool_use or None
    return Usage(prompt, output_tokens, prompt + output_tokens, details, tools)


def translate_response(body: bytes, *, created: int) -> bytes:
    """The OpenAI ``chat.completion`` body for one Anthropic message body.

    Args:
        body: A 2xx body of ``POST /v1/messages``.
        created: The ``created`` timestamp to report (Anthropic sends none).

    Raises:
        BadUpstreamResponse: the body is not an Anthropic message.
    """
    try:
        message = _DECODER.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise errors.BadUpstreamResponse(
            "The Anthropic backend sent a response that is not a message."
        ) from exc
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in message.content:
        if block.type == "text" and block.text is not None:
            texts.append(block.text)
        elif block.type == "tool_use" and block.id and block.name:
            arguments = bytes(block.input).decode() if block.input else "{}"
            calls.append(ToolCall(block.id, FunctionCall(block.name, arguments)))
    stop = message.stop_reason
    completion = _Completion(
        id=message.id,
        created=created,
        model=message.model,
        choices=[
            _Choice(
                _AssistantMessage(
                    "".join(texts) if texts else None, tool_calls=calls or msgspec.UNSET
                ),
                FINISH_REASONS.get(stop, "stop") if stop is not None else None,
            )
        ],
        usage=usage_of(message.usage, message.usage.output_tokens or 0),
    )
    return _ENCODER.encode(completion)
