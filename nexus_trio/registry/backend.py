"""One configured backend: its static configuration plus the live state the gateway learns.

A :class:`Backend` is created from a :class:`~nexus_trio.config.BackendConfig` and keeps, for
as long as its identity (``name``, ``url``, ``type``) is unchanged, its health state, its model
list and its live counters (docs/routing.md#live-counters). Everything here is synchronous and in
memory: the health checker, the router and the request path mutate it from the one Trio thread.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from nexus_trio.config import BackendConfig
from nexus_trio.registry.capabilities import Capabilities, effective_capabilities
from nexus_trio.registry.residency import UNKNOWN, ModelResidency, Residency

#: Smoothing factor of the per-backend EWMAs (docs/routing.md#live-counters).
EWMA_ALPHA = 0.2


class HealthState(enum.StrEnum):
    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


def _ewma(previous: float | None, sample: float) -> float:
    """Exponentially weighted moving average that starts at the first sample."""
    if previous is None:
        return sample
    return previous + EWMA_ALPHA * (sample - previous)


@dataclass(slots=True)
class BackendCounters:
    """Live counters of one backend (docs/routing.md#live-counters)."""

    pending: int = 0
    requests_total: int = 0
    latency_ewma_ms: float | None = None
    ttft_ewma_ms: float | None = None
    ms_per_output_token_ewma: float | None = None

    def observe_success(
        self,
        *,
        latency_ms: float,
        ttft_ms: float | None = None,
        completion_tokens: int | None = None,
    ) -> None:
        """Fold one successful attempt into the EWMAs."""
        self.latency_ewma_ms = _ewma(self.latency_ewma_ms, latency_ms)
        if ttft_ms is not None:
            self.ttft_ewma_ms = _ewma(self.ttft_ewma_ms, ttft_ms)
        if completion_tokens:
            per_token = latency_ms / completion_tokens
            self.ms_per_output_token_ewma = _ewma(self.ms_per_output_token_ewma, per_token)


@dataclass(frozen=True, slots=True)
class ProbeRecord:
    """The result of the backend's last health probe, as shown to operators."""

    ok: bool
    #: Why it failed (None on success); never contains keys.
    error: str | None
    #: ``time.time()`` when the result arrived (for display only).
    at_wall: float


@dataclass(slots=True, eq=False)
class Backend:
    """A configured inference server and what the gateway knows about it now."""

    config: BackendConfig
    #: The bearer key read from ``api_key_env`` at load time; never logged or rendered.
    api_key: str | None = field(default=None, repr=False)
    health: HealthState = HealthState.UNKNOWN
    #: The last health probe's result; None before the first (or with health checks off).
    last_probe: ProbeRecord | None = None
    #: Models reported by the last successful probe (static ``models`` are added on top).
    discovered_models: frozenset[str] = frozenset()
    #: Capabilities the server declared to a probe, per model (Ollama ``/api/show``,
    #: llama.cpp ``/props``).
    detected_capabilities: dict[str, Capabilities] = field(default_factory=dict)
    #: Models the backend answered "not found" for; hidden until its next successful probe.
    missing_models: set[str] = field(default_factory=set)
    #: Models it answered 501 for on ``/v1/embeddings``: known not to embed until its next
    #: successful probe (the configuration still wins).
    refused_embeddings: set[str] = field(default_factory=set)
    #: Per model: trio time until which the agent is in 429 cooldown
    #: (docs/routing.md#health-filter).
    cooldown_until: dict[str, float] = field(default_factory=dict)
    counters: BackendCounters = field(default_factory=BackendCounters)
    #: Per model: whether it is in the server's memory (docs/routing.md#residency); a model
    #: not in it is ``unknown``.
    residency: dict[str, ModelResidency] = field(default_factory=dict)
    #: Cold starts paid by attempts here: their count and the TTFT sum in ms.
    cold_starts: int = 0
    cold_start_ms_total: float = 0.0
    #: ``models`` and ``embedding_models`` of the config, as a set (the config is frozen).
    static_models: frozenset[str] = field(init=False, repr=False)
    #: Per model: what the effective capabilities were merged from, and them.
    _merged: dict[str, tuple[Capabilities | None, bool, Capabilities]] = field(
        init=False, repr=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        self.static_models = frozenset(self.config.models) | frozenset(self.config.embedding_models)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def base_url(self) -> str:
        return self.config.url.rstrip("/")

    @property
    def location(self) -> str:
        return self.config.location()

    @property
    def models(self) -> frozenset[str]:
        """Every model served: discovered, plus static ``models`` and ``embedding_models``."""
        served = self.discovered_models | self.static_models
        return served - self.missing_models if self.missing_models else served

    def serves(self, model: str) -> bool:
        """Whether ``model`` is in :attr:`models`, in constant time (the routing hot path)."""
        return (
            model in self.discovered_models or model in self.static_models
        ) and model not in self.missing_models

    def capabilities(self, model: str) -> Capabilities:
        """Effective capabilities of ``model`` here: configured > declared > name guess.

        Merged once per model and declaration (the routing hot path asks for every candidate).
        """
        declared = self.detected_capabilities.get(model)
        refused = model in self.refused_embeddings
        cached = self._merged.get(model)
        if cached is not None and cached[0] is declared and cached[1] is refused:
            return cached[2]
        learned = declared
        if refused:
            learned = replace(declared or Capabilities(), embeddings=False)
        merged = effective_capabilities(self.config, model, learned)
        self._merged[model] = (declared, refused, merged)
        return merged

    def residency_of(self, model: str) -> Residency:
        """Whether ``model`` is loaded here now (``unknown`` when nothing said so)."""
        return self.residency.get(model, UNKNOWN).state

    def identity(self) -> tuple[str, str, str]:
        """What must stay equal across a reload for history to be kept
        (docs/configuration.md#reload)."""
        return (self.config.name, self.base_url, self.config.type)

    def at_capacity(self) -> bool:
        limit = self.config.max_concurrent_requests
        return limit > 0 and self.counters.pending >= limit

    @classmethod
    def from_config(cls, config: BackendConfig, env: Mapping[str, str]) -> Backend:
        key = env.get(config.api_key_env) if config.api_key_env else None
        return cls(config=config, api_key=key or None)
