"""The app factory: the Quart-Trio app wrapped in :class:`GatewayASGI`.

The three proxy routes are answered by :class:`~nexus_trio.api.proxy.ProxyEndpoint` inside
that wrapper (the hot path, without Quart), and so are the ASGI-layer endpoints of what is
mounted beside the API (:class:`~nexus_trio.asgi.mount.Mount`: the dashboard's event stream);
every other route is a Quart view.
"""

from __future__ import annotations

from collections.abc import Sequence

from quart_trio import QuartTrio

from nexus_trio.api.errors import install_error_handlers
from nexus_trio.api.info_routes import register_status_routes
from nexus_trio.api.middleware import GatewayASGI
from nexus_trio.api.proxy import ProxyEndpoint
from nexus_trio.api.stats_route import register_stats_route
from nexus_trio.asgi.mount import Endpoint, Mount
from nexus_trio.runtime.services import Services


def create_app(services: Services, mounts: Sequence[Mount] = ()) -> QuartTrio:
    """Build the Quart-Trio app serving ``services`` (with :class:`GatewayASGI` installed), with
    ``mounts`` beside the API (the dashboard, when the server mounts it).

    Quart's ``RESPONSE_TIMEOUT`` (60 s) would silently cut long responses: it is disabled, and
    the gateway's own deadlines apply (docs/proxying.md#retries, docs/proxying.md#streaming). Its
    body limits follow the server's, so a body sent to a Quart route is never buffered beyond them.
    """
    app = QuartTrio("nexus_trio")
    server = services.config.server
    app.config.update(
        RESPONSE_TIMEOUT=None,
        BODY_TIMEOUT=min(server.body_timeout_seconds, server.request_timeout_seconds),
        MAX_CONTENT_LENGTH=server.max_request_body_bytes,
        PROVIDE_AUTOMATIC_OPTIONS=False,
    )
    services.reload_listeners.append(
        lambda config: app.config.update(
            BODY_TIMEOUT=min(
                config.server.body_timeout_seconds, config.server.request_timeout_seconds
            ),
            MAX_CONTENT_LENGTH=config.server.max_request_body_bytes,
        )
    )
    install_error_handlers(app)
    register_status_routes(app, services)
    register_stats_route(app, services)
    endpoints: dict[str, Endpoint] = {}
    for mount in mounts:
        mount.register(app)
        endpoints.update(mount.endpoints)
    app.asgi_app = GatewayASGI(  # type: ignore[method-assign]
        app.asgi_app, ProxyEndpoint(services), services, endpoints
    )
    return app
