"""The registry: every configured backend by name, and the model index routing reads."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence

from nexus_trio.config import BackendConfig
from nexus_trio.registry.backend import Backend, HealthState


class Registry:
    """Backends in configuration order, looked up by name.

    Synchronous and in memory. ``replace_backends`` is how a reload swaps the set in one step,
    keeping the live state of backends whose identity is unchanged.
    """

    def __init__(
        self,
        configs: Sequence[BackendConfig],
        env: Mapping[str, str],
        *,
        assume_healthy: bool = False,
    ) -> None:
        self._assume_healthy = assume_healthy
        self._backends: dict[str, Backend] = {}
        #: Trio time of the health checker's next sweep (``inf``: none scheduled); an
        #: unhealthy backend may recover then, so ``Retry-After`` counts down to it.
        self.next_health_sweep_at = math.inf
        self.replace_backends(configs, env)

    def __iter__(self) -> Iterator[Backend]:
        return iter(self._backends.values())

    def __len__(self) -> int:
        return len(self._backends)

    def get(self, name: str) -> Backend | None:
        return self._backends.get(name)

    def replace_backends(
        self, configs: Sequence[BackendConfig], env: Mapping[str, str]
    ) -> set[str]:
        """Install a new set of backends, keeping the state of unchanged identities.

        Returns:
            Names of the previous backends whose identity is gone (removed, or a new url or
            type under the same name): their history must be forgotten.
        """
        fresh: dict[str, Backend] = {}
        for config in configs:
            backend = Backend.from_config(config, env)
            previous = self._backends.get(config.name)
            if previous is not None and previous.identity() == backend.identity():
                backend.health = previous.health
                backend.last_probe = previous.last_probe
                backend.discovered_models = previous.discovered_models
                backend.detected_capabilities = previous.detected_capabilities
                backend.missing_models = previous.missing_models
                backend.refused_embeddings = previous.refused_embeddings
                backend.cooldown_until = previous.cooldown_until
                backend.counters = previous.counters
                backend.residency = previous.residency
                backend.cold_starts = previous.cold_starts
                backend.cold_start_ms_total = previous.cold_start_ms_total
            elif self._assume_healthy:
                backend.health = HealthState.HEALTHY
            fresh[config.name] = backend
        gone = {
            name
            for name, old in self._backends.items()
            if name not in fresh or fresh[name].identity() != old.identity()
        }
        self._backends = fresh
        return gone

    def serving(self, model: str) -> list[Backend]:
        """Backends whose model list contains ``model``, in configuration order."""
        return [backend for backend in self._backends.values() if backend.serves(model)]

    def known_models(self) -> set[str]:
        """Every model any backend serves (healthy or not)."""
        known: set[str] = set()
        for backend in self._backends.values():
            known |= backend.models
        return known

    def health_counts(self) -> dict[str, int]:
        counts = {state.value: 0 for state in HealthState}
        for backend in self._backends.values():
            counts[backend.health.value] += 1
        return counts
