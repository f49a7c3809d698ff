"""The app factory: the Quart-Trio app wrapped in :class:`GatewayASGI`.

The three proxy routes are answered by :class:`~nexus_trio.api.proxy.ProxyEndpoint` inside
that wrapper (the hot path, without Quart), and so is the dashboard's event stream
(:class:`~nexus_trio.dashboard.events.DashboardEvents`); every other route is a Quart view.
"""

from __future__ import annotations

from quart_trio import QuartTrio

from nexus_trio.api.asgi import GatewayASGI
from nexus_trio.api.errors import install_error_handlers
from nexus_trio.api.proxy import ProxyEndpoint
from nexus_trio.api.stats import register_stats_route
from nexus_trio.api.status import register_status_routes
from nexus_trio.dashboard.events import DashboardEvents
from nexus_trio.dashboard.page import register_page_routes
from nexus_trio.dashboard.publisher import SnapshotPublisher
from nexus_trio.services import Services


def create_app(services: Services, dashboard: SnapshotPublisher | None = None) -> QuartTrio:
    """Build the Quart-Trio app serving ``services`` (with :class:`GatewayASGI` installed).

    With a ``dashboard`` publisher (run by the caller) the dashboard page is served at ``/``
    and ``/dashboard``, and its event stream at ``/v1/dashboard/events``.

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
    events = None
    if dashboard is not None:
        register_page_routes(app)
        events = DashboardEvents(services, dashboard)
    app.asgi_app = GatewayASGI(  # type: ignore[method-assign]
        app.asgi_app, ProxyEndpoint(services), services, events
    )
    return app
