"""Residency with a real llama.cpp router (docs/routing.md#residency,
docs/routing.md#warm-preference, docs/quality.md#cold-starts, docs/routing.md#model-lifecycle):
a router with two models (the SmolLM2 file under the names ``alpha`` and ``beta``) and
``--models-max 1``, beside a one-model server ``single`` serving ``alpha``.

Health checks run every 30 s, so every change the gateway sees within a second came through
the router's event stream.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable
from typing import Any

import httpx
import pytest
import trio

from tests.real.gateway_client import metric_value
from tests.real.llama_server import LlamaServer, ServerFactory, real_config
from tests.system.gateway_process import GatewayFactory, GatewayProcess
from tests.system.polling import poll

pytestmark = pytest.mark.real

ADMIN = {"authorization": "Bearer admin-key"}
ENV = {"RESIDENCY_TEST_KEYS": "admin-key"}
SETTINGS = {
    "server": 'api_keys_env = "RESIDENCY_TEST_KEYS"',
    "health": "interval_seconds = 30",
    "extra": '[routing]\nstrategy = "priority_only"\n[quality]\nmetrics_interval_seconds = 0.2',
}
#: The longest the gateway may take to see a change the router made.
SEEN_WITHIN = 1.0


async def gateway_json(gateway: GatewayProcess, path: str) -> Any:
    async with httpx.AsyncClient(headers=ADMIN) as client:
        response = await client.get(f"{gateway.url}{path}")
    response.raise_for_status()
    return response.json()


async def router_state(router: LlamaServer, model: str) -> str:
    listing = await router.get_json("/v1/models")
    (entry,) = [entry for entry in listing["data"] if entry["id"] == model]
    state: str = entry["status"]["value"]
    return state


async def gateway_state(gateway: GatewayProcess, model: str, backend: str = "router") -> str:
    stats = await gateway_json(gateway, "/v1/stats")
    (entry,) = [b for b in stats["backends"] if b["name"] == backend]
    (agent,) = [a for a in entry["agents"] if a["model"] == model]
    state: str = agent["residency"]["state"]
    return state


async def lag(router: LlamaServer, gateway: GatewayProcess, model: str, state: str) -> float:
    """Seconds between the router and the gateway both saying ``model`` is ``state``:
    how late the gateway learned it (negative if it was first)."""
    seen: dict[str, float] = {}

    async def both() -> bool:
        if "router" not in seen and await router_state(router, model) == state:
            seen["router"] = trio.current_time()
        if "gateway" not in seen and await gateway_state(gateway, model) == state:
            seen["gateway"] = trio.current_time()
        return len(seen) == 2

    with trio.fail_after(30):
        await poll(both)
    return seen["gateway"] - seen["router"]


async def chat(gateway: GatewayProcess, model: str, *, stream: bool = False) -> tuple[str, str]:
    """One short chat; the backend that served it and the route reason."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Say hi."}],
        "max_tokens": 4,
        "stream": stream,
    }
    async with httpx.AsyncClient(headers=ADMIN, timeout=60) as client:
        response = await client.post(f"{gateway.url}/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return response.headers["x-nexus-backend"], response.headers["x-nexus-route-reason"]


async def models_command(gateway: GatewayProcess, action: str, model: str) -> str:
    """``nexus-trio models <action> router <model>`` against the gateway; its output."""
    command = [sys.executable, "-m", "nexus_trio", "models", action, "router", model]
    command += ["--url", gateway.url]
    env = {**os.environ, "NEXUS_ADMIN_KEY": "admin-key"}
    done = await trio.run_process(command, capture_stdout=True, capture_stderr=True, env=env)
    return done.stdout.decode()


async def test_the_gateway_follows_a_router_and_prefers_warm(
    start_llama: ServerFactory, start_gateway: GatewayFactory
) -> None:
    router = await start_llama("router", router_models=("alpha", "beta"))
    single = await start_llama("alpha", name="single")
    config = real_config((router, "priority = 10"), (single, "priority = 50"), **SETTINGS)
    gateway = await start_gateway(config, env=ENV)
    with trio.fail_after(10):
        await poll(lambda: _is(gateway_state(gateway, "alpha"), "unloaded"))
        await poll(lambda: _is(gateway_state(gateway, "alpha", "single"), "loaded"))

    # alpha is cold on the preferred router: the warm one-model server serves it
    assert await chat(gateway, "alpha") == ("single", "warm")

    # loaded by hand (the command line), seen within a second; then the router serves it
    said = await models_command(gateway, "load", "alpha")
    assert said in (
        "backend 'router': model 'alpha' is loading\n",
        "backend 'router': model 'alpha' is loaded\n",
    )
    assert await lag(router, gateway, "alpha", "loaded") < SEEN_WITHIN
    assert await chat(gateway, "alpha") == ("router", "priority")

    # beta evicts alpha: a cold start, not the router's TTFT; the eviction seen within a second
    assert await chat(gateway, "beta", stream=True) == ("router", "only_candidate")
    assert await lag(router, gateway, "alpha", "unloaded") < SEEN_WITHIN
    assert await chat(gateway, "alpha") == ("single", "warm")
    text = await _metrics(gateway)
    labels = {"backend": "router", "model": "beta"}
    assert metric_value(text, "nexus_cold_start_seconds_count", **labels) == 1
    assert metric_value(text, "nexus_agent_ttft_seconds_count", **labels) == 0
    assert metric_value(text, "nexus_model_loaded", backend="router", model="beta") == 1
    entry = await router_entry(gateway)
    assert entry["cold_starts"] == 1
    assert entry["quality"]["avg_ttft_ms"] is None  # its only stream was the cold start
    assert entry["quality"]["error_rate_1h"] == 0.0


async def router_entry(gateway: GatewayProcess) -> Any:
    """The router's ``/v1/stats`` entry once quality has counted its 2 requests."""
    found: list[Any] = []

    async def counted() -> bool:
        stats = await gateway_json(gateway, "/v1/stats")
        found[:] = [b for b in stats["backends"] if b["name"] == "router"]
        quality = found[0]["quality"]
        return quality is not None and quality["request_count_1h"] == 2

    with trio.fail_after(10):
        await poll(counted)
    return found[0]


async def test_warm_models_keep_a_model_loaded_across_an_eviction(
    start_llama: ServerFactory, start_gateway: GatewayFactory
) -> None:
    router = await start_llama("router", router_models=("alpha", "beta"))
    config = real_config((router, 'warm_models = ["alpha"]'), health="interval_seconds = 1")
    gateway = await start_gateway(config)
    with trio.fail_after(15):  # loaded at start-up
        await poll(lambda: _is(router_state(router, "alpha"), "loaded"))
    # beta evicts alpha; once the router is idle the gateway loads alpha again
    await chat_plain(gateway, "beta")
    with trio.fail_after(15):
        await poll(lambda: _is(router_state(router, "alpha"), "loaded"))
    log = gateway.log_text()
    assert "model 'alpha' is unloaded" in log
    assert log.count("loading warm model 'alpha'") == 2


async def chat_plain(gateway: GatewayProcess, model: str) -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    async with httpx.AsyncClient(timeout=60) as client:
        response = await client.post(f"{gateway.url}/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text


async def _is(state: Awaitable[str], wanted: str) -> bool:
    return await state == wanted


async def _metrics(gateway: GatewayProcess) -> str:
    async with httpx.AsyncClient(headers=ADMIN) as client:
        response = await client.get(f"{gateway.url}/metrics")
    response.raise_for_status()
    return response.text
