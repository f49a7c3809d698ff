"""The dashboard as mounted on the gateway's app by the server: its page and files as Quart
views, and its event stream as an ASGI-layer endpoint (docs/api.md#dashboard)."""

from __future__ import annotations

from nexus_trio.asgi.mount import Mount
from nexus_trio.dashboard.events import DashboardEvents
from nexus_trio.dashboard.page import register_page_routes
from nexus_trio.dashboard.publisher import SnapshotPublisher
from nexus_trio.drain import Drain
from nexus_trio.gateway.generation import Generations

#: Where the dashboard's event stream is served.
EVENTS_PATH = "/v1/dashboard/events"


def dashboard_mount(publisher: SnapshotPublisher, generations: Generations, drain: Drain) -> Mount:
    """The page at ``/`` and ``/dashboard``, its files, and the event stream fed by
    ``publisher`` (which the caller runs)."""
    return Mount(
        register=register_page_routes,
        endpoints={EVENTS_PATH: DashboardEvents(publisher, generations, drain)},
    )
