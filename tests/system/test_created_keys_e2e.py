"""Created keys end to end against a real ``nexus-trio serve`` (docs/keys.md#created-keys,
docs/cli.md#keys): created with the CLI, used from the official ``openai`` SDK, limited and
charged, rotated, revoked (refused within a second), kept across a restart — and no secret
ever in the logs, ``/v1/stats``, ``/metrics``, the dashboard or an error body."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import trio

from nexus_trio.simulator import SimulatedBackend
from tests.system.client_sdks import FAST
from tests.system.configs import DOLLAR_PER_TOKEN, gateway_config
from tests.system.gateway_process import GatewayFactory, GatewayProcess

pytestmark = pytest.mark.system

ADMIN_KEY = "boss-secret-admin-key"


def config(backend: SimulatedBackend, state: Path, extra: str = "") -> str:
    keys = f"""
[state]
dir = "{state}"
{extra}
[[keys]]
name = "boss"
key_env = "BOSS_KEY"
admin = true
"""
    return gateway_config(backend, extra=keys + DOLLAR_PER_TOKEN.replace("simulator", "sim"))


async def run_cli(url: str, *args: str) -> str:
    """What ``nexus-trio keys ARGS --url URL`` printed (the command must succeed)."""
    done = await trio.run_process(
        [sys.executable, "-m", "nexus_trio", "keys", *args, "--url", url],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env={**os.environ, "NEXUS_ADMIN_KEY": ADMIN_KEY},
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


async def cli(url: str, *args: str) -> dict[str, Any]:
    """``nexus-trio keys ARGS --url URL --json``: its JSON answer."""
    answer: dict[str, Any] = json.loads(await run_cli(url, *args, "--json"))
    return answer


async def chat(url: str, secret: str) -> openai.APIError | None:
    """One chat completion through the official SDK (no retries): None, or what it raised."""

    def call() -> openai.APIError | None:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=secret, max_retries=0)
        try:
            client.chat.completions.create(
                model="demo", messages=[{"role": "user", "content": "hi"}]
            )
        except openai.APIError as exc:
            return exc
        finally:
            client.close()
        return None

    return await trio.to_thread.run_sync(call)


async def seen_everywhere(client: httpx.AsyncClient, gateway: GatewayProcess) -> bytes:
    """What an admin can read of the gateway: stats, metrics, a dashboard snapshot, logs."""
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    paths = ("/v1/stats", "/metrics", "/admin/keys")
    parts = [(await client.get(f"{gateway.url}{path}", headers=admin)).content for path in paths]
    stream = await trio.open_tcp_stream("127.0.0.1", gateway.port)
    async with stream:
        await stream.send_all(
            b"GET /v1/dashboard/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: Bearer {ADMIN_KEY}\r\n\r\n".encode()
        )
        received = b""
        with trio.fail_after(5):
            while b"\n\n" not in received.partition(b"event: snapshot")[2]:
                received += await stream.receive_some()
    parts.append(received)
    parts.append(gateway.log_text().encode())
    return b"\n".join(parts)


async def test_cli_sdk_rotate_revoke_restart_and_nothing_leaks(
    start_gateway: GatewayFactory,
    start_backend: Any,
    client: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    backend = await start_backend(**FAST)
    text = config(backend, tmp_path / "state")
    env = {"BOSS_KEY": ADMIN_KEY}
    gateway = await start_gateway(text, env=env)
    url = gateway.url
    created = await cli(url, "create", "app", "--requests-per-minute", "2", "--metadata", "t=1")
    first = created["key"]
    kept = (await cli(url, "create", "kept", "--model", "demo"))["key"]
    assert first.startswith("nxs-")
    assert await chat(url, first) is None
    assert await chat(url, first) is None
    assert isinstance(await chat(url, first), openai.RateLimitError)
    shown = await cli(url, "show", "app")
    assert shown["spend_usd_this_month"] > 0  # two answers at a dollar a token
    assert shown["metadata"] == {"t": "1"}
    await cli(url, "update", "app", "--requests-per-minute", "0")
    assert await chat(url, first) is None
    second = (await cli(url, "rotate", "app"))["key"]
    assert isinstance(await chat(url, first), openai.AuthenticationError)
    assert await chat(url, second) is None
    await cli(url, "revoke", "app")
    with trio.fail_after(1):
        refused = await chat(url, second)
    assert isinstance(refused, openai.AuthenticationError)
    everything = await seen_everywhere(client, gateway)
    for secret in (first, second, kept):
        assert secret.encode() not in everything
        assert secret not in str(refused)
    gateway.send_signal(15)
    with trio.fail_after(10):
        await gateway.wait_exit()
    again = await start_gateway(text, env=env)
    assert await chat(again.url, kept) is None
    assert isinstance(await chat(again.url, second), openai.AuthenticationError)
    table = (await run_cli(again.url, "list")).splitlines()
    assert table[0].split()[:3] == ["NAME", "SOURCE", "STATE"]
    assert table[2].split()[:3] == ["app", "api", "revoked"]
    listed = await cli(again.url, "list")
    states = {key["name"]: (key["source"], key["state"]) for key in listed["data"]}
    assert states == {
        "boss": ("config", "active"),
        "app": ("api", "revoked"),
        "kept": ("api", "active"),
    }
