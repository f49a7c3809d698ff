"""Residency through the real wiring (docs/routing.md#residency, docs/quality.md#cold-starts):
what llama.cpp routers and Ollama report reaches the registry, routing prefers the warm
backend, and a cold start gets its allowance and is recorded apart from the backend's TTFT.
Time is virtual (``autojump_clock``)."""

from __future__ import annotations

import logging

import httpx
import msgspec
import pytest
import trio
import trio.testing

from nexus_trio.config import parse_config
from nexus_trio.registry import ModelResidency, Residency
from tests.component.client import STREAM_CHAT
from tests.component.configs import config_toml, fake_backend
from tests.component.fake_upstream import (
    DONE,
    ROLE_ONLY,
    ChunkStream,
    Handler,
    chunk,
    raw_response,
    script,
    sse,
    stream_response,
)
from tests.component.in_process import Gateway, MakeGateway
from tests.component.readings import backend_entry, quality, sample, stats, tick


def typed(name: str, kind: str, *models: str, priority: int = 50) -> str:
    """A ``[[backends]]`` entry of type ``kind`` at ``http://<name>.test``."""
    return fake_backend(name, priority, models or ("m",)).replace('"generic"', f'"{kind}"')


def listing(**states: str) -> httpx.Response:
    data = [{"id": model, "status": {"value": state}} for model, state in states.items()]
    return raw_response(200, msgspec.json.encode({"object": "list", "data": data}))


def status_event(model: str, status: str) -> bytes:
    event = {"model": model, "event": "status_change", "data": {"status": status}}
    return b"data: " + msgspec.json.encode(event) + b"\n\n"


def residency(gateway: Gateway, backend: str, model: str = "m") -> Residency:
    found = gateway.wiring.registry.get(backend)
    assert found is not None
    return found.residency_of(model)


async def test_a_router_change_arrives_through_its_event_stream(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock
) -> None:
    """The model list says ``m`` is loaded; the event stream then says it was unloaded and
    ``n`` loaded: the registry follows each event as it comes, long before a poll."""
    gateway = make_gateway(config_toml(typed("r", "llamacpp", "m", "n")))
    later = trio.Event()
    events = ChunkStream([status_event("m", "unloaded"), later, status_event("n", "loaded")])

    async def router(request: httpx.Request, body: bytes) -> httpx.Response:
        if request.url.path == "/models/sse":
            return stream_response(events)
        return listing(m="loaded", n="unloaded")

    gateway.upstream.handlers["r.test"] = router
    async with trio.open_nursery() as nursery:
        await nursery.start(gateway.wiring.residency.run)
        await trio.sleep(0.5)
        assert (residency(gateway, "r", "m"), residency(gateway, "r", "n")) == (
            Residency.UNLOADED,
            Residency.UNLOADED,
        )
        later.set()
        await trio.sleep(0.1)
        assert residency(gateway, "r", "n") is Residency.LOADED
        nursery.cancel_scope.cancel()


async def test_ollama_ps_gives_loaded_models_with_vram_and_expiry(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock
) -> None:
    gateway = make_gateway(config_toml(typed("o", "ollama", "m", "n")))
    ps = {"models": [{"name": "m", "size_vram": 1234, "expires_at": "2030-01-01T00:00:00Z"}]}
    gateway.upstream.handlers["o.test"] = script(lambda: raw_response(200, msgspec.json.encode(ps)))
    async with trio.open_nursery() as nursery:
        await nursery.start(gateway.wiring.residency.run)
        await trio.sleep(0.1)
        nursery.cancel_scope.cancel()
    backend = gateway.wiring.registry.get("o")
    assert backend is not None
    assert backend.residency == {
        "m": ModelResidency(Residency.LOADED, 1234, 1893456000.0),
        "n": ModelResidency(Residency.UNLOADED),
    }


def slow_stream(seconds: float) -> httpx.Response:
    """Nothing for ``seconds`` (a server loading the model), then a short answer."""
    events = [seconds, *sse(ROLE_ONLY, chunk("Hi"), chunk(None, "stop")), DONE]
    return stream_response(ChunkStream(events))


async def test_routing_prefers_the_warm_backend(make_gateway: MakeGateway) -> None:
    # "a" is preferred by priority, but only "b" has the model loaded.
    config = config_toml(fake_backend("a", priority=10), fake_backend("b", priority=50))
    gateway = make_gateway(config)
    gateway.upstream.handlers["a.test"] = gateway.upstream.handlers["b.test"] = script(
        lambda: slow_stream(0.0)
    )
    registry = gateway.wiring.registry
    for name, state in (("a", Residency.UNLOADED), ("b", Residency.LOADED)):
        backend = registry.get(name)
        assert backend is not None
        backend.residency["m"] = ModelResidency(state)
    response = await gateway.post("/v1/chat/completions", STREAM_CHAT)
    await response.get_data()
    assert (response.headers["x-nexus-backend"], response.headers["x-nexus-route-reason"]) == (
        "b",
        "warm",
    )


