"""The app factory: the Quart-Trio app wrapped in :class:`GatewayASGI`.

The three proxy routes are answered by :class:`~nexus_trio.api.proxy.ProxyEndpoint` inside
that wrapper (the hot path, without Quart), and so are the ASGI-layer endpoints of what is
mounted beside the API (:class:`~nexus_trio.asgi.mount.Mount`: the dashboard's event stream);
every other route is a Quart view.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from quart_trio import QuartTrio

from nexus_trio.api.accounting import RequestAccounting
from nexus_trio.api.errors import install_error_handlers
from nexus_trio.api.info_routes import register_root_probe, register_status_routes
from nexus_trio.api.key_routes import register_key_routes
from nexus_trio.api.middleware import GatewayASGI
from nexus_trio.api.model_routes import register_model_routes
from nexus_trio.api.proxy import ProxyEndpoint
from nexus_trio.api.responses_routes import register_responses_routes
from nexus_trio.api.stats_route import register_stats_route
from nexus_trio.asgi.mount import Endpoint, Mount
from nexus_trio.config import Config
from nexus_trio.drain import Drain
from nexus_trio.gateway.generation import Generations
from nexus_trio.gateway.statistics import GatewayStatistics
from nexus_trio.key_store import KeyStore
from nexus_trio.registry import Registry
from nexus_trio.residency import ModelControl
from nexus_trio.responses_store import ResponseStore
from nexus_trio.tracing import Sampler


@dataclass(frozen=True, slots=True)
class AppParts:
    """What the app's routes and its ASGI layer use, built by the wiring."""

    generations: Generations
    drain: Drain
    proxy: ProxyEndpoint
    accounting: RequestAccounting
    statistics: Callable[[], GatewayStatistics]
    registry: Registry
    render_metrics: Callable[[], bytes]
    started_wall: float
    #: The Responses API's stored responses (``GET``/``DELETE /v1/responses/<id>``).
    responses: ResponseStore
    #: The keys created at run time (``/admin/keys``), and a key's spend this month.
    keys: KeyStore
    spend_of: Callable[[str], float]
    #: Loads and unloads models (``/admin/models/...``).
    models: ModelControl
    #: Which proxy requests are traced (docs/operations.md#tracing); None with tracing off.
    sampler: Sampler | None = None


def create_app(parts: AppParts, mounts: Sequence[Mount] = ()) -> QuartTrio:
    """Build the Quart-Trio app over ``parts`` (with :class:`GatewayASGI` installed), with
    ``mounts`` beside the API (the dashboard, when the server mounts it).

    Quart's ``RESPONSE_TIMEOUT`` (60 s) would silently cut long responses: it is disabled, and
    the gateway's own deadlines apply (docs/proxying.md#retries, docs/proxying.md#streaming). Its
    body limits follow the server's, so a body sent to a Quart route is never buffered beyond
    them; a reload that changes them reaches the app through ``parts.generations``.
    """
    app = QuartTrio("nexus_trio")

    def apply_limits(config: Config) -> None:
        server = config.server
        app.config.update(
            BODY_TIMEOUT=min(server.body_timeout_seconds, server.request_timeout_seconds),
            MAX_CONTENT_LENGTH=server.max_request_body_bytes,
        )

    app.config.update(RESPONSE_TIMEOUT=None, PROVIDE_AUTOMATIC_OPTIONS=False)
    apply_limits(parts.generations.current.config)
    parts.generations.on_swap(apply_limits)
    install_error_handlers(app)
    register_status_routes(
        app,
        parts.statistics,
        registry=parts.registry,
        generations=parts.generations,
        drain=parts.drain,
        render_metrics=parts.render_metrics,
        started_wall=parts.started_wall,
    )
    register_stats_route(app, parts.statistics, parts.generations)
    register_responses_routes(app, parts.responses)
    register_key_routes(
        app,
        parts.keys,
        configured=lambda: parts.generations.current.config.keys,
        spend_of=parts.spend_of,
    )
    register_model_routes(app, parts.models, parts.generations)
    endpoints: dict[str, Endpoint] = {}
    for mount in mounts:
        mount.register(app)
        endpoints.update(mount.endpoints)
    register_root_probe(app)
    app.asgi_app = GatewayASGI(  # type: ignore[method-assign]
        app.asgi_app,
        parts.proxy,
        generations=parts.generations,
        drain=parts.drain,
        accounting=parts.accounting,
        endpoints=endpoints,
        sampler=parts.sampler,
    )
    return app
