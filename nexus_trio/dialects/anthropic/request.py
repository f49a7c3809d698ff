"""An OpenAI chat request → an Anthropic Messages API request.

Theory of operation. The client's body is decoded once into view Structs holding every field
that is translated or refused; fields Anthropic has no use for (``seed``,
``frequency_penalty``, ``presence_penalty``, ``logit_bias``, ``store``, ``service_tier``,
``metadata``, message ``name``, image ``detail``…) are skipped by the decoder.

Messages: ``system`` and ``developer`` messages become the top-level ``system`` blocks; every
other message becomes a turn: ``user`` and ``tool`` messages are user turns (a ``tool``
message is one ``tool_result`` block), ``assistant`` messages assistant turns (text, then one
``tool_use`` block per tool call). Consecutive turns of one role are merged into one, so the
turns alternate as Anthropic requires. A ``tool_result`` must answer a ``tool_use`` of the
assistant turn just before it and come before any other block of its user turn; a request
breaking that, or starting with an assistant turn, is refused with a 400 naming the message —
as is everything Anthropic cannot do (``n`` > 1, ``logprobs``, ``response_format`` JSON modes,
audio, files). Nothing is sent for a refused request.
"""

from __future__ import annotations

import msgspec

from nexus_trio import errors
from nexus_trio.dialects.anthropic.shapes import (
    URL,
    AnthropicTool,
    Base64,
    Block,
    ChatRequest,
    Image,
    Message,
    MessagesRequest,
    Metadata,
    NamedChoice,
    Part,
    Text,
    ToolChoice,
    ToolResult,
    ToolUse,
    Turn,
)

__all__ = ["Translated", "translate_request"]

_DECODER = msgspec.json.Decoder(ChatRequest)
_ARGUMENTS = msgspec.json.Decoder(dict[str, msgspec.Raw])
_ENCODER = msgspec.json.Encoder()
#: An empty JSON Schema object: a function without ``parameters`` takes none.
_NO_PARAMETERS = msgspec.Raw(b'{"type":"object","properties":{}}')
_TOOL_CHOICES = {"auto": "auto", "none": "none", "required": "any"}


class Translated(msgspec.Struct, frozen=True):
    """The Anthropic body, and what answering in OpenAI's shape needs to know."""

    body: bytes
    include_usage: bool


def translate_request(body: bytes, *, model: str, default_max_tokens: int) -> Translated:
    """Translate one OpenAI chat request body for Anthropic's ``POST /v1/messages``.

    Args:
        body: The client's JSON body (already validated as a chat request by the gateway).
        model: The model to ask Anthropic for (the one routing chose).
        default_max_tokens: ``max_tokens`` when the client sends neither ``max_tokens`` nor
            ``max_completion_tokens``.

    Raises:
        InvalidValue: Anthropic cannot do what the request asks; ``param`` names the field.
        InvalidJSON: the body is nested too deeply to decode.
    """
    try:
        request = _DECODER.decode(body)
    except msgspec.ValidationError as exc:
        raise errors.InvalidValue(f"Invalid request for an Anthropic backend: {exc}.") from exc
    except RecursionError as exc:  # docs/proxying.md#request-body
        raise errors.InvalidJSON("The request body is nested too deeply to be decoded.") from exc
    _refuse_unsupported(request)
    system, turns = _turns(request.messages)
    if not request.tools and any(
        isinstance(b, ToolUse | ToolResult) for turn in turns for b in turn.content
    ):
        raise errors.InvalidValue(
            "'tools' is required by Anthropic when the messages hold tool calls.", param="tools"
        )
    out = MessagesRequest(
        model=model,
        max_tokens=request.max_completion_tokens or request.max_tokens or default_max_tokens,
        messages=turns,
        system=system or None,
        temperature=request.temperature,
        top_p=request.top_p,
        stop_sequences=[request.stop] if isinstance(request.stop, str) else request.stop,
        metadata=Metadata(request.user) if request.user else None,
        stream=request.stream,
    )
    if request.tools:
        out.tools = [
            AnthropicTool(
                name=tool.function.name,
                input_schema=tool.function.parameters or _NO_PARAMETERS,
                description=tool.function.description,
            )
            for tool in request.tools
        ]
        out.tool_choice = _tool_choice(request)
    include_usage = request.stream_options is not None and request.stream_options.include_usage
    return Translated(_ENCODER.encode(out), include_usage)


def _refuse(param: str, what: str) -> errors.InvalidValue:
    return errors.InvalidValue(f"'{param}': {what} is not supported by Anthropic.", param=param)


def _refuse_unsupported(request: ChatRequest) -> None:
    if request.n is not None and request.n != 1:
        raise _refuse("n", "more than one choice")
    if request.logprobs or request.top_logprobs:
        raise _refuse("logprobs" if request.logprobs else "top_logprobs", "log probabilities")
    if request.response_format is not None and request.response_format.type != "text":
        raise _refuse("response_format", f"response_format '{request.response_format.type}'")
    if request.audio is not None or "audio" in (request.modalities or ()):
        raise _refuse("audio" if request.audio is not None else "modalities", "audio output")
    if request.temperature is not None and not 0 <= request.temperature <= 1:
        raise errors.InvalidValue(
            "'temperature' must be between 0 and 1 for an Anthropic model.", param="temperature"
        )
    for index, tool in enumerate(request.tools or ()):
        if tool.type != "function":
            raise _refuse(f"tools[{index}].type", f"tool type '{tool.type}'")


