"""The proxy endpoint reads request bodies itself (docs/proxying.md#request-body): in pieces, within
the size limit, within the request deadline, and not at all when the request is refused from its
headers."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import msgspec
import trio

from tests.component.fake_upstream import completion
from tests.component.in_process import Gateway

LIMITED = """
[server]
max_request_body_bytes = 1000
request_timeout_seconds = 20
[health_check]
enabled = false
[[backends]]
name = "a"
url = "http://a.test"
type = "generic"
models = ["m"]
"""

CHAT = b'{"model": "m", "messages": [{"role": "user", "content": "hello"}]}'


class ScriptedClient:
    """A client that sends the body as the given ``http.request`` messages, then waits
    (``trio.sleep_forever``) or disconnects (``disconnect=True``)."""

    def __init__(self, pieces: list[bytes], *, finished: bool, disconnect: bool = False) -> None:
        self.messages: list[dict[str, Any]] = [
            {"type": "http.request", "body": piece, "more_body": True} for piece in pieces
        ]
        if finished:
            self.messages[-1]["more_body"] = False
        self.disconnect = disconnect
        self.received = 0
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        if self.received < len(self.messages):
            self.received += 1
            return self.messages[self.received - 1]
        if self.disconnect:
            return {"type": "http.disconnect"}
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    async def call(
        self, gateway: Gateway, *, method: str = "POST", headers: list[tuple[bytes, bytes]]
    ) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": "/v1/chat/completions",
            "raw_path": b"/v1/chat/completions",
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 1234),
            "server": ("127.0.0.1", 8000),
            "extensions": {},
        }
        await gateway.app(scope, self.receive, self.send)  # type: ignore[arg-type]

    @property
    def status(self) -> int:
        status: int = self.sent[0]["status"]
        return status

    def header(self, name: bytes) -> bytes | None:
        return dict(self.sent[0]["headers"]).get(name)

    def error_code(self) -> str:
        body = b"".join(m.get("body", b"") for m in self.sent[1:])
        code: str = msgspec.json.decode(body)["error"]["code"]
        return code


JSON = [(b"content-type", b"application/json")]


async def test_body_in_pieces_is_forwarded_byte_for_byte(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(LIMITED)

    async def ok(request: object, body: bytes) -> object:
        return completion()

    gateway.upstream.handlers["a.test"] = ok  # type: ignore[assignment]
    client = ScriptedClient([CHAT[:10], CHAT[10:30], b"", CHAT[30:]], finished=True)
    await client.call(gateway, headers=JSON)
    assert client.status == 200
    assert gateway.upstream.bodies() == [CHAT]


async def test_declared_length_over_limit_is_refused_before_reading(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(LIMITED)
    client = ScriptedClient([b"x" * 500] * 4, finished=True)
    await client.call(gateway, headers=[*JSON, (b"content-length", b"2000")])
    assert client.status == 413
    assert client.error_code() == "request_too_large"
    assert client.received == 0
    assert gateway.upstream.requests == []


async def test_undeclared_body_over_limit_stops_reading_at_the_limit(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(LIMITED)
    client = ScriptedClient([b"x" * 400] * 10, finished=True)
    await client.call(gateway, headers=JSON)
    assert client.status == 413
    assert client.error_code() == "request_too_large"
    assert client.received == 3  # 1,200 bytes > 1,000: the other 2,800 are never buffered
    assert gateway.upstream.requests == []


async def test_body_that_never_completes_is_408_at_the_request_deadline(
    make_gateway: Callable[..., Gateway], autojump_clock: trio.testing.MockClock
) -> None:
    gateway = make_gateway(LIMITED)
    client = ScriptedClient([CHAT[:10]], finished=False)
    started = trio.current_time()
    with trio.fail_after(100):
        await client.call(gateway, headers=JSON)
    assert trio.current_time() - started == 20.0
    assert client.status == 408
    assert client.error_code() == "request_timeout"
    assert gateway.upstream.requests == []


async def test_client_gone_while_sending_gets_nothing_and_sends_nothing(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(LIMITED)
    client = ScriptedClient([CHAT[:10]], finished=False, disconnect=True)
    await client.call(gateway, headers=JSON)
    assert client.sent == []
    assert gateway.upstream.requests == []
    assert gateway.wiring.state.in_flight.count == 0


async def test_other_methods_on_proxy_paths_are_405_with_allow(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(LIMITED)
    for method in ("GET", "PUT", "DELETE", "OPTIONS"):
        client = ScriptedClient([b""], finished=True)
        await client.call(gateway, method=method, headers=JSON)
        assert client.status == 405
        assert client.header(b"allow") == b"POST"
        assert client.error_code() == "method_not_allowed"
        assert client.header(b"x-request-id")
    assert gateway.upstream.requests == []


SLOW_BODIES = LIMITED.replace(
    "[server]\n", "[server]\nbody_timeout_seconds = 5\nmax_in_flight_requests = 1\n"
)


async def test_body_not_complete_within_body_timeout_is_408_then(
    make_gateway: Callable[..., Gateway], autojump_clock: trio.testing.MockClock
) -> None:
    gateway = make_gateway(SLOW_BODIES)
    client = ScriptedClient([CHAT[:10]], finished=False)
    started = trio.current_time()
    with trio.fail_after(100):
        await client.call(gateway, headers=JSON)
    assert trio.current_time() - started == 5.0
    assert (client.status, client.error_code()) == (408, "request_timeout")
    assert gateway.upstream.requests == []


async def test_clients_still_sending_their_body_hold_no_in_flight_slot(
    make_gateway: Callable[..., Gateway], autojump_clock: trio.testing.MockClock
) -> None:
    """``max_in_flight_requests = 1``: slow senders do not keep other tenants out
    (docs/routing.md#queue-and-overload)."""
    gateway = make_gateway(SLOW_BODIES)

    async def ok(request: object, body: bytes) -> object:
        return completion()

    gateway.upstream.handlers["a.test"] = ok  # type: ignore[assignment]
    slow = [ScriptedClient([CHAT[:5]], finished=False) for _ in range(3)]
    async with trio.open_nursery() as nursery:
        for client in slow:
            nursery.start_soon(partial(client.call, gateway, headers=JSON))
        await trio.testing.wait_all_tasks_blocked()  # all three are waiting for their bodies
        assert gateway.wiring.state.in_flight.count == 0
        fast = ScriptedClient([CHAT], finished=True)
        await fast.call(gateway, headers=JSON)
        assert fast.status == 200
    assert [client.status for client in slow] == [408, 408, 408]
    assert gateway.wiring.state.in_flight.count == 0
