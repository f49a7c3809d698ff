"""One frozen snapshot of the gateway, the single source of every report.

``/health``, ``/v1/stats`` (:mod:`nexus_trio.stats`), the dashboard, the metrics collector
(:meth:`GatewayStatistics.gauges`) and systemd's status line
(:meth:`GatewayStatistics.status_line`) each read one :class:`GatewayStatistics` built by
:func:`collect` and shape it; none of them reads the live counters, so what one report shows
at a moment the others show too. Building one reads the live state and changes nothing (the
spend book rolls a month over first, as every read of it does).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from nexus_trio.config import QualityConfig
from nexus_trio.drain import Drain
from nexus_trio.gateway.counts import ReloadResult, RequestCounts
from nexus_trio.gateway.generation import Generations
from nexus_trio.metrics import GaugeSnapshot
from nexus_trio.quality import AgentKey, AgentQualityMetrics, QualityStore
from nexus_trio.registry import HealthState, ModelResidency, Registry, Residency
from nexus_trio.spend import BudgetState, SpendBook, SpendStatistics


@dataclass(frozen=True, slots=True)
class Sources:
    """The live objects a snapshot is read from."""

    generations: Generations
    registry: Registry
    quality: QualityStore
    spend: SpendBook
    drain: Drain
    queue_depth: Callable[[], int]


@dataclass(frozen=True, slots=True)
class BackendStatistics:
    """One backend as reports show it."""

    name: str
    type: str
    health: HealthState
    requests_total: int
    latency_ewma_ms: float | None
    pending: int
    models: tuple[str, ...]
    #: Per model of known residency: what the server said (docs/routing.md#residency).
    residency: Mapping[str, ModelResidency] = field(default_factory=dict)
    #: Cold starts paid here, and their summed time to first token or answer in ms.
    cold_starts: int = 0
    cold_start_ms_total: float = 0.0


@dataclass(frozen=True, slots=True)
class KeySpend:
    """One key's spend this month: its own rows of the tally (docs/keys.md#roles)."""

    usd: float = 0.0
    requests: int = 0
    estimated_usd: float = 0.0
    by_backend: Mapping[str, float] | None = None
    by_model: Mapping[str, float] | None = None
    #: This gateway's ledger's part of ``usd``.
    own_usd: float = 0.0
    #: Held by the key's requests in flight here.
    reserved_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class GatewayStatistics:
    """The gateway at one moment (field meanings: docs/api.md#stats and docs/api.md#health)."""

    uptime_seconds: float
    #: ``time.time()`` at start-up (the ``created`` of ``/v1/models``).
    started_wall: float
    draining: bool
    in_flight: int
    queue_depth: int
    restart_required: bool
    last_reload: ReloadResult | None
    totals: RequestCounts
    totals_by_key: Mapping[str, RequestCounts]
    backends: tuple[BackendStatistics, ...]
    #: Every model a backend serves, healthy or not.
    models_total: int
    agents: Mapping[AgentKey, AgentQualityMetrics]
    quality_config: QualityConfig
    #: Whether anything is priced or budgeted (the spend ledger runs).
    keeps_spend: bool
    spend: SpendStatistics
    spend_by_key: Mapping[str, KeySpend]
    #: The own budget of each configured key that has one, by key name.
    key_budgets: Mapping[str, BudgetState]
    #: ``nexus_state_store_up{store}``: the ledger's when spend is kept, Redis's in a fleet.
    stores: Mapping[str, bool]

    def health_counts(self) -> dict[str, int]:
        counts = {state.value: 0 for state in HealthState}
        for backend in self.backends:
            counts[backend.health.value] += 1
        return counts

    def counts_of(self, key_name: str) -> RequestCounts:
        """Key ``key_name``'s own request counts (zero when it has sent nothing)."""
        return self.totals_by_key.get(key_name) or RequestCounts()

    def status_line(self) -> str:
        """The ``STATUS=`` text for systemd: in-flight requests and healthy backends."""
        healthy = sum(1 for b in self.backends if b.health is HealthState.HEALTHY)
        return (
            f"{self.in_flight} request(s) in flight, "
            f"{healthy}/{len(self.backends)} backend(s) healthy"
        )

    def gauges(self) -> GaugeSnapshot:
        """What the metrics collector exports at scrape time."""
        return GaugeSnapshot(
            in_flight=self.in_flight,
            queue_depth=self.queue_depth,
            backend_pending={b.name: b.pending for b in self.backends},
            backend_up={b.name: b.health is HealthState.HEALTHY for b in self.backends},
            agents=self.agents,
            spend=self.spend if self.keeps_spend else None,
            stores=self.stores,
            model_loaded={
                (b.name, model): known.state is Residency.LOADED
                for b in self.backends
                for model, known in b.residency.items()
                if known.state is not Residency.UNKNOWN
            },
        )


