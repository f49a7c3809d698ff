"""The in-process gateway of the component tests: the real wiring and app, upstreams through
httpx.MockTransport (:class:`~tests.component.fake_upstream.Upstream`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import trio
from quart_trio import QuartTrio

from nexus_trio.config import parse_config
from nexus_trio.dashboard.publisher import SnapshotPublisher
from nexus_trio.runtime.wiring import Wiring
from nexus_trio.upstream.client import upstream_http_client
from tests.component.configs import BASE_CONFIG
from tests.component.fake_upstream import Upstream


@dataclass
class Gateway:
    app: QuartTrio
    wiring: Wiring
    upstream: Upstream
    #: The dashboard's snapshot publisher (running), None with the dashboard off.
    dashboard: SnapshotPublisher | None = None

    async def post(self, path: str, body: object, **headers: str) -> Any:
        data = body if isinstance(body, bytes) else msgspec.json.encode(body)
        client = self.app.test_client()
        return await client.post(
            path, data=data, headers={"content-type": "application/json", **headers}
        )


#: The ``make_gateway`` fixture: ``(config_text, env, *, wall_clock) -> Gateway``.
MakeGateway = Callable[..., Gateway]


def build_gateway(
    nursery: trio.Nursery,
    config_text: str = BASE_CONFIG,
    env: dict[str, str] | None = None,
    *,
    wall_clock: Callable[[], float] = time.time,
) -> Gateway:
    """A gateway on ``config_text``; its disconnect watcher and dashboard publisher run in
    ``nursery``. Spend months follow ``wall_clock``."""
    upstream = Upstream()
    transport = httpx.MockTransport(upstream)
    http = upstream_http_client(transport)
    config = parse_config(config_text)
    wiring = Wiring.build(config, env or {}, http, transport=transport, wall_clock=wall_clock)
    nursery.start_soon(wiring.disconnects.run)
    if wiring.publisher is not None:
        nursery.start_soon(wiring.publisher.run)
    return Gateway(app=wiring.app(), wiring=wiring, upstream=upstream, dashboard=wiring.publisher)
