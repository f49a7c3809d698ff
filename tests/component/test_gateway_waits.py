"""Waiting inside the gateway is the gateway's (docs/proxying.md#timeouts,
docs/quality.md#outcomes): time a request spends in the admission queue or waiting for a
connection to a backend never counts against that backend, as a failure, a timeout or a TTFT
sample. Virtual time (``autojump_clock``), asserted exactly.

The pool test runs the gateway over its real upstream transport (:class:`KeepAliveTransport`) with
socket pairs for connections and a small h11 server on the far ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import h11
import httpx
import msgspec
import pytest
import trio
import trio.testing

from nexus_trio.config import parse_config
from nexus_trio.quality.metrics import AgentState
from nexus_trio.quality.outcome import Outcome
from nexus_trio.runtime.wiring import Wiring
from nexus_trio.upstream.client import upstream_http_client
from nexus_trio.upstream.transport import POOL_EXTENSION, KeepAliveTransport, PoolSpec
from tests.component.client import CHAT, PATH
from tests.component.fake_upstream import chunk, completion, sse
from tests.component.in_process import Gateway, MakeGateway


def one_slot(server: str, quality: str = "") -> str:
    """Backend ``a`` with one slot; ``server`` and ``quality`` are the tables' lines."""
    return (
        f"[server]\n{server}\n[quality]\n{quality}\n[health_check]\nenabled = false\n"
        '[[backends]]\nname = "a"\nurl = "http://a.test:8000"\ntype = "generic"\n'
        'models = ["m"]\nmax_concurrent_requests = 1\n'
    )


def outcomes(wiring: Wiring) -> dict[str, float]:
    registry = wiring.metrics.registry
    labels = {"backend": "a", "model": "m"}
    return {
        o.value: registry.get_sample_value(
            "nexus_upstream_attempts_total", {**labels, "outcome": o}
        )
        or 0.0
        for o in Outcome
    }


def state(wiring: Wiring) -> AgentState:
    quality = wiring.quality
    quality.recompute(trio.current_time(), [("a", "m")])
    return quality.get(("a", "m")).state


