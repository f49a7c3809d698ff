"""A fleet (docs/spend.md#a-fleet, docs/keys.md#a-fleet): real ``nexus-trio serve`` processes
sharing one real ``redis-server``. Two gateways converge on one month total and enforce one
budget and one rate limit; Redis killed under load and restarted empty loses nothing and
doubles nothing; a gateway whose Redis is down at start-up serves, degraded, and pushes what it
owes when Redis comes."""

from __future__ import annotations

import datetime as dt
import math
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from nexus_trio.simulator import SimulatedBackend
from tests.system.configs import DOLLAR_PER_TOKEN, gateway_config
from tests.system.gateway_process import GatewayFactory, GatewayProcess
from tests.system.polling import poll
from tests.system.redis_server import RedisServer, redis_server_path

pytestmark = pytest.mark.system

CHAT = {"model": "demo", "messages": [{"role": "user", "content": "hello there"}]}
BackendFactory = Callable[..., Awaitable[SimulatedBackend]]
RedisFactory = Callable[..., Awaitable[RedisServer]]


@pytest.fixture
async def start_redis(tmp_path: Path) -> AsyncIterator[RedisFactory]:
    """Make a ``redis-server`` on a free port; started unless ``running=False``."""
    binary = redis_server_path()
    servers: list[RedisServer] = []

    async def make(*, password: str | None = None, running: bool = True) -> RedisServer:
        directory = tmp_path / f"redis-{len(servers)}"
        directory.mkdir()
        server = RedisServer(binary, directory, password=password)
        servers.append(server)
        if running:
            await server.start()
        return server

    yield make
    for server in servers:
        await server.stop()


def fleet_config(
    backend: SimulatedBackend,
    state: Path,
    redis: RedisServer,
    *,
    extra: str = "",
    priced: bool = True,
) -> str:
    text = f'[state]\ndir = "{state}"\nstore = "{redis.url}"\n{extra}\n'
    return gateway_config(backend, extra=text + (DOLLAR_PER_TOKEN if priced else ""))


def this_month() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m")


async def fast_backend(start_backend: BackendFactory) -> SimulatedBackend:
    return await start_backend(ttft_ms=1.0, tokens_per_second=100000.0, completion_tokens=5)


async def spend_of(client: httpx.AsyncClient, gateway: GatewayProcess) -> dict[str, Any]:
    spend: dict[str, Any] = (await client.get(f"{gateway.url}/v1/stats")).json()["spend"]
    return spend


async def chat(
    client: httpx.AsyncClient, gateway: GatewayProcess, **headers: str
) -> httpx.Response:
    return await client.post(f"{gateway.url}/v1/chat/completions", json=CHAT, headers=headers)


async def test_two_gateways_converge_on_the_fleets_month_within_2_s(
    start_gateway: GatewayFactory,
    start_backend: BackendFactory,
    start_redis: RedisFactory,
    tmp_path: Path,
) -> None:
    redis = await start_redis()
    backend = await fast_backend(start_backend)
    gateways = [await start_gateway(fleet_config(backend, tmp_path / name, redis)) for name in "ab"]
    costs: list[float] = []

    async def load(client: httpx.AsyncClient, first: int) -> None:
        for index in range(30):
            response = await chat(client, gateways[(first + index) % 2])
            assert response.status_code == 200
            costs.append(float(response.headers["x-nexus-cost-usd"]))

    async with httpx.AsyncClient(timeout=10) as client:
        async with trio.open_nursery() as nursery:
            for first in (0, 1, 0, 1):
                nursery.start_soon(load, client, first)
        fleet = sum(costs)

        async def converged() -> bool:
            spends = [await spend_of(client, gateway) for gateway in gateways]
            return all(s["total_usd"] == fleet and s["requests"] == 120 for s in spends)

        with trio.fail_after(2):
            await poll(converged)
        spends = [await spend_of(client, gateway) for gateway in gateways]
    # Each shows the fleet's total; each ledger holds its own part, and Redis both.
    assert all(s["stores"] == {"ledger": True, "redis": True} for s in spends)
    assert sum(s["own_usd"] for s in spends) == fleet
    assert all(0 < s["own_usd"] < fleet for s in spends)
    assert (await redis.month_total(this_month())).usd == fleet
    assert len(await redis.month_rows(this_month())) == 2


