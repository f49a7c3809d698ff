"""The fault matrix (docs/proxying.md#proxying-requests): every upstream failure mode, against a
real gateway process.

For each fault: what the client gets, that nothing leaks (``in_flight_requests`` back to 0),
which outcome quality tracking recorded, and that the next request is served.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest
import trio

from nexus_trio.simulator import FailMode, SimulatedBackend
from tests.system.configs import gateway_config
from tests.system.gateway_process import GatewayFactory, in_flight
from tests.system.polling import poll

JSON_HEADERS = {"content-type": "application/json"}

pytestmark = pytest.mark.system

PLAIN = b'{"model": "demo", "messages": [{"role": "user", "content": "hi"}]}'
STREAM = b'{"model": "demo", "stream": true, "messages": [{"role": "user", "content": "hi"}]}'
SERVER = """attempt_timeout_seconds = 1
stream_idle_timeout_seconds = 1
max_response_body_bytes = 2000"""


@dataclass(frozen=True)
class Fault:
    name: str
    mode: FailMode
    stream: bool
    status: int
    code: str | None  # the error code, or "stream_truncated" for a committed stream
    options: tuple[tuple[str, object], ...] = ()


FAULTS = [
    Fault("reset before headers", FailMode.RESET, False, 502, "backend_unavailable"),
    Fault("reset mid-body", FailMode.RESET_MID, False, 502, "backend_unavailable"),
    Fault("reset mid-stream", FailMode.RESET_MID, True, 200, "stream_truncated"),
    Fault("hang before headers", FailMode.HANG, False, 504, "backend_timeout"),
    Fault("hang mid-stream", FailMode.HANG_MID, True, 200, "stream_truncated"),
    Fault("non-JSON 200", FailMode.GARBAGE, False, 502, "bad_upstream_response"),
    Fault("invalid SSE", FailMode.GARBAGE, True, 502, "bad_upstream_response"),
    Fault("HTML 502 page", FailMode.HTML_502, False, 502, None),
    Fault("500", FailMode.HTTP_500, False, 500, None),
    Fault(
        "body over max_response_body_bytes",
        FailMode.HTTP_500,
        False,
        502,
        "bad_upstream_response",
        (("error_rate", 0.0), ("completion_tokens", 2000)),
    ),
]


async def _outcomes(client: httpx.AsyncClient, url: str) -> dict[str, float]:
    text = (await client.get(f"{url}/metrics")).text
    found = {}
    for line in text.splitlines():
        if line.startswith('nexus_upstream_attempts_total{backend="sim"'):
            outcome = line.split('outcome="')[1].split('"')[0]
            found[outcome] = float(line.rsplit(" ", 1)[1])
    return found


@pytest.mark.parametrize("fault", FAULTS, ids=[fault.name for fault in FAULTS])
async def test_fault(
    start_backend: Callable[..., Awaitable[SimulatedBackend]],
    start_gateway: GatewayFactory,
    fault: Fault,
) -> None:
    options = {"error_rate": 1.0, "fail_mode": fault.mode, **dict(fault.options)}
    backend = await start_backend(
        name="sim", models=("demo",), ttft_ms=5, tokens_per_second=0, **options
    )
    gateway = await start_gateway(gateway_config(backend, server=SERVER))
    url = gateway.url
    async with httpx.AsyncClient(timeout=10) as client:
        started = trio.current_time()
        response = await client.post(
            f"{url}/v1/chat/completions",
            content=STREAM if fault.stream else PLAIN,
            headers=JSON_HEADERS,
        )
        assert response.status_code == fault.status, response.text[:200]
        if fault.code == "stream_truncated":
            events = response.content.rstrip(b"\n").split(b"\n\n")
            assert events[-1] == b"data: [DONE]"
            assert b'"code":"stream_truncated"' in events[-2]
        elif fault.code is not None:
            assert response.json()["error"]["code"] == fault.code
        if fault.mode is FailMode.HANG:
            assert trio.current_time() - started < 3  # attempt timeout 1 s, not forever
        with trio.fail_after(3):
            await poll(lambda: _zero_in_flight(client, url))
        assert await _outcomes(client, url) == {"failure": 1.0}
        backend.options.error_rate = 0.0
        backend.options.completion_tokens = 5
        after = await client.post(f"{url}/v1/chat/completions", content=PLAIN, headers=JSON_HEADERS)
        assert after.status_code == 200
        assert (await _outcomes(client, url))["success"] == 1.0


async def _zero_in_flight(client: httpx.AsyncClient, url: str) -> bool:
    return await in_flight(client, url) == 0


async def test_connect_refused(
    start_backend: Callable[..., Awaitable[SimulatedBackend]],
    start_gateway: GatewayFactory,
) -> None:
    backend = await start_backend(name="sim", models=("demo",), ttft_ms=5, tokens_per_second=0)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    config = gateway_config(backend).replace(f"127.0.0.1:{backend.port}", f"127.0.0.1:{dead_port}")
    gateway = await start_gateway(config)
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(
            f"{gateway.url}/v1/chat/completions", content=PLAIN, headers=JSON_HEADERS
        )
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "backend_unavailable"
        assert "127.0.0.1" not in response.text
        assert await in_flight(client, gateway.url) == 0
        assert await _outcomes(client, gateway.url) == {"failure": 1.0}


async def test_slow_first_token_fails_over(
    start_backend: Callable[..., Awaitable[SimulatedBackend]],
    start_gateway: GatewayFactory,
) -> None:
    slow = await start_backend(name="sim", models=("demo",), ttft_ms=3000, tokens_per_second=0)
    fast = await start_backend(name="fast", models=("demo",), ttft_ms=5, tokens_per_second=0)
    config = gateway_config(slow, fast, server="first_token_timeout_seconds = 1")
    config = config.replace('name = "fast"', 'name = "fast"\npriority = 90')
    gateway = await start_gateway(config)
    async with httpx.AsyncClient(timeout=10) as client:
        started = trio.current_time()
        response = await client.post(
            f"{gateway.url}/v1/chat/completions", content=STREAM, headers=JSON_HEADERS
        )
        assert response.status_code == 200
        assert response.headers["x-nexus-backend"] == "fast"
        assert response.content.endswith(b"data: [DONE]\n\n")
        assert 1.0 <= trio.current_time() - started < 2.5
        assert await _outcomes(client, gateway.url) == {"failure": 1.0}
        assert await in_flight(client, gateway.url) == 0


async def test_429_passed_through_with_retry_after_and_last_candidate_kept(
    start_backend: Callable[..., Awaitable[SimulatedBackend]],
    start_gateway: GatewayFactory,
) -> None:
    backend = await start_backend(
        name="sim",
        models=("demo",),
        ttft_ms=5,
        tokens_per_second=0,
        error_rate=1.0,
        fail_mode=FailMode.HTTP_429,
        retry_after_seconds=30,
    )
    gateway = await start_gateway(gateway_config(backend))
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(
            f"{gateway.url}/v1/chat/completions", content=PLAIN, headers=JSON_HEADERS
        )
        assert response.status_code == 429
        assert response.headers["retry-after"] == "30"
        # in cooldown, but the only candidate: the next request is still sent, and served
        backend.options.error_rate = 0.0
        after = await client.post(
            f"{gateway.url}/v1/chat/completions", content=PLAIN, headers=JSON_HEADERS
        )
        assert after.status_code == 200
        assert await _outcomes(client, gateway.url) == {"failure": 1.0, "success": 1.0}
        assert await in_flight(client, gateway.url) == 0