@pytest.mark.parametrize("allowance", [0.0, 120.0])
async def test_a_cold_start_gets_its_allowance_and_is_not_the_backends_ttft(
    make_gateway: MakeGateway,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    allowance: float,
) -> None:
    """The model loads for 70 s, past the 60 s first-token timeout: with the allowance the
    stream goes through, its TTFT is a cold start (not the backend's TTFT, not in quality),
    and the model is loaded afterwards; without it the attempt times out."""
    head = f"[server]\ncold_start_allowance_seconds = {allowance}\n"
    gateway = make_gateway(config_toml(typed("a", "llamacpp"), head=head))
    gateway.upstream.handlers["a.test"] = script(lambda: slow_stream(70.0))
    backend = gateway.wiring.registry.get("a")
    assert backend is not None
    backend.residency["m"] = ModelResidency(Residency.UNLOADED)
    caplog.set_level(logging.INFO, logger="nexus_trio.access")
    response = await gateway.post("/v1/chat/completions", STREAM_CHAT)
    data = await response.get_data()
    (logged,) = [r for r in caplog.records if r.name == "nexus_trio.access"]
    assert logged.access.cold_start is True  # type: ignore[attr-defined]
    if not allowance:
        assert response.status_code == 504, data
        assert backend.cold_starts == 0
        return
    assert response.status_code == 200
    assert b"Hi" in data
    assert (backend.cold_starts, backend.cold_start_ms_total) == (1, 70000.0)
    assert backend.counters.ttft_ewma_ms is None
    assert backend.residency_of("m") is Residency.LOADED
    tick(gateway)
    assert quality(gateway).avg_ttft_ms is None
    assert quality(gateway).successes_1h == 1
    labels = {"backend": "a", "model": "m"}
    assert sample(gateway, "nexus_cold_start_seconds_sum", **labels) == pytest.approx(70.0)
    assert sample(gateway, "nexus_agent_ttft_seconds_count", **labels) is None
    assert sample(gateway, "nexus_model_loaded", **labels) == 1
    entry = backend_entry(await stats(gateway), "a")
    assert (entry["cold_starts"], entry["avg_cold_start_ms"]) == (1, 70000.0)
    assert entry["agents"][0]["residency"] == {
        "state": "loaded",
        "vram_bytes": None,
        "expires_at": None,
    }


async def test_a_reload_starts_watching_a_new_backend_and_stops_a_removed_one(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock
) -> None:
    health = "[health_check]\ninterval_seconds = 10\n"
    gateway = make_gateway(config_toml(typed("o", "ollama"), health=health))
    asked: list[str] = []

    def ps_of(host: str) -> Handler:
        async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
            asked.append(host)
            return raw_response(200, b'{"models": []}')

        return handler

    gateway.upstream.handlers["o.test"] = ps_of("o")
    gateway.upstream.handlers["p.test"] = ps_of("p")
    async with trio.open_nursery() as nursery:
        await nursery.start(gateway.wiring.residency.run)
        await trio.sleep(1)
        assert asked == ["o"]
        gateway.wiring.apply_config(parse_config(config_toml(typed("p", "ollama"), health=health)))
        await trio.sleep(25)  # p asked at once and each 10 s; o never again
        assert asked == ["o", "p", "p", "p"]
        nursery.cancel_scope.cancel()


async def test_a_model_the_gateway_is_loading_stays_loading_until_ollama_lists_it(
    make_gateway: MakeGateway,
) -> None:
    gateway = make_gateway(config_toml(typed("o", "ollama")))
    gateway.upstream.handlers["o.test"] = script(lambda: raw_response(200, b'{"models": []}'))
    backend = gateway.wiring.registry.get("o")
    assert backend is not None
    backend.residency["m"] = ModelResidency(Residency.LOADING)
    backend.counters.pending = 1  # the request that made it load
    await gateway.wiring.residency.refresh(backend)
    assert backend.residency_of("m") is Residency.LOADING
    backend.counters.pending = 0  # it ended, and /api/ps still does not list the model
    await gateway.wiring.residency.refresh(backend)
    assert backend.residency_of("m") is Residency.UNLOADED
