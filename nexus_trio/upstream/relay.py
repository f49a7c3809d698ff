"""The stream relay: upstream SSE events to the client, and an honest ending
(docs/proxying.md#streaming).

The relay is the body of a committed streaming response: a coroutine handed the response's
``write`` that writes the first event(s) and then every complete upstream event as it arrives.
It runs in one cancel scope for the whole stream, registered once with
:class:`~nexus_trio.drain.Drain` (so a drain that starts while a read is blocked still cuts it):
before each upstream read the scope's deadline is set to the earliest of the idle timeout, the
optional maximum stream duration and the drain deadline, and after it to none, so time spent
writing to a client that reads slowly never counts as the upstream's idleness. (One scope
whose deadline moves costs a fraction of a new scope per read.)

Endings: ``[DONE]`` from upstream, or a clean close after a ``finish_reason`` (the relay then
appends ``[DONE]``) is a good end. Anything else — a translated stream's upstream ``error``
event too — ends with one ``stream_truncated`` error event
and ``[DONE]`` — or their equivalents in the client's API (:meth:`UpstreamStream.ending`). The
relay never closes the upstream response itself: its owner (the request's
exit stack) does, whether or not this coroutine ever ran.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

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


Write = Callable[[bytes], Awaitable[None]]


async def relay(
    stream: UpstreamStream,
    first: list[SSEEvent],
    limits: StreamLimits,
    drain: Drain,
    on_end: Callable[[str | None], None],
    write: Write,
) -> None:
    """Write the bytes of a committed stream with ``write``; call ``on_end(reason)`` once it
    ends, before its last write.

    ``reason`` is None for a good end, else a truncation reason (a key of the messages above).
    If the client goes away the coroutine is cancelled and ``on_end`` is not called: the owner
    of the request records that.
    """
    await write(stream.take(first))
    with trio.CancelScope() as scope:
        drain.watch(scope)
        reason, at_eof = await _relay_events(stream, limits, drain, scope, write)
    if scope.cancelled_caught:
        if drain.expired():
            reason = "drain"
        elif trio.current_time() >= limits.max_deadline:
            reason = "max_duration"
        else:
            reason = "idle_timeout"
    on_end(reason)
    if reason is not None:
        await write(stream.ending(reason, _TRUNCATION_MESSAGES[reason]))
    elif at_eof:
        await write(stream.ending(None, ""))


async def _relay_events(
    stream: UpstreamStream,
    limits: StreamLimits,
    drain: Drain,
    scope: trio.CancelScope,
    write: Write,
) -> tuple[str | None, bool]:
    """Relay events until the stream ends; return the truncation reason (None: a good end) and
    whether it ended at the upstream's EOF (a good end there still needs ``[DONE]``)."""
    idle = limits.idle_seconds
    while not stream.done:
        if stream.failed:
            return "upstream_error", False
        scope.deadline = min(trio.current_time() + idle, limits.max_deadline, drain.deadline)
        try:
            events = await stream.receive()
        except errors.UpstreamError:
            return "upstream_reset", False
        scope.deadline = math.inf
        if events is None:
            if not stream.ended_well_at_eof:
                return "upstream_closed", False
            return None, True
        data = stream.take(events)
        if data:
            await write(data)
    return None, False


def max_stream_deadline(committed_at: float, max_stream_seconds: float) -> float:
    """Absolute deadline for ``server.max_stream_seconds`` (0 = none)."""
    return committed_at + max_stream_seconds if max_stream_seconds > 0 else math.inf
