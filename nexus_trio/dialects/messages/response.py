"""A chat-completions answer → a Messages API response (docs/messages-api.md#responses).

The first choice's ``reasoning_content`` (or ``reasoning``) becomes a ``thinking`` block, its
``content`` a ``text`` block and each tool call a ``tool_use`` block, in that order; an answer
with none of them gets one empty ``text`` block, so ``content[0]`` always exists.
"""

from __future__ import annotations

import msgspec

from nexus_trio import errors
from nexus_trio.dialects.anthropic.shapes import Text, ToolUse
from nexus_trio.dialects.messages.answers import (
    Completion,
    MessageOut,
    ThinkingOut,
    new_id,
    stop_reason,
    tool_input,
    usage_out,
)

__all__ = ["message_response"]

_DECODER = msgspec.json.Decoder(Completion)
_ENCODER = msgspec.json.Encoder()


def message_response(chat: bytes, *, model: str) -> bytes:
    """The Messages response body for a chat-completions answer body.

    Args:
        chat: A 2xx body of ``POST /v1/chat/completions``.
        model: The model name the client asked for (reported as ``model``).

    Raises:
        BadUpstreamResponse: ``chat`` is not a chat completion with a choice.
    """
    try:
        completion = _DECODER.decode(chat)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise errors.BadUpstreamResponse(
            "The backend sent an answer that is not a chat completion."
        ) from exc
    choice = next((c for c in completion.choices if c.index == 0 and c.message), None)
    if choice is None or choice.message is None:
        raise errors.BadUpstreamResponse("The backend sent a chat completion without a choice.")
    answer = choice.message
    content: list[ThinkingOut | Text | ToolUse] = []
    reasoning = answer.reasoning_content or answer.reasoning
    if reasoning:
        content.append(ThinkingOut(reasoning))
    if answer.content:
        content.append(Text(answer.content))
    for call in answer.tool_calls or ():
        function = call.function
        name = function.name if function is not None and function.name else ""
        arguments = function.arguments if function is not None else None
        content.append(
            ToolUse(call.id or new_id("toolu_"), name, msgspec.Raw(tool_input(arguments)))
        )
    if not content:
        content.append(Text(""))
    reason, sequence = stop_reason(
        choice.finish_reason, called_tools=bool(answer.tool_calls), matched=choice.stop_reason
    )
    message = MessageOut(
        id=f"msg_{completion.id}" if completion.id else new_id("msg_"),
        model=model,
        content=content,
        stop_reason=reason,
        stop_sequence=sequence,
        usage=usage_out(completion.usage),
    )
    return _ENCODER.encode(message)
