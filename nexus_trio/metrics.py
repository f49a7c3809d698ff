"""Prometheus metrics (docs/metrics.md#metrics) on the app's own ``CollectorRegistry``.

Counters and histograms are observed on the request path. Gauges that describe state (in
flight, pending per backend, backend up) are not kept in sync by hand: a custom collector reads
them from the live objects at scrape time. Label values are bounded: ``model`` is a served or
configured model or ``"none"``, ``backend`` a configured name or ``"none"``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from nexus_trio import __version__
from nexus_trio.quality import AgentQualityMetrics, AgentState
from nexus_trio.spend import BudgetLevel, SpendStatistics

__all__ = ["CONTENT_TYPE_LATEST", "GaugeSnapshot", "Metrics", "status_class"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


def status_class(status: int | None, *, cancelled: bool) -> str:
    """The bounded ``code`` label: ``2xx`` … ``5xx`` or ``cancelled``."""
    if cancelled or status is None:
        return "cancelled"
    return f"{status // 100}xx"


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


class _StateCollector(Collector):
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


_M = TypeVar("_M", bound=MetricWrapperBase)


class Labelled(Generic[_M]):
    """A labelled metric whose children are remembered by their label values.

    ``prometheus_client`` validates the values and takes a lock on every ``labels()`` call;
    on the request path that was most of the cost of counting. A child lives as long as its
    metric anyway (no series is ever removed), so the dict holds nothing extra, and it grows
    only as the label values do (bounded, see above).
    """

    __slots__ = ("_children", "metric")

    def __init__(self, metric: _M) -> None:
        self.metric = metric
        self._children: dict[tuple[str, ...], _M] = {}

    def labels(self, *values: str) -> _M:
        """The child for these label values (positional, in the metric's label order)."""
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self.metric.labels(*values)
        return child


class Metrics:
    """Every instrument of the gateway, registered on a registry of its own.

    The instruments observed on every request are wrapped in :class:`Labelled`.
    """

    def __init__(self, snapshot: Callable[[], GaugeSnapshot]) -> None:
        # ``*_created`` series double the exposition for no operational value.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.requests = Labelled(
            Counter(
                "nexus_requests",
                "Client requests on proxy routes, counted once when they finish.",
                ["model", "backend", "code", "stream"],
                registry=registry,
            )
        )
        self.request_duration = Labelled(
            Histogram(
                "nexus_request_duration_seconds",
                "Client request duration (streams: until the last byte).",
                ["model", "backend", "stream"],
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            )
        )
        self.upstream_attempts = Labelled(
            Counter(
                "nexus_upstream_attempts",
                "Upstream attempts by outcome.",
                ["backend", "model", "outcome"],
                registry=registry,
            )
        )
        self.stream_truncated = Counter(
            "nexus_stream_truncated",
            "Streams ended with the stream_truncated event.",
            ["backend", "reason"],
            registry=registry,
        )
        self.gateway_overhead = Labelled(
            Histogram(
                "nexus_gateway_overhead_seconds",
                "Request time not spent waiting on upstreams.",
                ["stream"],
                buckets=(
                    0.0001,
                    0.00025,
                    0.0005,
                    0.001,
                    0.0025,
                    0.005,
                    0.01,
                    0.025,
                    0.05,
                    0.1,
                    0.5,
                ),
                registry=registry,
            )
        )
        self.capacity_rejections = Counter(
            "nexus_capacity_rejections",
            "Requests refused for the gateway's own capacity (overloaded, queue_full, "
            "queue_timeout): never counted against a backend.",
            ["code"],
            registry=registry,
        )
        self.retries = Counter(
            "nexus_retries",
            "Retries after a failed attempt, by the backend that failed.",
            ["backend"],
            registry=registry,
        )
        self.fallbacks = Counter(
            "nexus_fallbacks",
            "Requests served by a fallback model.",
            ["from_model", "to_model"],
            registry=registry,
        )
        self.routing_duration = Histogram(
            "nexus_routing_duration_seconds",
            "One routing pipeline run.",
            buckets=(5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3),
            registry=registry,
        )
        self.agent_ttft = Labelled(
            Histogram(
                "nexus_agent_ttft_seconds",
                "Time to first generated token, one observation per streaming attempt.",
                ["backend", "model"],
                buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
                registry=registry,
            )
        )
        self.exclusions = Labelled(
            Counter(
                "nexus_reconciler_exclusions",
                "Candidates removed by a reconciler, per routing decision.",
                ["reconciler", "reason"],
                registry=registry,
            )
        )
        self.quality_panic = Counter(
            "nexus_quality_panic",
            "Routing decisions where quality would have excluded every candidate.",
            ["model"],
            registry=registry,
        )
        self.quality_recompute = Histogram(
            "nexus_quality_recompute_duration_seconds",
            "One recompute of every agent's quality metrics.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
            registry=registry,
        )
        self.config_reloads = Counter(
            "nexus_config_reloads",
            "Configuration reloads (SIGHUP) by result.",
            ["result"],
            registry=registry,
        )
        self.tokens = Labelled(
            Counter(
                "nexus_tokens",
                "Tokens reported by upstream usage.",
                ["model", "backend", "type"],
                registry=registry,
            )
        )
        self.rate_limited = Labelled(
            Counter(
                "nexus_rate_limited",
                "Requests refused 429 rate_limit_exceeded, by key and kind (requests, tokens).",
                ["key", "kind"],
                registry=registry,
            )
        )
        self.spend = Labelled(
            Counter(
                "nexus_spend_usd",
                "USD spent, by key, backend and model; estimated = from characters, no usage.",
                ["key", "backend", "model", "estimated"],
                registry=registry,
            )
        )
        self.health_check_duration = Histogram(
            "nexus_health_check_duration_seconds",
            "Health probe latency per backend (not routing latency).",
            ["backend"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        registry.register(_StateCollector(snapshot))
        ProcessCollector(registry=registry)
        GCCollector(registry=registry)

    def render(self) -> bytes:
        """The text exposition, served with ``CONTENT_TYPE_LATEST``."""
        return generate_latest(self.registry)
