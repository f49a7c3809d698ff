"""Loading and unloading models (docs/routing.md#model-lifecycle): the admin routes, their
refusals, and ``warm_models`` loaded again after an eviction. Upstreams are fakes; time is
virtual where the watcher runs."""

from __future__ import annotations

import httpx
import msgspec
import pytest
import trio
import trio.testing

from nexus_trio.registry import HealthState, ModelResidency, Residency
from tests.component.configs import config_toml, fake_backend
from tests.component.fake_upstream import ChunkStream, raw_response, stream_response
from tests.component.in_process import Gateway, MakeGateway

ADMIN = {"authorization": "Bearer admin-key"}
KEYS = '[server]\napi_keys_env = "ADMIN_KEYS"\n'
ENV = {"ADMIN_KEYS": "admin-key"}


def typed(name: str, kind: str, *models: str, extra: str = "") -> str:
    entry = fake_backend(name, 50, models or ("m",), extra)
    return entry.replace('"generic"', f'"{kind}"')


def recorder(gateway: Gateway, host: str, *, listing: bytes = b'{"data": []}') -> list[tuple]:
    """Answer every request to ``host`` (200, ``listing`` for ``/v1/models``, an endless quiet
    event stream for ``/models/sse``); return the (method, path, body) seen."""
    seen: list[tuple[str, str, object]] = []

    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        path = request.url.path
        if path == "/models/sse":
            return stream_response(ChunkStream([trio.Event()]))
        seen.append((request.method, path, msgspec.json.decode(body) if body else None))
        if path == "/v1/models":
            return raw_response(200, listing)
        return raw_response(200, b'{"success": true}')

    gateway.upstream.handlers[host] = handler
    return seen


@pytest.mark.parametrize(
    ("kind", "action", "sent"),
    [
        ("llamacpp", "load", ("POST", "/models/load", {"model": "m"})),
        ("llamacpp", "unload", ("POST", "/models/unload", {"model": "m"})),
        (
            "ollama",
            "load",
            ("POST", "/api/generate", {"model": "m", "keep_alive": -1, "stream": False}),
        ),
        (
            "ollama",
            "unload",
            ("POST", "/api/generate", {"model": "m", "keep_alive": 0, "stream": False}),
        ),
    ],
)
async def test_the_admin_routes_send_the_servers_order(
    make_gateway: MakeGateway, kind: str, action: str, sent: tuple
) -> None:
    gateway = make_gateway(config_toml(typed("a", kind), head=KEYS), env=ENV)
    seen = recorder(gateway, "a.test")
    order = {"backend": "a", "model": "m"}
    response = await gateway.post(f"/admin/models/{action}", order, **ADMIN)
    assert response.status_code == 200
    state = {"load": "loading" if kind == "llamacpp" else "loaded", "unload": "unloaded"}[action]
    assert await response.get_json() == {"backend": "a", "model": "m", "residency": state}
    assert seen == [sent]


@pytest.mark.parametrize(
    ("order", "headers", "status", "code"),
    [
        ({"backend": "a", "model": "m"}, {}, 401, "invalid_api_key"),
        ({"backend": "nope", "model": "m"}, ADMIN, 404, "not_found"),
        ({"backend": "g", "model": "m"}, ADMIN, 400, "invalid_value"),
        ({"backend": "a", "model": "other"}, ADMIN, 400, "invalid_value"),
        ({"backend": "a"}, ADMIN, 400, "invalid_value"),
        (b"x" * 5000, ADMIN, 400, "invalid_value"),
    ],
)
async def test_orders_that_cannot_be_given_are_refused(
    make_gateway: MakeGateway, order: object, headers: dict[str, str], status: int, code: str
) -> None:
    config = config_toml(typed("a", "llamacpp"), fake_backend("g"), head=KEYS)
    gateway = make_gateway(config, env=ENV)
    seen = recorder(gateway, "a.test")
    response = await gateway.post("/admin/models/load", order, **headers)
    assert response.status_code == status
    assert (await response.get_json())["error"]["code"] == code
    assert seen == []


async def test_a_server_refusing_the_order_is_a_502(make_gateway: MakeGateway) -> None:
    gateway = make_gateway(config_toml(typed("a", "llamacpp"), head=KEYS), env=ENV)

    async def refuse(request: httpx.Request, body: bytes) -> httpx.Response:
        return raw_response(404, b'{"error": {"message": "File Not Found"}}')

    gateway.upstream.handlers["a.test"] = refuse
    order = {"backend": "a", "model": "m"}
    response = await gateway.post("/admin/models/load", order, **ADMIN)
    assert response.status_code == 502


async def test_a_warm_model_is_loaded_at_start_and_again_after_an_eviction(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock
) -> None:
    """The router lists ``m`` unloaded: the watcher loads it at once. Then an event says it was
    evicted while a request was in flight: nothing until the backend is idle, then a load
    within one interval."""
    warm = 'warm_models = ["m"]'
    health = "[health_check]\ninterval_seconds = 10\n"
    gateway = make_gateway(config_toml(typed("r", "llamacpp", "m", "n", extra=warm), health=health))
    listing = {"data": [{"id": m, "status": {"value": "unloaded"}} for m in ("m", "n")]}
    seen = recorder(gateway, "r.test", listing=msgspec.json.encode(listing))
    backend = gateway.wiring.registry.get("r")
    assert backend is not None
    backend.discovered_models = frozenset({"m", "n"})
    backend.health = HealthState.HEALTHY  # as the health checker (not running here) would say
    loads = [("POST", "/models/load", {"model": "m"})]
    async with trio.open_nursery() as nursery:
        await nursery.start(gateway.wiring.residency.run)
        await trio.sleep(0.5)
        assert [entry for entry in seen if entry[0] == "POST"] == loads
        backend.residency["m"] = ModelResidency(Residency.LOADED)
        backend.counters.pending = 1  # a request for "n" is running
        backend.residency["m"] = ModelResidency(Residency.UNLOADED)
        await trio.sleep(15)
        assert [entry for entry in seen if entry[0] == "POST"] == loads
        backend.counters.pending = 0
        await trio.sleep(10)
        assert [entry for entry in seen if entry[0] == "POST"] == loads * 2
        nursery.cancel_scope.cancel()
