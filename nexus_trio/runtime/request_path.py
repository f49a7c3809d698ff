"""The request path of one gateway, built by the composition root from its capabilities:
router, attempts, budgets, forwarder, proxy endpoint, and the accounting with the sinks that
consume every finished request (docs/api.md#routes). Each part is given only what it uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nexus_trio.api.accounting import RequestAccounting
from nexus_trio.api.app import AppParts
from nexus_trio.api.attempt import AttemptRunner
from nexus_trio.api.budgets import BudgetGate
from nexus_trio.api.client_requests import ClientAPIs
from nexus_trio.api.forwarding import Forwarder
from nexus_trio.api.proxy import ProxyEndpoint
from nexus_trio.api.request_router import RequestRouter
from nexus_trio.api.request_sinks import limiter_sink, log_access, metrics_sink, spend_sink
from nexus_trio.api.token_counter import TokenCounter
from nexus_trio.gateway.generation import Generations
from nexus_trio.gateway.record import RequestSink
from nexus_trio.tracing import Sampler

if TYPE_CHECKING:
    from nexus_trio.runtime.wiring import Wiring


def _sinks(wiring: Wiring) -> list[RequestSink]:
    """The consumers of every finished proxy request, in the order they see it."""
    sinks: list[RequestSink] = [
        spend_sink(wiring.spend, wiring.metrics),
        wiring.state.count,
        metrics_sink(wiring.metrics),
        limiter_sink(wiring.limiter),
    ]
    if wiring.request_log is not None:
        sinks.append(wiring.request_log.append)
    sinks.append(log_access)
    if wiring.span_export is not None:
        sinks.append(wiring.span_export.submit)
    return sinks


def request_path(wiring: Wiring) -> AppParts:
    """The request path over the wiring's capabilities, each part given what it uses."""
    generations, metrics, drain = wiring.generations, wiring.metrics, wiring.drain
    attempts = AttemptRunner(generations, wiring.upstream, wiring.recorder, drain, metrics)
    forwarder = Forwarder(
        generations,
        RequestRouter(wiring.queue, wiring.quality, metrics),
        attempts,
        BudgetGate(generations, wiring.spend),
        registry=wiring.registry,
        drain=drain,
        metrics=metrics,
    )
    proxy = ProxyEndpoint(
        generations,
        forwarder,
        in_flight=wiring.state.in_flight,
        key_concurrency=wiring.key_concurrency,
        limiter=wiring.limiter,
        disconnects=wiring.disconnects,
        metrics=metrics,
        client_apis=ClientAPIs(wiring.responses, lambda: generations.current.config.responses),
        token_counter=TokenCounter(wiring.registry, wiring.http, generations),
    )
    return AppParts(
        generations=generations,
        drain=drain,
        proxy=proxy,
        accounting=RequestAccounting(generations, wiring.spend, _sinks(wiring)),
        statistics=wiring.state.statistics,
        registry=wiring.registry,
        render_metrics=metrics.render,
        started_wall=wiring.state.started_wall,
        responses=wiring.responses,
        keys=wiring.keys,
        spend_of=wiring.spend.tally.fleet_key_usd,
        sampler=None if wiring.span_export is None else Sampler(lambda: _sample_ratio(generations)),
        models=wiring.residency.control,
    )


def _sample_ratio(generations: Generations) -> float:
    """``[tracing] sample_ratio`` as reloaded."""
    return generations.current.config.tracing.sample_ratio
