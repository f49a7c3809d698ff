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
import trio

from nexus_trio import errors
from nexus_trio.asgi.context import RequestContext
from nexus_trio.keys import ClientKey
from nexus_trio.quality import NEUTRAL, AgentQualityMetrics, aggregate
from nexus_trio.runtime.services import RequestCounts, Services
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


def viewer(services: Services, ctx: RequestContext | None) -> ClientKey | None:
    """Whose requests and spend the reader of ``ctx`` may see (docs/keys.md#roles).

    None means everything: an admin key, or no inbound key configured. Otherwise the tenant
    key, which sees only its own.

    Raises:
        AuthenticationFailed: keys are configured and the request presented none (deny by
            default, whatever let it reach the route).
    """
    key = None if ctx is None else ctx.key
    if key is None:
        if services.keyring:
            raise errors.AuthenticationFailed(
                "Missing or invalid API key (Authorization: Bearer <key>).",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return None
    return None if key.admin else key


def stats_document(services: Services) -> dict[str, Any]:
    """The whole ``/v1/stats`` body, as an admin sees it, read from the live state in one pass."""
    totals = services.totals
    snapshot = services.quality.snapshot
    backends = []
    serving: dict[str, list[str]] = {}
    for backend in services.registry:
        agents = []
        for model in sorted(backend.models):
            serving.setdefault(model, []).append(backend.name)
            agents.append(
                {"model": model, "quality": quality_object(snapshot.get((backend.name, model)))}
            )
        per_agent = [snapshot[key] for key in snapshot if key[0] == backend.name]
        counters = backend.counters
        backends.append(
            {
                "id": backend.name,
                "name": backend.name,
                "type": backend.config.type,
                "status": backend.health.value,
                "request_count": counters.requests_total,
                "avg_latency_ms": _rounded(counters.latency_ewma_ms, 1),
                "pending": counters.pending,
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
        "uptime_seconds": int(trio.current_time() - services.started_at),
        "total_requests": totals.total,
        "restart_required": services.restart_required,
        "requests": _requests_object(totals, services.in_flight),
        "backends": backends,
        "models": models,
        "quality_config": msgspec.structs.asdict(services.config.quality),
        "spend": spend_object(services),
    }


def tenant_stats(services: Services, everything: dict[str, Any], key: ClientKey) -> dict[str, Any]:
    """The ``/v1/stats`` body tenant ``key`` sees, from the admin's document ``everything``.

    Backends, quality and the gateway's own state are shared; the request totals, the
    models' request counts and the spend become the key's own.
    """
    counts = services.totals.of_key(key.name)
    return {
        **everything,
        "role": "tenant",
        "total_requests": counts.total,
        "requests": _requests_object(counts, services.in_flight),
        "models": [
            {**model, "request_count": counts.by_model.get(model["name"], 0)}
            for model in everything["models"]
        ],
        "spend": tenant_spend_object(services, key),
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
