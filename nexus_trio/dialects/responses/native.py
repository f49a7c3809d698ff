"""A Responses API request relayed to a backend that serves the Responses API itself
(``[[backends]] responses_api = true``, docs/responses-api.md#native-backends): the native
exchange's reading side.

The client's request and the backend's answer pass untranslated; the gateway only reads them:
:func:`chat_form` turns a whole Response object into the chat-completions form the attempt
reads usage and characters from, and :class:`NativeResponsesStream` relays the backend's
events as they are while noting first content, usage, the end (``response.completed`` or
``response.incomplete``) and a failure (``response.failed`` or ``error``, relayed as the
backend sent them). A stream that breaks otherwise ends with the gateway's ``error`` event,
numbered after the backend's last.
"""

from __future__ import annotations

import msgspec
import trio

from nexus_trio import errors
from nexus_trio.dialects.responses.events import ErrorDetail, ErrorEvent, sse
from nexus_trio.upstream.chunks import PromptTokensDetails, Usage
from nexus_trio.upstream.sse import SSEEvent
from nexus_trio.upstream.stream import UpstreamStream

_ENCODER = msgspec.json.Encoder()


class _Details(msgspec.Struct):
    cached_tokens: int | None = None


class _Usage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    input_tokens_details: _Details | None = None

    def chat(self, output: list[_Item]) -> Usage:
        """The chat form, with the server-side tool calls of ``output`` counted by type."""
        cached = self.input_tokens_details
        details = None if cached is None else PromptTokensDetails(cached.cached_tokens)
        usage = Usage(self.input_tokens, self.output_tokens, details)
        calls = tool_calls(output)
        if calls is not None:
            usage.server_tool_use = calls
        return usage


class _Part(msgspec.Struct):
    type: str = ""
    text: str | None = None


class _Item(msgspec.Struct):
    type: str = ""
    content: list[_Part] | None = None
    arguments: str | None = None


def tool_calls(output: list[_Item]) -> msgspec.Raw | None:
    """The output items of each ``…_call`` type but function calls, counted by type
    (``{"web_search_call": 2}``): what the backend ran server-side (and may bill), for
    ``[[pricing]] server_tool_usd`` (docs/spend.md#server-tool-fees)."""
    counts: dict[str, int] = {}
    for item in output:
        if item.type.endswith("_call") and item.type not in _CLIENT_CALLS:
            counts[item.type] = counts.get(item.type, 0) + 1
    return msgspec.Raw(_ENCODER.encode(counts)) if counts else None


class _Response(msgspec.Struct):
    output: list[_Item] = msgspec.field(default_factory=list)
    usage: _Usage | None = None


class _Event(msgspec.Struct):
    type: str = ""
    delta: str | None = None
    sequence_number: int | None = None
    response: _Response | None = None


_RESPONSE = msgspec.json.Decoder(_Response)
_EVENT = msgspec.json.Decoder(_Event)
_ENDS = frozenset({"response.completed", "response.incomplete"})
_FAILS = frozenset({"response.failed", "error"})
_CONTENT = frozenset({"response.output_text.delta", "response.function_call_arguments.delta"})


_TOP_LEVEL = msgspec.json.Decoder(dict[str, msgspec.Raw])
#: Calls the client runs: never a backend's fee.
_CLIENT_CALLS = frozenset({"function_call", "custom_tool_call"})


def without_store(body: bytes) -> bytes:
    """``body`` asking the backend to store nothing (``store: false``), every other value
    byte-identical: the gateway cannot continue a conversation the backend keeps, and a
    tenant's prompts must not be kept in the operator's account unasked."""
    top = _TOP_LEVEL.decode(body)
    top["store"] = msgspec.Raw(b"false")
    return _ENCODER.encode(top)


def chat_form(data: bytes) -> bytes:
    """The chat-completions form of a Response object: its text and arguments, its usage.

    Raises:
        BadUpstreamResponse: ``data`` is not a Response object.
    """
    try:
        response = _RESPONSE.decode(data)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise errors.BadUpstreamResponse("The backend sent a Response that is not one.") from exc
    pieces: list[str] = []
    for item in response.output:
        pieces.extend(part.text for part in item.content or () if part.text)
        if item.arguments:
            pieces.append(item.arguments)
    usage = None if response.usage is None else response.usage.chat(response.output)
    message = {"role": "assistant", "content": "".join(pieces)}
    return _ENCODER.encode({"choices": [{"index": 0, "message": message}], "usage": usage})


class NativeResponsesStream(UpstreamStream):
    """The backend's Responses events relayed as they are, and read."""

    last_sequence = -1

    def take(self, events: list[SSEEvent]) -> bytes:
        out: list[bytes] = []
        for event in events:
            out.append(event.raw)
            if event.data is None:
                continue
            try:
                read = _EVENT.decode(event.data)
            except (msgspec.DecodeError, RecursionError):
                continue  # relayed; not ours to judge
            if read.sequence_number is not None:
                self.last_sequence = read.sequence_number
            if read.type in _CONTENT and read.delta:
                self.content_chars += len(read.delta)
                if self.first_content_at is None:
                    self.first_content_at = trio.current_time()
            if read.response is not None and read.response.usage is not None:
                self.usage = read.response.usage.chat(read.response.output)
            if read.type in _ENDS:
                self.done = True
                break
            if read.type in _FAILS:
                self.failed = True
                break
        return b"".join(out)

    def ending(self, reason: str | None, message: str) -> bytes:
        """Nothing after a good end, or after the backend's own failure events; else an
        ``error`` event (``stream_truncated``) numbered after the backend's last."""
        if reason is None or reason == "upstream_error":
            return b""
        detail = ErrorDetail("stream_truncated", message)
        event = ErrorEvent(code="stream_truncated", message=message, error=detail)
        event.sequence_number = self.last_sequence + 1
        return sse(event)
