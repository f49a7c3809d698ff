"""Residency with Ollama-like backends over real sockets (docs/routing.md#residency,
docs/routing.md#warm-preference, docs/quality.md#cold-starts, docs/routing.md#model-lifecycle):
a ``nexus-trio serve`` in front of two simulated ``ollama`` backends that load models on first
use (``/api/ps``, ``keep_alive``, one model at a time).

``a`` is preferred by priority; ``b`` keeps ``m2`` warm. Residency is polled each 0.5 s.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

import httpx
import pytest
import trio

from tests.system.fleet import FAST_HEALTH, Fleet
from tests.system.gateway_process import GatewayFactory
from tests.system.polling import poll

pytestmark = pytest.mark.system

LOAD_SECONDS = 0.3
SIMULATED = {
    "models": ("m1", "m2"),
    "ttft_ms": 10,
    "tokens_per_second": 0,
    "load_ms": LOAD_SECONDS * 1000,
    "max_loaded": 1,
}


async def chat(client: httpx.AsyncClient, url: str, model: str, **extra: Any) -> tuple[str, str]:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    response = await client.post(f"{url}/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return response.headers["x-nexus-backend"], response.headers["x-nexus-route-reason"]


async def residency(client: httpx.AsyncClient, url: str, backend: str, model: str) -> Any:
    stats = (await client.get(f"{url}/v1/stats")).json()
    (entry,) = [b for b in stats["backends"] if b["name"] == backend]
    (agent,) = [a for a in entry["agents"] if a["model"] == model]
    return agent["residency"] | {"cold_starts": entry["cold_starts"]}


async def loaded_column(url: str) -> dict[tuple[str, str], str]:
    """``nexus-trio status``'s LOADED column for each (backend, model) it shows as loaded."""
    report = await trio.run_process(
        [sys.executable, "-m", "nexus_trio", "status", "--url", url], capture_stdout=True
    )
    loaded: dict[tuple[str, str], str] = {}
    backend = ""
    for line in report.stdout.decode().splitlines():
        cells = line.split()
        if line[:1].isalpha() and len(cells) > 2 and cells[1].startswith("("):
            backend = cells[0]  # a backend's row: its name, (type), health, ...
        elif line.startswith(" ") and backend and len(cells) > 1 and cells[1] == "loaded":
            loaded[backend, cells[0]] = cells[1]
    return loaded


async def test_ollama_residency_routing_and_cold_starts(
    nursery: trio.Nursery, start_gateway: GatewayFactory
) -> None:
    fleet = Fleet(nursery)
    await fleet.start("a", "priority = 10", **SIMULATED)
    await fleet.start("b", 'priority = 50\nwarm_models = ["m2"]', **SIMULATED)
    config = fleet.gateway_config(health=FAST_HEALTH).replace('"generic"', '"ollama"')
    gateway = await start_gateway(config)
    url = gateway.url
    async with httpx.AsyncClient(timeout=10) as client:

        async def state_is(backend: str, model: str, state: str) -> bool:
            return (await residency(client, url, backend, model))["state"] == state

        async def told_vram() -> bool:
            return (await residency(client, url, "b", "m2"))["vram_bytes"] is not None

        # b's warm model is loaded at start-up, pinned (keep_alive -1); /api/ps tells its VRAM
        with trio.fail_after(10):
            await poll(told_vram)
            await poll(lambda: state_is("a", "m2", "unloaded"))
        pinned = await residency(client, url, "b", "m2")
        assert (pinned["state"], pinned["vram_bytes"]) == ("loaded", 100_000_000)
        assert datetime.fromisoformat(pinned["expires_at"]).year > 2200

        # m2: warm b over cold a, no cold start
        assert await chat(client, url, "m2") == ("b", "warm")
        # m1: cold on both, so the score (a's priority): a pays a cold start, then has it warm
        started = trio.current_time()
        assert await chat(client, url, "m1") == ("a", "best_score")
        assert trio.current_time() - started >= LOAD_SECONDS
        after = await residency(client, url, "a", "m1")  # /api/ps may have told VRAM already
        assert (after["state"], after["cold_starts"]) == ("loaded", 1)
        # a short keep_alive: a unloads m1, the gateway sees it through /api/ps
        assert await chat(client, url, "m1", keep_alive="200ms") == ("a", "warm")
        with trio.fail_after(5):
            await poll(lambda: state_is("a", "m1", "unloaded"))
        assert (await residency(client, url, "a", "m1"))["cold_starts"] == 1
        assert await chat(client, url, "m1") == ("a", "best_score")
        assert (await residency(client, url, "a", "m1"))["cold_starts"] == 2
    # ``nexus-trio status`` says the same: b holds m2 (pinned), a holds m1 (the last load)
    assert await loaded_column(url) == {("a", "m1"): "loaded", ("b", "m2"): "loaded"}
    assert fleet["a"].memory.loads == 2
    assert fleet["b"].memory.loads == 1
