"""Who may call which route, from where (docs/api.md#routes, docs/api.md#cors,
docs/keys.md#roles, docs/keys.md#keys): admin-only metrics, hosts, CORS, concurrent requests per
key."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
import trio
import trio.testing

from tests.component.client import CHAT
from tests.component.fake_upstream import completion
from tests.component.in_process import Gateway
from tests.component.readings import error_of

KEYS = """
[server]
api_keys_env = "ADMIN_KEYS"
{server}
{metrics}
[health_check]
enabled = false
[[backends]]
name = "a"
url = "http://a.test"
type = "generic"
models = ["m"]
[[keys]]
name = "tenant"
key_env = "TENANT_KEY"
max_concurrent_requests = 2
"""
ENV = {"ADMIN_KEYS": "admin-key", "TENANT_KEY": "tenant-key"}


def keyed(make_gateway: Callable[..., Gateway], server: str = "", metrics: str = "") -> Gateway:
    gateway = make_gateway(KEYS.format(server=server, metrics=metrics), env=ENV)

    async def ok(request: httpx.Request, body: bytes) -> httpx.Response:
        return completion()

    gateway.upstream.handlers["a.test"] = ok
    return gateway


async def test_metrics_need_an_admin_key_when_keys_are_configured(
    make_gateway: Callable[..., Gateway],
) -> None:
    client = keyed(make_gateway).app.test_client()
    assert (await client.get("/metrics")).status_code == 401
    tenant = await client.get("/metrics", headers={"authorization": "Bearer tenant-key"})
    assert tenant.status_code == 403
    assert (await error_of(tenant))["code"] == "permission_denied"
    admin = await client.get("/metrics", headers={"authorization": "Bearer admin-key"})
    assert admin.status_code == 200
    assert b"nexus_requests_total" in await admin.get_data()


async def test_metrics_public_opens_them(make_gateway: Callable[..., Gateway]) -> None:
    client = keyed(make_gateway, metrics="[metrics]\npublic = true").app.test_client()
    assert (await client.get("/metrics")).status_code == 200
    assert (await client.get("/v1/stats")).status_code == 401


async def test_hosts_outside_allowed_hosts_are_refused(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(
        '[server]\nallowed_hosts = ["gw.example.com", "localhost"]\n'
        '[health_check]\nenabled = false\n[[backends]]\nname = "a"\nurl = "http://a.test"\n'
        'type = "generic"\nmodels = ["m"]\n'
    )
    client = gateway.app.test_client()
    refused = await client.get("/v1/models", headers={"host": "attacker.test"})
    assert refused.status_code == 400
    assert (await error_of(refused))["code"] == "host_not_allowed"
    posted = await client.post(
        "/v1/chat/completions",
        json=CHAT,
        headers={"host": "rebound.attacker.test:8000"},
    )
    assert posted.status_code == 400
    assert gateway.upstream.requests == []
    for host in ("gw.example.com", "gw.example.com:8000", "localhost:8000"):
        assert (await client.get("/v1/models", headers={"host": host})).status_code == 200


async def test_cors_preflight_and_answers_for_allowed_origins_only(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = keyed(make_gateway, server='cors_origins = ["https://app.example.com"]')
    client = gateway.app.test_client()
    preflight = {
        "origin": "https://app.example.com",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
    }
    answer = await client.options("/v1/chat/completions", headers=preflight)
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == "https://app.example.com"
    assert answer.headers["access-control-allow-headers"] == "authorization, content-type"
    other = await client.options(
        "/v1/chat/completions", headers={**preflight, "origin": "https://evil.test"}
    )
    assert other.status_code == 403
    assert "access-control-allow-origin" not in other.headers
    response = await gateway.post(
        "/v1/chat/completions",
        CHAT,
        authorization="Bearer tenant-key",
        origin="https://app.example.com",
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "x-nexus-backend" in response.headers["access-control-expose-headers"]
    refused = await client.get("/v1/models", headers={"origin": "https://app.example.com"})
    assert refused.status_code == 401  # a browser can read why
    assert refused.headers["access-control-allow-origin"] == "https://app.example.com"


async def test_no_cors_headers_without_configured_origins(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = keyed(make_gateway)
    client = gateway.app.test_client()
    preflight = {"origin": "https://app.example.com", "access-control-request-method": "POST"}
    answer = await client.options("/v1/chat/completions", headers=preflight)
    assert answer.status_code == 403
    response = await gateway.post(
        "/v1/chat/completions", CHAT, authorization="Bearer tenant-key", origin="https://x.test"
    )
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


async def test_a_key_over_its_concurrent_requests_is_429_and_its_slots_come_back(
    make_gateway: Callable[..., Gateway], autojump_clock: trio.testing.MockClock
) -> None:
    gateway = keyed(make_gateway)
    release = trio.Event()
    both_held = trio.Event()
    held = 0

    async def slow(request: httpx.Request, body: bytes) -> httpx.Response:
        nonlocal held
        held += 1
        if held == 2:
            both_held.set()
        await release.wait()
        return completion()

    gateway.upstream.handlers["a.test"] = slow
    statuses: list[int] = []

    async def send() -> None:
        response = await gateway.post(
            "/v1/chat/completions", CHAT, authorization="Bearer tenant-key"
        )
        statuses.append(response.status_code)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        nursery.start_soon(send)
        await both_held.wait()
        third = await gateway.post("/v1/chat/completions", CHAT, authorization="Bearer tenant-key")
        assert third.status_code == 429
        assert third.headers["retry-after"] == "1"
        error = await error_of(third)
        assert (error["code"], error["type"]) == ("rate_limit_exceeded", "concurrent_requests")
        assert gateway.wiring.key_concurrency.in_flight("tenant") == 2
        release.set()
    assert statuses == [200, 200]
    assert gateway.wiring.key_concurrency.in_flight("tenant") == 0
    again = await gateway.post("/v1/chat/completions", CHAT, authorization="Bearer tenant-key")
    assert again.status_code == 200


@pytest.mark.parametrize("path", ["/health", "/health/live", "/", "/dashboard"])
async def test_open_routes_need_no_key(make_gateway: Callable[..., Gateway], path: str) -> None:
    client = keyed(make_gateway).app.test_client()
    assert (await client.get(path)).status_code == 200


async def test_websocket_upgrades_are_closed_before_any_route(
    make_gateway: Callable[..., Gateway],
) -> None:
    """No route speaks WebSocket: the upgrade is closed at the ASGI layer (the server answers
    403), never handed to the app unauthorised (docs/api.md#routes)."""
    gateway = keyed(make_gateway)
    sent: list[dict[str, object]] = []
    incoming = [{"type": "websocket.connect"}]

    async def receive() -> dict[str, object]:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": "/v1/stats",
        "raw_path": b"/v1/stats",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"gw.test")],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 8000),
        "subprotocols": [],
        "extensions": {},
    }
    with trio.fail_after(5):
        await gateway.app(scope, receive, send)  # type: ignore[arg-type]
    assert [message["type"] for message in sent] == ["websocket.close"]
