"""Client disconnects and bad input against a real gateway process (docs/proxying.md#request-body,
docs/proxying.md#streaming)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest
import trio

from nexus_trio.simulator import SimulatedBackend
from tests.system.configs import gateway_config
from tests.system.gateway_process import GatewayFactory, in_flight
from tests.system.polling import poll
from tests.system.raw_connection import RawConnection

JSON_HEADERS = {"content-type": "application/json"}

pytestmark = pytest.mark.system

#: The product promises 100 ms; assert with a 2x margin on a shared machine.
DISCONNECT_BOUND = 0.2

STREAM = b'{"model": "demo", "stream": true, "messages": [{"role": "user", "content": "hi"}]}'
PLAIN = b'{"model": "demo", "messages": [{"role": "user", "content": "hi"}]}'
JSON = [("content-type", "application/json")]


async def _disconnect_when(
    gateway_port: int, body: bytes, backend: SimulatedBackend, *, after_first_event: bool
) -> float:
    """Send ``body``, close the socket at the chosen moment; return when we closed."""
    connection = await RawConnection.open(gateway_port)
    await connection.send_request("POST", "/v1/chat/completions", body, JSON)
    if after_first_event:
        with trio.fail_after(5):
            await connection.next_event()  # the response head
            await connection.next_event()  # the first body chunk
    else:
        with trio.fail_after(5):
            await poll(lambda: backend.active_responses > 0)
    closed_at = trio.current_time()
    await connection.aclose()
    return closed_at


@pytest.mark.parametrize(
    ("body", "after_first_event", "ttft_ms"),
    [
        (STREAM, False, 3000),  # before the first event
        (STREAM, True, 10),  # mid-stream
        (PLAIN, False, 3000),  # non-streaming, waiting for the answer
    ],
    ids=["stream-before-first-event", "mid-stream", "non-streaming"],
)
async def test_client_disconnect_closes_upstream(
    start_backend: Callable[..., Awaitable[SimulatedBackend]],
    start_gateway: GatewayFactory,
    body: bytes,
    after_first_event: bool,
    ttft_ms: float,
) -> None:
    backend = await start_backend(
        name="sim", models=("demo",), ttft_ms=ttft_ms, tokens_per_second=2, completion_tokens=50
    )
    gateway = await start_gateway(gateway_config(backend))
    closed_at = await _disconnect_when(
        gateway.port, body, backend, after_first_event=after_first_event
    )
    with trio.fail_after(2):
        await poll(lambda: bool(backend.disconnects))
    assert backend.disconnects[0] - closed_at < DISCONNECT_BOUND
    async with httpx.AsyncClient() as client:

        async def drained() -> bool:
            return await in_flight(client, gateway.url) == 0

        with trio.fail_after(2):
            await poll(drained)
        metrics = (await client.get(f"{gateway.url}/metrics")).text
    assert 'nexus_upstream_attempts_total{backend="sim",model="demo",outcome="cancelled"} 1.0' in (
        metrics
    )
    assert 'nexus_backend_pending_requests{backend="sim"} 0.0' in metrics
    assert backend.active_responses == 0


BAD = [
    ("POST", "/v1/chat/completions", b"{not json", 400, "invalid_json"),
    ("POST", "/v1/chat/completions", b'{"messages": [{"content": "x"}]}', 400, "invalid_value"),
    (
        "POST",
        "/v1/chat/completions",
        b'{"model": "demo", "messages": [], "x": "' + b"y" * 2000 + b'"}',
        413,
        "request_too_large",
    ),
    ("GET", "/v1/chat/completions", b"", 405, "method_not_allowed"),
    ("POST", "/v1/unknown", PLAIN, 404, "not_found"),
    (
        "POST",
        "/v1/chat/completions",
        b'{"model": "nope", "messages": [{"content": "x"}]}',
        404,
        "model_not_found",
    ),
]


async def test_bad_input_gets_envelopes_and_nothing_reaches_upstream(
    start_backend: Callable[..., Awaitable[SimulatedBackend]],
    start_gateway: GatewayFactory,
) -> None:
    backend = await start_backend(name="sim", models=("demo",))
    gateway = await start_gateway(gateway_config(backend, server="max_request_body_bytes = 1000"))
    async with httpx.AsyncClient() as client:
        for method, path, body, status, code in BAD:
            response = await client.request(
                method, f"{gateway.url}{path}", content=body, headers=dict(JSON)
            )
            assert response.status_code == status, (path, body[:40])
            error = response.json()["error"]
            assert error["code"] == code
            assert set(error) >= {"message", "type", "param", "code"}
            assert response.headers["x-request-id"]
        ok = await client.post(
            f"{gateway.url}/v1/chat/completions", content=PLAIN, headers=JSON_HEADERS
        )
        assert ok.status_code == 200
    assert [r.path for r in backend.received] == ["/v1/chat/completions"]


async def test_status_lines_carry_the_code_and_no_reason_phrase(
    start_backend: Callable[..., Awaitable[SimulatedBackend]],
    start_gateway: GatewayFactory,
) -> None:
    backend = await start_backend()
    gateway = await start_gateway(gateway_config(backend))
    requests = [
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json"
        b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(PLAIN), PLAIN),
        b"GET /no-such-route HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n",
    ]
    status_lines = []
    for request in requests:
        stream = await trio.open_tcp_stream("127.0.0.1", gateway.port)
        async with stream:
            await stream.send_all(request)
            head = b""
            with trio.fail_after(5):
                while b"\r\n" not in head:
                    head += await stream.receive_some(4096)
        status_lines.append(head.split(b"\r\n", 1)[0])
    # docs/api.md#response-headers: the code, the space, and no reason phrase
    assert status_lines == [b"HTTP/1.1 200 ", b"HTTP/1.1 404 "]