class Answers:
    """Posts chat requests; keeps each (status, error code) and when it came."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.got: list[tuple[int, str | None]] = []

    async def post(self) -> None:
        response = await self.gateway.post(PATH, CHAT)
        body: Any = msgspec.json.decode(await response.get_data())
        self.got.append((response.status_code, body.get("error", {}).get("code")))


async def test_queue_waits_never_fail_a_healthy_backend(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock
) -> None:
    """Issue 21's reproduction: one slot, a 3 s request deadline, a backend answering in 2 s,
    four concurrent requests. Fast ejection after a single failure, so that one would show."""
    gateway = make_gateway(one_slot("request_timeout_seconds = 3", "consecutive_failures = 1"))

    async def two_seconds(request: httpx.Request, body: bytes) -> httpx.Response:
        await trio.sleep(2)
        return completion()

    gateway.upstream.handlers["a.test"] = two_seconds
    answers = Answers(gateway)
    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(answers.post)
    # The first is served; the second, woken at 2 s, is cut by the request deadline at 3 s
    # after 1 s upstream (504, not the backend's failure); the others time out in the queue.
    assert sorted(answers.got, key=str) == [
        (200, None),
        (503, "queue_timeout"),
        (503, "queue_timeout"),
        (504, "backend_timeout"),
    ]
    assert outcomes(gateway.wiring) == {
        "success": 1.0,
        "failure": 0.0,
        "client_error": 0.0,
        "cancelled": 1.0,
    }
    assert state(gateway.wiring) is AgentState.HEALTHY
    rejections = gateway.wiring.metrics.registry.get_sample_value(
        "nexus_capacity_rejections_total", {"code": "queue_timeout"}
    )
    assert rejections == 2


@pytest.mark.parametrize(
    ("held", "outcome"),
    [(0.5, "failure"), (1.0, "failure"), (1.5, "cancelled"), (6.0, "cancelled")],
)
async def test_a_cut_short_attempt_fails_the_backend_only_after_nearly_its_full_time(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock, held: float, outcome: str
) -> None:
    """A hung backend reached after ``held`` s in the queue, request deadline 10 s: failed
    when it had at least 90 % of min(attempt timeout 120 s, 10 s) = 9 s."""
    gateway = make_gateway(one_slot("request_timeout_seconds = 10"))
    calls = 0

    async def first_answers_then_hangs(request: httpx.Request, body: bytes) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            await trio.sleep(held)
            return completion()
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    gateway.upstream.handlers["a.test"] = first_answers_then_hangs
    answers = Answers(gateway)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(answers.post)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(answers.post)
    assert answers.got == [(200, None), (504, "backend_timeout")]
    recorded = outcomes(gateway.wiring)
    assert recorded["success"] == 1
    assert recorded[outcome] == 1
    assert recorded["failure"] + recorded["cancelled"] == 1


# --- waiting for a pooled connection ------------------------------------------------------------

Script = Callable[[h11.Connection, trio.SocketStream], Awaitable[None]]


async def _read_request(conn: h11.Connection, stream: trio.SocketStream) -> str:
    target = ""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(65536))
        elif isinstance(event, h11.Request):
            target = event.target.decode()
        elif isinstance(event, h11.EndOfMessage):
            return target


class Backend:
    """Stands in for ``trio.open_tcp_stream``: each connection is a socket pair whose far end
    an h11 server answers, by path, with a script."""

    def __init__(self, nursery: trio.Nursery, scripts: dict[str, Script]) -> None:
        self.nursery = nursery
        self.scripts = scripts
        self.sockets: list[trio.SocketStream] = []

    async def __call__(self, host: str, port: int) -> trio.SocketStream:
        ours, theirs = trio.socket.socketpair()
        self.sockets += [trio.SocketStream(ours), trio.SocketStream(theirs)]
        self.nursery.start_soon(self._serve, self.sockets[-1])
        await trio.lowlevel.checkpoint()
        return self.sockets[-2]

    async def _serve(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        with trio.move_on_after(60):
            await self.scripts[await _read_request(conn, stream)](conn, stream)


async def _send(conn: h11.Connection, stream: trio.SocketStream, event: h11.Event) -> None:
    await stream.send_all(conn.send(event) or b"")


async def _holds_forever(conn: h11.Connection, stream: trio.SocketStream) -> None:
    await _send(conn, stream, h11.Response(status_code=200, headers=[("content-length", "10")]))
    await trio.sleep_forever()


async def _first_token_after_one_second(conn: h11.Connection, stream: trio.SocketStream) -> None:
    head = [("content-type", "text/event-stream"), ("transfer-encoding", "chunked")]
    await _send(conn, stream, h11.Response(status_code=200, headers=head))
    await _send(conn, stream, h11.Data(data=b": ping\n\n"))
    await trio.sleep(1)
    events = sse(chunk("hi"), chunk(finish="stop"), "[DONE]")
    await _send(conn, stream, h11.Data(data=b"".join(events)))
    await _send(conn, stream, h11.EndOfMessage())


@pytest.fixture
async def pooled(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Gateway, KeepAliveTransport]]:
    """A gateway over a real :class:`KeepAliveTransport`; backend ``a`` has one pooled
    connection."""
    backend = Backend(nursery, {"/hold": _holds_forever, PATH: _first_token_after_one_second})
    monkeypatch.setattr(trio, "open_tcp_stream", backend)
    config = parse_config(one_slot("request_timeout_seconds = 30\nfirst_token_timeout_seconds = 3"))
    transport = KeepAliveTransport()
    wiring = Wiring.build(config, {}, upstream_http_client(transport), transport=transport)
    nursery.start_soon(wiring.disconnects.run)
    yield Gateway(app=wiring.app(), wiring=wiring, upstream=None), transport  # type: ignore[arg-type]
    await transport.aclose()
    for stream in backend.sockets:
        stream.socket.close()


async def test_a_wait_for_a_pooled_connection_is_not_the_backends_time(
    pooled: tuple[Gateway, KeepAliveTransport], autojump_clock: trio.testing.MockClock
) -> None:
    """Backend ``a``'s only connection is held for 5 s (as by a stream whose attempt is
    over but whose connection is not yet back); a stream request meanwhile waits for it, then
    gets its first token 1 s after it was sent. The 3 s first-token timeout runs from the send,
    and the TTFT is 1 s."""
    gateway, transport = pooled
    hold = httpx.Request(
        "POST", "http://a.test:8000/hold", extensions={POOL_EXTENSION: PoolSpec("a", 1)}
    )
    held = await transport.handle_async_request(hold)
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        response: list[Any] = []

        async def stream() -> None:
            reply = await gateway.post(PATH, {**CHAT, "stream": True})
            response.append((reply, await reply.get_data()))

        nursery.start_soon(stream)
        await trio.sleep(5)
        await held.aclose()
    reply, data = response[0]
    assert reply.status_code == 200
    assert data.endswith(b"data: [DONE]\n\n")
    assert trio.current_time() - start == 6.0
    registry = gateway.wiring.metrics.registry
    labels = {"backend": "a", "model": "m"}
    assert registry.get_sample_value("nexus_agent_ttft_seconds_sum", labels) == 1.0
    assert outcomes(gateway.wiring)["success"] == 1
