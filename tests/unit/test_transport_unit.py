"""The transport without a network: reuse rules, pool bookkeeping, timeout plumbing.

Connections are socket pairs (no TCP) or no socket at all; ``trio.open_tcp_stream`` is stubbed.
Time is virtual (``autojump_clock``), so expiry and timeouts are asserted exactly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import trio
import trio.testing

from nexus_trio.upstream.pool import Connection, HostPool
from nexus_trio.upstream.response_parser import ResponseParser
from nexus_trio.upstream.transport import KeepAliveTransport

URL = "http://backend.test:8000/v1/chat/completions"
OK_HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"


# --- reuse rules (no socket) --------------------------------------------------------------------


def answered(response: bytes, *, closing: bool = False) -> Connection:
    """A connection (no socket) whose request got ``response``, parsed."""
    connection = Connection(stream=None)  # type: ignore[arg-type]
    connection.parser = ResponseParser("GET")
    connection.closing = closing
    connection.parser.feed(response)
    return connection


def test_clean_exchange_is_reusable() -> None:
    assert answered(OK_HEAD + b"hello").reusable()


@pytest.mark.parametrize(
    "response",
    [
        pytest.param(
            b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 5\r\n\r\nhello", id="close"
        ),
        pytest.param(OK_HEAD + b"helloHTTP/1.1 200 OK\r\n", id="trailing-bytes"),
        pytest.param(b"HTTP/1.0 200 OK\r\ncontent-length: 5\r\n\r\nhello", id="http-1.0"),
        pytest.param(OK_HEAD + b"hel", id="partial-body"),
    ],
)
def test_connection_is_not_kept_when(response: bytes) -> None:
    assert not answered(response).reusable()


def test_request_asking_to_close_is_not_kept() -> None:
    assert not answered(OK_HEAD + b"hello", closing=True).reusable()


def test_nothing_parsed_is_not_reusable() -> None:
    assert not Connection(stream=None).reusable()  # type: ignore[arg-type]


# --- pool bookkeeping (socket pairs, virtual time) ---------------------------------------------


class Opener:
    """Stands in for ``trio.open_tcp_stream``: hands out socket-pair streams, keeps the peers."""

    def __init__(self) -> None:
        self.peers: list[trio.SocketStream] = []
        self.streams: list[trio.SocketStream] = []

    async def __call__(self, host: str, port: int) -> trio.SocketStream:
        ours, theirs = trio.socket.socketpair()
        self.peers.append(trio.SocketStream(theirs))
        self.streams.append(trio.SocketStream(ours))
        await trio.lowlevel.checkpoint()
        return self.streams[-1]

    def close(self) -> None:
        for stream in self.peers + self.streams:
            stream.socket.close()


@pytest.fixture
async def opener(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Opener]:
    opener = Opener()
    monkeypatch.setattr(trio, "open_tcp_stream", opener)
    yield opener
    opener.close()


def make_pool(*, max_connections: int = 4, max_idle: int = 4) -> HostPool:
    return HostPool(
        "backend.test",
        8000,
        max_connections=max_connections,
        max_idle=max_idle,
        keepalive_expiry=30,
    )


async def acquire(pool: HostPool, *, pool_timeout: float | None = None) -> Connection:
    return await pool.acquire(connect_timeout=None, pool_timeout=pool_timeout)


def closed(connection: Connection) -> bool:
    return connection.stream.socket.fileno() == -1


async def test_idle_connections_are_reused_newest_first(opener: Opener) -> None:
    pool = make_pool()
    first, second = await acquire(pool), await acquire(pool)
    pool.release(first, keep=True)
    pool.release(second, keep=True)
    assert await acquire(pool) is second
    assert await acquire(pool) is first
    assert len(opener.streams) == 2
    assert first.reused
    assert second.reused


async def test_idle_connection_expires(
    opener: Opener, autojump_clock: trio.testing.MockClock
) -> None:
    pool = make_pool()
    old = await acquire(pool)
    pool.release(old, keep=True)
    await trio.sleep(30.5)
    fresh = await acquire(pool)
    assert fresh is not old
    assert closed(old)


@pytest.mark.parametrize("peer_does", ["close", "send"])
async def test_readable_idle_connection_is_discarded(opener: Opener, peer_does: str) -> None:
    pool = make_pool()
    connection = await acquire(pool)
    pool.release(connection, keep=True)
    if peer_does == "close":
        opener.peers[0].socket.close()
    else:
        await opener.peers[0].send_all(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
    assert await acquire(pool) is not connection
    assert closed(connection)


async def test_idle_stack_keeps_the_newest(opener: Opener) -> None:
    pool = make_pool(max_idle=2)
    connections = [await acquire(pool) for _ in range(3)]
    for connection in connections:
        pool.release(connection, keep=True)
    assert [closed(c) for c in connections] == [True, False, False]


async def test_release_without_keep_closes(opener: Opener) -> None:
    pool = make_pool()
    connection = await acquire(pool)
    pool.release(connection, keep=False)
    assert closed(connection)


async def test_requests_wait_for_a_free_slot(
    opener: Opener, autojump_clock: trio.testing.MockClock
) -> None:
    pool = make_pool(max_connections=1)
    held = await acquire(pool)
    got: list[Connection] = []

    async def waiter() -> None:
        got.append(await acquire(pool))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.sleep(10)
        assert not got
        pool.release(held, keep=True)
    assert got == [held]
    assert len(opener.streams) == 1


async def test_pool_timeout(opener: Opener, autojump_clock: trio.testing.MockClock) -> None:
    pool = make_pool(max_connections=1)
    await acquire(pool)
    start = trio.current_time()
    with pytest.raises(httpx.PoolTimeout):
        await acquire(pool, pool_timeout=2.5)
    assert trio.current_time() - start == pytest.approx(2.5)


async def test_closed_pool_closes_everything(opener: Opener) -> None:
    pool = make_pool()
    busy, idle = await acquire(pool), await acquire(pool)
    pool.release(idle, keep=True)
    pool.close()
    assert closed(busy)
    assert closed(idle)
    pool.release(busy, keep=True)
    with pytest.raises(RuntimeError):
        await acquire(pool)


# --- timeout plumbing and connect errors (stubbed connect) -------------------------------------


@pytest.fixture
def never_connects(monkeypatch: pytest.MonkeyPatch) -> None:
    async def hang(host: str, port: int) -> trio.SocketStream:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    monkeypatch.setattr(trio, "open_tcp_stream", hang)


@pytest.mark.parametrize(
    ("extensions", "expected"),
    [
        pytest.param({"timeout": {"connect": 2.5, "read": None}}, 2.5, id="extension"),
        pytest.param({}, 7.0, id="constructor-default"),
    ],
)
@pytest.mark.usefixtures("never_connects")
async def test_connect_timeout(
    autojump_clock: trio.testing.MockClock, extensions: dict[str, object], expected: float
) -> None:
    transport = KeepAliveTransport(connect_timeout=7.0)
    request = httpx.Request("POST", URL, content=b"{}", extensions=extensions)
    start = trio.current_time()
    with pytest.raises(httpx.ConnectTimeout):
        await transport.handle_async_request(request)
    assert trio.current_time() - start == pytest.approx(expected)
    await transport.aclose()


async def test_connect_error_names_no_address(monkeypatch: pytest.MonkeyPatch) -> None:
    async def refuse(host: str, port: int) -> trio.SocketStream:
        refused = ConnectionRefusedError(111, "Error connecting to ('10.9.8.7', 8000): refused")
        refused.strerror = "Connection refused"
        group = ExceptionGroup("attempts", [refused])
        raise OSError("all attempts to connect to 10.9.8.7:8000 failed") from group

    monkeypatch.setattr(trio, "open_tcp_stream", refuse)
    transport = KeepAliveTransport()
    with pytest.raises(httpx.ConnectError, match=r"^Connection failed: Connection refused\.$"):
        await transport.handle_async_request(httpx.Request("GET", URL))
    await transport.aclose()


# --- https goes to the fallback -----------------------------------------------------------------


async def test_https_is_delegated_to_the_fallback() -> None:
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, content=b"from fallback")

    transport = KeepAliveTransport(fallback=httpx.MockTransport(handler))
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.get("https://api.example.test/v1/models")
    assert response.content == b"from fallback"
    assert seen == [httpx.URL("https://api.example.test/v1/models")]