def _tool_choice(request: ChatRequest) -> ToolChoice | None:
    choice = request.tool_choice
    #: ``parallel_tool_calls: false`` is Anthropic's ``disable_parallel_tool_use: true``.
    serial = True if request.parallel_tool_calls is False else None
    if choice is None:
        return ToolChoice("auto", disable_parallel_tool_use=True) if serial else None
    if isinstance(choice, NamedChoice):
        return ToolChoice("tool", name=choice.function.name, disable_parallel_tool_use=serial)
    kind = _TOOL_CHOICES.get(choice)
    if kind is None:
        raise errors.InvalidValue(f"'tool_choice' {choice!r} is not valid.", param="tool_choice")
    return ToolChoice(kind, disable_parallel_tool_use=None if kind == "none" else serial)


def _turns(messages: list[Message]) -> tuple[list[Text], list[Turn]]:
    """The ``system`` blocks and the alternating turns (see the module docstring)."""
    system: list[Text] = []
    turns: list[Turn] = []
    #: The index of the message that opened each turn (for error messages).
    opened: list[int] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        role = message.role
        if role in ("system", "developer"):
            system += _texts_only(message.content, where)
            continue
        if role == "user":
            blocks: list[Block] = _content(message.content, where)
        elif role == "assistant":
            blocks = [*_texts_only(message.content, where), *_tool_uses(message, where)]
        elif role == "tool":
            blocks = [_tool_result(message, turns, where)]
        else:
            raise errors.InvalidValue(f"'{where}.role' {role!r} is not valid.", param=where)
        anthropic_role = "assistant" if role == "assistant" else "user"
        if not turns and anthropic_role == "assistant":
            raise _refuse(where, "a conversation starting with an assistant message")
        if not blocks:
            continue
        if turns and turns[-1].role == anthropic_role:
            turns[-1].content.extend(blocks)
        else:
            turns.append(Turn(anthropic_role, blocks))
            opened.append(index)
    if not turns:
        raise errors.InvalidValue("'messages' needs a user message.", param="messages")
    _check_answered(turns, opened)
    return system, turns


def _check_answered(turns: list[Turn], opened: list[int]) -> None:
    """Every tool call of an assistant turn followed by a user turn is answered there."""
    for index in range(1, len(turns) - 1):
        asked = {b.id for b in turns[index].content if isinstance(b, ToolUse)}
        answered = {b.tool_use_id for b in turns[index + 1].content if isinstance(b, ToolResult)}
        if turns[index].role == "assistant" and asked - answered:
            where = f"messages[{opened[index + 1]}]"
            raise errors.InvalidValue(
                f"'{where}': the tool calls {sorted(asked - answered)} of the assistant message "
                "before it have no tool message answering them.",
                param=where,
            )


def _texts_only(content: str | list[Part] | None, where: str) -> list[Text]:
    blocks = []
    for block in _content(content, where):
        if not isinstance(block, Text):
            raise _refuse(f"{where}.content", "an image outside a user message")
        blocks.append(block)
    return blocks


def _content(content: str | list[Part] | None, where: str) -> list[Block]:
    """Text and image blocks; empty or blank text is left out (Anthropic refuses it)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [Text(content)] if content.strip() else []
    blocks: list[Block] = []
    for index, part in enumerate(content):
        if part.type in ("text", "refusal"):
            if part.text and part.text.strip():
                blocks.append(Text(part.text))
        elif part.type == "image_url" and part.image_url is not None:
            blocks.append(_image(part.image_url.url, f"{where}.content[{index}]"))
        else:
            raise _refuse(f"{where}.content[{index}]", f"content part '{part.type}'")
    return blocks


def _image(url: str, where: str) -> Image:
    if url.startswith(("http://", "https://")):
        return Image(URL(url))
    header, sep, data = url.partition(",")
    if url.startswith("data:") and sep and header.endswith(";base64"):
        return Image(Base64(header[5:].removesuffix(";base64"), data))
    raise errors.InvalidValue(
        f"'{where}.image_url.url' must be an http(s) URL or a base64 data: URL.",
        param=f"{where}.image_url.url",
    )


def _tool_uses(message: Message, where: str) -> list[ToolUse]:
    uses = []
    for index, call in enumerate(message.tool_calls or ()):
        arguments = call.function.arguments or "{}"
        try:
            _ARGUMENTS.decode(arguments)
        except msgspec.DecodeError as exc:
            param = f"{where}.tool_calls[{index}].function.arguments"
            raise errors.InvalidValue(f"'{param}' is not a JSON object.", param=param) from exc
        uses.append(ToolUse(call.id, call.function.name, msgspec.Raw(arguments.encode())))
    return uses


def _tool_result(message: Message, turns: list[Turn], where: str) -> ToolResult:
    """A ``tool`` message as a ``tool_result``, checked against the turns before it."""
    call_id = message.tool_call_id
    param = f"{where}.tool_call_id"
    if not call_id:
        raise errors.InvalidValue(f"'{param}' is required.", param=param)
    # The previous assistant turn is the last turn, or the one before a user turn that holds
    # only tool results so far (several tool messages answer one assistant turn).
    answered: list[Block] = []
    if turns and turns[-1].role == "assistant":
        answered = turns[-1].content
    elif len(turns) >= 2 and all(isinstance(b, ToolResult) for b in turns[-1].content):
        answered = turns[-2].content
    if not any(isinstance(b, ToolUse) and b.id == call_id for b in answered):
        raise errors.InvalidValue(
            f"'{param}' {call_id!r} answers no tool call of the assistant message just before "
            "it (Anthropic requires tool results right after their tool calls).",
            param=param,
        )
    blocks = _content(message.content, where)
    return ToolResult(call_id, [b for b in blocks if isinstance(b, Text | Image)])
