"""The gateway's long-lived objects, built once by the supervisor and injected everywhere.

Nothing here is a module-level singleton: the app factory, the
forwarding code and the background services all receive one :class:`Services`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import trio

from nexus_trio.api.admission_queue import AdmissionQueue
from nexus_trio.asgi.disconnects import DisconnectWatcher
from nexus_trio.config import Config
from nexus_trio.dashboard.request_log import RequestLog
from nexus_trio.fleet import StoreSync
from nexus_trio.health import HealthChecker
from nexus_trio.keys import KeyConcurrency, KeyRing, RateLimiter
from nexus_trio.metrics import GaugeSnapshot, Metrics
from nexus_trio.quality import Outcome, QualityStore
from nexus_trio.quality.loop import QualityLoop
from nexus_trio.registry import Backend, HealthState, Registry
from nexus_trio.routing import Pipeline
from nexus_trio.runtime.drain import Drain
from nexus_trio.spend import LedgerService, PriceList, SpendBook
from nexus_trio.spend.outbox import Outbox
from nexus_trio.upstream.client import UpstreamClient


@dataclass(slots=True)
class RequestCounts:
    """Finished client requests by final result (``requests`` of docs/api.md#stats)."""

    success: int = 0
    errors: int = 0
    client_errors: int = 0
    cancelled: int = 0
    #: Finished requests by the model that served them (models come from backends: bounded).
    by_model: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.success + self.errors + self.client_errors + self.cancelled

    def count(
        self, status: int | None, *, cancelled: bool, failed: bool, model: str | None
    ) -> None:
        """Count one finished request: cancelled, else a 4xx, else ``failed`` (a 5xx, no
        status or a truncated stream), else a success; and its serving ``model`` if any."""
        if cancelled:
            self.cancelled += 1
        elif status is not None and 400 <= status < 500:
            self.client_errors += 1
        elif failed:
            self.errors += 1
        else:
            self.success += 1
        if model is not None:
            self.by_model[model] = self.by_model.get(model, 0) + 1


@dataclass(slots=True)
class RequestTotals(RequestCounts):
    """Every finished client request, and each key's own (docs/keys.md#roles)."""

    #: The requests that presented a key, by key name (names are configured: bounded).
    by_key: dict[str, RequestCounts] = field(default_factory=dict)

    def of_key(self, name: str) -> RequestCounts:
        """Key ``name``'s counts; zero (and not stored) when it has sent nothing."""
        counts = self.by_key.get(name)
        return RequestCounts() if counts is None else counts


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """How the last configuration reload (SIGHUP) went, for operators."""

    ok: bool
    #: ``time.time()`` of the reload (for display only).
    at_wall: float
    #: The error that kept the old configuration, or None.
    error: str | None = None
    #: Settings that changed but need a restart to apply.
    restart_required: tuple[str, ...] = ()


@dataclass(eq=False)
class Attempt:
    """One upstream exchange for one agent; finished exactly once."""

    backend: Backend
    model: str
    stream: bool
    started: float
    outcome: Outcome | None = None
    ttft_ms: float | None = None


@dataclass(eq=False)
class Services:
    """Everything a request or a background loop needs, in one place."""

    config: Config
    env: Mapping[str, str]
    registry: Registry
    http: httpx.AsyncClient
    upstream: UpstreamClient
    drain: Drain = field(default_factory=Drain)
    started_at: float = field(default_factory=trio.current_time)
    started_wall: float = field(default_factory=time.time)
    in_flight: int = 0
    #: A reload changed settings that only a restart applies (``/v1/stats``).
    restart_required: bool = False
    totals: RequestTotals = field(default_factory=RequestTotals)
    queue: AdmissionQueue = field(default_factory=AdmissionQueue)
    #: Started by the supervisor (the front end's requests register with it).
    disconnects: DisconnectWatcher = field(default_factory=DisconnectWatcher)
    quality: QualityStore = field(init=False)
    metrics: Metrics = field(init=False)
    pipeline: Pipeline = field(init=False)
    #: ``[[pricing]]`` as lookups, rebuilt on reload.
    prices: PriceList = field(init=False)
    #: Wall clock of the spend month (a fake one in tests).
    wall_clock: Callable[[], float] = time.time
    #: The month's spend and the budget (docs/spend.md#spend-and-budgets).
    spend: SpendBook = field(init=False)
    #: Keys accepted from clients (never logged or rendered); empty = no inbound auth.
    keyring: KeyRing = field(init=False, repr=False)
    #: Per-key request and token buckets; kept across reloads (docs/keys.md#rate-limits).
    limiter: RateLimiter = field(default_factory=RateLimiter)
    #: Requests in flight per key (``max_concurrent_requests``).
    key_concurrency: KeyConcurrency = field(default_factory=KeyConcurrency)
    #: In a fleet that keeps spend: what the ledger owes the shared store.
    outbox: Outbox | None = field(init=False)
    #: The last reload's result; None before the first.
    last_reload: ReloadResult | None = None
    #: The dashboard's ring buffer of finished proxy requests; None with the dashboard off.
    request_log: RequestLog | None = field(init=False)
    #: Called with the new config after a reload (e.g. the app's body-size limit).
    reload_listeners: list[Callable[[Config], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.keyring = KeyRing.from_config(self.config, self.env)
        dashboard = self.config.dashboard
        self.request_log = RequestLog(dashboard.request_log_size) if dashboard.enabled else None
        self.quality = QualityStore(self.config.quality)
        self.prices = PriceList(self.config.pricing)
        self.spend = SpendBook(self.config.budget, self.wall_clock)
        fleet_spend = self.config.state.store is not None and self.config.keeps_spend
        self.outbox = Outbox() if fleet_spend else None
        self.metrics = Metrics(self.gauge_snapshot)  # reads the above once, to describe
        self.pipeline = self._build_pipeline(self.config)

    def _build_pipeline(self, config: Config) -> Pipeline:
        return Pipeline.standard(
            self.registry, config.routing, config.health_check, quality=self.quality
        )

    def agent_keys(self) -> list[tuple[str, str]]:
        """Every configured agent: (backend name, model) for each model a backend serves."""
        return [(b.name, model) for b in self.registry for model in sorted(b.models)]

    def ledger_service(self) -> LedgerService | None:
        """The spend ledger in ``[state] dir``; None when nothing is priced or budgeted."""
        if not self.config.keeps_spend:
            return None
        state = self.config.state
        interval = 1.0 if state.store is None else min(1.0, state.sync_interval_seconds)
        return LedgerService(self.spend, Path(state.dir), interval=interval, outbox=self.outbox)

    def store_sync(self) -> StoreSync | None:
        """The sync with ``[state] store`` (docs/spend.md#a-fleet); None without one."""
        state = self.config.state
        if state.store is None:
            return None
        return StoreSync(
            state.store,
            interval=state.sync_interval_seconds,
            book=self.spend,
            limiter=self.limiter,
            keys=lambda: self.config.keys,
            outbox=self.outbox,
            wall_clock=self.wall_clock,
        )

    def health_checker(self) -> HealthChecker:
        """The health checker over these backends, reading ``[health_check]`` as reloaded."""
        return HealthChecker(
            self.registry, self.http, lambda: self.config.health_check, metrics=self.metrics
        )

    def quality_loop(self) -> QualityLoop:
        """The quality recompute loop over this store and the agents configured now."""
        return QualityLoop(
            self.quality, self.agent_keys, observe_duration=self.metrics.quality_recompute.observe
        )

    @classmethod
    def create(
        cls,
        config: Config,
        env: Mapping[str, str],
        http: httpx.AsyncClient,
        *,
        transport: httpx.AsyncBaseTransport,
        mounts: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    ) -> Services:
        """Build the services: probes use ``http``, attempts ``transport``/``mounts``."""
        registry = Registry(config.backends, env, assume_healthy=not config.health_check.enabled)
        upstream = UpstreamClient(transport, mounts)
        return cls(config=config, env=env, registry=registry, http=http, upstream=upstream)

    def apply_config(self, config: Config) -> None:
        """Swap in a reloaded configuration; backends with unchanged identity keep state.

        Raises:
            ConfigError: the new configuration cannot be applied (nothing was changed).
        """
        self.keyring = KeyRing.from_config(config, self.env)
        for name in self.registry.replace_backends(config.backends, self.env):
            self.quality.forget_backend(name)
        self.quality.configure(config.quality)
        self.pipeline = self._build_pipeline(config)
        self.prices = PriceList(config.pricing)
        self.spend.budget_config = config.budget
        self.config = config
        for listener in self.reload_listeners:
            listener(config)

    def status_line(self) -> str:
        """The ``STATUS=`` text for systemd: in-flight requests and healthy backends."""
        healthy = sum(1 for b in self.registry if b.health is HealthState.HEALTHY)
        return (
            f"{self.in_flight} request(s) in flight, "
            f"{healthy}/{len(self.registry)} backend(s) healthy"
        )

    def gauge_snapshot(self) -> GaugeSnapshot:
        return GaugeSnapshot(
            in_flight=self.in_flight,
            queue_depth=self.queue.depth,
            backend_pending={b.name: b.counters.pending for b in self.registry},
            backend_up={b.name: b.health is HealthState.HEALTHY for b in self.registry},
            agents=self.quality.snapshot,
            spend=self.spend.statistics() if self.config.keeps_spend else None,
            stores=self.store_states(),
        )

    def store_states(self) -> dict[str, bool]:
        """``nexus_state_store_up{store}``: the ledger's when spend is kept, Redis's in a fleet."""
        stores = {"ledger": self.spend.store_up} if self.config.keeps_spend else {}
        if self.spend.shared_store_up is not None:
            stores["redis"] = self.spend.shared_store_up
        return stores

    def start_attempt(self, backend: Backend, model: str, *, stream: bool) -> Attempt:
        backend.counters.pending += 1
        backend.counters.requests_total += 1
        return Attempt(backend=backend, model=model, stream=stream, started=trio.current_time())

    def finish_attempt(
        self, attempt: Attempt, outcome: Outcome, *, completion_tokens: int | None = None
    ) -> None:
        """Record how an attempt ended; later calls for the same attempt are ignored."""
        if attempt.outcome is not None:
            return
        attempt.outcome = outcome
        counters = attempt.backend.counters
        counters.pending -= 1
        self.queue.slot_freed(attempt.backend)
        now = trio.current_time()
        if outcome is Outcome.SUCCESS:
            counters.observe_success(
                latency_ms=(now - attempt.started) * 1000.0,
                ttft_ms=attempt.ttft_ms,
                completion_tokens=None if attempt.stream else completion_tokens,
            )
        name = attempt.backend.name
        self.quality.record_outcome(
            (name, attempt.model),
            outcome,
            now=now,
            wall=time.time(),
            ttft_ms=attempt.ttft_ms,
            streaming=attempt.stream,
        )
        self.metrics.upstream_attempts.labels(name, attempt.model, outcome).inc()
        if attempt.ttft_ms is not None:
            self.metrics.agent_ttft.labels(name, attempt.model).observe(attempt.ttft_ms / 1000.0)
