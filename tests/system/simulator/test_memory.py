"""The simulator's model memory (nexus_trio/simulator/memory.py), over real sockets: a first
use waits for the load, ``max_loaded`` evicts the least recently used, Ollama's ``/api/ps``
lists what is held, ``keep_alive`` sets how long, and ``/api/generate`` loads and unloads."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest
import trio

from nexus_trio.simulator import SimulatedBackend, SimulatorOptions

pytestmark = pytest.mark.system

LOAD_SECONDS = 0.2


@pytest.fixture
def options(options: SimulatorOptions) -> SimulatorOptions:
    options.load_ms = LOAD_SECONDS * 1000
    options.max_loaded = 1
    return options


async def chat(client: httpx.AsyncClient, model: str, **extra: Any) -> float:
    """Seconds one chat request took."""
    started = trio.current_time()
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    return trio.current_time() - started


async def ps(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/api/ps")
    assert response.status_code == 200
    return {entry["name"]: entry for entry in response.json()["models"]}


async def test_a_first_use_loads_and_one_more_model_evicts_the_least_recent(
    client: httpx.AsyncClient, backend: SimulatedBackend
) -> None:
    assert await ps(client) == {}
    assert await chat(client, "demo") >= LOAD_SECONDS
    held = await ps(client)
    assert list(held) == ["demo"]
    assert held["demo"]["size_vram"] == 100_000_000
    expires = datetime.fromisoformat(held["demo"]["expires_at"]).timestamp()
    assert 250 < expires - datetime.now().timestamp() <= 300  # the default keep_alive
    assert await chat(client, "demo") < LOAD_SECONDS
    assert await chat(client, "llava:7b") >= LOAD_SECONDS
    assert list(await ps(client)) == ["llava:7b"]
    assert backend.memory.loads == 2


async def test_keep_alive_and_generate_decide_how_long(client: httpx.AsyncClient) -> None:
    load = await client.post("/api/generate", json={"model": "demo", "keep_alive": -1})
    assert load.json()["done_reason"] == "load"
    expires = (await ps(client))["demo"]["expires_at"]
    assert datetime.fromisoformat(expires).year > 2200
    unload = await client.post("/api/generate", json={"model": "demo", "keep_alive": 0})
    assert unload.json()["done_reason"] == "unload"
    assert await ps(client) == {}
    await chat(client, "demo", keep_alive="300ms")
    assert list(await ps(client)) == ["demo"]
    await trio.sleep(0.3)  # its keep_alive runs out
    assert await ps(client) == {}
    missing = await client.post("/api/generate", json={"model": "nope"})
    assert missing.status_code == 404


async def test_without_a_load_time_every_model_is_always_loaded(
    client: httpx.AsyncClient, options: SimulatorOptions
) -> None:
    options.load_ms = 0
    assert set(await ps(client)) == {"demo", "llava:7b"}
    assert await chat(client, "demo") < LOAD_SECONDS
