"""The dashboard snapshot: ``/v1/stats`` plus what an operator needs to see at a glance.

One snapshot is a JSON object::

    {"version", "uptime_seconds", "state": "ready" | "draining", "in_flight", "queue_length",
     "rates": {"window_seconds", "requests_per_second", "error_rate"},
     "restart_required", "last_reload": {"ok", "time", "error", "restart_required"} | null,
     "stats": <the /v1/stats document>,
     "backends": {<name>: {"health", "last_probe", "quality_state", "exclusion_reason",
                           "next_probe_in_seconds", "ttft_penalty", "in_flight",
                           "max_concurrent_requests", "cooldowns", "models", "history"}},
     "panic_models": [models every one of whose backends quality has excluded],
     "keys": {"total", "keys": [...]} | null (the keys panel: admins only),
     "log_from": <request-log seq>, "requests": [entries newer than log_from, oldest first]}

``history`` holds the quality tracker's last 60 one-minute buckets of that backend, oldest
first: ``requests``, ``failures`` and ``avg_ttft_ms`` lists. A reload is a synchronous swap
of the configuration, so ``state`` is never seen as reloading; ``last_reload`` tells how the
last one went. Building a snapshot reads the live state and changes nothing; it runs once per
second at most, in :class:`~nexus_trio.dashboard.publisher.SnapshotPublisher`, from one
:class:`~nexus_trio.gateway.statistics.GatewayStatistics` plus the registry's and the quality
store's per-backend details. That is the admin's snapshot; a tenant key's
(:func:`tenant_snapshot`) is derived from it and the same statistics.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from nexus_trio import __version__
from nexus_trio.dashboard.key_panel import KeyPanel
from nexus_trio.dashboard.request_log import RequestEntry, entry_object
from nexus_trio.gateway.statistics import GatewayStatistics
from nexus_trio.keys import ClientKey
from nexus_trio.quality import AgentState, QualityStore, aggregate
from nexus_trio.quality.metrics import ttft_penalty_fraction
from nexus_trio.registry import Backend, Registry
from nexus_trio.stats.document import stats_document, tenant_stats

#: Requests per second and the error rate are measured over this many seconds.
RATE_WINDOW_SECONDS = 10.0


class RateWindow:
    """Finished-request totals sampled once per snapshot, to derive rates over a window."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int, int]] = deque()

    def rates(self, now: float, total: int, errors: int) -> dict[str, float | None]:
        """Record the totals at ``now``; the request rate and error rate over the window."""
        samples = self._samples
        samples.append((now, total, errors))
        while len(samples) > 1 and now - samples[0][0] > RATE_WINDOW_SECONDS:
            samples.popleft()
        then, total_then, errors_then = samples[0]
        span = now - then
        finished = total - total_then
        return {
            "window_seconds": round(span, 1),
            "requests_per_second": round(finished / span, 2) if span > 0 else None,
            "error_rate": round((errors - errors_then) / finished, 4) if finished else None,
        }


@dataclass(frozen=True, slots=True)
class SnapshotSources:
    """What a snapshot reads: the gateway's statistics, and the live per-backend details."""

    statistics: Callable[[], GatewayStatistics]
    registry: Registry
    quality: QualityStore
    #: The keys panel of admin snapshots (:mod:`nexus_trio.dashboard.key_panel`); None: none.
    keys: KeyPanel | None = None


