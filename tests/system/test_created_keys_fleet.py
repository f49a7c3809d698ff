"""Created keys in a fleet (docs/keys.md#created-keys-in-a-fleet): two real ``nexus-trio serve``
processes and one real ``redis-server``. A key created, changed or revoked on one gateway is in
force on the other within two sync intervals; with Redis down the keys last known keep
working, revocations stay, and changes are refused 503 until it is back (empty), when the
gateways write their keys back to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from nexus_trio.key_store.shared import KEYS_HASH
from nexus_trio.simulator import SimulatedBackend
from tests.system.client_sdks import FAST
from tests.system.configs import gateway_config
from tests.system.gateway_process import GatewayFactory
from tests.system.polling import poll
from tests.system.redis_server import RedisServer, redis_server_path

pytestmark = pytest.mark.system

ADMIN = {"authorization": "Bearer boss-key"}
CHAT = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
INTERVAL = 0.5


@pytest.fixture
async def redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(redis_server_path(), directory)
    await server.start()
    yield server
    await server.stop()


def config(backend: SimulatedBackend, state: Path, redis: RedisServer) -> str:
    extra = f"""
[state]
dir = "{state}"
store = "{redis.url}"
sync_interval_seconds = {INTERVAL}
[[keys]]
name = "boss"
key_env = "BOSS_KEY"
admin = true
"""
    return gateway_config(backend, extra=extra)


async def status(client: httpx.AsyncClient, url: str, secret: str) -> int:
    headers = {"authorization": f"Bearer {secret}"}
    return (await client.post(f"{url}/v1/chat/completions", json=CHAT, headers=headers)).status_code


async def admin(client: httpx.AsyncClient, method: str, url: str, body: object = None) -> Any:
    return await client.request(method, url, json=body, headers=ADMIN)


async def in_force_within_two_intervals(check: Any) -> float:
    """Seconds until ``check()`` holds, failing past two sync intervals."""
    started = trio.current_time()
    with trio.fail_after(2 * INTERVAL):
        await poll(check)
    return trio.current_time() - started


async def test_keys_change_across_the_fleet_and_survive_redis_going_away(
    start_gateway: GatewayFactory,
    start_backend: Any,
    client: httpx.AsyncClient,
    redis: RedisServer,
    tmp_path: Path,
) -> None:
    backend = await start_backend(**FAST)
    env = {"BOSS_KEY": "boss-key"}
    one = await start_gateway(config(backend, tmp_path / "one", redis), env=env)
    two = await start_gateway(config(backend, tmp_path / "two", redis), env=env)
    made = await admin(client, "POST", f"{one.url}/admin/keys", {"name": "app"})
    secret = made.json()["key"]
    stay = (await admin(client, "POST", f"{one.url}/admin/keys", {"name": "stay"})).json()["key"]

    async def served_on_two() -> bool:
        return await status(client, two.url, secret) == 200

    await in_force_within_two_intervals(served_on_two)
    await admin(client, "PATCH", f"{one.url}/admin/keys/app", {"requests_per_minute": 9})

    async def limited_on_two() -> bool:
        headers = {"authorization": f"Bearer {secret}"}
        answer = await client.post(f"{two.url}/v1/chat/completions", json=CHAT, headers=headers)
        return answer.headers.get("x-ratelimit-limit-requests") == "9"

    await in_force_within_two_intervals(limited_on_two)
    await admin(client, "DELETE", f"{two.url}/admin/keys/app")
    assert await status(client, two.url, secret) == 401

    async def refused_on_one() -> bool:
        return await status(client, one.url, secret) == 401

    await in_force_within_two_intervals(refused_on_one)
    await redis.kill()
    refused = await admin(client, "POST", f"{one.url}/admin/keys", {"name": "later"})
    assert refused.status_code == 503
    assert (await admin(client, "DELETE", f"{two.url}/admin/keys/stay")).status_code == 503
    for gateway in (one, two):
        assert await status(client, gateway.url, stay) == 200
        assert await status(client, gateway.url, secret) == 401
    await redis.start()  # empty

    async def accepted_again() -> bool:
        answer = await admin(client, "POST", f"{one.url}/admin/keys", {"name": "later"})
        return bool(answer.status_code == 201)

    with trio.fail_after(5):
        await poll(accepted_again)

    def stored() -> set[bytes]:
        redis_client = redis.client()
        try:
            return set(redis_client.hkeys(KEYS_HASH))
        finally:
            redis_client.close()

    async def refilled() -> bool:
        return await trio.to_thread.run_sync(stored) == {b"app", b"stay", b"later"}

    with trio.fail_after(5):
        await poll(refilled)
    for gateway in (one, two):
        assert await status(client, gateway.url, secret) == 401
        assert await status(client, gateway.url, stay) == 200
