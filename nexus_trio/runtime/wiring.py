"""The composition root: every long-lived object of one gateway, built once and wired here.

:meth:`Wiring.build` creates the capabilities (registry, quality store, spend book, keys'
buckets, the response store), the shared state
(:class:`~nexus_trio.gateway.generation.Generations`,
:class:`~nexus_trio.gateway.state.GatewayState`), the request path (router, attempts, budgets,
forwarder, proxy endpoint, accounting with its sinks), the dashboard and, with ``[tracing]``,
the span export, handing each only what it uses (the request path in
:mod:`~nexus_trio.runtime.request_path`). Nothing else builds them, and nothing but the
supervisor (and the tests) holds a :class:`Wiring`: the components never see it.

A reload (:meth:`Wiring.apply_config`) builds a new generation and swaps it in one assignment,
after the registry, the quality store and the budget took the new settings.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from quart_trio import QuartTrio

from nexus_trio.api.admission_queue import AdmissionQueue
from nexus_trio.api.app import AppParts, create_app
from nexus_trio.api.attempt_recorder import AttemptRecorder
from nexus_trio.asgi.disconnects import DisconnectWatcher
from nexus_trio.config import Config
from nexus_trio.dashboard.key_panel import key_panel
from nexus_trio.dashboard.mount import dashboard_mount
from nexus_trio.dashboard.publisher import SnapshotPublisher
from nexus_trio.dashboard.request_log import RequestLog
from nexus_trio.dashboard.snapshot import SnapshotSources
from nexus_trio.drain import Drain
from nexus_trio.fleet import StoreSync
from nexus_trio.gateway.generation import Generation, Generations
from nexus_trio.gateway.state import GatewayState
from nexus_trio.health import HealthChecker
from nexus_trio.key_store import KeyStore
from nexus_trio.keys import CreatedKeys, KeyConcurrency, RateLimiter
from nexus_trio.metrics import Metrics
from nexus_trio.quality import QualityStore
from nexus_trio.quality.loop import QualityLoop
from nexus_trio.registry import Registry
from nexus_trio.residency import ModelControl, ResidencyWatcher
from nexus_trio.responses_store import ResponseStore
from nexus_trio.runtime.request_path import request_path
from nexus_trio.spend import LedgerService, SpendBook
from nexus_trio.spend.outbox import Outbox
from nexus_trio.tracing import Sender, SpanExport, otlp_export
from nexus_trio.upstream.client import UpstreamClient

#: A background service's ``run``, started with ``nursery.start``.
Service = Callable[..., Awaitable[None]]


@dataclass(eq=False, slots=True)
class Wiring:
    """One gateway's objects; see the module docstring."""

    env: Mapping[str, str]
    http: httpx.AsyncClient
    registry: Registry
    quality: QualityStore
    spend: SpendBook
    #: In a fleet that keeps spend: what the ledger owes the shared store.
    outbox: Outbox | None
    limiter: RateLimiter
    key_concurrency: KeyConcurrency
    drain: Drain
    queue: AdmissionQueue
    disconnects: DisconnectWatcher
    generations: Generations
    state: GatewayState
    metrics: Metrics
    recorder: AttemptRecorder
    upstream: UpstreamClient
    #: The dashboard's ring buffer; None with the dashboard off.
    request_log: RequestLog | None
    #: The Responses API's stored responses, in ``[state] dir`` (a background service too).
    responses: ResponseStore
    #: The keys created at run time, in ``[state] dir`` (a background service too).
    keys: KeyStore
    wall_clock: Callable[[], float]
    #: Where spans go with ``[tracing]`` on; None = OTLP/HTTP to its ``otlp_endpoint``.
    span_sender: Sender | None
    #: Which models the backends hold (a background service, docs/routing.md#residency).
    residency: ResidencyWatcher
    #: The request path, each part given what it uses.
    app_parts: AppParts = field(init=False)
    #: The dashboard's snapshot publisher (a background service); None with it off.
    publisher: SnapshotPublisher | None = field(init=False)
    #: The export of traced requests' spans (a background service); None with tracing off.
    span_export: SpanExport | None = field(init=False)

    def __post_init__(self) -> None:
        self.span_export = None
        if self.config.tracing.enabled:
            dropped = self.metrics.trace_spans_dropped
            self.span_export = otlp_export(
                self.config.tracing,
                self.env,
                sender=self.span_sender,
                on_dropped=lambda reason, spans: dropped.labels(reason).inc(spans),
                on_exported=self.metrics.trace_spans_exported.inc,
            )
        self.app_parts = request_path(self)
        self.publisher = None
        if self.request_log is not None:
            generations, created = self.generations, self.keys.index
            sources = SnapshotSources(
                self.state.statistics,
                self.registry,
                self.quality,
                keys=lambda stats: key_panel(stats, generations.current.config.keys, created),
            )
            self.publisher = SnapshotPublisher(sources, self.request_log)

    @property
    def config(self) -> Config:
        """The configuration of the current generation."""
        return self.generations.current.config

    @classmethod
    def build(
        cls,
        config: Config,
        env: Mapping[str, str],
        http: httpx.AsyncClient,
        *,
        transport: httpx.AsyncBaseTransport,
        mounts: Mapping[str, httpx.AsyncBaseTransport] | None = None,
        wall_clock: Callable[[], float] = time.time,
        span_sender: Sender | None = None,
    ) -> Wiring:
        """Build a gateway: probes use ``http``, attempts ``transport``/``mounts``; spend
        months follow ``wall_clock``; spans go to ``span_sender`` if given (with
        ``[tracing]`` on).

        Raises:
            ConfigError: the configuration cannot be served (an unset key variable, a
                malformed collector headers variable).
        """
        registry = Registry(config.backends, env, assume_healthy=not config.health_check.enabled)
        quality = QualityStore(config.quality)
        spend = SpendBook(config.budget, wall_clock)
        drain = Drain()
        queue = AdmissionQueue()
        created = CreatedKeys()
        generations = Generations(Generation.build(config, env, registry, quality, created))
        state = GatewayState(generations, registry, quality, spend, drain, lambda: queue.depth)
        metrics = Metrics(lambda: state.statistics().gauges())
        dashboard = config.dashboard
        request_log = RequestLog(dashboard.request_log_size) if dashboard.enabled else None
        fleet_spend = config.state.store is not None and config.keeps_spend
        return cls(
            env=env,
            http=http,
            registry=registry,
            quality=quality,
            spend=spend,
            outbox=Outbox() if fleet_spend else None,
            limiter=RateLimiter(),
            key_concurrency=KeyConcurrency(),
            drain=drain,
            queue=queue,
            disconnects=DisconnectWatcher(),
            generations=generations,
            state=state,
            metrics=metrics,
            recorder=AttemptRecorder(queue, quality, metrics),
            upstream=UpstreamClient(transport, mounts),
            request_log=request_log,
            responses=ResponseStore(
                Path(config.state.dir),
                lambda: generations.current.config.responses,
                wall_clock=wall_clock,
            ),
            keys=_key_store(config, created, generations, wall_clock),
            wall_clock=wall_clock,
            span_sender=span_sender,
            residency=_residency(registry, http, generations),
        )

    def app(self) -> QuartTrio:
        """The app serving this gateway, with the dashboard mounted when it is on."""
        mounts = []
        if self.publisher is not None:
            mounts.append(dashboard_mount(self.publisher, self.generations, self.drain))
        return create_app(self.app_parts, mounts)

    def apply_config(self, config: Config) -> None:
        """Swap in a reloaded configuration; backends with unchanged identity keep state.

        Raises:
            ConfigError: the new configuration cannot be applied (nothing was changed).
        """
        generation = Generation.build(
            config, self.env, self.registry, self.quality, self.keys.index
        )
        for name in self.registry.replace_backends(config.backends, self.env):
            self.quality.forget_backend(name)
        self.residency.backends_changed()
        self.quality.configure(config.quality)
        self.spend.budget_config = config.budget
        self.generations.swap(generation)

    def background_services(self) -> list[Service]:
        """The ``run`` of every background service this gateway has, in start-up order (the
        supervisor starts each with ``nursery.start``)."""
        services: list[Service | None] = [
            self.health_checker().run,
            self.residency.run,
            self.quality_loop().run,
            self.disconnects.run,
            None if self.publisher is None else self.publisher.run,
            None if (ledger := self.ledger_service()) is None else ledger.run,
            None if (store_sync := self.store_sync()) is None else store_sync.run,
            self.responses.run,
            self.keys.run,
            None if self.span_export is None else self.span_export.run,
        ]
        return [service for service in services if service is not None]

    def agent_keys(self) -> list[tuple[str, str]]:
        """Every configured agent: (backend name, model) for each model a backend serves."""
        return [(b.name, model) for b in self.registry for model in sorted(b.models)]

    def health_checker(self) -> HealthChecker:
        """The health checker over these backends, reading ``[health_check]`` as reloaded."""
        return HealthChecker(
            self.registry,
            self.http,
            lambda: self.generations.current.config.health_check,
            metrics=self.metrics,
        )

    def quality_loop(self) -> QualityLoop:
        """The quality recompute loop over this store and the agents configured now."""
        return QualityLoop(
            self.quality, self.agent_keys, observe_duration=self.metrics.quality_recompute.observe
        )

    def ledger_service(self) -> LedgerService | None:
        """The spend ledger in ``[state] dir``; None when nothing is priced or budgeted."""
        config = self.config
        if not config.keeps_spend:
            return None
        state = config.state
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
            keys=lambda: self.generations.current.keyring.configs(),
            outbox=self.outbox,
            wall_clock=self.wall_clock,
        )


def _key_store(
    config: Config,
    created: CreatedKeys,
    generations: Generations,
    wall_clock: Callable[[], float],
) -> KeyStore:
    """The keys created at run time, kept apart from the names of the configured ones as
    reloaded (docs/keys.md#created-keys)."""
    return KeyStore(
        config.state,
        created,
        configured=lambda: {key.name for key in generations.current.config.keys},
        wall_clock=wall_clock,
    )


def _residency(
    registry: Registry, http: httpx.AsyncClient, generations: Generations
) -> ResidencyWatcher:
    """The watcher of which models are loaded where, with the lifecycle control it drives
    (docs/routing.md#residency)."""
    return ResidencyWatcher(
        registry,
        http,
        lambda: generations.current.config.health_check,
        ModelControl(registry, http),
    )
