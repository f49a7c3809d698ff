"""The instruments observed on the request path and by the loops beside it
(docs/metrics.md#metrics), each family registered by one method of :class:`Metrics`.
"""

from __future__ import annotations

from collections.abc import Callable
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
from prometheus_client.metrics import MetricWrapperBase

from nexus_trio.metrics.gauges import GaugeSnapshot, StateCollector

__all__ = ["CONTENT_TYPE_LATEST", "Labelled", "Metrics", "status_class"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)


#: Distinct key names a process gives a ``key`` label value of their own (docs/metrics.md#metrics).
MAX_KEY_LABELS = 100
#: The ``key`` label value of every key name past the first :data:`MAX_KEY_LABELS`.
OTHER_KEY = "other"


class KeyLabels:
    """The bounded ``key`` label: a key's name for the first :data:`MAX_KEY_LABELS` names seen
    by this process, :data:`OTHER_KEY` for every later one (created keys are unbounded)."""

    __slots__ = ("_known", "limit")

    def __init__(self, limit: int = MAX_KEY_LABELS) -> None:
        self.limit = limit
        self._known: set[str] = set()

    def __call__(self, name: str) -> str:
        if name in self._known:
            return name
        if len(self._known) < self.limit:
            self._known.add(name)
            return name
        return OTHER_KEY


def status_class(status: int | None, *, cancelled: bool) -> str:
    """The bounded ``code`` label: ``2xx`` … ``5xx`` or ``cancelled``."""
    if cancelled or status is None:
        return "cancelled"
    return f"{status // 100}xx"


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

    The instruments observed on every request are wrapped in :class:`Labelled`. The state
    gauges come from ``snapshot``, called once at each scrape (and once here, to describe them).
    """

    def __init__(self, snapshot: Callable[[], GaugeSnapshot]) -> None:
        # ``*_created`` series double the exposition for no operational value.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        #: The ``key`` label value of a key name.
        self.key_label = KeyLabels()
        self._add_request_instruments()
        self._add_upstream_instruments()
        self._add_routing_instruments()
        self._add_tenant_instruments()
        self._add_background_instruments()
        self.registry.register(StateCollector(snapshot))
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def render(self) -> bytes:
        """The text exposition, served with ``CONTENT_TYPE_LATEST``."""
        return generate_latest(self.registry)

    def _add_request_instruments(self) -> None:
        """Client requests, counted once when they finish, and those refused for capacity."""
        registry = self.registry
        self.requests = Labelled(
            Counter(
                "nexus_requests",
                "Client requests on proxy routes, counted once when they finish.",
                ["model", "backend", "code", "stream", "key"],
                registry=registry,
            )
        )
        self.request_duration = Labelled(
            Histogram(
                "nexus_request_duration_seconds",
                "Client request duration (streams: until the last byte).",
                ["model", "backend", "stream", "key"],
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            )
        )
        self.gateway_overhead = Labelled(
            Histogram(
                "nexus_gateway_overhead_seconds",
                "Request time not spent waiting on upstreams.",
                ["stream"],
                buckets=_OVERHEAD_BUCKETS,
                registry=registry,
            )
        )
        self.tokens = Labelled(
            Counter(
                "nexus_tokens",
                "Tokens reported by upstream usage.",
                ["model", "backend", "type"],
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

    def _add_upstream_instruments(self) -> None:
        """Attempts on backends: outcomes, truncated streams, retries, fallbacks, TTFT."""
        registry = self.registry
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
        self.agent_ttft = Labelled(
            Histogram(
                "nexus_agent_ttft_seconds",
                "Time to first generated token, one observation per streaming attempt.",
                ["backend", "model"],
                buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
                registry=registry,
            )
        )
        self.cold_start = Labelled(
            Histogram(
                "nexus_cold_start_seconds",
                "Time to first token (streams) or to the answer of attempts that waited for "
                "their model to load.",
                ["backend", "model"],
                buckets=(0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
                registry=registry,
            )
        )

    def _add_routing_instruments(self) -> None:
        """Routing decisions: their duration, the reconcilers' exclusions, quality panics."""
        registry = self.registry
        self.routing_duration = Histogram(
            "nexus_routing_duration_seconds",
            "One routing pipeline run.",
            buckets=(5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3),
            registry=registry,
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

    def _add_tenant_instruments(self) -> None:
        """What keys are refused and what they spend."""
        registry = self.registry
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

    def _add_background_instruments(self) -> None:
        """The loops beside the request path: quality recompute, health probes, reloads, span
        export."""
        registry = self.registry
        self.quality_recompute = Histogram(
            "nexus_quality_recompute_duration_seconds",
            "One recompute of every agent's quality metrics.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
            registry=registry,
        )
        self.health_check_duration = Histogram(
            "nexus_health_check_duration_seconds",
            "Health probe latency per backend (not routing latency).",
            ["backend"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.config_reloads = Counter(
            "nexus_config_reloads",
            "Configuration reloads (SIGHUP) by result.",
            ["result"],
            registry=registry,
        )
        self.trace_spans_exported = Counter(
            "nexus_trace_spans_exported",
            "Spans the OTLP collector accepted ([tracing]).",
            registry=registry,
        )
        self.trace_spans_dropped = Counter(
            "nexus_trace_spans_dropped",
            "Spans never exported: the export queue was full (queue_full), or the collector "
            "refused or missed their batch (export_failed).",
            ["reason"],
            registry=registry,
        )
