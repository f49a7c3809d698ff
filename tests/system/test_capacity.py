"""Capacity: nothing between the router and a backend limits concurrency behind its back.

A real ``nexus-trio serve`` with its default limits in front of one simulated backend that
holds every stream it is sent. Before per-backend pools, the transport held at most 256
connections per host: the rest of the streams waited inside the gateway, within their
first-token deadline, and were answered 504 and counted as the backend's failures.
"""

from __future__ import annotations

import resource

import msgspec
import pytest
import trio

from nexus_trio.simulator import SimulatedBackend
from tests.system.configs import gateway_config
from tests.system.gateway_process import GatewayFactory
from tests.system.polling import poll
from tests.system.raw_connection import RawConnection

pytestmark = pytest.mark.system

#: More than the 4,000 concurrent streams the default configuration must hold.
STREAMS = 4096
#: Long enough for every stream to be at the backend at once before any first token: the
#: gateway opened ~600 streams/s here while the test process also ran the clients and the
#: backend (4,096 in ~7 s), and well under half that on a machine loaded by other work.
TTFT_MS = 30000.0
CHAT = msgspec.json.encode(
    {"model": "demo", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
)


async def test_default_limits_hold_thousands_of_streams_to_one_backend(
    start_gateway: GatewayFactory, start_backend: ..., nursery: trio.Nursery
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 3 * STREAMS:  # this process holds the clients' and the backend's sockets
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    backend: SimulatedBackend = await start_backend(
        name="big", ttft_ms=TTFT_MS, tokens_per_second=1000.0, completion_tokens=3
    )
    # The one non-default: 4,096 client tasks in this process may reach their send more than
    # the default 5 s keep-alive after their connect on a loaded machine, and hypercorn closes
    # a connection idle that long before its first request; keep-alive is not under test.
    gateway = await start_gateway(gateway_config(backend, server="keep_alive_timeout_seconds = 60"))
    results: list[tuple[int, bytes]] = []

    async def stream() -> None:
        connection = await RawConnection.open(gateway.port)
        try:
            await connection.send_request(
                "POST",
                "/v1/chat/completions",
                CHAT,
                [("content-type", "application/json")],
            )
            status, _, body = await connection.read_response()
            results.append((status, body))
        finally:
            await connection.aclose()

    with trio.fail_after(TTFT_MS / 1000.0 * 3):
        async with trio.open_nursery() as clients:
            for _ in range(STREAMS):
                clients.start_soon(stream)
            # Every stream reaches the backend before the first of them gets a token.
            with trio.fail_after(TTFT_MS / 1000.0 * 0.9):
                await poll(lambda: backend.active_responses == STREAMS)
    assert len(results) == STREAMS
    assert {status for status, _ in results} == {200}
    assert all(body.endswith(b"data: [DONE]\n\n") for _, body in results)
    assert not any(b"stream_truncated" in body for _, body in results)
    metrics = await RawConnection.open(gateway.port)
    await metrics.send_request("GET", "/metrics")
    _, _, text = await metrics.read_response()
    await metrics.aclose()
    attempts = [
        line for line in text.decode().splitlines() if line.startswith("nexus_upstream_attempts")
    ]
    assert attempts == [
        'nexus_upstream_attempts_total{backend="big",model="demo",outcome="success"} '
        f"{float(STREAMS)}"
    ]


@pytest.mark.parametrize("hard", [20000, 1024], ids=["enough", "too-few"])
async def test_the_open_files_limit_is_raised_and_a_short_one_warned_about(
    start_gateway: GatewayFactory, hard: int
) -> None:
    hard = min(hard, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    gateway = await start_gateway(
        '[server]\nhost = "127.0.0.1"\nport = 0\n', open_files=(256, hard)
    )
    log = gateway.log_text()
    assert f"open-files limit raised from 256 to {hard}" in log
    needs = "max_in_flight_requests = 8192 needs about 16640 open files"
    assert (needs in log) is (hard < 16640)
