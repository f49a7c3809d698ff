"""Gateways that refuse, shared by the SDK tests: a key whose rate limit is spent, a monthly
budget that is spent, and what the gateway logged and counted about each refusal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import trio

from nexus_trio.simulator import SimulatedBackend
from tests.system.configs import gateway_config
from tests.system.gateway_process import GatewayFactory, GatewayProcess, access_records
from tests.system.polling import poll


async def empty_request_bucket(
    client: httpx.AsyncClient, url: str, key: str, model: str
) -> tuple[int, int]:
    """Leave ``key``'s request bucket just emptied (docs/keys.md#rate-limits); returns the
    chat requests admitted and refused on the way. The caller bounds it with ``fail_after``.

    Requests go one after the other until one is refused (the burst is spent), then one every
    10 ms until one is admitted again: the refill had just made one whole request, which that
    one took. The bucket then holds almost nothing, so a request in the next ``60 / rpm``
    seconds (less those 10 ms) is refused, with ``Retry-After: ceil(60 / rpm)``.
    """
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"authorization": f"Bearer {key}"}
    admitted = refused = 0
    while True:
        response = await client.post(f"{url}/v1/chat/completions", json=body, headers=headers)
        assert response.status_code in (200, 429), response.text
        if response.status_code == 429:
            refused += 1
            await trio.sleep(0.01)
            continue
        admitted += 1
        if refused:
            return admitted, refused


LIMITED_KEY = "limited-key"


async def gateway_with_limited_key(
    start_backend: Callable[..., Awaitable[SimulatedBackend]],
    start_gateway: GatewayFactory,
    requests_per_minute: int,
) -> tuple[SimulatedBackend, GatewayProcess]:
    """Backend ``sim`` serving ``demo`` behind a gateway with a JSON access log and one named
    key, ``limited`` (:data:`LIMITED_KEY`), limited to ``requests_per_minute``."""
    backend = await start_backend(name="sim", models=("demo",), ttft_ms=1, tokens_per_second=0)
    limits = f"""
[logging]
format = "json"
[metrics]
public = true
[[keys]]
name = "limited"
key_env = "LIMITED_KEY"
requests_per_minute = {requests_per_minute}
"""
    gateway = await start_gateway(
        gateway_config(backend, extra=limits), env={"LIMITED_KEY": LIMITED_KEY}
    )
    return backend, gateway


async def assert_refused_then_answered(
    client: httpx.AsyncClient, gateway: GatewayProcess, admitted: int, refused: int
) -> None:
    """After :func:`empty_request_bucket` and one SDK call retried once: the gateway counted one
    more refusal for ``limited`` and logged the refusal, then the answer."""
    metrics = (await client.get(f"{gateway.url}/metrics")).text
    counted = 'nexus_rate_limited_total{key="limited",kind="requests"}'
    assert f"{counted} {refused + 1}.0" in metrics
    with trio.fail_after(5):  # access-log lines arrive through the process's stderr pipe
        await poll(lambda: len(access_records(gateway)) == admitted + refused + 2)
    last_two = [(r["status"], r["error_code"]) for r in access_records(gateway)[-2:]]
    assert last_two == [(429, "rate_limit_exceeded"), (200, None)]


async def gateway_with_spent_budget(
    start_backend: Callable[..., Awaitable[SimulatedBackend]],
    start_gateway: GatewayFactory,
    state_dir: Path,
) -> tuple[SimulatedBackend, GatewayProcess]:
    """Backend ``sim`` serving ``demo`` behind a gateway with a JSON access log, a $1 monthly
    budget with ``hard_limit_action = "reject"`` and prices at which one chat completion spends
    it all, after that one completion."""
    backend = await start_backend(name="sim", models=("demo",), ttft_ms=1, tokens_per_second=0)
    budget = f"""
[logging]
format = "json"
[state]
dir = "{state_dir}"
[budget]
monthly_limit_usd = 1
hard_limit_action = "reject"
[[pricing]]
backend = "sim"
input_usd_per_million = 1000000
output_usd_per_million = 1000000
"""
    gateway = await start_gateway(gateway_config(backend, extra=budget))
    body = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(timeout=10) as client:
        spent = await client.post(f"{gateway.url}/v1/chat/completions", json=body)
    assert float(spent.headers["x-nexus-cost-usd"]) >= 1
    return backend, gateway


async def assert_answered_then_budget_refused(gateway: GatewayProcess) -> None:
    """The access log of a gateway from :func:`gateway_with_spent_budget` after one refused
    request."""
    with trio.fail_after(5):
        await poll(lambda: len(access_records(gateway)) == 2)
    assert [(r["status"], r["error_code"]) for r in access_records(gateway)] == [
        (200, None),
        (429, "budget_exceeded"),
    ]
