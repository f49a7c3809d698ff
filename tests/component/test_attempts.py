"""Attempts, retries and the final answer for non-streaming requests (docs/proxying.md#retries)."""

from __future__ import annotations

import httpx
import msgspec
import trio

from tests.component.client import CHAT
from tests.component.fake_upstream import ChunkStream, completion, raw_response
from tests.component.in_process import Gateway


def fixed(response_factory):  # type: ignore[no-untyped-def]
    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        return response_factory()

    return handler


async def test_5xx_is_retried_on_the_next_backend(gateway: Gateway) -> None:
    gateway.upstream.handlers["a.test"] = fixed(lambda: raw_response(500, b'{"error": "boom"}'))
    gateway.upstream.handlers["b.test"] = fixed(completion)
    response = await gateway.post("/v1/chat/completions", CHAT)
    assert response.status_code == 200
    assert response.headers["x-nexus-backend"] == "b"
    assert response.headers["x-nexus-attempts"] == "2"
    assert response.headers["x-nexus-route-reason"] == "retry"
    assert gateway.wiring.registry.get("a").counters.pending == 0  # type: ignore[union-attr]


async def test_last_upstream_error_is_passed_through(gateway: Gateway) -> None:
    gateway.upstream.handlers["a.test"] = fixed(lambda: raw_response(500, b'{"e": "a"}'))
    gateway.upstream.handlers["b.test"] = fixed(
        lambda: raw_response(429, b'{"e": "slow down"}', **{"retry-after": "7"})
    )
    response = await gateway.post("/v1/chat/completions", CHAT)
    assert response.status_code == 429
    assert await response.get_data() == b'{"e": "slow down"}'
    assert response.headers["retry-after"] == "7"
    assert response.headers["x-should-retry"] == "false"
    assert response.headers["x-nexus-attempts"] == "2"


async def test_client_error_returned_as_is_and_not_retried(gateway: Gateway) -> None:
    gateway.upstream.handlers["a.test"] = fixed(lambda: raw_response(400, b'{"e": "bad param"}'))
    response = await gateway.post("/v1/chat/completions", CHAT)
    assert response.status_code == 400
    assert await response.get_data() == b'{"e": "bad param"}'
    assert len(gateway.upstream.requests) == 1
    assert "x-should-retry" not in response.headers


async def test_invalid_json_200_is_retried_then_502(gateway: Gateway) -> None:
    gateway.upstream.handlers["a.test"] = fixed(lambda: raw_response(200, b"<html>oops"))
    gateway.upstream.handlers["b.test"] = fixed(lambda: raw_response(200, b"not json"))
    response = await gateway.post("/v1/chat/completions", CHAT)
    assert response.status_code == 502
    error = msgspec.json.decode(await response.get_data())["error"]
    assert error["code"] == "bad_upstream_response"
    assert error["type"] == "upstream_error"
    assert "http://" not in error["message"]
    assert response.headers["x-should-retry"] == "false"


async def test_connect_error_gives_502_naming_backend_only(gateway: Gateway) -> None:
    async def refuse(request: httpx.Request, body: bytes) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused to 10.1.2.3:8080")

    gateway.upstream.handlers["a.test"] = refuse
    gateway.upstream.handlers["b.test"] = refuse
    response = await gateway.post("/v1/chat/completions", CHAT)
    assert response.status_code == 502
    error = msgspec.json.decode(await response.get_data())["error"]
    assert error["code"] == "backend_unavailable"
    assert "10.1.2.3" not in error["message"]
    assert "Errno" not in error["message"]


async def test_response_over_limit_is_502(make_gateway) -> None:  # type: ignore[no-untyped-def]
    gateway: Gateway = make_gateway(
        "[server]\nmax_response_body_bytes = 1000\n[health_check]\nenabled = false\n"
        '[[backends]]\nname = "a"\nurl = "http://a.test"\ntype = "generic"\nmodels = ["m"]\n'
    )
    gateway.upstream.handlers["a.test"] = fixed(
        lambda: raw_response(200, b"[" + b"1," * 800 + b"1]")
    )
    response = await gateway.post("/v1/chat/completions", CHAT)
    assert response.status_code == 502
    assert (
        msgspec.json.decode(await response.get_data())["error"]["code"] == "bad_upstream_response"
    )


