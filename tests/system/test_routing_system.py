"""Routing over real sockets: a ``nexus-trio serve`` process in front of simulated backends.

Health checks are on and fast (``tests/system/fleet.py``), so backends that die are noticed
and backends that return are used again, as in production. Cross-process state is observed
with ``poll`` under ``trio.fail_after``; the only sleeps let a time-based behaviour (a
cooldown) run out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import trio

from nexus_trio.simulator import FailMode, ReceivedRequest, SimulatedBackend
from tests.system.fleet import Fleet
from tests.system.gateway_process import GatewayFactory
from tests.system.polling import poll

JSON_HEADERS = {"content-type": "application/json"}

pytestmark = pytest.mark.system

PATH = "/v1/chat/completions"
#: Quick answers: 10 ms to the first token, no pacing between tokens.
FAST: dict[str, Any] = {"ttft_ms": 10, "tokens_per_second": 0}


@pytest.fixture
def fleet(nursery: trio.Nursery) -> Fleet:
    return Fleet(nursery)


def chat_body(model: str = "demo", **extra: object) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def inference(backend: SimulatedBackend) -> list[ReceivedRequest]:
    return [r for r in backend.received if r.method == "POST" and r.path == PATH]


async def health(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get(f"{url}/health")).json()
    return body


async def metrics(client: httpx.AsyncClient, url: str) -> str:
    return (await client.get(f"{url}/metrics")).text


async def wait_backends(client: httpx.AsyncClient, url: str, **counts: int) -> None:
    """Poll ``/health`` until its backend counts include ``counts`` (bounded by the caller)."""

    async def reached() -> bool:
        backends = (await health(client, url))["backends"]
        return all(backends[state] == count for state, count in counts.items())

    await poll(reached)


@dataclass(frozen=True)
class Result:
    sent: float
    done: float
    status: int
    backend: str | None
    attempts: int


async def traffic(
    client: httpx.AsyncClient, url: str, results: list[Result], stop: trio.Event
) -> None:
    """Non-streaming chat requests one after another until ``stop``."""
    while not stop.is_set():
        sent = trio.current_time()
        response = await client.post(f"{url}{PATH}", json=chat_body())
        results.append(
            Result(
                sent,
                trio.current_time(),
                response.status_code,
                response.headers.get("x-nexus-backend"),
                int(response.headers.get("x-nexus-attempts", "0")),
            )
        )
        await trio.sleep(0.01)


async def test_dead_backend_is_left_without_client_errors_and_used_again_when_back(
    fleet: Fleet, start_gateway: GatewayFactory, client: httpx.AsyncClient
) -> None:
    for name, priority in (("s1", 10), ("s2", 20), ("s3", 30)):
        await fleet.start(name, f"priority = {priority}", **FAST)
    gateway = await start_gateway(fleet.gateway_config())
    url = gateway.url
    first = await client.post(f"{url}{PATH}", json=chat_body())
    assert first.headers["x-nexus-backend"] == "s1"

    results: list[Result] = []
    stop = trio.Event()
    with trio.fail_after(15):
        async with trio.open_nursery() as load:
            for _ in range(3):
                load.start_soon(traffic, client, url, results, stop)
            await poll(lambda: len(results) >= 6)
            killed_at = trio.current_time()
            await fleet.kill("s1")
            await wait_backends(client, url, healthy=2, unhealthy=1)
            unhealthy_seen = trio.current_time()
            assert (await health(client, url))["status"] == "degraded"
            assert 'nexus_backend_up{backend="s1"} 0.0' in await metrics(client, url)
            await poll(lambda: sum(r.sent > unhealthy_seen for r in results) >= 6)

            restarted_at = trio.current_time()
            s1 = await fleet.restart("s1")
            await wait_backends(client, url, healthy=3)
            stop.set()

    # not one client error, before, during or after the outage
    assert [r.status for r in results if r.status != 200] == []
    assert "s1" in {r.backend for r in results if r.done < killed_at}
    # until the health checks notice, requests still try s1 first and are retried elsewhere
    outage = [r for r in results if killed_at < r.sent and r.done < unhealthy_seen]
    assert any(r.attempts == 2 and r.backend != "s1" for r in outage)
    # once the gateway knows s1 is down, nothing is even tried on it
    down = [r for r in results if unhealthy_seen < r.sent and r.done < restarted_at]
    assert down
    assert {(r.backend, r.attempts) for r in down} <= {("s2", 1), ("s3", 1)}
    # healthy again: the preferred backend gets the traffic back
    assert 'nexus_backend_up{backend="s1"} 1.0' in await metrics(client, url)
    again = await client.post(f"{url}{PATH}", json=chat_body())
    assert again.status_code == 200
    assert again.headers["x-nexus-backend"] == "s1"
    assert inference(s1)


async def test_model_whose_backends_are_all_down_gets_the_actionable_503(
    fleet: Fleet, start_gateway: GatewayFactory, client: httpx.AsyncClient
) -> None:
    await fleet.start("s1", models=("pair",), **FAST)
    await fleet.start("s2", models=("pair",), **FAST)
    await fleet.start("s3", models=("demo",), **FAST)
    gateway = await start_gateway(fleet.gateway_config())
    url = gateway.url
    with trio.fail_after(5):
        await fleet.kill("s1")
        await fleet.kill("s2")
        await wait_backends(client, url, healthy=1, unhealthy=2)
    response = await client.post(f"{url}{PATH}", json=chat_body("pair"))
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "no_available_backend"
    assert error["type"] == "service_unavailable"
    assert error["message"] == "No backend can serve 'pair' now: 2 excluded (2 unhealthy)"
    assert [(r["backend"], r["reconciler"], r["reason"]) for r in error["rejections"]] == [
        ("s1", "health", "unhealthy"),
        ("s2", "health", "unhealthy"),
    ]
    assert all(r["detail"] for r in error["rejections"])
    assert response.headers["x-nexus-rejection-reasons"] == "unhealthy"
    assert response.headers["retry-after"] == "1"  # the next probe is at most 0.5 s away
    assert "x-should-retry" not in response.headers
    # the gateway stays ready and the other model is served
    assert (await client.get(f"{url}/health")).status_code == 200
    other = await client.post(f"{url}{PATH}", json=chat_body("demo"))
    assert other.headers["x-nexus-backend"] == "s3"


async def test_backend_answering_500_is_retried_elsewhere(
    fleet: Fleet, start_gateway: GatewayFactory, client: httpx.AsyncClient
) -> None:
    failing = await fleet.start("s1", "priority = 10", error_rate=1.0, **FAST)
    await fleet.start("s2", "priority = 20", **FAST)
    await fleet.start("s3", "priority = 30", **FAST)
    gateway = await start_gateway(fleet.gateway_config())
    url = gateway.url
    response = await client.post(f"{url}{PATH}", json=chat_body())
    assert response.status_code == 200
    assert response.headers["x-nexus-backend"] == "s2"
    assert response.headers["x-nexus-route-reason"] == "retry"
    assert response.headers["x-nexus-attempts"] == "2"
    assert "choices" in response.json()

    async with client.stream("POST", f"{url}{PATH}", json=chat_body(stream=True)) as stream:
        assert stream.status_code == 200
        assert stream.headers["x-nexus-backend"] == "s2"
        body = b"".join([part async for part in stream.aiter_bytes()])
    assert body.endswith(b"data: [DONE]\n\n")
    assert b"stream_truncated" not in body

    assert len(inference(failing)) == 2
    text = await metrics(client, url)
    assert 'nexus_upstream_attempts_total{backend="s1",model="demo",outcome="failure"} 2.0' in text
    assert 'nexus_retries_total{backend="s1"} 2.0' in text


async def test_hung_backend_is_left_after_the_attempt_timeout(
    fleet: Fleet, start_gateway: GatewayFactory, client: httpx.AsyncClient
) -> None:
    hung = await fleet.start("s1", "priority = 10", error_rate=1.0, fail_mode=FailMode.HANG, **FAST)
    await fleet.start("s2", "priority = 20", **FAST)
    await fleet.start("s3", "priority = 30", **FAST)
    gateway = await start_gateway(fleet.gateway_config(server="attempt_timeout_seconds = 1"))
    url = gateway.url
    start = trio.current_time()
    response = await client.post(f"{url}{PATH}", json=chat_body())
    elapsed = trio.current_time() - start
    assert response.status_code == 200
    assert response.headers["x-nexus-backend"] == "s2"
    assert response.headers["x-nexus-attempts"] == "2"
    assert 1.0 <= elapsed < 1.8
    # the gateway hung up on the hung backend
    with trio.fail_after(2):
        await poll(lambda: bool(hung.disconnects))
    assert hung.active_responses == 0


async def test_fallback_model_serves_when_the_requested_one_fails(
    fleet: Fleet, start_gateway: GatewayFactory, client: httpx.AsyncClient
) -> None:
    await fleet.start("s1", models=("big",), error_rate=1.0, **FAST)
    small = await fleet.start("s2", "priority = 20", models=("small",), **FAST)
    await fleet.start("s3", "priority = 30", models=("small",), **FAST)
    config = fleet.gateway_config(extra='[routing.fallbacks]\n"big" = ["small"]')
    gateway = await start_gateway(config)
    url = gateway.url
    body = b'{"model": "big", "seed": 7, "messages": [{"role": "user", "content": "hi"}]}'
    response = await client.post(f"{url}{PATH}", content=body, headers=JSON_HEADERS)
    assert response.status_code == 200
    assert response.headers["x-nexus-fallback-model"] == "small"
    assert response.headers["x-nexus-model"] == "small"
    assert response.headers["x-nexus-backend"] == "s2"
    assert response.headers["x-nexus-route-reason"] == "fallback"
    assert response.headers["x-nexus-attempts"] == "2"
    [forwarded] = inference(small)
    # only ``model`` changed; every other value reached the backend byte for byte
    assert (
        forwarded.body
        == b'{"model":"small","seed":7,"messages":[{"role": "user", "content": "hi"}]}'
    )
    text = await metrics(client, url)
    assert 'nexus_fallbacks_total{from_model="big",to_model="small"} 1.0' in text


async def test_saturated_backend_queues_then_serves(
    fleet: Fleet, start_gateway: GatewayFactory, client: httpx.AsyncClient
) -> None:
    slow = await fleet.start(
        "s1", "max_concurrent_requests = 1", models=("slow",), ttft_ms=600, tokens_per_second=0
    )
    await fleet.start("s2", **FAST)
    await fleet.start("s3", **FAST)
    gateway = await start_gateway(fleet.gateway_config())
    url = gateway.url
    finished: list[tuple[float, httpx.Response]] = []

    async def ask() -> None:
        response = await client.post(f"{url}{PATH}", json=chat_body("slow"))
        finished.append((trio.current_time(), response))

    start = trio.current_time()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask)
            nursery.start_soon(ask)

            async def one_waiting() -> bool:
                return "\nnexus_queue_depth 1.0\n" in await metrics(client, url)

            await poll(one_waiting)
            assert (await health(client, url))["in_flight_requests"] == 2
    assert [response.status_code for _, response in finished] == [200, 200]
    assert [response.headers["x-nexus-attempts"] for _, response in finished] == ["1", "1"]
    (first_done, _), (second_done, _) = finished
    assert 0.6 <= first_done - start < 1.1
    assert 1.2 <= second_done - start < 1.8
    # never two at once on the backend: the second was sent when the first was answered
    first_at, second_at = (r.at for r in inference(slow))
    assert second_at - first_at >= 0.59
    assert "\nnexus_queue_depth 0.0\n" in await metrics(client, url)


async def test_429_cools_the_backend_down_until_retry_after(
    fleet: Fleet, start_gateway: GatewayFactory, client: httpx.AsyncClient
) -> None:
    limited = await fleet.start(
        "s1",
        "priority = 10",
        error_rate=1.0,
        fail_mode=FailMode.HTTP_429,
        retry_after_seconds=2,
        **FAST,
    )
    await fleet.start("s2", "priority = 20", **FAST)
    await fleet.start("s3", "priority = 30", **FAST)
    gateway = await start_gateway(fleet.gateway_config())
    url = gateway.url
    first = await client.post(f"{url}{PATH}", json=chat_body())
    answered_at = trio.current_time()
    assert first.status_code == 200
    assert first.headers["x-nexus-backend"] == "s2"
    assert first.headers["x-nexus-route-reason"] == "retry"
    limited.options.error_rate = 0.0  # s1 would serve now, but it asked for 2 s of quiet

    cooling = await client.post(f"{url}{PATH}", json=chat_body())
    assert trio.current_time() - answered_at < 1.5
    assert cooling.headers["x-nexus-backend"] == "s2"
    assert cooling.headers["x-nexus-attempts"] == "1"
    assert len(inference(limited)) == 1

    await trio.sleep_until(answered_at + 2.1)  # the cooldown runs out: that is the behaviour
    back = await client.post(f"{url}{PATH}", json=chat_body())
    assert back.status_code == 200
    assert back.headers["x-nexus-backend"] == "s1"
    assert back.headers["x-nexus-attempts"] == "1"
    assert len(inference(limited)) == 2
