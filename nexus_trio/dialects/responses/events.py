"""The Responses stream events the stream translation sends, and their SSE framing
(docs/responses-api.md#streams).

Each event is a Struct tagged with its event name, so its JSON opens with ``"type"``; every
one carries its ``sequence_number``, numbered as the events go out. :func:`sse` frames one as
``event: <type>`` and ``data: <json>``.
"""

from __future__ import annotations

import msgspec

from nexus_trio.dialects.responses.output import OutputItem, OutputText, ReasoningText, Response

__all__ = [
    "ArgumentsDelta",
    "ArgumentsDone",
    "Completed",
    "Created",
    "ErrorDetail",
    "ErrorEvent",
    "Event",
    "Failed",
    "InProgress",
    "Incomplete",
    "ItemAdded",
    "ItemDone",
    "LifeCycle",
    "PartAdded",
    "PartDone",
    "ReasoningDelta",
    "ReasoningDone",
    "TextDelta",
    "TextDone",
    "sse",
]

_ENCODER = msgspec.json.Encoder()


class Event(msgspec.Struct, kw_only=True, tag_field="type"):
    #: Set by :func:`sse`'s caller as the event goes out, in order.
    sequence_number: int = 0


class LifeCycle(Event, kw_only=True):
    """The events carrying the whole response."""

    response: Response


class Created(LifeCycle, kw_only=True, tag="response.created"):
    pass


class InProgress(LifeCycle, kw_only=True, tag="response.in_progress"):
    pass


class Completed(LifeCycle, kw_only=True, tag="response.completed"):
    pass


class Incomplete(LifeCycle, kw_only=True, tag="response.incomplete"):
    pass


class Failed(LifeCycle, kw_only=True, tag="response.failed"):
    pass


class ItemAdded(Event, kw_only=True, tag="response.output_item.added"):
    output_index: int
    item: OutputItem


class ItemDone(Event, kw_only=True, tag="response.output_item.done"):
    output_index: int
    item: OutputItem


class PartAdded(Event, kw_only=True, tag="response.content_part.added"):
    item_id: str
    output_index: int
    content_index: int = 0
    part: OutputText | ReasoningText


class PartDone(Event, kw_only=True, tag="response.content_part.done"):
    item_id: str
    output_index: int
    content_index: int = 0
    part: OutputText | ReasoningText


class TextDelta(Event, kw_only=True, tag="response.output_text.delta"):
    item_id: str
    output_index: int
    content_index: int = 0
    delta: str
    logprobs: list[object] = msgspec.field(default_factory=list)


class TextDone(Event, kw_only=True, tag="response.output_text.done"):
    item_id: str
    output_index: int
    content_index: int = 0
    text: str
    logprobs: list[object] = msgspec.field(default_factory=list)


class ReasoningDelta(Event, kw_only=True, tag="response.reasoning_text.delta"):
    item_id: str
    output_index: int
    content_index: int = 0
    delta: str


class ReasoningDone(Event, kw_only=True, tag="response.reasoning_text.done"):
    item_id: str
    output_index: int
    content_index: int = 0
    text: str


class ArgumentsDelta(Event, kw_only=True, tag="response.function_call_arguments.delta"):
    item_id: str
    output_index: int
    delta: str


class ArgumentsDone(Event, kw_only=True, tag="response.function_call_arguments.done"):
    item_id: str
    output_index: int
    arguments: str


class ErrorDetail(msgspec.Struct):
    code: str
    message: str
    type: str = "server_error"
    param: None = None


class ErrorEvent(Event, kw_only=True, tag="error"):
    """The documented ``error`` event (``code``, ``message``, ``param``), plus the ``error``
    object that makes the openai SDKs raise from their stream iteration."""

    code: str
    message: str
    error: ErrorDetail
    param: None = None


def sse(event: Event) -> bytes:
    """One SSE block: ``event: <type>``, ``data: <json>``, a blank line."""
    name = type(event).__struct_config__.tag
    return b"event: %s\ndata: %s\n\n" % (str(name).encode(), _ENCODER.encode(event))
