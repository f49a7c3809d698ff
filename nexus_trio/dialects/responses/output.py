"""The Response object and its output items, shared by the whole answer (:mod:`.response`) and
the stream (:mod:`.stream`) (docs/responses-api.md#responses).

Output items, in order: a ``reasoning`` item when the backend sent reasoning output
(``reasoning_content`` or ``reasoning``) — its text as ``reasoning_text`` content, ``summary``
empty —, a ``message`` item with one ``output_text`` part (a chat ``refusal`` is text too),
then one ``function_call`` item per tool call. Item ids derive from the response id and the item's
output index (``msg_<id>_1``), so they are unique within the response and need no randomness.
"""

from __future__ import annotations

from typing import Any

import msgspec

from nexus_trio.dialects.responses.request import ResponsesRequest, echoed
from nexus_trio.dialects.responses.shapes import ChatUsage

__all__ = [
    "FunctionCall",
    "Message",
    "OutputItem",
    "OutputText",
    "ReasoningItem",
    "ReasoningText",
    "Response",
    "ResponseError",
    "build_response",
    "function_call",
    "item_id",
    "outcome",
    "usage_of",
]


class OutputText(msgspec.Struct, tag="output_text", tag_field="type"):
    text: str
    annotations: list[Any] = msgspec.field(default_factory=list)


class ReasoningText(msgspec.Struct, tag="reasoning_text", tag_field="type"):
    text: str


class Message(msgspec.Struct, tag="message", tag_field="type"):
    id: str
    status: str
    content: list[OutputText]
    role: str = "assistant"


class FunctionCall(msgspec.Struct, tag="function_call", tag_field="type", omit_defaults=True):
    id: str
    call_id: str
    name: str
    arguments: str
    status: str
    namespace: str | None = None


class ReasoningItem(msgspec.Struct, tag="reasoning", tag_field="type"):
    id: str
    content: list[ReasoningText]
    summary: list[Any] = msgspec.field(default_factory=list)


OutputItem = Message | FunctionCall | ReasoningItem


class InputDetails(msgspec.Struct):
    cached_tokens: int
    cache_write_tokens: int = 0


class OutputDetails(msgspec.Struct):
    reasoning_tokens: int


class Usage(msgspec.Struct):
    input_tokens: int
    input_tokens_details: InputDetails
    output_tokens: int
    output_tokens_details: OutputDetails
    total_tokens: int


class ResponseError(msgspec.Struct):
    code: str
    message: str


class IncompleteDetails(msgspec.Struct):
    reason: str


class Response(msgspec.Struct, kw_only=True):
    id: str
    object: str = "response"
    created_at: int
    status: str
    error: ResponseError | None = None
    incomplete_details: IncompleteDetails | None = None
    model: str
    output: list[OutputItem]
    usage: Usage | None = None
    instructions: str | None
    #: JSON as the request gave it (:attr:`ResponsesRequest.echoed`).
    tools: msgspec.Raw
    tool_choice: msgspec.Raw
    parallel_tool_calls: bool
    temperature: float | None
    top_p: float | None
    max_output_tokens: int | None
    text: msgspec.Raw
    reasoning: msgspec.Raw
    metadata: msgspec.Raw
    store: bool
    previous_response_id: str | None
    background: bool = False
    truncation: str = "disabled"


#: ``finish_reason`` → why a response is ``incomplete`` (any other: ``completed``).
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def outcome(finish_reason: str | None) -> tuple[str, IncompleteDetails | None]:
    """The response ``status`` and ``incomplete_details`` for a chat ``finish_reason``."""
    reason = _INCOMPLETE.get(finish_reason or "")
    return ("completed", None) if reason is None else ("incomplete", IncompleteDetails(reason))


def item_id(prefix: str, response_id: str, index: int) -> str:
    """The id of the output item at ``index`` (``prefix``: ``msg``, ``fc`` or ``rs``)."""
    return f"{prefix}_{response_id.removeprefix('resp_')}_{index}"


def function_call(
    request: ResponsesRequest, *, item: str, call_id: str, name: str, arguments: str, status: str
) -> FunctionCall:
    """A ``function_call`` item; a flattened name is split back into namespace and name."""
    split = request.tool_namespaces.get(name)
    if split is None:
        return FunctionCall(item, call_id, name, arguments, status)
    return FunctionCall(item, call_id, split[1], arguments, status, namespace=split[0])


def usage_of(usage: ChatUsage | None) -> Usage | None:
    """The Responses ``usage`` for a chat ``usage`` (None when the backend sent none)."""
    if usage is None:
        return None
    prompt = usage.prompt_tokens_details
    completion = usage.completion_tokens_details
    total = usage.total_tokens
    return Usage(
        input_tokens=usage.prompt_tokens,
        input_tokens_details=InputDetails((prompt and prompt.cached_tokens) or 0),
        output_tokens=usage.completion_tokens,
        output_tokens_details=OutputDetails((completion and completion.reasoning_tokens) or 0),
        total_tokens=total if total is not None else usage.prompt_tokens + usage.completion_tokens,
    )


def build_response(
    request: ResponsesRequest,
    *,
    model: str,
    response_id: str,
    created_at: int,
    status: str,
    output: list[OutputItem],
    usage: Usage | None = None,
    error: ResponseError | None = None,
    incomplete: IncompleteDetails | None = None,
) -> Response:
    """A Response object echoing ``request``'s fields."""
    echo = request.echoed or echoed(request)
    return Response(
        id=response_id,
        created_at=created_at,
        status=status,
        error=error,
        incomplete_details=incomplete,
        model=model,
        output=output,
        usage=usage,
        instructions=request.instructions,
        tools=echo["tools"],
        tool_choice=echo["tool_choice"],
        parallel_tool_calls=request.parallel_tool_calls,
        temperature=request.temperature,
        top_p=request.top_p,
        max_output_tokens=request.max_output_tokens,
        text=echo["text"],
        reasoning=echo["reasoning"],
        metadata=echo["metadata"],
        store=request.store,
        previous_response_id=request.previous_response_id,
    )
