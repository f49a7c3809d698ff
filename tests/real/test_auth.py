"""A real llama-server started with ``--api-key``, reached through a backend's ``api_key_env``."""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any

import httpx
import pytest
import trio

from tests.real.gateway_client import backend_stats, get_json, sdk_client
from tests.real.llama_server import ServerFactory, real_config
from tests.system.gateway_process import GatewayFactory
from tests.system.polling import poll

pytestmark = pytest.mark.real


def _session(url: str) -> dict[str, Any]:
    # a key the server does not know: only the backend key from api_key_env may reach it
    client = sdk_client(url, api_key="the-client-s-own-key")
    plain = client.chat.completions.with_raw_response.create(
        model="smol", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
    )
    stream = client.chat.completions.create(
        model="smol", messages=[{"role": "user", "content": "Hi"}], max_tokens=4, stream=True
    )
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    client.close()
    return {"plain": plain, "pieces": pieces}


async def test_server_with_api_key_through_api_key_env(
    start_llama: ServerFactory, start_gateway: GatewayFactory
) -> None:
    key = secrets.token_hex(16)
    keyed = await start_llama("smol", "--api-key", key, name="keyed")
    async with httpx.AsyncClient() as http:
        refused = await http.get(f"{keyed.url}/v1/models")
    assert refused.status_code == 401  # the server really wants its key

    # the same server twice: once with its key from the environment, once without
    config = real_config(
        (keyed, 'api_key_env = "REAL_LLAMA_KEY"'),
        dataclasses.replace(keyed, name="keyless"),
        health="interval_seconds = 0.5\nfailure_threshold = 1",
    )
    gateway = await start_gateway(config, env={"REAL_LLAMA_KEY": key})

    async def probed() -> bool:
        stats = await get_json(gateway.url, "/v1/stats")
        return backend_stats(stats, "keyless")["status"] == "unhealthy"

    with trio.fail_after(10):
        await poll(probed)
    stats = await get_json(gateway.url, "/v1/stats")
    assert backend_stats(stats, "keyed")["status"] == "healthy"
    (model,) = (await get_json(gateway.url, "/v1/models"))["data"]
    assert model["id"] == "smol"
    assert model["backends"] == ["keyed"]  # its probe sent the key on /health and /v1/models

    seen = await trio.to_thread.run_sync(_session, gateway.url)
    assert seen["plain"].headers["x-nexus-backend"] == "keyed"
    assert seen["plain"].parse().choices[0].message.content
    assert "".join(seen["pieces"])
    assert key not in gateway.log_text()
