"""One attempt: a single upstream exchange for one agent (docs/proxying.md#retries,
docs/proxying.md#streaming, docs/quality.md#outcomes).

Theory of operation. An attempt sends the request to one agent and either returns the
client's response or raises an :class:`~nexus_trio.errors.UpstreamError` for the retry loop.
Its own timeout runs from its send (:mod:`nexus_trio.api.attempt_clock`). A non-streaming
attempt is bounded by ``attempt_timeout_seconds``, reads the whole body and judges it. A
streaming attempt is bounded by ``first_token_timeout_seconds`` until its first event; then
it *commits* (:mod:`nexus_trio.api.stream_commit`): the open upstream stream is handed to
the request's exit stack (its owner from then on) and the response body is the relay.

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

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
import msgspec
import trio

from nexus_trio import errors
from nexus_trio.api.accounting import settle_cost
from nexus_trio.api.attempt_clock import AttemptClock, attempt_timeout
from nexus_trio.api.attempt_recorder import Attempt, AttemptRecorder
from nexus_trio.api.refusals import (
    refuse_credentials_error,
    says_cannot_embed,
    says_model_missing,
)
from nexus_trio.api.stream_commit import StreamCommitter, close_shielded
from nexus_trio.asgi.context import RequestContext
from nexus_trio.asgi.reply import Reply
from nexus_trio.dialects import Exchange, dialect_for
from nexus_trio.drain import Drain
from nexus_trio.gateway.generation import Generation, Generations
from nexus_trio.metrics import Metrics
from nexus_trio.quality.outcome import Outcome, outcome_for_status
from nexus_trio.routing import Agent
from nexus_trio.spend import PriceList
from nexus_trio.upstream.chunks import body_output_chars, body_usage
from nexus_trio.upstream.client import UpstreamClient, read_body
from nexus_trio.upstream.stream import UpstreamStream

log = logging.getLogger("nexus_trio.api")


def _prepare(
    ctx: RequestContext,
    agent: Agent,
    path: str,
    body: bytes,
    client_headers: Sequence[tuple[bytes, bytes]],
    *,
    strip_usage: bool,
) -> Exchange:
    """The attempt's exchange in its backend's dialect.

    Raises:
        InvalidValue: the backend cannot serve the request (nothing is sent): its dialect
            refuses it, or it must translate a client-API request holding what only a native
            backend takes (docs/messages-api.md#native-only-content).
    """
    backend = agent.backend
    exchange = dialect_for(backend.config.type).exchange(
        backend,
        path,
        body,
        agent.model,
        client_headers=client_headers,
        request_id=ctx.request_id,
        strip_usage=strip_usage,
        client_body=ctx.client_api,
    )
    ctx.answered_natively = exchange.native
    client_api = ctx.client_api
    if client_api is not None and client_api.refusal is not None and not exchange.native:
        raise client_api.refusal
    return exchange


@dataclass(eq=False, slots=True)
class _Held:
    """What an attempt opened: closed when it ends, unless its stream was committed (the
    request's exit stack owns it then)."""

    owned: httpx.Response | UpstreamStream | None = None
    committed: bool = False


class AttemptRunner:
    """Runs single attempts: sends them upstream, judges the answers, records the outcomes."""

    def __init__(
        self,
        generations: Generations,
        upstream: UpstreamClient,
        recorder: AttemptRecorder,
        drain: Drain,
        metrics: Metrics,
    ) -> None:
        self._generations = generations
        self._upstream = upstream
        self._recorder = recorder
        self._drain = drain
        self._streams = StreamCommitter(recorder, drain, metrics)

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
        generation = self._generations.current
        server = generation.config.server
        backend = agent.backend
        exchange = _prepare(ctx, agent, path, body, client_headers, strip_usage=strip_usage)
        attempt = _traced(ctx, self._recorder.start(backend, agent.model, stream=stream))
        timeout = attempt_timeout(server, backend.config.timeout_seconds, stream, attempt.cold)
        limit = server.request_timeout_seconds
        clock = AttemptClock(timeout, request_timeout=limit, request_deadline=request_deadline)
        held = _Held()
        try:
            with clock.scope:
                return await self._exchange(ctx, attempt, exchange, clock, held, path, generation)
            # Only reached when the attempt's own deadline cancelled the block above.
            what = "its first event" if stream else "a response"
            raise errors.BackendTimeout(
                f"Backend '{backend.name}' did not send {what} within {timeout:g} s."
            )
        except errors.UpstreamReset as exc:
            # A pooled connection the backend had already closed says nothing about the
            # backend: a keep-alive race is not counted as a failure.
            stale = exc.reused_connection and exc.before_response
            self._recorder.finish(attempt, Outcome.CANCELLED if stale else Outcome.FAILURE)
            raise
        except errors.UpstreamError:
            self._recorder.finish(attempt, Outcome.FAILURE)
            raise
        finally:
            await self._end(ctx, attempt, clock, held)

    async def _exchange(
        self,
        ctx: RequestContext,
        attempt: Attempt,
        exchange: Exchange,
        clock: AttemptClock,
        held: _Held,
        path: str,
        generation: Generation,
    ) -> Reply:
        """Send, then judge the whole answer or commit the stream; ``held`` tracks what is open."""
        server = generation.config.server
        backend = attempt.backend
        ctx.cold_start = attempt.cold
        headers = exchange.headers()
        if ctx.trace is not None and attempt.span is not None:
            headers = ctx.trace.propagate(attempt.span, headers)
        response = held.owned = await self._upstream.open(
            backend,
            exchange.path,
            exchange.body,
            headers,
            connect_timeout=server.connect_timeout_seconds,
            on_send=clock.sent,
        )
        attempt.started = clock.sent_at  # the backend's latency runs from the send too
        status = response.status_code
        if attempt.span is not None:
            attempt.span.status = status
        if attempt.stream and 200 <= status < 300:
            upstream = held.owned = exchange.stream(response, backend, sent_at=clock.sent_at)
            result = await self._streams.commit(ctx, attempt, upstream, server)
            held.committed = True
            return result
        data = await read_body(response, backend, limit=server.max_response_body_bytes)
        answer = exchange.answer(status, data, response.headers)
        return self._judge_body(ctx, attempt, path, answer, exchange, generation.prices)

    async def _end(
        self, ctx: RequestContext, attempt: Attempt, clock: AttemptClock, held: _Held
    ) -> None:
        """However the attempt ended: count its upstream time; unless its stream was committed,
        finish it (a no-op when it has an outcome already) and close what it opened."""
        now = trio.current_time()
        ctx.upstream_seconds += clock.running_seconds(now)
        if held.committed:
            return
        # No outcome yet: cut short by a deadline, the client or the drain.
        ctx.cut_short_after_send = attempt.outcome is None and clock.sent_at <= now
        failed = clock.cut_short_is_failure(now) and not self._drain.expired()
        self._recorder.finish(attempt, Outcome.FAILURE if failed else Outcome.CANCELLED)
        if held.owned is not None:
            await close_shielded(held.owned)

    def _judge_body(
        self,
        ctx: RequestContext,
        attempt: Attempt,
        path: str,
        answer: tuple[int, dict[str, str], bytes],
        exchange: Exchange,
        prices: PriceList,
    ) -> Reply:
        """Judge a fully read upstream answer: return it, or raise to retry elsewhere.

        A backend saying it lacks the model, or that it does not embed, is not failing: the
        attempt counts as the request's error there, the backend is told apart (the model
        hidden, or known not to embed, until its next successful probe) and another is tried.
        """
        status, headers, data = answer
        finish = self._recorder.finish
        backend = attempt.backend
        name = backend.name
        if says_model_missing(status, data):
            finish(attempt, Outcome.CLIENT_ERROR)
            backend.missing_models.add(attempt.model)
            raise errors.UpstreamModelMissing(name, status, data, headers)
        if says_cannot_embed(path, status):
            finish(attempt, Outcome.CLIENT_ERROR)
            backend.refused_embeddings.add(attempt.model)
            raise errors.UpstreamCannotEmbed(name, status, data, headers)
        outcome = outcome_for_status(status)
        if outcome is Outcome.FAILURE:
            finish(attempt, outcome)
            raise errors.UpstreamStatusError(name, status, data, headers)
        if outcome is Outcome.CLIENT_ERROR or attempt.stream:
            # 4xx is the client's fault, returned as-is; so is a streaming 3xx.
            finish(attempt, outcome)
            refuse_credentials_error(backend, status, data)
            return Reply.complete(status, headers, data)
        try:
            readable = exchange.readable(data)
            usage = body_usage(readable)
        except msgspec.DecodeError as exc:
            finish(attempt, Outcome.FAILURE)
            raise errors.BadUpstreamResponse(
                f"Backend '{name}' sent a response that is not valid JSON."
            ) from exc
        completion_tokens = usage.completion_tokens if usage is not None else None
        if usage is not None:
            ctx.prompt_tokens = usage.prompt_tokens
            ctx.completion_tokens = usage.completion_tokens
            ctx.cached_tokens = usage.cached_tokens
            ctx.server_tool_use = bytes(usage.server_tool_use)
        if ctx.prompt_tokens is None and prices.lookup(name, attempt.model) is not None:
            ctx.output_chars = body_output_chars(readable)
        settle_cost(prices, ctx)
        finish(attempt, Outcome.SUCCESS, completion_tokens=completion_tokens)
        return Reply.complete(status, headers, data)


def _traced(ctx: RequestContext, attempt: Attempt) -> Attempt:
    """``attempt``, with its span when the request is traced (docs/operations.md#tracing): made
    for the route's reason, its start the attempt's."""
    if ctx.trace is not None:
        backend = attempt.backend
        attempt.span = ctx.trace.attempt(
            backend.name, attempt.model, backend.config.type, ctx.route_reason, attempt.started
        )
    return attempt
