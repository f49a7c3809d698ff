"""The configuration's schema: one frozen, strict Struct per section, and :class:`Config`.

Unknown keys, wrong types and out-of-range values fail in the decoder (constraints live in the
types, :mod:`nexus_trio.config.values`); rules that span fields run in ``__post_init__``, which
msgspec also runs while decoding, and name the key they reject
(:class:`~nexus_trio.config.decoding.InvalidKey`). The backend entries are in
:mod:`nexus_trio.config.backends`, the spend and key tables in :mod:`nexus_trio.config.spend`,
``[responses]`` in :mod:`nexus_trio.config.responses`.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import msgspec
import msgspec.structs

from nexus_trio.config.admin import AdminConfig
from nexus_trio.config.backends import BackendConfig
from nexus_trio.config.decoding import InvalidKey, check_alias_chains
from nexus_trio.config.responses import ResponsesConfig
from nexus_trio.config.spend import BudgetConfig, KeyConfig, PriceConfig, StateConfig
from nexus_trio.config.tracing import TracingConfig
from nexus_trio.config.values import (
    AtLeastOne,
    NonEmptyStr,
    NonNegativeFloat,
    NonNegativeInt,
    NonNegativeSeconds,
    Port,
    Seconds,
    Tier,
    check_host_pattern,
    check_network,
    check_origin,
)

LOG_LEVELS = ("debug", "info", "warning", "error")


class ServerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[server]``: listener, timeouts, drain and limits (docs/configuration.md#sections)."""

    host: NonEmptyStr = "127.0.0.1"
    port: Port = 8000
    reuse_port: bool = False
    connect_timeout_seconds: Seconds = 5.0
    attempt_timeout_seconds: Seconds = 120.0
    request_timeout_seconds: Seconds = 300.0
    first_token_timeout_seconds: Seconds = 60.0
    #: Added to an attempt's own timeout when its model is not loaded (docs/quality.md#cold-starts).
    cold_start_allowance_seconds: NonNegativeSeconds = 120.0
    stream_idle_timeout_seconds: Seconds = 60.0
    #: 0 = no limit.
    max_stream_seconds: NonNegativeSeconds = 0.0
    drain_timeout_seconds: NonNegativeSeconds = 30.0
    drain_delay_seconds: NonNegativeSeconds = 0.0
    keep_alive_timeout_seconds: Seconds = 5.0
    #: How long bytes sent to a client may go unacknowledged (it stopped reading, or is gone)
    #: before its connection is closed: TCP_USER_TIMEOUT on the listeners, at most a day.
    client_stall_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=86400)] = 60.0
    max_request_body_bytes: AtLeastOne = 10_485_760
    max_response_body_bytes: AtLeastOne = 67_108_864
    #: 0 = unlimited. Each request in flight holds two descriptors; see etc/nexus.toml.
    max_in_flight_requests: NonNegativeInt = 8192
    #: Name of the variable holding comma-separated inbound API keys; None = no auth.
    api_keys_env: NonEmptyStr | None = None
    #: A request body must have arrived this long after the request's start (408).
    body_timeout_seconds: Seconds = 30.0
    #: Host names the ``Host`` header may name (DNS rebinding); ``*`` = any, ``*.x`` = subdomains.
    allowed_hosts: list[NonEmptyStr] = msgspec.field(default_factory=lambda: ["*"])
    #: Browser origins (``scheme://host[:port]``, or ``*``) allowed cross-origin (CORS).
    cors_origins: list[NonEmptyStr] = msgspec.field(default_factory=list)
    #: Proxies whose ``X-Forwarded-For`` names the client (docs/operations.md#client-address).
    trusted_proxies: Annotated[list[NonEmptyStr], msgspec.Meta(max_length=1024)] = msgspec.field(
        default_factory=list
    )

    def __post_init__(self) -> None:
        for field, check in (
            ("allowed_hosts", check_host_pattern),
            ("cors_origins", check_origin),
            ("trusted_proxies", check_network),
        ):
            for index, value in enumerate(getattr(self, field)):
                try:
                    check(value)
                except ValueError as exc:
                    raise InvalidKey(f"{field}[{index}]", str(exc)) from exc


