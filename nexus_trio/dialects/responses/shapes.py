"""What the translation reads: a Responses request (client side) and a chat-completions answer or
stream chunk (backend side), as view Structs; every other field is skipped by the decoders.

Input items, content parts and tools are kept as :class:`msgspec.Raw` in the request view and
decoded one at a time after a look at their ``type`` (:class:`Typed`), so an item, part or tool
of a type the translation does not know is skipped whatever its other fields hold.
"""

from __future__ import annotations

from typing import Any

import msgspec

from nexus_trio import errors

# -- the client's Responses request -----------------------------------------------------------


class Typed(msgspec.Struct):
    """The ``type`` of an input item (an easy input message may leave it out), part or tool."""

    type: str = "message"


TYPED = msgspec.json.Decoder(Typed)


def decode_at(decoder: msgspec.json.Decoder[Any], raw: msgspec.Raw, where: str) -> Any:
    """``raw`` decoded by ``decoder``; a mismatch is a 400 naming the field under ``where``."""
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise invalid_at(where, exc) from exc


def invalid_at(where: str, exc: msgspec.ValidationError) -> errors.InvalidValue:
    """A 400 naming the field: ``where`` (empty: the body) joined with the path msgspec
    reports inside it."""
    text, _, path = str(exc).partition(" - at `$")
    param = (where + path.rstrip("`")).lstrip(".")
    if not param:
        return errors.InvalidValue(f"The request body: {text}.")
    return errors.InvalidValue(f"'{param}': {text}.", param=param)


class AllowedTool(msgspec.Struct, omit_defaults=True):
    type: str
    name: str | None = None


class ToolChoice(msgspec.Struct, omit_defaults=True):
    type: str
    name: str | None = None
    mode: str | None = None
    tools: list[AllowedTool] | None = None


class Request(msgspec.Struct):
    model: str | None = None
    input: str | list[msgspec.Raw] = msgspec.field(default_factory=list)
    instructions: str | None = None
    tools: list[msgspec.Raw] | None = None
    tool_choice: str | ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    store: bool | None = None
    previous_response_id: str | None = None
    user: str | None = None
    stream: bool = False
    background: bool | None = None
    #: Server-side state the gateway cannot resolve: refused when set.
    conversation: Any = None
    prompt: Any = None


class MessageItem(msgspec.Struct):
    role: str
    content: str | list[msgspec.Raw]


class FunctionCallItem(msgspec.Struct):
    call_id: str
    name: str
    arguments: str = ""
    namespace: str | None = None


class FunctionCallOutputItem(msgspec.Struct):
    call_id: str
    output: str | list[msgspec.Raw]


class TextPart(msgspec.Struct):
    """``input_text`` and ``output_text``."""

    text: str


class RefusalPart(msgspec.Struct):
    refusal: str


class ImagePart(msgspec.Struct):
    image_url: str | None = None
    file_id: str | None = None
    detail: str | None = None


class FunctionTool(msgspec.Struct):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class NamespaceTool(msgspec.Struct):
    name: str
    tools: list[msgspec.Raw] = msgspec.field(default_factory=list)


class TextFormat(msgspec.Struct):
    type: str
    name: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None
    description: str | None = None


class TextConfig(msgspec.Struct):
    format: TextFormat | None = None


class Reasoning(msgspec.Struct):
    effort: str | None = None


# -- the backend's chat-completions answer -----------------------------------------------------


class PromptDetails(msgspec.Struct):
    cached_tokens: int | None = None


class CompletionDetails(msgspec.Struct):
    reasoning_tokens: int | None = None


class ChatUsage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int | None = None
    prompt_tokens_details: PromptDetails | None = None
    completion_tokens_details: CompletionDetails | None = None


class Function(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class ToolCall(msgspec.Struct):
    index: int = 0
    id: str | None = None
    function: Function | None = None


class AnswerMessage(msgspec.Struct):
    """A completion's ``message`` or a chunk's ``delta``: ``reasoning_content`` is llama.cpp's
    and vLLM's reasoning output, ``reasoning`` Ollama's and newer vLLM's."""

    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None


class Choice(msgspec.Struct):
    message: AnswerMessage | None = None
    delta: AnswerMessage | None = None
    finish_reason: str | None = None


class Completion(msgspec.Struct):
    """A ``chat.completion`` or one ``chat.completion.chunk``."""

    choices: list[Choice] = msgspec.field(default_factory=list)
    usage: ChatUsage | None = None
