"""An open upstream event stream, read one network chunk at a time.

:class:`UpstreamStream` wraps a streaming ``httpx.Response`` whose headers have arrived. Each
:meth:`receive` is one network read parsed into complete SSE events; it also notes what the
gateway must know about the stream — first generated content (TTFT, docs/quality.md#outcomes), a
``finish_reason``, ``[DONE]``, usage, the characters generated — without touching the bytes it
relays. The one exception: when the gateway itself asked for usage
(``stream_options.include_usage``, docs/proxying.md#request-body), the usage-only chunk that
answers it is not relayed (``strip_usage``).

A request in another client API (an inbound dialect's, docs/api.md#routes) sets
:attr:`UpstreamStream.client`: the chat-completions events are then handed to it and what the
client gets is its events, the good ending and the truncation included
(:meth:`UpstreamStream.ending`).
"""

from __future__ import annotations

from typing import Protocol

import httpx
import msgspec
import trio

from nexus_trio import errors
from nexus_trio.registry import Backend
from nexus_trio.upstream.chunks import Usage, inspect_chunk
from nexus_trio.upstream.client import translate_error
from nexus_trio.upstream.sse import SSEEvent, SSEParser

#: The data line the gateway appends after a stream that ended with a finish_reason.
DONE_EVENT = b"data: [DONE]\n\n"


def openai_truncation(message: str) -> bytes:
    """The terminal ``stream_truncated`` error event and ``[DONE]`` (docs/proxying.md#streaming)."""
    payload = {"error": {"message": message, "type": "upstream_error", "code": "stream_truncated"}}
    return b"data: " + msgspec.json.encode(payload) + b"\n\n" + DONE_EVENT


class UpstreamStream:
    """Reads SSE events from one upstream response. Closing it closes the response."""

    def __init__(
        self,
        response: httpx.Response,
        backend: Backend,
        *,
        sent_at: float,
        strip_usage: bool = False,
    ) -> None:
        self.response = response
        self.backend = backend
        self.sent_at = sent_at
        stream = response.stream
        if not isinstance(stream, httpx.AsyncByteStream):
            raise TypeError("UpstreamStream needs a response from an async transport")
        # The transport's stream itself: httpx's aiter_raw() adds a chunker, a timer and an
        # exception-mapping context to every chunk, on the path of every relayed event.
        self._chunks = aiter(stream)
        self._parser = SSEParser()
        self.done = False
        self.finished = False
        self.first_content_at: float | None = None
        self.usage: Usage | None = None
        #: The upstream reported an error mid-stream (a translated stream's ``error`` event).
        self.failed = False
        #: Characters of generated content seen so far.
        self.content_chars = 0
        #: Drop usage-only chunks: the client did not ask for them, the gateway did.
        self.strip_usage = strip_usage
        #: The client's API when it is not chat completions: its events are relayed instead.
        self.client: ClientEvents | None = None

    @property
    def ended_well_at_eof(self) -> bool:
        """At EOF: a ``finish_reason`` was seen and no partial event is left."""
        return self.finished and self._parser.buffered == 0

    async def receive(self) -> list[SSEEvent] | None:
        """Wait for the next network chunk; return its complete events, or None at EOF.

        Raises:
            UpstreamError: the connection failed, or an event grew past the size limit.
        """
        try:
            chunk = await anext(self._chunks)
        except StopAsyncIteration:
            return None
        except httpx.HTTPError as exc:
            raise translate_error(exc, self.backend) from exc
        return self._parser.feed(chunk)

    def take(self, events: list[SSEEvent]) -> bytes:
        """The bytes to relay for ``events``: everything up to and including ``[DONE]``,
        without the usage-only chunk when ``strip_usage`` is set."""
        out: list[bytes] = []
        client = self.client
        for event in events:
            data = event.data
            if data is None:
                out.append(event.raw)
                continue
            if event.is_done:
                out.append(event.raw if client is None else client.done())
                self.done = True
                break
            info = inspect_chunk(data)
            if info.failed:
                # The upstream's own error event: relayed to a chat client as it is; the relay
                # then ends the stream truncated (in the client's API), whatever follows.
                if client is None:
                    out.append(event.raw)
                self.failed = True
                break
            if info.has_content:
                self.content_chars += info.content_chars
                if self.first_content_at is None:
                    self.first_content_at = trio.current_time()
            if info.finished:
                self.finished = True
            if info.usage is not None:
                self.usage = info.usage
                if info.usage_only and self.strip_usage and client is None:
                    continue
            out.append(event.raw if client is None else client.feed(data))
        return b"".join(out)

    def ending(self, reason: str | None, message: str) -> bytes:
        """What the client gets after the last upstream event: ``[DONE]`` for a good end
        (``reason`` None) of a stream that did not send one, else the truncation error event
        saying ``message`` — in the client's API."""
        client = self.client
        if reason is None:
            return DONE_EVENT if client is None else client.done()
        if client is None:
            return openai_truncation(message)
        return client.truncated(message)

    async def receive_first(self) -> list[SSEEvent]:
        """Read until the first event with a ``data`` field; return it and what follows it.

        Comment-only blocks before it (keep-alive pings) are dropped: nothing is committed yet.

        Raises:
            BadUpstreamResponse: the stream ended before any event.
            UpstreamError: the connection failed.
        """
        while True:
            events = await self.receive()
            if events is None:
                raise errors.BadUpstreamResponse(
                    f"Backend '{self.backend.name}' ended the stream before any event."
                )
            for index, event in enumerate(events):
                if event.data is not None:
                    return events[index:]

    def ttft_ms(self) -> float | None:
        if self.first_content_at is None:
            return None
        return (self.first_content_at - self.sent_at) * 1000.0

    async def aclose(self) -> None:
        """Close the upstream response (idempotent)."""
        await self.response.aclose()


