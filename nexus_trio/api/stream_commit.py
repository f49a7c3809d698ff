"""Committing a streamed attempt (docs/proxying.md#streaming): its first event, the relay, and
how it ends.

:meth:`StreamCommitter.commit` waits for the upstream stream's first event, then hands the
stream to the request's exit stack (its owner from then on) and answers with the relay. The
attempt is finished when the relay ends — a success, or truncated (``failure``, or
``cancelled`` when the gateway cut it: the drain, ``max_stream_seconds``) — or, when the client
abandons the stream, by the exit stack as ``cancelled``.
"""

from __future__ import annotations

import functools

import httpx
import trio

from nexus_trio import errors
from nexus_trio.api.attempt_recorder import Attempt, AttemptRecorder
from nexus_trio.asgi.context import RequestContext
from nexus_trio.asgi.reply import Reply
from nexus_trio.config import ServerConfig
from nexus_trio.drain import Drain
from nexus_trio.metrics import Metrics
from nexus_trio.quality import Outcome
from nexus_trio.upstream.headers import client_response_headers
from nexus_trio.upstream.relay import StreamLimits, max_stream_deadline, relay
from nexus_trio.upstream.stream import UpstreamStream

#: How long closing an upstream response may take while the request is being cancelled.
_CLOSE_SECONDS = 1.0


async def close_shielded(closeable: httpx.Response | UpstreamStream) -> None:
    if isinstance(closeable, httpx.Response) and closeable.is_closed:
        return  # read to its end: the connection is back in the pool already
    with trio.move_on_after(_CLOSE_SECONDS, shield=True):
        await closeable.aclose()


class StreamCommitter:
    """Commits streamed attempts and finishes them when their streams end."""

    def __init__(self, recorder: AttemptRecorder, drain: Drain, metrics: Metrics) -> None:
        self._recorder = recorder
        self._drain = drain
        self._metrics = metrics

    async def commit(
        self, ctx: RequestContext, attempt: Attempt, stream: UpstreamStream, server: ServerConfig
    ) -> Reply:
        """Wait for the first event, then hand the stream to the request and respond."""
        finish = self._recorder.finish
        content_type = stream.response.headers.get("content-type", "")
        if not content_type.startswith("text/event-stream"):
            raise errors.BadUpstreamResponse(
                f"Backend '{attempt.backend.name}' answered a stream request without an "
                "event stream."
            )
        first = await stream.receive_first()
        if ctx.client_api is not None and not ctx.answered_natively:
            stream.client = ctx.client_api.events()
        ctx.defer(self._release, ctx, attempt, stream)
        now = trio.current_time()
        ctx.committed_at = now
        limits = StreamLimits(
            idle_seconds=server.stream_idle_timeout_seconds,
            max_deadline=max_stream_deadline(now, server.max_stream_seconds),
        )

        def on_end(reason: str | None) -> None:
            attempt.ttft_ms = ctx.ttft_ms = stream.ttft_ms()
            _note_usage(ctx, stream)
            if reason is None:
                finish(attempt, Outcome.SUCCESS)
                return
            ctx.truncated = True
            self._metrics.stream_truncated.labels(attempt.backend.name, reason).inc()
            cut_by_gateway = reason in ("drain", "max_duration")
            outcome = Outcome.CANCELLED if cut_by_gateway else Outcome.FAILURE
            finish(attempt, outcome)

        headers = client_response_headers(stream.response.headers)
        headers["cache-control"] = "no-cache"
        return Reply.streamed(
            stream.response.status_code,
            headers,
            functools.partial(relay, stream, first, limits, self._drain, on_end),
        )

    async def _release(self, ctx: RequestContext, attempt: Attempt, stream: UpstreamStream) -> None:
        """Exit-stack callback: record a stream the client abandoned, close the upstream."""
        _note_usage(ctx, stream)
        attempt.ttft_ms = stream.ttft_ms()
        self._recorder.finish(attempt, Outcome.CANCELLED)
        await close_shielded(stream)


def _note_usage(ctx: RequestContext, stream: UpstreamStream) -> None:
    """What a stream used, for the access log and its cost (the characters: for an estimate)."""
    ctx.output_chars = stream.content_chars
    usage = stream.usage
    if usage is not None:
        ctx.prompt_tokens = usage.prompt_tokens
        ctx.completion_tokens = usage.completion_tokens
        ctx.cached_tokens = usage.cached_tokens
        ctx.server_tool_use = bytes(usage.server_tool_use)