def check_finite_periods(struct: msgspec.Struct, *keys: str) -> None:
    """The period of a loop must be finite: after ``inf`` seconds it would never run again.

    Raises:
        InvalidKey: names the first of ``keys`` whose value is infinite.
    """
    for key in keys:
        value = getattr(struct, key)
        if math.isinf(value):
            raise InvalidKey(key, f"Expected a finite number of seconds, got {value}")


class HealthCheckConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[health_check]`` (docs/routing.md#health-checks)."""

    enabled: bool = True
    interval_seconds: Seconds = 30.0
    timeout_seconds: Seconds = 5.0
    failure_threshold: AtLeastOne = 3
    recovery_threshold: AtLeastOne = 2

    def __post_init__(self) -> None:
        check_finite_periods(self, "interval_seconds")


class RoutingWeights(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[routing.weights]`` (docs/routing.md#scheduler): each >= 0, finite sum > 0."""

    priority: NonNegativeFloat = 50.0
    load: NonNegativeFloat = 30.0
    latency: NonNegativeFloat = 20.0

    def __post_init__(self) -> None:
        total = self.priority + self.load + self.latency
        if not (total > 0 and math.isfinite(total)):
            raise ValueError(f"the weights must have a finite sum > 0, got {total}")


class RoutingPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One ``[[routing.policies]]`` entry (docs/routing.md#privacy-and-tier); first match wins."""

    model_pattern: NonEmptyStr
    privacy: Literal["restricted", "open"] | None = None
    min_tier: Tier | None = None


class RoutingConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[routing]`` with its weights, aliases, fallbacks and policies (docs/routing.md#routing)."""

    strategy: Literal["smart", "round_robin", "priority_only", "random"] = "smart"
    max_retries: NonNegativeInt = 2
    weights: RoutingWeights = msgspec.field(default_factory=RoutingWeights)
    aliases: dict[NonEmptyStr, NonEmptyStr] = msgspec.field(default_factory=dict)
    fallbacks: dict[NonEmptyStr, list[NonEmptyStr]] = msgspec.field(default_factory=dict)
    policies: list[RoutingPolicy] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        check_alias_chains(self.aliases)


class QualityConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[quality]`` (docs/quality.md#settings)."""

    error_rate_threshold: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.5
    #: 0 disables the TTFT penalty.
    ttft_penalty_threshold_ms: NonNegativeFloat = 3000.0
    metrics_interval_seconds: Seconds = 30.0
    min_requests: AtLeastOne = 10
    consecutive_failures: AtLeastOne = 5
    probe_interval_seconds: Seconds = 30.0

    def __post_init__(self) -> None:
        check_finite_periods(self, "metrics_interval_seconds", "probe_interval_seconds")


class QueueConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[queue]`` (docs/routing.md#queue-and-overload)."""

    enabled: bool = True
    max_size: NonNegativeInt = 100
    max_wait_seconds: Seconds = 30.0


class DashboardConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[dashboard]``: the live web page at ``/``; read at start-up (a change needs a restart)."""

    enabled: bool = True
    #: Finished proxy requests the dashboard's request log keeps (newest first on the page).
    request_log_size: Annotated[int, msgspec.Meta(ge=1, le=10000)] = 200
    #: Dashboards connected at once; one more is answered 503 ``overloaded``.
    max_connections: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 16
    #: Dashboards one tenant key may have connected at once; one more is answered 429.
    max_connections_per_key: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 4


class MetricsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[metrics]``: who may scrape ``/metrics`` (docs/metrics.md#access)."""

    #: true: ``/metrics`` needs no key even when inbound keys are configured.
    public: bool = False


class LoggingConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[logging]`` (docs/operations.md#logging); ``level`` is case-insensitive, kept lower."""

    level: str = "info"
    format: Literal["text", "json"] = "text"

    def __post_init__(self) -> None:
        level = self.level.lower()
        if level not in LOG_LEVELS:
            raise InvalidKey(
                "level", f"level must be one of {', '.join(LOG_LEVELS)}, got {self.level!r}"
            )
        msgspec.structs.force_setattr(self, "level", level)


class Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The whole configuration; every section is optional."""

    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    health_check: HealthCheckConfig = msgspec.field(default_factory=HealthCheckConfig)
    routing: RoutingConfig = msgspec.field(default_factory=RoutingConfig)
    quality: QualityConfig = msgspec.field(default_factory=QualityConfig)
    queue: QueueConfig = msgspec.field(default_factory=QueueConfig)
    dashboard: DashboardConfig = msgspec.field(default_factory=DashboardConfig)
    metrics: MetricsConfig = msgspec.field(default_factory=MetricsConfig)
    backends: list[BackendConfig] = msgspec.field(default_factory=list)
    pricing: list[PriceConfig] = msgspec.field(default_factory=list)
    keys: list[KeyConfig] = msgspec.field(default_factory=list)
    budget: BudgetConfig = msgspec.field(default_factory=BudgetConfig)
    state: StateConfig = msgspec.field(default_factory=StateConfig)
    responses: ResponsesConfig = msgspec.field(default_factory=ResponsesConfig)
    logging: LoggingConfig = msgspec.field(default_factory=LoggingConfig)
    admin: AdminConfig = msgspec.field(default_factory=AdminConfig)
    tracing: TracingConfig = msgspec.field(default_factory=TracingConfig)

    def __post_init__(self) -> None:
        self._check_backends()
        self._check_pricing()
        self._check_keys()

    @property
    def inbound_auth(self) -> bool:
        """Whether clients must present a key (``server.api_keys_env`` or ``[[keys]]``)."""
        return self.server.api_keys_env is not None or bool(self.keys)

    def _check_keys(self) -> None:
        seen: dict[str, int] = {}
        for index, key in enumerate(self.keys):
            if key.name in seen:
                raise InvalidKey(
                    f"keys[{index}].name",
                    f"duplicate key name {key.name!r} (also $.keys[{seen[key.name]}].name)",
                )
            seen[key.name] = index

    @property
    def keeps_spend(self) -> bool:
        """Whether spend is tracked and kept in the ledger: something is priced or budgeted."""
        return bool(self.pricing) or self.budget.monthly_limit_usd > 0

    def _check_pricing(self) -> None:
        names = {backend.name for backend in self.backends}
        seen: dict[tuple[str, str | None], int] = {}
        for index, price in enumerate(self.pricing):
            if price.backend not in names:
                raise InvalidKey(
                    f"pricing[{index}].backend", f"no backend is named {price.backend!r}"
                )
            key = (price.backend, price.model)
            if key in seen:
                raise InvalidKey(
                    f"pricing[{index}]",
                    f"duplicate price for backend {price.backend!r} model "
                    f"{price.model or '(default)'!r} (also $.pricing[{seen[key]}])",
                )
            seen[key] = index

    def _check_backends(self) -> None:
        first_index: dict[str, int] = {}
        for index, backend in enumerate(self.backends):
            if backend.name in first_index:
                raise InvalidKey(
                    f"backends[{index}].name",
                    f"duplicate backend name {backend.name!r} "
                    f"(also $.backends[{first_index[backend.name]}].name)",
                )
            first_index[backend.name] = index
            if backend.forward_authorization and (
                self.server.api_keys_env is not None or self.keys
            ):
                raise InvalidKey(
                    f"backends[{index}].forward_authorization",
                    "forward_authorization = true cannot be used while inbound auth "
                    "(server.api_keys_env or [[keys]]) is enabled: it would forward the "
                    "gateway's own keys",
                )