class ClientEvents(Protocol):
    """Chat-completions chunk events into another client API's events (an inbound dialect's);
    the mirror of :class:`EventTranslator`."""

    def feed(self, data: str) -> bytes:
        """The client's events standing for one chunk's ``data`` (never ``[DONE]``)."""
        ...

    def done(self) -> bytes:
        """The client's events for a stream that ended well."""
        ...

    def truncated(self, message: str) -> bytes:
        """The client's terminal error event for a stream that broke, saying ``message``."""
        ...


class EventTranslator(Protocol):
    """Turns another API's stream events into OpenAI chunk events (a cloud dialect's)."""

    content_started: bool
    done: bool
    failed: bool
    usage: Usage | None

    def feed(self, data: str) -> bytes:
        """The OpenAI events standing for one upstream event's ``data``."""
        ...

    def opening_error(self, data: str) -> tuple[int, bytes] | None:
        """Status and OpenAI error body when the first event is an error, else None."""
        ...

    def usage_so_far(self) -> Usage | None:
        """:attr:`usage`, else what the stream reported of its input so far (no output)."""
        ...


def generated_chars(translated: bytes) -> int:
    """Characters of generated content in chat-completions events a translator made."""
    chars = 0
    for line in translated.split(b"\n"):
        if line.startswith(b"data: {"):
            chars += inspect_chunk(line[6:].decode()).content_chars
    return chars


class TranslatedStream(UpstreamStream):
    """An upstream stream in another API's dialect, relayed as OpenAI events.

    The relay treats it as any stream (deadlines, drain, endings); what it yields are the
    translator's events, and the translator says when content started, when the stream ended
    well (``done``) and when the upstream reported an error (``failed``: truncated).
    """

    def __init__(
        self,
        response: httpx.Response,
        backend: Backend,
        *,
        sent_at: float,
        translator: EventTranslator,
    ) -> None:
        super().__init__(response, backend, sent_at=sent_at)
        self.translator = translator

    def take(self, events: list[SSEEvent]) -> bytes:
        translator = self.translator
        out: list[bytes] = []
        for event in events:
            if event.data is None:
                continue
            translated = translator.feed(event.data)
            self.content_chars += generated_chars(translated)
            out.append(translated if self.client is None else self._to_client(translated))
            if translator.content_started and self.first_content_at is None:
                self.first_content_at = trio.current_time()
            if translator.done or translator.failed:
                break
        self.done = translator.done
        self.failed = translator.failed
        self.usage = translator.usage_so_far()
        return b"".join(out)

    async def receive_first(self) -> list[SSEEvent]:
        """As for any stream; an ``error`` as the first event fails the attempt uncommitted.

        Raises:
            UpstreamStatusError: the first event was an error (retried like an error status).
            BadUpstreamResponse, UpstreamError: as :meth:`UpstreamStream.receive_first`.
        """
        events = await super().receive_first()
        refusal = self.translator.opening_error(events[0].data or "")
        if refusal is not None:
            status, body = refusal
            headers = {"content-type": "application/json"}
            raise errors.UpstreamStatusError(self.backend.name, status, body, headers)
        return events

    def _to_client(self, translated: bytes) -> bytes:
        """The client's events for chat-completions events this stream's translator made
        (``data:`` lines only, one per event)."""
        client = self.client
        assert client is not None
        out: list[bytes] = []
        for line in translated.split(b"\n"):
            if not line.startswith(b"data: "):
                continue
            data = line[6:]
            if data == b"[DONE]":
                out.append(client.done())
            else:
                out.append(client.feed(data.decode()))
        return b"".join(out)
