"""The stream relay: upstream SSE events to the client, and an honest ending
(docs/proxying.md#streaming).

The relay is the body of a committed streaming response: an async generator that yields the
first event(s) and then every complete upstream event as it arrives. Each upstream read sits
in its own deadline scope, closed before the next ``yield``; the scope's
deadline is the earliest of the idle timeout, the optional maximum stream duration and the
drain deadline (registered with :class:`~nexus_trio.drain.Drain`, so a drain that
starts while the read is blocked still cuts it).

Endings: ``[DONE]`` from upstream, or a clean close after a ``finish_reason`` (the relay then
appends ``[DONE]``) is a good end. Anything else — a translated stream's upstream ``error``
event too — ends with one ``stream_truncated`` error event
and ``[DONE]`` — or their equivalents in the client's API (:meth:`UpstreamStream.ending`). The
relay never closes the upstream response itself: its owner (the request's
exit stack) does, whether or not this generator ever ran.
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, Callable

import msgspec
import trio

from nexus_trio import errors
from nexus_trio.drain import Drain
from nexus_trio.upstream.sse import SSEEvent
from nexus_trio.upstream.stream import UpstreamStream, openai_truncation

_TRUNCATION_MESSAGES = {
    "upstream_reset": "The backend connection failed mid-stream.",
    "upstream_closed": "The backend closed the stream before it was complete.",
    "upstream_error": "The backend reported an error mid-stream.",
    "idle_timeout": "The backend stopped sending before the stream was complete.",
    "max_duration": "The stream reached the gateway's maximum duration.",
    "drain": "The gateway is shutting down.",
}


def truncation_event(reason: str) -> bytes:
    """The terminal error event plus ``[DONE]`` of a chat-completions stream that did not end
    well for ``reason``."""
    return openai_truncation(_TRUNCATION_MESSAGES[reason])


class StreamLimits(msgspec.Struct, frozen=True):
    idle_seconds: float
    #: Absolute trio time at which the stream is cut (``inf`` = no limit).
    max_deadline: float


async def relay(
    stream: UpstreamStream,
    first: list[SSEEvent],
    limits: StreamLimits,
    drain: Drain,
    on_end: Callable[[str | None], None],
) -> AsyncGenerator[bytes, None]:
    """Yield the bytes of a committed stream; call ``on_end(reason)`` once it ends.

    ``reason`` is None for a good end, else a truncation reason (a key of the messages above).
    If the client goes away the generator is cancelled or closed and ``on_end`` is not
    called: the owner of the request records that.
    """
    data = stream.take(first)
    yield data
    reason: str | None = None
    while not stream.done:
        if stream.failed:
            reason = "upstream_error"
            break
        events: list[SSEEvent] | None = None
        deadline = min(trio.current_time() + limits.idle_seconds, limits.max_deadline)
        with trio.move_on_at(deadline) as scope:
            drain.watch(scope)
            try:
                events = await stream.receive()
            except errors.UpstreamError:
                reason = "upstream_reset"
        if scope.cancelled_caught:
            if drain.expired():
                reason = "drain"
            elif trio.current_time() >= limits.max_deadline:
                reason = "max_duration"
            else:
                reason = "idle_timeout"
        if reason is not None:
            break
        if events is None:
            if not stream.ended_well_at_eof:
                reason = "upstream_closed"
                break
            on_end(None)
            yield stream.ending(None, "")
            return
        data = stream.take(events)
        if data:
            yield data
    if reason is None:
        on_end(None)
        return
    on_end(reason)
    yield stream.ending(reason, _TRUNCATION_MESSAGES[reason])


def max_stream_deadline(committed_at: float, max_stream_seconds: float) -> float:
    """Absolute deadline for ``server.max_stream_seconds`` (0 = none)."""
    return committed_at + max_stream_seconds if max_stream_seconds > 0 else math.inf
