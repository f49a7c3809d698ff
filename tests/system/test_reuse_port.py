"""Two instances share one port with ``server.reuse_port`` (docs/operations.md#scaling-out)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest
import trio

from nexus_trio.simulator import SimulatedBackend
from tests.system.configs import gateway_config
from tests.system.gateway_process import GatewayFactory
from tests.system.polling import poll
from tests.system.ports import free_port

JSON_HEADERS = {"content-type": "application/json"}

pytestmark = pytest.mark.system


async def test_two_instances_on_one_port_both_serve(
    start_backend: Callable[..., Awaitable[SimulatedBackend]],
    start_gateway: GatewayFactory,
) -> None:
    backend = await start_backend(name="sim", models=("demo",), ttft_ms=1, tokens_per_second=0)
    port = free_port()
    config = gateway_config(backend, server="reuse_port = true").replace(
        "port = 0", f"port = {port}"
    )
    first = await start_gateway(config)
    second = await start_gateway(config)
    assert first.port == second.port == port
    body = b'{"model": "demo", "messages": [{"role": "user", "content": "hi"}]}'
    for _ in range(40):
        # a new connection each time, so the kernel spreads them over both listeners
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"http://127.0.0.1:{port}/v1/chat/completions", content=body, headers=JSON_HEADERS
            )
            assert response.status_code == 200

    def served() -> list[int]:
        return [
            sum("path=/v1/chat/completions" in line for line in gateway.lines)
            for gateway in (first, second)
        ]

    with trio.fail_after(5):  # access-log lines arrive through the processes' stderr pipes
        await poll(lambda: sum(served()) == 40)
    assert all(count > 0 for count in served()), served()


async def test_without_reuse_port_the_second_instance_cannot_bind(
    start_backend: Callable[..., Awaitable[SimulatedBackend]],
    start_gateway: GatewayFactory,
) -> None:
    backend = await start_backend(name="sim", models=("demo",))
    port = free_port()
    config = gateway_config(backend).replace("port = 0", f"port = {port}")
    await start_gateway(config)
    with pytest.raises(AssertionError, match=f"cannot listen on 127.0.0.1:{port}"):
        await start_gateway(config)
