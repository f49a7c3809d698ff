"""Status routes: ``/health``, ``/health/live``, ``/v1/models``, ``/metrics``
(docs/api.md#http-api)."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from quart import Response, request
from quart_trio import QuartTrio

from nexus_trio import __version__, errors
from nexus_trio.api.refusals import model_not_found
from nexus_trio.asgi.context import RequestContext
from nexus_trio.drain import Drain
from nexus_trio.gateway.generation import Generations
from nexus_trio.gateway.statistics import GatewayStatistics
from nexus_trio.keys import ClientKey
from nexus_trio.metrics import CONTENT_TYPE_LATEST
from nexus_trio.registry import FLAGS, Capabilities, HealthState, Registry
from nexus_trio.routing.reconcilers.analyzer import resolve_alias

_ENCODER = msgspec.json.Encoder()


def _json(payload: object, status: int = 200) -> Response:
    return Response(_ENCODER.encode(payload), status=status, content_type="application/json")


def health_status(statistics: GatewayStatistics) -> str:
    """``healthy`` | ``degraded`` | ``unhealthy`` | ``draining`` (docs/api.md#health)."""
    if statistics.draining:
        return "draining"
    healthy = statistics.health_counts()[HealthState.HEALTHY]
    if healthy and healthy == len(statistics.backends):
        return "healthy"
    return "degraded" if healthy else "unhealthy"


def model_capabilities(per_backend: list[Capabilities]) -> dict[str, bool | int]:
    """What is known of a model's capabilities across the healthy backends serving it.

    A capability is ``true`` when some backend is known to have it (routing can use that one)
    and ``false`` only when every backend is known to lack it; otherwise it is left out. The
    context length shown is the largest known.
    """
    known: dict[str, bool | int] = {}
    for flag in FLAGS:
        values = [getattr(capabilities, flag) for capabilities in per_backend]
        if True in values:
            known[flag] = True
        elif values and all(value is False for value in values):
            known[flag] = False
    lengths = [c.context_length for c in per_backend if c.context_length is not None]
    if lengths:
        known["context_length"] = max(lengths)
    return known


def model_list(
    registry: Registry, aliases: dict[str, str], created: int, key: ClientKey | None
) -> list[dict[str, object]]:
    """The ``/v1/models`` entries, sorted by id, that ``key`` may ask for (docs/api.md#models).

    A model served by a healthy backend is listed, and an alias whose target is; with a key
    that has a ``models`` allow-list, only the names it allows, as the request path checks them
    (the name asked for, before aliases: docs/keys.md#keys), so an alias is listed when its
    own name is allowed, whether or not its target's is.
    """
    owners: dict[str, list[tuple[int, str]]] = {}
    declared: dict[str, list[Capabilities]] = {}
    for backend in registry:
        if backend.health is not HealthState.HEALTHY:
            continue
        for model in backend.models:
            owners.setdefault(model, []).append((backend.config.priority, backend.name))
            declared.setdefault(model, []).append(backend.capabilities(model))
    entries: dict[str, dict[str, object]] = {}
    for model, ranked in owners.items():
        ranked.sort()
        entries[model] = {
            "id": model,
            "object": "model",
            "created": created,
            "owned_by": ranked[0][1],
            "backends": [name for _, name in ranked],
            "capabilities": model_capabilities(declared[model]),
        }
    for alias, target in aliases.items():
        resolved = resolve_alias(aliases, alias)
        if resolved in owners and alias not in entries:
            entries[alias] = {
                "id": alias,
                "object": "model",
                "created": created,
                "owned_by": "nexus-trio",
                "alias_of": target,
                "backends": entries[resolved]["backends"],
                "capabilities": entries[resolved]["capabilities"],
            }
    allowed = (
        sorted(entries) if key is None else [m for m in sorted(entries) if key.allows_model(m)]
    )
    return [entries[model] for model in allowed]


def register_status_routes(
    app: QuartTrio,
    statistics: Callable[[], GatewayStatistics],
    *,
    registry: Registry,
    generations: Generations,
    drain: Drain,
    render_metrics: Callable[[], bytes],
    started_wall: float,
) -> None:
    """Add the status routes to ``app``: ``/health`` from the gateway's ``statistics``,
    ``/v1/models`` from the live ``registry`` (``created``: ``started_wall``)."""

    @app.get("/health")
    async def health() -> Response:
        stats = statistics()
        status = health_status(stats)
        body = {
            "status": status,
            "version": __version__,
            "uptime_seconds": int(stats.uptime_seconds),
            "backends": {"total": len(stats.backends), **stats.health_counts()},
            "models": {"total": stats.models_total},
            "in_flight_requests": stats.in_flight,
        }
        return _json(body, 200 if status in ("healthy", "degraded") else 503)

    @app.get("/health/live")
    async def live() -> Response:
        if drain.draining:
            return _json({"status": "draining"}, 503)
        return _json({"status": "alive"})

    @app.get("/v1/models")
    async def models() -> Response:
        ctx: RequestContext | None = request.scope.get("nexus.context")  # type: ignore[assignment]
        key = None if ctx is None else ctx.key
        aliases = generations.current.config.routing.aliases
        entries = model_list(registry, aliases, int(started_wall), key)
        return _json({"object": "list", "data": entries})

    @app.get("/v1/models/<path:model_id>")
    async def one_model(model_id: str) -> Response:
        ctx: RequestContext | None = request.scope.get("nexus.context")  # type: ignore[assignment]
        key = None if ctx is None else ctx.key
        aliases = generations.current.config.routing.aliases
        entries = model_list(registry, aliases, int(started_wall), key)
        for entry in entries:
            if entry["id"] == model_id:
                return _json(entry)
        raise model_not_found(model_id, [str(entry["id"]) for entry in entries])

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(render_metrics(), content_type=CONTENT_TYPE_LATEST)


def register_root_probe(app: QuartTrio) -> None:
    """Answer ``HEAD /`` 200 when nothing mounted serves ``/`` (the dashboard does): clients
    probe it before their first request (docs/api.md#routes). ``GET /`` stays 404 then."""
    if any(rule.rule == "/" for rule in app.url_map.iter_rules()):
        return

    @app.route("/", methods=["GET", "HEAD"])
    async def root() -> Response:
        if request.method != "HEAD":
            raise errors.NotFound("Unknown path: /.")
        return Response(b"", status=200)
