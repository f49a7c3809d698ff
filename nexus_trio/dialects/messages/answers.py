"""What a chat-completions answer carries, and the Messages shapes it becomes
(docs/messages-api.md#responses).

Shared by the whole answer (:mod:`.response`) and the stream (:mod:`.stream`): the views of a
``chat.completion`` and a ``chat.completion.chunk`` (reasoning read from ``reasoning_content``,
as llama.cpp and vLLM send it, or ``reasoning``, as Ollama and newer vLLM do; vLLM's
``stop_reason`` names the stop string that ended the answer), the Messages blocks, the
``stop_reason`` mapping, usage, and a tool call's arguments as its ``input``.
"""

from __future__ import annotations

import secrets

import msgspec

from nexus_trio.dialects.anthropic.shapes import Text, ToolUse
from nexus_trio.upstream.chunks import Usage

__all__ = [
    "Chunk",
    "Completion",
    "MessageOut",
    "ThinkingOut",
    "UsageOut",
    "new_id",
    "stop_reason",
    "tool_input",
    "usage_out",
]

# -- what the backend answered ----------------------------------------------------------------


class Function(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class ToolCall(msgspec.Struct):
    index: int = 0
    id: str | None = None
    function: Function | None = None


class Answer(msgspec.Struct):
    """A whole answer's ``message``, or one chunk's ``delta``."""

    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    tool_calls: list[ToolCall] | None = None


class Choice(msgspec.Struct):
    index: int = 0
    message: Answer | None = None
    delta: Answer | None = None
    finish_reason: str | None = None
    stop_reason: str | int | None = None


class Completion(msgspec.Struct):
    choices: list[Choice]
    id: str | None = None
    usage: Usage | None = None


class Chunk(msgspec.Struct):
    choices: list[Choice] = msgspec.field(default_factory=list)
    usage: Usage | None = None


# -- what the client gets ---------------------------------------------------------------------


class ThinkingOut(msgspec.Struct, tag="thinking", tag_field="type"):
    thinking: str
    #: Anthropic signs its thinking; a translated answer has no signature to give.
    signature: str = ""


class UsageOut(msgspec.Struct):
    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int | msgspec.UnsetType = msgspec.UNSET


class MessageOut(msgspec.Struct, kw_only=True):
    id: str
    type: str = "message"
    role: str = "assistant"
    model: str
    content: list[ThinkingOut | Text | ToolUse]
    stop_reason: str | None
    stop_sequence: str | None = None
    usage: UsageOut


#: chat completions ``finish_reason`` → Messages ``stop_reason`` (anything else: ``end_turn``).
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
_OBJECT = msgspec.json.Decoder(dict[str, msgspec.Raw])


def stop_reason(
    finish: str | None, *, called_tools: bool, matched: str | int | None
) -> tuple[str, str | None]:
    """``stop_reason`` and ``stop_sequence`` for an answer that ended with ``finish``.

    An answer that called tools ends with ``tool_use`` even when the backend said ``stop``;
    one that hit a stop string the backend names (``matched``, vLLM's ``stop_reason``) ends
    with ``stop_sequence`` (docs/messages-api.md#responses).
    """
    reason = STOP_REASONS.get(finish or "stop", "end_turn")
    if reason == "end_turn" and called_tools:
        return "tool_use", None
    if reason == "end_turn" and isinstance(matched, str) and matched:
        return "stop_sequence", matched
    return reason, None


def usage_out(usage: Usage | None) -> UsageOut:
    """Messages usage: ``input_tokens`` are the prompt tokens not read from the cache, which
    are ``cache_read_input_tokens`` when the backend reports them."""
    if usage is None:
        return UsageOut(0, 0)
    cached = usage.cached_tokens
    out = UsageOut(max((usage.prompt_tokens or 0) - cached, 0), usage.completion_tokens or 0)
    details = usage.prompt_tokens_details
    if details is not None and details.cached_tokens is not None:
        out.cache_read_input_tokens = cached
    return out


def tool_input(arguments: str | None) -> bytes:
    """A tool call's ``arguments`` as the JSON object ``input`` is: the text itself when it is
    one, else ``{}`` (docs/messages-api.md#responses)."""
    text = (arguments or "").strip().encode()
    try:
        _OBJECT.decode(text)
    except (msgspec.DecodeError, RecursionError):
        return b"{}"
    return text


def new_id(prefix: str) -> str:
    """A fresh id (``msg_…``, ``toolu_…``) for what the backend gave none."""
    return prefix + secrets.token_hex(12)
