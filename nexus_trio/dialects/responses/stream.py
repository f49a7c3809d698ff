"""Chat-completions stream chunks → Responses stream events (docs/responses-api.md#streams).

Theory of operation. :class:`ResponsesStream` is fed the ``data`` of each upstream chunk, in
order, and returns the bytes of the events it stands for. The first call opens the response
(``response.created``, ``response.in_progress``). Then, from the first choice's delta:

=====================  ========================================================================
chunk                  events
=====================  ========================================================================
reasoning output       a ``reasoning`` item opens (``output_item.added``,
                       ``content_part.added`` ``reasoning_text``); ``reasoning_text.delta``
content (or refusal)   a ``message`` item opens (``output_item.added``, ``content_part.added``
                       ``output_text``); ``output_text.delta``
a tool call's delta    a new index (or a new id at an index) opens a ``function_call`` item
                       (``output_item.added``); argument fragments:
                       ``function_call_arguments.delta``
``finish_reason``      kept for the end; ``usage`` (the usage-only chunk) too
=====================  ========================================================================

A reasoning or message item closes when an item of another kind opens (text after a tool
call opens a new message item); function calls stay open to the end, since a server may
interleave their deltas. Closing sends the item's ``.done`` events (``reasoning_text.done`` or
``output_text.done``, ``content_part.done`` / ``function_call_arguments.done``) and
``output_item.done`` with the whole item. :meth:`ResponsesStream.done` closes every open item
in output order and sends ``response.completed`` (``response.incomplete`` on ``length``);
:meth:`ResponsesStream.truncated` sends ``response.failed`` and an ``error`` event instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from nexus_trio.dialects.responses.events import (
    ArgumentsDelta,
    ArgumentsDone,
    Completed,
    Created,
    ErrorDetail,
    ErrorEvent,
    Event,
    Failed,
    Incomplete,
    InProgress,
    ItemAdded,
    ItemDone,
    PartAdded,
    PartDone,
    ReasoningDelta,
    ReasoningDone,
    TextDelta,
    TextDone,
    sse,
)
from nexus_trio.dialects.responses.output import (
    FunctionCall,
    Message,
    OutputItem,
    OutputText,
    ReasoningItem,
    ReasoningText,
    Response,
    ResponseError,
    build_response,
    function_call,
    item_id,
    outcome,
    usage_of,
)
from nexus_trio.dialects.responses.request import ResponsesRequest
from nexus_trio.dialects.responses.shapes import ChatUsage, Completion, Function, ToolCall

__all__ = ["ResponsesStream"]

_CHUNK = msgspec.json.Decoder(Completion)


@dataclass
class _Item:
    """An open output item: what has arrived of it so far."""

    kind: str  # "reasoning", "message" or "function_call"
    index: int
    id: str
    fragments: list[str] = field(default_factory=list)
    call_id: str = ""
    name: str = ""


class ResponsesStream:
    """Translates one chat-completions stream; see the module docstring. Sync, no I/O."""

    def __init__(
        self, *, request: ResponsesRequest, model: str, response_id: str, created_at: int
    ) -> None:
        self._request = request
        self._model = model
        self._response_id = response_id
        self._created_at = created_at
        self._sequence = 0
        self._started = False
        #: Items by output index: open ones as :class:`_Item`, closed ones as output items.
        self._items: list[_Item | OutputItem] = []
        #: The open reasoning or message item.
        self._current: _Item | None = None
        #: The open function calls by the chat tool call index.
        self._calls: dict[int, _Item] = {}
        self._finish_reason: str | None = None
        self._usage: ChatUsage | None = None
        #: The final Response object, once :meth:`done` has sent it (what a store keeps).
        self.response: Response | None = None

    def feed(self, data: str) -> bytes:
        """The events for one ``chat.completion.chunk``'s JSON text (never ``[DONE]``); a chunk
        that is not JSON adds none."""
        try:
            chunk = _CHUNK.decode(data)
        except (msgspec.DecodeError, RecursionError):
            return b""
        events = self._start()
        if chunk.usage is not None:
            self._usage = chunk.usage
        choice = chunk.choices[0] if chunk.choices else None
        delta = choice.delta if choice is not None else None
        if delta is not None:
            reasoning = delta.reasoning_content or delta.reasoning
            if reasoning:
                events += self._fragment("reasoning", reasoning)
            for text in (delta.content, delta.refusal):
                if text:
                    events += self._fragment("message", text)
            for call in delta.tool_calls or ():
                events += self._call_delta(call)
        if choice is not None and choice.finish_reason is not None:
            self._finish_reason = choice.finish_reason
        return self._send(events)

    def done(self) -> bytes:
        """The upstream ended well: the ``.done`` events of every open item, then
        ``response.completed`` (``response.incomplete`` when the answer was cut short) with
        the whole Response object and its usage (None without a usage chunk), which
        :attr:`response` holds from then on."""
        events = self._start()
        if not self._items:  # an empty answer still gets its message item
            events += self._fragment("message", "")
        status, incomplete = outcome(self._finish_reason)
        item_status = "completed" if incomplete is None else "incomplete"
        for item in list(self._items):  # closing replaces the entries
            if isinstance(item, _Item):
                events += self._close(item, item_status)
        response = self._response(status, usage=usage_of(self._usage), incomplete=incomplete)
        self.response = response
        events.append(
            Completed(response=response) if incomplete is None else Incomplete(response=response)
        )
        return self._send(events)

    def truncated(self, message: str) -> bytes:
        """The stream broke: ``response.failed`` (status ``failed``, ``error`` ``server_error``
        with ``message``, the items so far, open ones ``incomplete``), then an ``error`` event
        (code ``stream_truncated``) whose ``error`` object makes the openai SDK's stream
        iteration raise ``APIError``."""
        events = self._start()
        response = self._response("failed", error=ResponseError("server_error", message))
        events.append(Failed(response=response))
        detail = ErrorDetail("stream_truncated", message)
        events.append(ErrorEvent(code="stream_truncated", message=message, error=detail))
        return self._send(events)

    def _send(self, events: list[Event]) -> bytes:
        """The SSE blocks of ``events``, numbered in order."""
        for event in events:
            event.sequence_number = self._sequence
            self._sequence += 1
        return b"".join(sse(event) for event in events)

    def _response(self, status: str, **details: Any) -> Response:
        """The Response object as it stands: every item in output order (open ones
        ``incomplete``), and ``details`` (usage, error, incomplete details)."""
        output = [
            self._item(item, "incomplete") if isinstance(item, _Item) else item
            for item in self._items
        ]
        return build_response(
            self._request,
            model=self._model,
            response_id=self._response_id,
            created_at=self._created_at,
            status=status,
            output=output,
            **details,
        )

    def _start(self) -> list[Event]:
        """``response.created`` and ``response.in_progress`` the first time, else nothing."""
        if self._started:
            return []
        self._started = True
        response = self._response("in_progress")
        return [Created(response=response), InProgress(response=response)]

    def _open(self, kind: str, prefix: str) -> _Item:
        index = len(self._items)
        item = _Item(kind, index, item_id(prefix, self._response_id, index))
        self._items.append(item)
        return item

    def _fragment(self, kind: str, text: str) -> list[Event]:
        """Reasoning or message text: opens the item first when needed."""
        events: list[Event] = []
        item = self._current
        if item is None or item.kind != kind:
            if item is not None:
                events += self._close(item, "completed")
            item = self._current = self._open(kind, "rs" if kind == "reasoning" else "msg")
            part: OutputText | ReasoningText
            if kind == "reasoning":
                added: OutputItem = ReasoningItem(item.id, [])
                part = ReasoningText("")
            else:
                added, part = Message(item.id, "in_progress", []), OutputText("")
            events.append(ItemAdded(output_index=item.index, item=added))
            events.append(PartAdded(item_id=item.id, output_index=item.index, part=part))
        if text:
            item.fragments.append(text)
            delta = ReasoningDelta if kind == "reasoning" else TextDelta
            events.append(delta(item_id=item.id, output_index=item.index, delta=text))
        return events

    def _call_delta(self, call: ToolCall) -> list[Event]:
        events: list[Event] = []
        if self._current is not None:
            events += self._close(self._current, "completed")
        item = self._calls.get(call.index)
        function = call.function or Function()
        if item is None or (call.id and item.call_id != call.id):
            item = self._calls[call.index] = self._open("function_call", "fc")
            item.call_id = call.id or f"call_{self._response_id.removeprefix('resp_')}_{item.index}"
            item.name = function.name or ""
            events.append(ItemAdded(output_index=item.index, item=self._item(item, "in_progress")))
        elif function.name and not item.name:
            item.name = function.name
        if function.arguments:
            item.fragments.append(function.arguments)
            delta = function.arguments
            events.append(ArgumentsDelta(item_id=item.id, output_index=item.index, delta=delta))
        return events

    def _close(self, item: _Item, status: str) -> list[Event]:
        """The ``.done`` events of an open item; it becomes its final output item."""
        closed = self._items[item.index] = self._item(item, status)
        if item is self._current:
            self._current = None
        at, index = item.id, item.index
        events: list[Event]
        if isinstance(closed, FunctionCall):
            events = [ArgumentsDone(item_id=at, output_index=index, arguments=closed.arguments)]
        else:
            (part,) = closed.content
            done = (
                ReasoningDone(item_id=at, output_index=index, text=part.text)
                if isinstance(part, ReasoningText)
                else TextDone(item_id=at, output_index=index, text=part.text)
            )
            events = [done, PartDone(item_id=at, output_index=index, part=part)]
        events.append(ItemDone(output_index=index, item=closed))
        return events

    def _item(self, item: _Item, status: str) -> OutputItem:
        text = "".join(item.fragments)
        if item.kind == "reasoning":
            return ReasoningItem(item.id, [ReasoningText(text)])
        if item.kind == "message":
            return Message(item.id, status, [OutputText(text)])
        return function_call(
            self._request,
            item=item.id,
            call_id=item.call_id,
            name=item.name,
            arguments=text or ("{}" if status != "in_progress" else ""),
            status=status,
        )
