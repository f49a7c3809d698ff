"""The dashboard in process: the page, its event stream, auth, in-flight counting and drain."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import msgspec
import pytest
import trio

from nexus_trio.dashboard.page import ASSETS
from tests.component.client import CHAT, ASGICall
from tests.component.configs import BASE_CONFIG
from tests.component.fake_upstream import completion
from tests.component.in_process import Gateway

EVENTS = "/v1/dashboard/events"
AUTH = BASE_CONFIG.replace("[health_check]", '[server]\napi_keys_env = "KEYS"\n[health_check]')


def parse_events(data: bytes) -> list[tuple[str, Any]]:
    """The complete server-sent events in ``data``: (name, decoded JSON data)."""
    events = []
    for block in data.split(b"\n\n")[:-1]:
        name, _, rest = block.partition(b"\n")
        assert name.startswith(b"event: ")
        assert rest.startswith(b"data: ")
        events.append((name[7:].decode(), msgspec.json.decode(rest[6:])))
    return events


class EventReader:
    """Reads one dashboard stream driven through the ASGI app."""

    def __init__(self, call: ASGICall) -> None:
        self.call = call
        self.start: dict[str, Any] = {}
        self.buffer = b""
        self.complete = False

    async def next_event(self) -> tuple[str, Any]:
        while b"\n\n" not in self.buffer:
            message = await self.call.messages.receive()
            if message["type"] == "http.response.start":
                self.start = message
                continue
            self.buffer += message["body"]
            if not message.get("more_body", False):
                self.complete = True
                if b"\n\n" not in self.buffer:
                    raise EOFError
        block, _, self.buffer = self.buffer.partition(b"\n\n")
        return parse_events(block + b"\n\n")[0]

    async def next_named(self, name: str) -> Any:
        while True:
            event, data = await self.next_event()
            if event == name:
                return data


async def open_stream(
    nursery: trio.Nursery, gateway: Gateway, headers: list[tuple[bytes, bytes]] | None = None
) -> EventReader:
    call = ASGICall(gateway.app, EVENTS, b"", method="GET", headers=headers or [])
    await nursery.start(call.run)
    return EventReader(call)


async def test_page_and_assets_are_served_with_a_strict_policy(gateway: Gateway) -> None:
    client = gateway.app.test_client()
    for path in ("/", "/dashboard"):
        response = await client.get(path)
        assert response.status_code == 200
        assert response.content_type == "text/html; charset=utf-8"
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy
        assert "connect-src 'self'" in policy
        page = await response.get_data()
        assert b'src="dashboard/dashboard.js"' in page
        assert b"http://" not in page
        assert b"https://" not in page
    total = len(page)
    for name, kind in ASSETS.items():
        response = await client.get(f"/dashboard/{name}")
        assert response.status_code == 200
        assert response.headers["content-type"] == kind
        body = await response.get_data()
        assert b"https://" not in body
        total += len(body)
    assert total <= 200_000
    missing = await client.get("/dashboard/secrets.txt")
    assert missing.status_code == 404


async def test_disabled_dashboard_serves_nothing(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(BASE_CONFIG + "\n[dashboard]\nenabled = false\n")
    assert gateway.wiring.request_log is None
    client = gateway.app.test_client()
    assert (await client.get("/")).status_code == 404
    assert (await client.get(EVENTS)).status_code == 404
    gateway.upstream.handlers["a.test"] = _ok
    assert (await gateway.post("/v1/chat/completions", CHAT)).status_code == 200


async def _ok(request: httpx.Request, body: bytes) -> httpx.Response:
    return completion()


async def test_stream_sends_log_then_snapshots_with_new_requests(
    nursery: trio.Nursery, gateway: Gateway
) -> None:
    gateway.upstream.handlers["a.test"] = _ok
    assert (await gateway.post("/v1/chat/completions", CHAT)).status_code == 200
    reader = await open_stream(nursery, gateway)
    with trio.fail_after(5):
        name, log = await reader.next_event()
        assert name == "log"
        assert [(e["seq"], e["backend"], e["status"]) for e in log] == [(1, "a", 200)]
        assert set(log[0]) >= {"request_id", "route", "requested_model", "duration_ms"}
        first = await reader.next_named("snapshot")
    assert reader.start["status"] == 200
    assert (b"content-type", b"text/event-stream; charset=utf-8") in reader.start["headers"]
    assert first["state"] == "ready"
    assert [b["name"] for b in first["stats"]["backends"]] == ["a", "b"]
    assert set(first["backends"]) == {"a", "b"}
    assert len(first["backends"]["a"]["history"]["requests"]) == 60
    assert first["backends"]["a"]["history"]["requests"][-1] == 1
    # The stream is not a request in flight, and a proxy request shows in a later snapshot.
    assert gateway.wiring.state.in_flight.count == 0
    health = await gateway.app.test_client().get("/health")
    assert msgspec.json.decode(await health.get_data())["in_flight_requests"] == 0
    response = await gateway.post("/v1/chat/completions", CHAT, **{"x-request-id": "second"})
    assert response.status_code == 200
    with trio.fail_after(3):
        while True:
            snapshot = await reader.next_named("snapshot")
            if snapshot["requests"]:
                break
    assert [e["request_id"] for e in snapshot["requests"]] == ["second"]
    reader.call.gone.set()
    with trio.fail_after(2):
        await reader.call.finished.wait()
    assert gateway.dashboard is not None
    assert gateway.dashboard.connected == 0


async def test_listener_close_ends_the_stream_with_a_draining_event(
    nursery: trio.Nursery, gateway: Gateway
) -> None:
    reader = await open_stream(nursery, gateway)
    with trio.fail_after(5):
        await reader.next_named("snapshot")
        gateway.wiring.drain.close_listener(drain_timeout=30.0)
        assert await reader.next_named("end") == {"state": "draining"}
        await reader.call.finished.wait()
    assert reader.complete


async def test_drain_delay_keeps_streaming_and_shows_draining(
    nursery: trio.Nursery, gateway: Gateway
) -> None:
    reader = await open_stream(nursery, gateway)
    with trio.fail_after(5):
        assert (await reader.next_named("snapshot"))["state"] == "ready"
        gateway.wiring.drain.request()
        assert (await reader.next_named("snapshot"))["state"] == "draining"
    assert not reader.complete


@pytest.mark.parametrize("header", [None, "Bearer wrong"])
async def test_events_need_a_key_when_inbound_auth_is_on(
    make_gateway: Callable[..., Gateway], header: str | None
) -> None:
    gateway = make_gateway(AUTH, env={"KEYS": "k1"})
    client = gateway.app.test_client()
    response = await client.get(EVENTS, headers={} if header is None else {"authorization": header})
    assert response.status_code == 401
    error = msgspec.json.decode(await response.get_data())["error"]
    assert error["code"] == "invalid_api_key"
    # The page itself holds no data and stays open.
    assert (await client.get("/")).status_code == 200


async def test_events_with_a_valid_key_stream(
    nursery: trio.Nursery, make_gateway: Callable[..., Gateway]
) -> None:
    gateway = make_gateway(AUTH, env={"KEYS": "k1"})
    reader = await open_stream(nursery, gateway, [(b"authorization", b"Bearer k1")])
    with trio.fail_after(5):
        assert (await reader.next_event())[0] == "log"
    assert reader.start["status"] == 200
    reader.call.gone.set()


async def test_connections_beyond_the_limit_are_refused(
    nursery: trio.Nursery, make_gateway: Callable[..., Gateway]
) -> None:
    gateway = make_gateway(BASE_CONFIG + "\n[dashboard]\nmax_connections = 1\n")
    first = await open_stream(nursery, gateway)
    with trio.fail_after(5):
        await first.next_named("snapshot")
    response = await gateway.app.test_client().get(EVENTS)
    assert response.status_code == 503
    error = msgspec.json.decode(await response.get_data())["error"]
    assert error["code"] == "overloaded"
    first.call.gone.set()


async def test_requests_without_a_valid_key_leave_the_request_log_alone(
    nursery: trio.Nursery, make_gateway: Callable[..., Gateway]
) -> None:
    """Refused 401, or refused before the key is read (ambiguous framing here)."""
    gateway = make_gateway(AUTH + "\n[dashboard]\nrequest_log_size = 3\n", env={"KEYS": "k1"})
    gateway.upstream.handlers["a.test"] = _ok
    for index in range(3):
        headers = {"authorization": "Bearer k1", "x-request-id": f"real-{index}"}
        assert (await gateway.post("/v1/chat/completions", CHAT, **headers)).status_code == 200
    for index in range(12):
        headers = {"x-request-id": f"refused-{index}"}
        if index % 3 == 1:
            headers["authorization"] = "Bearer wrong"
        if index % 3 == 2:
            headers["transfer-encoding"] = "chunked"  # with Content-Length: refused at once
            headers["content-length"] = str(len(msgspec.json.encode(CHAT)))
        response = await gateway.post("/v1/chat/completions", CHAT, **headers)
        assert response.status_code == (400 if index % 3 == 2 else 401)
    reader = await open_stream(nursery, gateway, [(b"authorization", b"Bearer k1")])
    with trio.fail_after(5):
        name, log = await reader.next_event()
    assert name == "log"
    assert [entry["request_id"] for entry in log] == ["real-0", "real-1", "real-2"]
    # Still counted: in the totals and the metrics.
    assert gateway.wiring.state.totals.client_errors == 12
    registry = gateway.wiring.metrics.registry
    labels = {"model": "none", "backend": "none", "code": "4xx", "stream": "false"}
    assert registry.get_sample_value("nexus_requests_total", {**labels, "key": "default"}) == 12
    reader.call.gone.set()
