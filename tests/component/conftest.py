"""In-process gateway: the Quart app via its test client, upstreams via httpx.MockTransport."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import pytest
import trio
from quart_trio import QuartTrio

from nexus_trio.api.app import create_app
from nexus_trio.config import Config, parse_config
from nexus_trio.dashboard.mount import dashboard_mount
from nexus_trio.dashboard.publisher import SnapshotPublisher
from nexus_trio.runtime.services import Services
from nexus_trio.upstream.client import upstream_http_client
from tests.component.configs import BASE_CONFIG
from tests.component.fake_upstream import Upstream


@dataclass
class Gateway:
    app: QuartTrio
    services: Services
    upstream: Upstream
    #: The dashboard's snapshot publisher (running), None with the dashboard off.
    dashboard: SnapshotPublisher | None = None

    async def post(self, path: str, body: object, **headers: str) -> Any:
        data = body if isinstance(body, bytes) else msgspec.json.encode(body)
        client = self.app.test_client()
        return await client.post(
            path, data=data, headers={"content-type": "application/json", **headers}
        )


@pytest.fixture
def make_gateway(nursery: trio.Nursery) -> Callable[..., Gateway]:
    """Build an in-process gateway; its disconnect watcher and dashboard publisher run until
    the test ends."""

    def make(config_text: str = BASE_CONFIG, env: dict[str, str] | None = None) -> Gateway:
        config: Config = parse_config(config_text)
        upstream = Upstream()
        transport = httpx.MockTransport(upstream)
        http = upstream_http_client(transport)
        services = Services.create(config, env or {}, http, transport=transport)
        nursery.start_soon(services.disconnects.run)
        dashboard = None
        if services.request_log is not None:
            dashboard = SnapshotPublisher(services, services.request_log)
            nursery.start_soon(dashboard.run)
        app = create_app(
            services, [] if dashboard is None else [dashboard_mount(services, dashboard)]
        )
        return Gateway(app=app, services=services, upstream=upstream, dashboard=dashboard)

    return make


@pytest.fixture
async def gateway(make_gateway: Callable[..., Gateway]) -> Gateway:
    return make_gateway()