async def test_hung_backend_left_after_attempt_timeout(
    make_gateway,
    autojump_clock: trio.testing.MockClock,  # type: ignore[no-untyped-def]
) -> None:
    gateway: Gateway = make_gateway(
        "[server]\nattempt_timeout_seconds = 5\n[health_check]\nenabled = false\n"
        '[[backends]]\nname = "a"\nurl = "http://a.test"\ntype = "generic"\npriority = 1\n'
        'models = ["m"]\n'
        '[[backends]]\nname = "b"\nurl = "http://b.test"\ntype = "generic"\nmodels = ["m"]\n'
    )
    hang = ChunkStream([trio.Event()])

    async def hung(request: httpx.Request, body: bytes) -> httpx.Response:
        return httpx.Response(200, stream=hang)

    gateway.upstream.handlers["a.test"] = hung
    gateway.upstream.handlers["b.test"] = fixed(completion)
    start = trio.current_time()
    response = await gateway.post("/v1/chat/completions", CHAT)
    assert response.status_code == 200
    assert response.headers["x-nexus-backend"] == "b"
    assert trio.current_time() - start == 5.0
    assert hang.closed.is_set()


async def test_request_deadline_gives_504(
    make_gateway,
    autojump_clock: trio.testing.MockClock,  # type: ignore[no-untyped-def]
) -> None:
    gateway: Gateway = make_gateway(
        "[server]\nrequest_timeout_seconds = 3\n[health_check]\nenabled = false\n"
        '[[backends]]\nname = "a"\nurl = "http://a.test"\ntype = "generic"\nmodels = ["m"]\n'
    )

    async def slow(request: httpx.Request, body: bytes) -> httpx.Response:
        await trio.sleep(60)
        return completion()

    gateway.upstream.handlers["a.test"] = slow
    start = trio.current_time()
    response = await gateway.post("/v1/chat/completions", CHAT)
    assert response.status_code == 504
    assert trio.current_time() - start == 3.0
    assert msgspec.json.decode(await response.get_data())["error"]["code"] == "backend_timeout"
    assert gateway.wiring.state.in_flight.count == 0


async def test_overloaded_before_body_read(make_gateway) -> None:  # type: ignore[no-untyped-def]
    gateway: Gateway = make_gateway("[server]\nmax_in_flight_requests = 1\n")
    gateway.wiring.state.in_flight.count = 1
    response = await gateway.post("/v1/chat/completions", CHAT)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert msgspec.json.decode(await response.get_data())["error"]["code"] == "overloaded"


async def test_keep_alive_race_retried_once_on_the_same_backend_uncounted(
    gateway: Gateway,
) -> None:
    calls: list[str] = []

    async def stale_then_ok(request: httpx.Request, body: bytes) -> httpx.Response:
        calls.append(request.url.host)
        if len(calls) == 1:
            # httpcore's words for a pooled connection the server had closed
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        return completion()

    gateway.upstream.handlers["a.test"] = stale_then_ok
    response = await gateway.post("/v1/chat/completions", CHAT)
    assert response.status_code == 200
    assert calls == ["a.test", "a.test"]
    assert response.headers["x-nexus-attempts"] == "1"
    registry = gateway.wiring.metrics.registry
    labels = {"backend": "a", "model": "m"}
    assert (
        registry.get_sample_value(
            "nexus_upstream_attempts_total", {**labels, "outcome": "cancelled"}
        )
        == 1.0
    )
    assert (
        registry.get_sample_value("nexus_upstream_attempts_total", {**labels, "outcome": "failure"})
        is None
    )
