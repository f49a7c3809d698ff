"""Roles (docs/keys.md#roles): a tenant key reads only its own requests and spend on
``/v1/stats``, in ``nexus-trio status`` and on the dashboard; an admin key reads everyone's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import msgspec
import pytest
import trio

from nexus_trio.asgi.context import RequestContext
from nexus_trio.cli.status_report import render_status
from nexus_trio.errors import AuthenticationFailed
from nexus_trio.keys import ClientKey
from nexus_trio.stats.document import viewer
from tests.component.client import CHAT, PATH, ASGICall, bearer
from tests.component.fake_upstream import completion
from tests.component.in_process import Gateway
from tests.component.test_dashboard import EVENTS, EventReader, open_stream

CONFIG = """
[health_check]
enabled = false
[server]
api_keys_env = "OLD_KEYS"
[budget]
monthly_limit_usd = 1000
[dashboard]
max_connections_per_key = 1
[[backends]]
name = "cloud"
url = "http://cloud.test"
type = "openai"
models = ["m", "n"]
[[pricing]]
backend = "cloud"
input_usd_per_million = 1000000
output_usd_per_million = 1000000
[[keys]]
name = "team-a"
key_env = "A_KEY"
monthly_budget_usd = 50
[[keys]]
name = "team-b"
key_env = "B_KEY"
[[keys]]
name = "boss"
key_env = "BOSS_KEY"
admin = true
"""
ENV = {"OLD_KEYS": "old", "A_KEY": "a", "B_KEY": "b", "BOSS_KEY": "boss"}


@pytest.fixture
async def shared(make_gateway: Callable[..., Gateway]) -> Gateway:
    """Tenant a sent 2 requests for m, tenant b 1 for n, the old admin key 1 for m ($5 each)."""
    gateway = make_gateway(CONFIG, env=ENV)

    async def answer(request: httpx.Request, body: bytes) -> httpx.Response:
        return completion()  # 3 + 2 tokens: $5

    gateway.upstream.handlers["cloud.test"] = answer
    for token, model, request_id in (("a", "m", "a1"), ("a", "m", "a2"), ("b", "n", "b1")):
        headers = {**bearer(token), "x-request-id": request_id}
        response = await gateway.post(PATH, {**CHAT, "model": model}, **headers)
        assert response.status_code == 200
    assert (await gateway.post(PATH, CHAT, **bearer("old"))).status_code == 200
    return gateway


async def stats_as(gateway: Gateway, token: str) -> tuple[bytes, dict[str, Any]]:
    response = await gateway.app.test_client().get("/v1/stats", headers=bearer(token))
    assert response.status_code == 200
    body = await response.get_data()
    return body, msgspec.json.decode(body)


async def test_a_tenant_reads_only_its_own_requests_and_spend(shared: Gateway) -> None:
    body, stats = await stats_as(shared, "a")
    assert stats["role"] == "tenant"
    for other in (b"team-b", b"boss", b"default"):
        assert other not in body
    assert stats["total_requests"] == 2
    assert stats["requests"] | {"in_flight": 0} == {
        "total": 2, "success": 2, "errors": 0, "client_errors": 0, "cancelled": 0, "in_flight": 0
    }  # fmt: skip
    assert [(m["name"], m["request_count"]) for m in stats["models"]] == [("m", 2), ("n", 0)]
    # Backends stay the gateway's: every request the backend served.
    assert [(b["name"], b["request_count"]) for b in stats["backends"]] == [("cloud", 4)]
    spend = stats["spend"]
    assert (spend["total_usd"], spend["requests"]) == (10.0, 2)
    assert spend["by_key"] == {"team-a": 10.0}
    assert (spend["by_backend"], spend["by_model"]) == ({"cloud": 10.0}, {"m": 10.0})
    assert spend["budget"] == {
        "limit_usd": None, "soft_limit_usd": None, "spent_usd": None, "remaining_usd": None,
        "state": "ok", "hard_limit_action": "local_only",
    }  # fmt: skip
    assert spend["key_budgets"] == {
        "team-a": {
            "limit_usd": 50.0, "soft_limit_usd": 40.0, "spent_usd": 10.0,
            "remaining_usd": 40.0, "state": "ok",
        }
    }  # fmt: skip

    body, stats = await stats_as(shared, "b")
    assert b"team-a" not in body
    assert (stats["role"], stats["total_requests"]) == ("tenant", 1)
    assert [(m["name"], m["request_count"]) for m in stats["models"]] == [("m", 0), ("n", 1)]
    assert (stats["spend"]["by_key"], stats["spend"]["by_model"]) == ({"team-b": 5.0}, {"n": 5.0})
    assert stats["spend"]["key_budgets"] == {}


@pytest.mark.parametrize("token", ["boss", "old"])
async def test_an_admin_key_reads_every_tenant(shared: Gateway, token: str) -> None:
    _, stats = await stats_as(shared, token)
    assert (stats["role"], stats["total_requests"]) == ("admin", 4)
    assert [(m["name"], m["request_count"]) for m in stats["models"]] == [("m", 3), ("n", 1)]
    spend = stats["spend"]
    assert spend["by_key"] == {"default": 5.0, "team-a": 10.0, "team-b": 5.0}
    assert (spend["budget"]["limit_usd"], spend["budget"]["spent_usd"]) == (1000.0, 20.0)
    assert list(spend["key_budgets"]) == ["team-a"]


async def test_status_with_a_tenant_key_shows_its_own_and_says_so(shared: Gateway) -> None:
    _, stats = await stats_as(shared, "a")
    report = render_status("http://gw", stats)
    assert "4 requests" not in report
    assert "2 requests (2 ok" in report
    assert "as a tenant key" in report
    assert "key budget team-a $50.00: ok, $40.00 left" in report
    assert "gateway budget: ok (past it: local_only)" in report
    assert "team-b" not in report
    _, everything = await stats_as(shared, "boss")
    admin_report = render_status("http://gw", everything)
    assert "tenant" not in admin_report
    assert "team-a $10.00, team-b $5.00" in admin_report


async def test_who_sees_what_is_decided_by_the_key_denying_by_default(
    shared: Gateway, make_gateway: Callable[..., Gateway]
) -> None:
    def context(key: ClientKey | None) -> RequestContext:
        ctx = RequestContext(request_id="r", method="GET", path="/v1/stats", started=0.0)
        ctx.key = key
        return ctx

    tenant = ClientKey("team-a", shared.wiring.config.keys[0])
    assert viewer(shared.wiring.generations.current.keyring, context(tenant)) is tenant
    assert (
        viewer(
            shared.wiring.generations.current.keyring,
            context(ClientKey("boss", shared.wiring.config.keys[2])),
        )
        is None
    )
    assert viewer(shared.wiring.generations.current.keyring, context(ClientKey("default"))) is None
    # Keys configured but none presented: refused, whatever let the request through.
    with pytest.raises(AuthenticationFailed):
        viewer(shared.wiring.generations.current.keyring, context(None))
    # Without inbound keys there are no tenants.
    assert viewer(make_gateway().wiring.generations.current.keyring, context(None)) is None


async def snapshots_until(reader: EventReader, request_id: str) -> list[dict[str, Any]]:
    """The request-log entries of every snapshot up to the one carrying ``request_id``."""
    entries: list[dict[str, Any]] = []
    while not any(entry["request_id"] == request_id for entry in entries):
        entries += (await reader.next_named("snapshot"))["requests"]
    return entries


async def test_a_tenants_dashboard_shows_only_its_requests_and_spend(
    nursery: trio.Nursery, shared: Gateway
) -> None:
    tenant = await open_stream(nursery, shared, [(b"authorization", b"Bearer a")])
    admin = await open_stream(nursery, shared, [(b"authorization", b"Bearer boss")])
    with trio.fail_after(5):
        name, log = await tenant.next_event()
        assert name == "log"
        assert [entry["request_id"] for entry in log] == ["a1", "a2"]
        assert all("key" not in entry for entry in log)
        snapshot = await tenant.next_named("snapshot")
        _, admin_log = await admin.next_event()
        await admin.next_named("snapshot")
    assert [e["key"] for e in admin_log] == ["team-a", "team-a", "team-b", "default"]
    stats = snapshot["stats"]
    assert (stats["role"], stats["total_requests"]) == ("tenant", 2)
    assert stats["spend"]["by_key"] == {"team-a": 10.0}
    assert stats["spend"]["budget"]["spent_usd"] is None
    assert list(snapshot["backends"]) == ["cloud"]
    assert b"team-b" not in msgspec.json.encode(snapshot)
    # Later requests: the other tenant's first, so it would show before tenant a's own.
    for token, request_id in (("b", "b-later"), ("a", "a-later")):
        headers = {**bearer(token), "x-request-id": request_id}
        assert (await shared.post(PATH, CHAT, **headers)).status_code == 200
    with trio.fail_after(5):
        seen = await snapshots_until(tenant, "a-later")
        seen_by_admin = await snapshots_until(admin, "a-later")
    assert [entry["request_id"] for entry in seen] == ["a-later"]
    assert [entry["request_id"] for entry in seen_by_admin] == ["b-later", "a-later"]
    # One view per tenant key and snapshot, derived from the shared snapshot.
    assert shared.dashboard is not None
    latest = shared.dashboard.latest
    assert latest is not None
    assert list(latest.tenant_events) == ["team-a"]
    tenant.call.gone.set()
    admin.call.gone.set()


async def test_dashboards_are_capped_per_tenant_key(nursery: trio.Nursery, shared: Gateway) -> None:
    first = await open_stream(nursery, shared, [(b"authorization", b"Bearer a")])
    with trio.fail_after(5):
        await first.next_event()
    client = shared.app.test_client()
    with trio.fail_after(5):  # a stream let in would never end
        refused = await client.get(EVENTS, headers=bearer("a"))
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "5"
    error = msgspec.json.decode(await refused.get_data())["error"]
    assert error["code"] == "too_many_dashboards"
    assert "dashboard.max_connections_per_key" in error["message"]
    # Another tenant, and admin keys (bounded by max_connections only), still get in.
    others = [
        await open_stream(nursery, shared, [(b"authorization", f"Bearer {token}".encode())])
        for token in ("b", "boss", "boss")
    ]
    with trio.fail_after(5):
        for reader in others:
            assert (await reader.next_event())[0] == "log"
    # The slot is the tenant's again once its dashboard leaves.
    first.call.gone.set()
    with trio.fail_after(5):
        await first.call.finished.wait()
    again = await open_stream(nursery, shared, [(b"authorization", b"Bearer a")])
    with trio.fail_after(5):
        assert (await again.next_event())[0] == "log"
    for reader in (*others, again):
        reader.call.gone.set()


async def test_dashboards_opened_at_once_are_held_to_the_cap(
    nursery: trio.Nursery, shared: Gateway
) -> None:
    """Streams opened in the same instant are counted before any of them awaits."""
    readers = [
        EventReader(ASGICall(shared.app, EVENTS, b"", method="GET", headers=bearer_pairs("a")))
        for _ in range(4)
    ]
    for reader in readers:
        nursery.start_soon(reader.call.run)
    statuses = []
    with trio.fail_after(5):
        for reader in readers:
            message = await reader.call.messages.receive()
            assert message["type"] == "http.response.start"
            statuses.append(message["status"])
    assert sorted(statuses) == [200, 429, 429, 429]
    for reader in readers:
        reader.call.gone.set()


def bearer_pairs(token: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {token}".encode())]