async def test_one_budget_across_the_fleet(
    start_gateway: GatewayFactory,
    start_backend: BackendFactory,
    start_redis: RedisFactory,
    tmp_path: Path,
) -> None:
    redis = await start_redis()
    backend = await fast_backend(start_backend)
    # 2 prompt + 5 completion tokens = $7 a request: the budget is six requests, three each.
    budget = '[budget]\nmonthly_limit_usd = 42\nhard_limit_action = "reject"'
    a, b = [
        await start_gateway(fleet_config(backend, tmp_path / name, redis, extra=budget))
        for name in "ab"
    ]
    async with httpx.AsyncClient(timeout=10) as client:
        for gateway in (a, b, a, b, a, b):
            response = await chat(client, gateway)
            assert response.status_code == 200
            assert response.headers["x-nexus-cost-usd"] == "7.00000000"

        async def both_hard() -> bool:
            spends = [await spend_of(client, gateway) for gateway in (a, b)]
            return all(s["budget"]["state"] == "hard" for s in spends)

        # Alone, each gateway has spent $21 of $42 (below the soft limit): only the fleet's
        # total puts them past it.
        with trio.fail_after(2):
            await poll(both_hard)
        for gateway in (a, b):
            refused = await chat(client, gateway)
            assert refused.status_code == 429
            assert refused.json()["error"]["code"] == "budget_exceeded"
            assert (await spend_of(client, gateway))["own_usd"] == 21.0


async def test_one_rate_limit_across_the_fleet(
    start_gateway: GatewayFactory,
    start_backend: BackendFactory,
    start_redis: RedisFactory,
    tmp_path: Path,
) -> None:
    redis = await start_redis()
    backend = await fast_backend(start_backend)
    limit, sent, pace = 20, 40, 0.1
    keys = f'[[keys]]\nname = "team"\nkey_env = "TEAM_KEY"\nrequests_per_minute = {limit}\n'
    env = {"TEAM_KEY": "team-secret"}
    gateways = [
        await start_gateway(
            fleet_config(backend, tmp_path / name, redis, extra=keys, priced=False), env=env
        )
        for name in "ab"
    ]
    statuses: list[int] = []
    async with httpx.AsyncClient(timeout=10) as client:
        start = trio.current_time()
        for index in range(sent):  # the load's pace: one request every 0.1 s, alternated
            await trio.sleep_until(start + index * pace)
            response = await chat(client, gateways[index % 2], authorization="Bearer team-secret")
            statuses.append(response.status_code)
        elapsed = trio.current_time() - start
    assert set(statuses) <= {200, 429}
    admitted = statuses.count(200)
    # Alone, each gateway would admit all of its 20. Together they admit the limit, what the
    # buckets refill meanwhile, and at most what the other gateway admitted in the last two
    # sync intervals (0.25 s each) before its consumption arrived, plus 0.2 s of slack.
    refill = elapsed * limit / 60
    staleness = (2 * 0.25 + 0.2) / pace
    assert limit <= admitted <= limit + math.ceil(refill + staleness), (admitted, statuses)


