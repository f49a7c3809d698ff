"""The gauges read at scrape time (docs/metrics.md#metrics): :class:`GaugeSnapshot`, the state
they describe, and :class:`StateCollector`, which renders one snapshot per scrape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from nexus_trio import __version__
from nexus_trio.quality import AgentQualityMetrics, AgentState
from nexus_trio.spend import BudgetLevel, SpendStatistics


@dataclass(frozen=True, slots=True)
class GaugeSnapshot:
    """State-derived values read at scrape time."""

    in_flight: int
    queue_depth: int
    backend_pending: dict[str, int]
    backend_up: dict[str, bool]
    #: The quality snapshot ``/v1/stats`` also renders, by (backend, model).
    agents: Mapping[tuple[str, str], AgentQualityMetrics]
    #: The month's spend and budget; None when no spend is kept (nothing priced or budgeted).
    spend: SpendStatistics | None = None
    #: Each state store's health: ``ledger`` when spend is kept, ``redis`` in a fleet.
    stores: Mapping[str, bool] = field(default_factory=dict)
    #: Per (backend, model) of known residency: whether the model is loaded there.
    model_loaded: Mapping[tuple[str, str], bool] = field(default_factory=dict)


class StateCollector(Collector):
    """The state gauges, read from a :class:`GaugeSnapshot` taken at each scrape."""

    def __init__(self, snapshot: Callable[[], GaugeSnapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        snap = self._snapshot()
        in_flight = GaugeMetricFamily(
            "nexus_in_flight_requests", "Client requests on proxy routes in flight."
        )
        in_flight.add_metric([], snap.in_flight)
        queue_depth = GaugeMetricFamily(
            "nexus_queue_depth", "Requests waiting for a backend with free capacity."
        )
        queue_depth.add_metric([], snap.queue_depth)
        pending = GaugeMetricFamily(
            "nexus_backend_pending_requests", "Attempts in flight per backend.", labels=["backend"]
        )
        up = GaugeMetricFamily(
            "nexus_backend_up", "1 if the backend is healthy.", labels=["backend"]
        )
        for name, value in snap.backend_pending.items():
            pending.add_metric([name], value)
        for name, is_up in snap.backend_up.items():
            up.add_metric([name], 1 if is_up else 0)
        build = GaugeMetricFamily("nexus_build_info", "Build information.", labels=["version"])
        build.add_metric([__version__], 1)
        yield from (in_flight, queue_depth, pending, up, build)
        yield from _agent_families(snap.agents)
        loaded = GaugeMetricFamily(
            "nexus_model_loaded",
            "1 if the backend holds the model in memory, 0 if it must load it (unknown: absent).",
            labels=["backend", "model"],
        )
        for (backend, model), is_loaded in sorted(snap.model_loaded.items()):
            loaded.add_metric([backend, model], 1 if is_loaded else 0)
        yield loaded
        if snap.spend is not None:
            yield from _spend_families(snap.spend)
        if snap.stores:
            store = GaugeMetricFamily(
                "nexus_state_store_up",
                "1 while the state store works: the spend ledger's last write, or the shared "
                "store's last sync, succeeded.",
                labels=["store"],
            )
            for name, is_up in sorted(snap.stores.items()):
                store.add_metric([name], 1 if is_up else 0)
            yield store


def _spend_families(spend: SpendStatistics) -> Iterator[Metric]:
    """The budget gauges (docs/spend.md#budgets)."""
    budget = spend.budget
    spent = GaugeMetricFamily("nexus_budget_spent_usd", "USD spent this UTC month.")
    spent.add_metric([], budget.spent_usd)
    limit = GaugeMetricFamily("nexus_budget_limit_usd", "The monthly budget in USD; 0 = no budget.")
    limit.add_metric([], budget.limit_usd)
    state = GaugeMetricFamily(
        "nexus_budget_state", "1 for the budget's state: ok, soft or hard.", labels=["state"]
    )
    for level in BudgetLevel:
        state.add_metric([level.value], 1 if budget.level is level else 0)
    yield from (spent, limit, state)


def _agent_families(agents: Mapping[tuple[str, str], AgentQualityMetrics]) -> Iterator[Metric]:
    """The per-agent quality gauges, from the same snapshot as ``/v1/stats``."""
    labels = ["backend", "model"]
    error_rate = GaugeMetricFamily(
        "nexus_agent_error_rate", "Failures / (successes + failures) over 1 h.", labels=labels
    )
    success_rate = GaugeMetricFamily(
        "nexus_agent_success_rate_24h",
        "Successes / (successes + failures) over 24 h.",
        labels=labels,
    )
    count = GaugeMetricFamily(
        "nexus_agent_request_count_1h",
        "Successes + failures + client errors over 1 h.",
        labels=labels,
    )
    state = GaugeMetricFamily(
        "nexus_agent_state", "1 for the agent's quality state.", labels=[*labels, "state"]
    )
    for (backend, model), metrics in sorted(agents.items()):
        error_rate.add_metric([backend, model], metrics.error_rate_1h)
        success_rate.add_metric([backend, model], metrics.success_rate_24h)
        count.add_metric([backend, model], metrics.request_count_1h)
        for each in AgentState:
            state.add_metric([backend, model, each.value], 1 if metrics.state is each else 0)
    yield from (error_rate, success_rate, count, state)
