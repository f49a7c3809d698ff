"""One attempt: a single upstream exchange for one agent (docs/proxying.md#retries,
docs/proxying.md#streaming, docs/quality.md#outcomes).

Theory of operation. An attempt sends the request to one agent and either returns the
client's response or raises an :class:`~nexus_trio.errors.UpstreamError` for the retry loop.
Its own timeout runs from its send (:mod:`nexus_trio.api.attempt_clock`). A non-streaming
attempt is bounded by ``attempt_timeout_seconds``, reads the whole body and judges it. A
streaming attempt is bounded by ``first_token_timeout_seconds`` until its first event; then
it *commits*: the open upstream stream is handed to the request's exit stack (its owner from
then on) and the response body is the relay.

Each attempt speaks its backend's dialect (:func:`nexus_trio.dialects.dialect_for`), chosen
once: it prepares the upstream path, body and headers (a request the provider cannot serve is
refused then, with nothing sent) and turns the answer — body, error or stream events — into the
client's, which is then judged exactly like any other backend's.

Every attempt is finished exactly once with its outcome. One that recorded none when its
scope unwinds (client gone, drain, request deadline) is ``cancelled`` — unless the request
deadline cut it after nearly its full time (:class:`AttemptClock`): then a ``failure``. What
it opened is closed under a shielded scope.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import msgspec
import trio

from nexus_trio import errors
from nexus_trio.api.accounting import settle_cost
from nexus_trio.api.attempt_clock import AttemptClock, attempt_timeout
from nexus_trio.asgi.context import RequestContext
from nexus_trio.asgi.reply import Reply
from nexus_trio.dialects import dialect_for
from nexus_trio.quality.outcome import Outcome, outcome_for_status
from nexus_trio.routing import Agent
from nexus_trio.runtime.services import Attempt, Services
from nexus_trio.upstream.chunks import body_output_chars, body_usage
from nexus_trio.upstream.client import read_body
from nexus_trio.upstream.headers import client_response_headers
from nexus_trio.upstream.relay import StreamLimits, max_stream_deadline, relay
from nexus_trio.upstream.stream import UpstreamStream

#: How long closing an upstream response may take while the request is being cancelled.
_CLOSE_SECONDS = 1.0

_MODEL_MISSING_WORDS = (b"not found", b"does not exist", b"not exist", b"unknown model")


async def _close_shielded(closeable: httpx.Response | UpstreamStream) -> None:
    if isinstance(closeable, httpx.Response) and closeable.is_closed:
        return  # read to its end: the connection is back in the pool already
    with trio.move_on_after(_CLOSE_SECONDS, shield=True):
        await closeable.aclose()


def says_cannot_embed(path: str, status: int) -> bool:
    """A 501 to an embeddings request: the server was not started to embed (llama.cpp)."""
    return status == 501 and path == "/v1/embeddings"


def says_model_missing(status: int, body: bytes) -> bool:
    """An upstream 404, or a 400 saying the model does not exist (docs/proxying.md#retries)."""
    if status == 404:
        return True
    if status != 400:
        return False
    text = body[:4096].lower()
    return b"model" in text and any(words in text for words in _MODEL_MISSING_WORDS)


class AttemptRunner:
    """Runs single attempts for one :class:`Services`."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def run(
        self,
        ctx: RequestContext,
        agent: Agent,
        stream: bool,
        path: str,
        body: bytes,
        client_headers: Sequence[tuple[bytes, bytes]],
        *,
        request_deadline: float,
        strip_usage: bool = False,
    ) -> Reply:
        """Send one attempt to ``agent``; return the client's response or raise.

        Blocks until the response is complete (non-streaming) or committed (streaming). The
        caller's scope enforces ``request_deadline`` (docs/proxying.md#timeouts).
        ``strip_usage``: the gateway asked this stream for usage, so its usage-only chunk is
        not relayed.

        Raises:
            UpstreamError: the attempt failed; its class says whether to retry.
        """
        services = self.services
        server = services.config.server
        backend = agent.backend
        exchange = dialect_for(backend.config.type).exchange(  # may refuse: nothing sent
            backend,
            path,
            body,
            agent.model,
            client_headers=client_headers,
            request_id=ctx.request_id,
            strip_usage=strip_usage,
        )
        attempt = services.start_attempt(backend, agent.model, stream=stream)
        response: httpx.Response | None = None
        #: What to close unless the stream is committed (then the request's exit stack owns it).
        owned: httpx.Response | UpstreamStream | None = None
        committed = False
        timeout = attempt_timeout(server, backend.config.timeout_seconds, stream=stream)
        limit = server.request_timeout_seconds
        clock = AttemptClock(timeout, request_timeout=limit, request_deadline=request_deadline)
        connect_timeout = server.connect_timeout_seconds
        try:
            with clock.scope:
                response = owned = await services.upstream.open(
                    backend,
                    exchange.path,
                    exchange.body,
                    exchange.headers(),
                    connect_timeout=connect_timeout,
                    on_send=clock.sent,
                )
                attempt.started = clock.sent_at  # the backend's latency runs from the send too
                status = response.status_code
                if stream and 200 <= status < 300:
                    upstream = owned = exchange.stream(response, backend, sent_at=clock.sent_at)
                    result = await self._commit_stream(ctx, attempt, upstream)
                    committed = True
                    return result
                data = await read_body(response, backend, limit=server.max_response_body_bytes)
                status, headers, data = exchange.answer(status, data, response.headers)
                return self._judge_body(ctx, attempt, path, status, headers, data)
            # Only reached when the attempt's own deadline cancelled the block above.
            what = "its first event" if stream else "a response"
            raise errors.BackendTimeout(
                f"Backend '{backend.name}' did not send {what} within {timeout:g} s."
            )
        except errors.UpstreamReset as exc:
            # A pooled connection the backend had already closed says nothing about the
            # backend: a keep-alive race is not counted as a failure.
            stale = exc.reused_connection and exc.before_response
            services.finish_attempt(attempt, Outcome.CANCELLED if stale else Outcome.FAILURE)
            raise
        except errors.UpstreamError:
            services.finish_attempt(attempt, Outcome.FAILURE)
            raise
        finally:
            now = trio.current_time()
            ctx.upstream_seconds += clock.running_seconds(now)
            if not committed:
                # No outcome yet (else a no-op): cut short by a deadline, the client or the drain.
                ctx.cut_short_after_send = attempt.outcome is None and clock.sent_at <= now
                failed = clock.cut_short_is_failure(now) and not services.drain.expired()
                services.finish_attempt(attempt, Outcome.FAILURE if failed else Outcome.CANCELLED)
                if owned is not None:
                    await _close_shielded(owned)

    def _judge_body(
        self,
        ctx: RequestContext,
        attempt: Attempt,
        path: str,
        status: int,
        headers: dict[str, str],
        data: bytes,
    ) -> Reply:
        """Judge a fully read upstream answer: return it, or raise to retry elsewhere.

        A backend saying it lacks the model, or that it does not embed, is not failing: the
        attempt counts as the request's error there, the backend is told apart (the model
        hidden, or known not to embed, until its next successful probe) and another is tried.
        """
        services = self.services
        backend = attempt.backend
        name = backend.name
        if says_model_missing(status, data):
            services.finish_attempt(attempt, Outcome.CLIENT_ERROR)
            backend.missing_models.add(attempt.model)
            raise errors.UpstreamModelMissing(name, status, data, headers)
        if says_cannot_embed(path, status):
            services.finish_attempt(attempt, Outcome.CLIENT_ERROR)
            backend.refused_embeddings.add(attempt.model)
            raise errors.UpstreamCannotEmbed(name, status, data, headers)
        outcome = outcome_for_status(status)
        if outcome is Outcome.FAILURE:
            services.finish_attempt(attempt, outcome)
            raise errors.UpstreamStatusError(name, status, data, headers)
        if outcome is Outcome.CLIENT_ERROR or attempt.stream:
            # 4xx is the client's fault, returned as-is; so is a streaming 3xx.
            services.finish_attempt(attempt, outcome)
            ctx.status = status
            return Reply.complete(status, headers, data)
        try:
            usage = body_usage(data)
        except msgspec.DecodeError as exc:
            services.finish_attempt(attempt, Outcome.FAILURE)
            raise errors.BadUpstreamResponse(
                f"Backend '{name}' sent a response that is not valid JSON."
            ) from exc
        completion_tokens = usage.completion_tokens if usage is not None else None
        if usage is not None:
            ctx.prompt_tokens = usage.prompt_tokens
            ctx.completion_tokens = usage.completion_tokens
            ctx.cached_tokens = usage.cached_tokens
        if ctx.prompt_tokens is None and services.prices.lookup(name, attempt.model) is not None:
            ctx.output_chars = body_output_chars(data)
        settle_cost(services.prices, ctx)
        services.finish_attempt(attempt, Outcome.SUCCESS, completion_tokens=completion_tokens)
        ctx.status = status
        return Reply.complete(status, headers, data)

    async def _commit_stream(
        self, ctx: RequestContext, attempt: Attempt, stream: UpstreamStream
    ) -> Reply:
        """Wait for the first event, then hand the stream to the request and respond."""
        services = self.services
        content_type = stream.response.headers.get("content-type", "")
        if not content_type.startswith("text/event-stream"):
            raise errors.BadUpstreamResponse(
                f"Backend '{attempt.backend.name}' answered a stream request without an "
                "event stream."
            )
        first = await stream.receive_first()
        ctx.defer(self._release_stream, ctx, attempt, stream)
        now = trio.current_time()
        ctx.committed_at = now
        ctx.status = stream.response.status_code
        server = services.config.server
        limits = StreamLimits(
            idle_seconds=server.stream_idle_timeout_seconds,
            max_deadline=max_stream_deadline(now, server.max_stream_seconds),
        )

        def on_end(reason: str | None) -> None:
            attempt.ttft_ms = ctx.ttft_ms = stream.ttft_ms()
            _note_usage(ctx, stream)
            if reason is None:
                services.finish_attempt(attempt, Outcome.SUCCESS)
                return
            ctx.truncated = True
            services.metrics.stream_truncated.labels(attempt.backend.name, reason).inc()
            cut_by_gateway = reason in ("drain", "max_duration")
            outcome = Outcome.CANCELLED if cut_by_gateway else Outcome.FAILURE
            services.finish_attempt(attempt, outcome)

        headers = client_response_headers(stream.response.headers)
        headers["cache-control"] = "no-cache"
        return Reply.streamed(
            stream.response.status_code,
            headers,
            relay(stream, first, limits, services.drain, on_end),
        )

    async def _release_stream(
        self, ctx: RequestContext, attempt: Attempt, stream: UpstreamStream
    ) -> None:
        """Exit-stack callback: record a stream the client abandoned, close the upstream."""
        _note_usage(ctx, stream)
        attempt.ttft_ms = stream.ttft_ms()
        self.services.finish_attempt(attempt, Outcome.CANCELLED)
        await _close_shielded(stream)


def _note_usage(ctx: RequestContext, stream: UpstreamStream) -> None:
    """What a stream used, for the access log and its cost (the characters: for an estimate)."""
    ctx.output_chars = stream.content_chars
    usage = stream.usage
    if usage is not None:
        ctx.prompt_tokens = usage.prompt_tokens
        ctx.completion_tokens = usage.completion_tokens
        ctx.cached_tokens = usage.cached_tokens