async def test_redis_killed_under_load_and_restarted_empty_loses_nothing(
    start_gateway: GatewayFactory,
    start_backend: BackendFactory,
    start_redis: RedisFactory,
    tmp_path: Path,
) -> None:
    redis = await start_redis()
    backend = await fast_backend(start_backend)
    gateways = [await start_gateway(fleet_config(backend, tmp_path / name, redis)) for name in "ab"]
    costs: list[float] = []
    statuses: list[int] = []
    stop = trio.Event()

    async def load(client: httpx.AsyncClient, gateway: GatewayProcess) -> None:
        for _ in range(2000):  # bounded; the test stops it well before
            if stop.is_set():
                return
            response = await chat(client, gateway)
            statuses.append(response.status_code)
            if response.status_code == 200:
                costs.append(float(response.headers["x-nexus-cost-usd"]))
            await trio.sleep(0.01)  # the load's pace

    async def redis_up(up: bool) -> bool:
        spends = [await spend_of(client, gateway) for gateway in gateways]
        return all(s["stores"]["redis"] is up and s["store_up"] is up for s in spends)

    async def served(more: int) -> None:
        target = len(costs) + more
        await poll(lambda: len(costs) >= target)

    async with httpx.AsyncClient(timeout=10) as client, trio.open_nursery() as nursery:
        for gateway in gateways:
            nursery.start_soon(load, client, gateway)
        with trio.fail_after(10):
            await served(40)
            await redis.kill()  # kill -9: what it held is gone
            await poll(lambda: redis_up(False))
            await served(40)  # the gateways keep serving meanwhile
            await redis.start()  # empty, on the same port
            await poll(lambda: redis_up(True))
            await served(40)
        stop.set()

    async def settled() -> bool:
        fleet = await redis.month_total(this_month())
        spends = [await spend_of(client, gateway) for gateway in gateways]
        return (fleet.usd, fleet.requests) == (sum(costs), len(costs)) and all(
            s["total_usd"] == sum(costs) for s in spends
        )

    async with httpx.AsyncClient(timeout=10) as client:
        with trio.fail_after(3):
            await poll(settled)
        metrics = (await client.get(f"{gateways[0].url}/metrics")).text
    assert set(statuses) == {200}
    assert 'nexus_state_store_up{store="redis"} 1.0' in metrics
    for gateway in gateways:
        log = gateway.log_text()
        assert log.count("serving on this gateway's own counts until it is back") == 1, log
        assert log.count("back, in sync") == 1, log


async def test_redis_down_at_start_up_serves_degraded_and_pushes_what_it_owes(
    start_gateway: GatewayFactory,
    start_backend: BackendFactory,
    start_redis: RedisFactory,
    tmp_path: Path,
) -> None:
    password = "fleet-s3cret"
    redis = await start_redis(password=password, running=False)
    backend = await fast_backend(start_backend)
    config = fleet_config(backend, tmp_path / "a", redis)
    gateway = await start_gateway(config)
    async with httpx.AsyncClient(timeout=10) as client:
        response = await chat(client, gateway)
        assert response.status_code == 200
        charged = float(response.headers["x-nexus-cost-usd"])
        spend = await spend_of(client, gateway)
        assert (spend["total_usd"], spend["store_up"], spend["stores"]) == (
            charged,
            False,
            {"ledger": True, "redis": False},
        )
        metrics = (await client.get(f"{gateway.url}/metrics")).text
        assert 'nexus_state_store_up{store="redis"} 0.0' in metrics
        assert 'nexus_state_store_up{store="ledger"} 1.0' in metrics

        await redis.start()
        with trio.fail_after(3):
            await poll(lambda: _store_up(client, gateway))
            await poll(lambda: _redis_holds(redis, charged))

    path = tmp_path / "check.toml"
    path.write_text(config)
    with trio.fail_after(15):
        checked = await trio.run_process(
            [sys.executable, "-m", "nexus_trio", "check-config", str(path)], capture_stdout=True
        )
    rendered = checked.stdout.decode()
    assert f'"store": "redis://:***@127.0.0.1:{redis.port}/0"' in rendered
    log = gateway.log_text()
    assert f"redis://:***@127.0.0.1:{redis.port}/0" in log
    assert "serving on this gateway's own counts until it is back" in log
    assert password not in log + rendered


async def _store_up(client: httpx.AsyncClient, gateway: GatewayProcess) -> bool:
    return bool((await spend_of(client, gateway))["stores"]["redis"])


async def _redis_holds(redis: RedisServer, usd: float) -> bool:
    return (await redis.month_total(this_month())).usd == usd
