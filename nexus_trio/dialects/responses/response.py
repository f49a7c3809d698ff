"""A chat-completions answer → a Response object, and a stored Response object → the chat
messages it adds to a conversation (docs/responses-api.md#responses).

The first choice is read: its reasoning output, text (a refusal as text) and tool calls become the
output items of :mod:`.output`; ``finish_reason`` ``length`` makes the response
``incomplete`` (``max_output_tokens``), ``content_filter`` too (``content_filter``); the usage
maps field by field. An answer with neither text nor tool calls still gets a ``message`` item
(empty text), so a client always finds one.
"""

from __future__ import annotations

from typing import Any

import msgspec

from nexus_trio import errors
from nexus_trio.dialects.responses.output import (
    Message,
    OutputItem,
    OutputText,
    ReasoningItem,
    ReasoningText,
    build_response,
    function_call,
    item_id,
    outcome,
    usage_of,
)
from nexus_trio.dialects.responses.request import ResponsesRequest
from nexus_trio.dialects.responses.shapes import TYPED, Completion, Function
from nexus_trio.dialects.responses.tools import flat_name

__all__ = ["output_messages", "response_object"]

_COMPLETION = msgspec.json.Decoder(Completion)
_ENCODER = msgspec.json.Encoder()


class _StoredPart(msgspec.Struct):
    type: str
    text: str | None = None
    refusal: str | None = None


class _StoredItem(msgspec.Struct):
    content: list[_StoredPart] = msgspec.field(default_factory=list)
    call_id: str = ""
    name: str = ""
    arguments: str = ""
    namespace: str | None = None


class _Stored(msgspec.Struct):
    output: list[msgspec.Raw]


_STORED = msgspec.json.Decoder(_Stored)
_STORED_ITEM = msgspec.json.Decoder(_StoredItem)


def response_object(
    chat: bytes, *, request: ResponsesRequest, model: str, response_id: str, created_at: int
) -> bytes:
    """The Response object body (JSON) for a chat-completions answer body.

    Args:
        chat: A 2xx ``chat.completion`` body.
        request: What :func:`~.request.chat_request` kept of the request.
        model: The model name the client asked for.
        response_id: The response's id (``resp_...``).
        created_at: Unix seconds.

    Raises:
        BadUpstreamResponse: ``chat`` is not a chat completion with a choice.
    """
    try:
        completion = _COMPLETION.decode(chat)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise errors.BadUpstreamResponse(
            "The backend sent an answer that is not a chat completion."
        ) from exc
    message = completion.choices[0].message if completion.choices else None
    if message is None:
        raise errors.BadUpstreamResponse("The backend sent a chat completion without a message.")
    finish_reason = completion.choices[0].finish_reason
    status, incomplete = outcome(finish_reason)
    output: list[OutputItem] = []
    reasoning = message.reasoning_content or message.reasoning
    if reasoning:
        output.append(ReasoningItem(item_id("rs", response_id, 0), [ReasoningText(reasoning)]))
    calls = message.tool_calls or []
    text = (message.content or "") + (message.refusal or "")
    if text or not calls:
        index = len(output)
        output.append(Message(item_id("msg", response_id, index), status, [OutputText(text)]))
    for number, call in enumerate(calls):
        function = call.function or Function()
        index = len(output)
        output.append(
            function_call(
                request,
                item=item_id("fc", response_id, index),
                call_id=call.id or f"call_{response_id.removeprefix('resp_')}_{number}",
                name=function.name or "",
                arguments=function.arguments or "{}",
                status="completed",
            )
        )
    response = build_response(
        request,
        model=model,
        response_id=response_id,
        created_at=created_at,
        status=status,
        output=output,
        usage=usage_of(completion.usage),
        incomplete=incomplete,
    )
    return _ENCODER.encode(response)


def output_messages(response: bytes) -> list[dict[str, Any]]:
    """The chat messages a stored Response object adds to a conversation: one assistant
    message with its text and tool calls (none for a response without message or function
    call items); reasoning is left out, as it is from ``input``. A namespaced call's chat name
    is rebuilt from its namespace and name (docs/responses-api.md#tools).

    Raises:
        BadUpstreamResponse: ``response`` is not a Response object.
    """
    try:
        stored = _STORED.decode(response)
        items = [(TYPED.decode(raw).type, _STORED_ITEM.decode(raw)) for raw in stored.output]
    except (msgspec.DecodeError, RecursionError) as exc:
        raise errors.BadUpstreamResponse("The stored response is not a Response object.") from exc
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for kind, item in items:
        if kind == "message":
            texts += [part.text or part.refusal or "" for part in item.content]
        elif kind == "function_call":
            name = item.name
            if item.namespace is not None:
                name = flat_name(item.namespace, item.name)
            function = {"name": name, "arguments": item.arguments or "{}"}
            calls.append({"id": item.call_id, "type": "function", "function": function})
    if not texts and not calls:
        return []
    text = "".join(texts)
    message: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
    if calls:
        message["tool_calls"] = calls
    return [message]