def collect(
    sources: Sources,
    *,
    uptime_seconds: float,
    started_wall: float,
    in_flight: int,
    restart_required: bool,
    last_reload: ReloadResult | None,
    totals: RequestCounts,
    totals_by_key: Mapping[str, RequestCounts],
) -> GatewayStatistics:
    """Read ``sources`` into a snapshot carrying the counters given."""
    config = sources.generations.current.config
    keys = sources.generations.current.keyring.configs()
    registry = sources.registry
    book = sources.spend
    spend = book.statistics()
    stores = {"ledger": book.store_up} if config.keeps_spend else {}
    if book.shared_store_up is not None:
        stores["redis"] = book.shared_store_up
    return GatewayStatistics(
        uptime_seconds=uptime_seconds,
        started_wall=started_wall,
        draining=sources.drain.draining,
        in_flight=in_flight,
        queue_depth=sources.queue_depth(),
        restart_required=restart_required,
        last_reload=last_reload,
        totals=totals,
        totals_by_key=totals_by_key,
        backends=tuple(
            BackendStatistics(
                name=b.name,
                type=b.config.type,
                health=b.health,
                requests_total=b.counters.requests_total,
                latency_ewma_ms=b.counters.latency_ewma_ms,
                pending=b.counters.pending,
                models=tuple(sorted(b.models)),
                residency=dict(b.residency),
                cold_starts=b.cold_starts,
                cold_start_ms_total=b.cold_start_ms_total,
            )
            for b in registry
        ),
        models_total=len(registry.known_models()),
        agents=sources.quality.snapshot,
        quality_config=config.quality,
        keeps_spend=config.keeps_spend,
        spend=spend,
        spend_by_key=_spend_by_key(book, [key.name for key in config.keys]),
        key_budgets={
            key.name: book.key_budget(key.name, key.monthly_budget_usd)
            for key in keys
            if key.monthly_budget_usd > 0
        },
        stores=stores,
    )


def _spend_by_key(book: SpendBook, configured: list[str]) -> dict[str, KeySpend]:
    """The spend of every key with rows in the month's tally or ``configured`` (those that
    may read their own), from the tally ``book.statistics()`` has just rolled over."""
    rows_by_key: dict[str, list[tuple[str, str, float, int, float]]] = {
        name: [] for name in configured
    }
    for rows in (book.tally.rows, book.tally.others):
        for (name, backend, model), row in rows.items():
            rows_by_key.setdefault(name, []).append(
                (backend, model, row.usd, row.requests, row.estimated_usd)
            )
    spend: dict[str, KeySpend] = {}
    for name, own in rows_by_key.items():
        by_backend: dict[str, float] = {}
        by_model: dict[str, float] = {}
        for backend, model, usd, _, _ in own:
            by_backend[backend] = by_backend.get(backend, 0.0) + usd
            by_model[model] = by_model.get(model, 0.0) + usd
        spend[name] = KeySpend(
            usd=sum(row[2] for row in own),
            requests=sum(row[3] for row in own),
            estimated_usd=sum(row[4] for row in own),
            by_backend=by_backend,
            by_model=by_model,
            own_usd=book.tally.by_key.get(name, 0.0),
            reserved_usd=book.reservations.key_usd(name),
        )
    return spend
