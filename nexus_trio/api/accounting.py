"""Settling one finished proxy request and handing its record to the sinks.

:meth:`RequestAccounting.finish` is called exactly once per proxy request, when its last byte
was sent or the client went away (docs/operations.md#logging: streams are logged when they
end). It settles the request once — its status and its cost — builds one frozen
:class:`~nexus_trio.gateway.record.RequestRecord`, and hands it to the sinks registered at
wiring (:mod:`nexus_trio.api.request_sinks`, the totals, the dashboard's request log).
:func:`settle_cost` prices what the request used (docs/spend.md#pricing): a non-streaming
answer when it is judged (its ``X-Nexus-Cost-USD`` header needs it), a committed stream when it
ends. The cost is charged by the spend sink and the answering attempt's reservation released
in the same synchronous step (docs/spend.md#reservations): the budget never sees the request
twice, nor misses it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import msgspec
import trio

from nexus_trio.asgi.context import RequestContext
from nexus_trio.gateway.generation import Generations
from nexus_trio.gateway.record import RequestRecord, RequestSink
from nexus_trio.spend import SpendBook
from nexus_trio.spend.pricing import PriceList, estimated_tokens


def settle_cost(prices: PriceList, ctx: RequestContext) -> None:
    """Set ``ctx.cost_usd`` (once) from the tokens the served agent reported.

    An unpriced agent costs 0. Without reported usage the tokens are estimated — the request's
    input estimate and the generated characters / 4 (the output alone when only the input was
    reported, as at the start of an Anthropic stream) — and ``ctx.cost_estimated`` is set
    (docs/spend.md#estimates): so an attempt cut short after it was sent, which got no answer,
    costs its input estimate (docs/spend.md#pricing).
    """
    if ctx.cost_usd is not None or ctx.backend is None or ctx.served_model is None:
        return
    price = prices.lookup(ctx.backend, ctx.served_model)
    if price is None:
        ctx.cost_usd = 0.0
        return
    prompt = ctx.prompt_tokens
    completion = ctx.completion_tokens
    if prompt is None:
        ctx.cost_estimated = True
        prompt = ctx.estimated_prompt_tokens
        completion = estimated_tokens(ctx.output_chars)
    elif completion is None and ctx.output_chars:
        # The input was reported at the start, the output never (an abandoned stream).
        ctx.cost_estimated = True
        completion = estimated_tokens(ctx.output_chars)
    ctx.cost_usd = price.cost(prompt, completion or 0, ctx.cached_tokens)
    if ctx.server_tool_use:
        ctx.cost_usd += price.tool_fees(msgspec.Raw(ctx.server_tool_use))


def tokens_used(ctx: RequestContext) -> int:
    """Prompt plus completion tokens: reported, else estimated (docs/keys.md#rate-limits)."""
    if ctx.backend is None:
        return 0
    prompt = ctx.prompt_tokens
    if prompt is None:
        return ctx.estimated_prompt_tokens + estimated_tokens(ctx.output_chars)
    return prompt + (ctx.completion_tokens or 0)


def request_record(ctx: RequestContext, *, unauthenticated: bool) -> RequestRecord:
    """The settled record of the finished request ``ctx`` (its cost settled already)."""
    elapsed = trio.current_time() - ctx.started
    cancelled = not ctx.completed
    status = ctx.status
    return RequestRecord(
        request_id=ctx.request_id,
        method=ctx.method,
        path=ctx.path,
        client=ctx.client,
        started=ctx.started,
        elapsed_seconds=elapsed,
        at_wall=time.time(),
        requested_model=ctx.requested_model,
        served_model=ctx.served_model if ctx.backend is not None else None,
        backend=ctx.backend,
        attempts=ctx.attempts,
        status=None if cancelled else status,
        cancelled=cancelled,
        failed=status is None or status >= 500 or ctx.truncated,
        truncated=ctx.truncated,
        stream=ctx.stream,
        error_code="cancelled" if cancelled else ctx.error_code,
        route_reason=ctx.route_reason,
        ttft_ms=ctx.ttft_ms,
        committed_after=None if ctx.committed_at is None else ctx.committed_at - ctx.started,
        upstream_seconds=ctx.upstream_seconds,
        prompt_tokens=ctx.prompt_tokens,
        completion_tokens=ctx.completion_tokens,
        tokens_used=tokens_used(ctx),
        cost_usd=ctx.cost_usd or 0.0,
        cost_estimated=ctx.cost_estimated,
        key=ctx.key,
        user_agent=ctx.user_agent,
        end_user=ctx.end_user,
        unauthenticated=unauthenticated,
        trace=ctx.trace,
        cold_start=ctx.cold_start,
    )


class RequestAccounting:
    """Finishes proxy requests: settles each once and hands its record to the sinks."""

    def __init__(
        self, generations: Generations, spend: SpendBook, sinks: Sequence[RequestSink]
    ) -> None:
        self._generations = generations
        self._spend = spend
        self._sinks = tuple(sinks)

    def finish(self, ctx: RequestContext) -> None:
        """Settle the request ``ctx``, hand its record to every sink, release its reservation.

        Settled here: a committed stream, and an attempt cut short after it was sent (the client
        gone, the request deadline, the drain), which the provider bills for its input at least.
        An attempt that failed (an error status, a connection failure) costs nothing. The
        reservation is released whatever happens, in the same synchronous step as the charge.
        """
        generation = self._generations.current
        try:
            if (ctx.stream and ctx.committed_at is not None) or ctx.cut_short_after_send:
                settle_cost(generation.prices, ctx)
            unauthenticated = ctx.key is None and bool(generation.keyring)
            record = request_record(ctx, unauthenticated=unauthenticated)
            for sink in self._sinks:
                sink(record)
        finally:
            reservation = ctx.reservation
            if reservation is not None:
                ctx.reservation = None
                self._spend.release(reservation)