def _backend_details(
    quality: QualityStore, backend: Backend, now: float, ttft_threshold_ms: float
) -> dict[str, Any]:
    keys = [(backend.name, model) for model in sorted(backend.models)]
    merged = aggregate([quality.get(key) for key in keys])
    probe_times = {key: quality.next_probe_time(key) for key in keys}
    excluded = {key: at for key, at in probe_times.items() if at is not None}
    next_probe = min(excluded.values(), default=None)
    if any(at > now for at in excluded.values()):
        state = AgentState.EXCLUDED
    else:
        state = AgentState.PROBING if excluded else AgentState.HEALTHY
    probe = backend.last_probe
    history = quality.minute_history(keys, now)
    return {
        "health": backend.health.value,
        "last_probe": None
        if probe is None
        else {"ok": probe.ok, "error": probe.error, "time": round(probe.at_wall, 3)},
        "quality_state": state.value,
        "exclusion_reason": next((quality.exclusion_reason(key) for key in excluded), None),
        "next_probe_in_seconds": None if next_probe is None else round(next_probe - now, 1),
        "ttft_penalty": round(
            ttft_penalty_fraction(
                None if merged is None else merged.avg_ttft_ms,
                ttft_threshold_ms,
            ),
            3,
        ),
        "in_flight": backend.counters.pending,
        "max_concurrent_requests": backend.config.max_concurrent_requests,
        "cooldowns": {
            model: round(until - now, 1)
            for model, until in sorted(backend.cooldown_until.items())
            if until > now
        },
        "models": sorted(backend.models),
        "history": {
            "requests": [minute.requests for minute in history],
            "failures": [minute.failures for minute in history],
            "avg_ttft_ms": [
                None if minute.avg_ttft_ms is None else round(minute.avg_ttft_ms, 1)
                for minute in history
            ],
        },
    }


def panic_models(registry: Registry, quality: QualityStore) -> list[str]:
    """Models whose every serving backend is excluded by quality: routing ignores quality.

    The quality state here, as in the backend details, is the store's own (not the last
    recompute's), so an exclusion shows at the next snapshot.
    """
    by_model: dict[str, list[bool]] = {}
    for backend in registry:
        for model in backend.models:
            excluded = quality.next_probe_time((backend.name, model)) is not None
            by_model.setdefault(model, []).append(excluded)
    return sorted(model for model, states in by_model.items() if all(states))


def build_snapshot(
    statistics: GatewayStatistics,
    sources: SnapshotSources,
    entries: list[RequestEntry],
    rates: RateWindow,
    log_from: int,
) -> dict[str, Any]:
    """The snapshot of ``statistics`` as an admin sees it, carrying ``entries`` (the request-log
    entries newer than ``log_from``)."""
    now = trio.current_time()
    stats = stats_document(statistics)
    totals = statistics.totals
    reload = statistics.last_reload
    threshold = statistics.quality_config.ttft_penalty_threshold_ms
    quality = sources.quality
    return {
        "version": __version__,
        "uptime_seconds": stats["uptime_seconds"],
        "time": round(time.time(), 3),
        "state": "draining" if statistics.draining else "ready",
        "in_flight": statistics.in_flight,
        "queue_length": statistics.queue_depth,
        "rates": rates.rates(now, totals.total, totals.errors),
        "restart_required": statistics.restart_required,
        "last_reload": None
        if reload is None
        else {
            "ok": reload.ok,
            "time": round(reload.at_wall, 3),
            "error": reload.error,
            "restart_required": list(reload.restart_required),
        },
        "stats": stats,
        "backends": {
            b.name: _backend_details(quality, b, now, threshold) for b in sources.registry
        },
        "panic_models": panic_models(sources.registry, quality),
        "keys": None if sources.keys is None else sources.keys(statistics),
        "log_from": log_from,
        "requests": [entry_object(e, with_key=True) for e in entries],
    }


def tenant_snapshot(
    statistics: GatewayStatistics,
    everything: dict[str, Any],
    entries: list[RequestEntry],
    key: ClientKey,
    rates: RateWindow,
) -> dict[str, Any]:
    """The snapshot ``everything`` (built from ``statistics``) as tenant ``key`` sees it
    (docs/keys.md#roles).

    Derived from the admin's snapshot without rebuilding it: the backends, quality and the
    gateway's state are shared; ``stats`` becomes the key's own (:func:`tenant_stats`), the
    rates are measured on its own requests (``rates``: its window), ``requests`` keeps only
    its own entries (without the key column), and a failed reload's error text, which may
    name other keys, is withheld.
    """
    counts = statistics.counts_of(key.name)
    reload = everything["last_reload"]
    return {
        **everything,
        "rates": rates.rates(trio.current_time(), counts.total, counts.errors),
        "last_reload": None if reload is None else {**reload, "error": None},
        "stats": tenant_stats(statistics, everything["stats"], key),
        "requests": [entry_object(e, with_key=False) for e in entries if e.key == key.name],
        "keys": None,
    }
