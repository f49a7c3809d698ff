"""``GET /v1/stats`` (docs/api.md#stats): the document of :mod:`nexus_trio.stats.document`, whole
for an admin key (or anyone without inbound keys), its own part for a tenant key
(docs/keys.md#roles)."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from quart import Response, request
from quart_trio import QuartTrio

from nexus_trio.asgi.context import RequestContext
from nexus_trio.gateway.generation import Generations
from nexus_trio.gateway.statistics import GatewayStatistics
from nexus_trio.stats.document import stats_document, tenant_stats, viewer

_ENCODER = msgspec.json.Encoder()


def register_stats_route(
    app: QuartTrio, statistics: Callable[[], GatewayStatistics], generations: Generations
) -> None:
    """Add ``GET /v1/stats`` to ``app``: everything for an admin, its own for a tenant."""

    @app.get("/v1/stats")
    async def stats() -> Response:
        ctx: RequestContext | None = request.scope.get("nexus.context")  # type: ignore[assignment]
        tenant = viewer(generations.current.keyring, ctx)
        snapshot = statistics()
        document = stats_document(snapshot)
        if tenant is not None:
            document = tenant_stats(snapshot, document, tenant)
        return Response(_ENCODER.encode(document), content_type="application/json")
