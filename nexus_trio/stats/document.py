"""The ``/v1/stats`` document: request counters, backends with their quality, per-model agents,
spend; read by the route, the dashboard's snapshot and ``nexus-trio status`` (through the route).

Its fields are described in docs/api.md#stats. What a key reads depends on its role
(docs/keys.md#roles): an admin key (or anyone, without inbound keys) the whole document; a
tenant key the same backends and quality, with the request totals, the models' request counts
and the spend of its own requests only (:func:`tenant_stats`).

Quality comes from the same snapshot the ``/metrics`` collector reads, so the two agree. A
backend's ``quality`` aggregates its agents (counts summed and rates recomputed from the sums,
TTFT average weighted by samples, p90 from the merged histogram, the worst state, the latest
failure); ``null`` when none of its agents has data.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from nexus_trio import errors
from nexus_trio.asgi.context import RequestContext
from nexus_trio.gateway.counts import RequestCounts
from nexus_trio.gateway.statistics import GatewayStatistics
from nexus_trio.keys import ClientKey, KeyRing
from nexus_trio.quality import NEUTRAL, AgentQualityMetrics, aggregate
from nexus_trio.registry import ModelResidency
from nexus_trio.stats.spend import spend_object, tenant_spend_object


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def quality_object(metrics: AgentQualityMetrics | None) -> dict[str, Any] | None:
    """The ``quality`` object of docs/api.md#stats; None (``null``) without data."""
    if metrics is None or metrics == NEUTRAL:
        return None
    return {
        "error_rate_1h": round(metrics.error_rate_1h, 4),
        "success_rate_24h": round(metrics.success_rate_24h, 4),
        "avg_ttft_ms": _rounded(metrics.avg_ttft_ms, 1),
        "p90_ttft_ms": _rounded(metrics.p90_ttft_ms, 1),
        "request_count_1h": metrics.request_count_1h,
        "last_failure_time": _iso(metrics.last_failure_time),
        "consecutive_failures": metrics.consecutive_failures,
        "state": metrics.state.value,
    }


def residency_object(known: ModelResidency | None) -> dict[str, Any]:
    """A model's residency on a backend (docs/routing.md#residency); ``unknown`` when untold."""
    if known is None:
        return {"state": "unknown", "vram_bytes": None, "expires_at": None}
    return {
        "state": known.state.value,
        "vram_bytes": known.vram_bytes,
        "expires_at": _iso(known.expires_at),
    }


def viewer(keyring: KeyRing, ctx: RequestContext | None) -> ClientKey | None:
    """Whose requests and spend the reader of ``ctx`` may see (docs/keys.md#roles).

    None means everything: an admin key, or no inbound key configured. Otherwise the tenant
    key, which sees only its own.

    Raises:
        AuthenticationFailed: keys are configured and the request presented none (deny by
            default, whatever let it reach the route).
    """
    key = None if ctx is None else ctx.key
    if key is None:
        if keyring:
            raise errors.AuthenticationFailed(
                "Missing or invalid API key (Authorization: Bearer <key>).",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return None
    return None if key.admin else key


def stats_document(statistics: GatewayStatistics) -> dict[str, Any]:
    """The whole ``/v1/stats`` body, as an admin sees it, from one snapshot."""
    totals = statistics.totals
    snapshot = statistics.agents
    backends = []
    serving: dict[str, list[str]] = {}
    for backend in statistics.backends:
        agents = []
        for model in backend.models:
            serving.setdefault(model, []).append(backend.name)
            agents.append(
                {
                    "model": model,
                    "quality": quality_object(snapshot.get((backend.name, model))),
                    "residency": residency_object(backend.residency.get(model)),
                }
            )
        per_agent = [snapshot[key] for key in snapshot if key[0] == backend.name]
        backends.append(
            {
                "id": backend.name,
                "name": backend.name,
                "type": backend.type,
                "status": backend.health.value,
                "request_count": backend.requests_total,
                "avg_latency_ms": _rounded(backend.latency_ewma_ms, 1),
                "pending": backend.pending,
                "cold_starts": backend.cold_starts,
                "avg_cold_start_ms": _rounded(
                    backend.cold_start_ms_total / backend.cold_starts
                    if backend.cold_starts
                    else None,
                    1,
                ),
                "quality": quality_object(aggregate(per_agent)),
                "agents": agents,
            }
        )
    models = [
        {"name": model, "request_count": totals.by_model.get(model, 0), "backends": names}
        for model, names in sorted(serving.items())
    ]
    return {
        "role": "admin",
        "uptime_seconds": int(statistics.uptime_seconds),
        "total_requests": totals.total,
        "restart_required": statistics.restart_required,
        "requests": _requests_object(totals, statistics.in_flight),
        "backends": backends,
        "models": models,
        "quality_config": msgspec.structs.asdict(statistics.quality_config),
        "spend": spend_object(statistics),
    }


def tenant_stats(
    statistics: GatewayStatistics, everything: dict[str, Any], key: ClientKey
) -> dict[str, Any]:
    """The ``/v1/stats`` body tenant ``key`` sees, from the admin's document ``everything``.

    Backends, quality and the gateway's own state are shared; the request totals, the
    models' request counts and the spend become the key's own.
    """
    counts = statistics.counts_of(key.name)
    return {
        **everything,
        "role": "tenant",
        "total_requests": counts.total,
        "requests": _requests_object(counts, statistics.in_flight),
        "models": [
            {**model, "request_count": counts.by_model.get(model["name"], 0)}
            for model in everything["models"]
        ],
        "spend": tenant_spend_object(statistics, key),
    }


def _requests_object(counts: RequestCounts, in_flight: int) -> dict[str, int]:
    return {
        "total": counts.total,
        "success": counts.success,
        "errors": counts.errors,
        "client_errors": counts.client_errors,
        "cancelled": counts.cancelled,
        "in_flight": in_flight,
    }
