"""``GET /v1/stats``: request counters, backends with their quality, per-model agents, spend.

Its fields are described in docs/api.md#stats.

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
from quart import Response
from quart_trio import QuartTrio

from nexus_trio.quality import NEUTRAL, AgentQualityMetrics, aggregate
from nexus_trio.services import Services

_ENCODER = msgspec.json.Encoder()


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


def stats_document(services: Services) -> dict[str, Any]:
    """The whole ``/v1/stats`` body, read from the live state in one pass."""
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
        "uptime_seconds": int(trio.current_time() - services.started_at),
        "total_requests": totals.total,
        "restart_required": services.restart_required,
        "requests": {
            "total": totals.total,
            "success": totals.success,
            "errors": totals.errors,
            "client_errors": totals.client_errors,
            "cancelled": totals.cancelled,
            "in_flight": services.in_flight,
        },
        "backends": backends,
        "models": models,
        "quality_config": msgspec.structs.asdict(services.config.quality),
        "spend": spend_object(services),
    }


def spend_object(services: Services) -> dict[str, Any]:
    """The ``spend`` object of docs/api.md#stats: the month's spend and the budget."""
    stats = services.spend.statistics()
    budget = stats.budget
    remaining = budget.remaining_usd
    return {
        "enabled": services.config.keeps_spend,
        "month": stats.month,
        "total_usd": round(stats.total_usd, 8),
        "estimated_usd": round(stats.estimated_usd, 8),
        "requests": stats.requests,
        "by_key": _rounded_map(stats.by_key),
        "by_backend": _rounded_map(stats.by_backend),
        "by_model": _rounded_map(stats.by_model),
        "budget": {
            "limit_usd": budget.limit_usd or None,
            "soft_limit_usd": round(budget.soft_limit_usd, 8) if budget.limit_usd else None,
            "spent_usd": round(budget.spent_usd, 8),
            "remaining_usd": None if remaining is None else round(remaining, 8),
            "state": budget.level.value,
            "hard_limit_action": budget.action,
        },
        "own_usd": round(stats.own_usd, 8),
        "reserved_usd": round(stats.reserved_usd, 8),
        "store_up": stats.store_up,
        "stores": services.store_states(),
    }


def _rounded_map(values: dict[str, float]) -> dict[str, float]:
    return {name: round(value, 8) for name, value in sorted(values.items())}


def register_stats_route(app: QuartTrio, services: Services) -> None:
    """Add ``GET /v1/stats`` to ``app``."""

    @app.get("/v1/stats")
    async def stats() -> Response:
        body = _ENCODER.encode(stats_document(services))
        return Response(body, content_type="application/json")
