"""In-process gateway: the Quart app via its test client, upstreams via httpx.MockTransport."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import pytest
import trio
from quart_trio import QuartTrio

from nexus_trio.config import Config, parse_config
from nexus_trio.dashboard.publisher import SnapshotPublisher
from nexus_trio.runtime.wiring import Wiring
from nexus_trio.upstream.client import upstream_http_client

Handler = Callable[[httpx.Request, bytes], Awaitable[httpx.Response]]


class ChunkStream(httpx.AsyncByteStream):
    """An upstream body delivered chunk by chunk; records when the gateway closes it.

    An item may be ``bytes`` (sent), a ``float`` (sleep that long), an ``Exception`` (raised as
    a transport failure) or a ``trio.Event`` (wait for it: "upstream pauses until told").
    """

    def __init__(self, items: Iterable[object]) -> None:
        self.items = list(items)
        self.closed = trio.Event()
        self.closed_at: float | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        # A plain iterator, not an async generator: an abandoned generator would warn.
        while self.items:
            item = self.items.pop(0)
            if isinstance(item, bytes):
                return item
            if isinstance(item, float | int):
                await trio.sleep(item)
            elif isinstance(item, trio.Event):
                await item.wait()
            elif isinstance(item, Exception):
                raise item
        raise StopAsyncIteration

    async def aclose(self) -> None:
        if self.closed_at is None:
            self.closed_at = trio.current_time()
        self.closed.set()


@dataclass
class Upstream:
    """Fake backends: one handler per backend host, every request recorded."""

    handlers: dict[str, Handler] = field(default_factory=dict)
    requests: list[tuple[httpx.Request, bytes]] = field(default_factory=list)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.requests.append((request, body))
        return await self.handlers[request.url.host](request, body)

    def bodies(self, path: str = "/v1/chat/completions") -> list[bytes]:
        return [body for request, body in self.requests if request.url.path == path]


def completion(content: str = "hi", **extra: Any) -> httpx.Response:
    body = {
        "id": "c1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    return raw_response(200, msgspec.json.encode(body), **extra)


def raw_response(status: int, body: bytes, **headers: str) -> httpx.Response:
    """A response whose body is read from the transport, as from a real server.

    (``httpx.Response(content=...)`` arrives already read, which no real transport does.)
    """
    headers.setdefault("content-type", "application/json")
    return httpx.Response(status, headers=headers, stream=ChunkStream([body]))


def sse(*payloads: object) -> list[bytes]:
    """One ``data:`` event per payload (dicts encoded as JSON, strings verbatim)."""
    out = []
    for payload in payloads:
        data = payload if isinstance(payload, str) else msgspec.json.encode(payload).decode()
        out.append(f"data: {data}\n\n".encode())
    return out


def chunk(content: str | None = None, finish: str | None = None) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def stream_response(stream: ChunkStream, status: int = 200) -> httpx.Response:
    return httpx.Response(status, headers={"content-type": "text/event-stream"}, stream=stream)


BASE_CONFIG = """
[health_check]
enabled = false
[[backends]]
name = "a"
url = "http://a.test"
type = "generic"
priority = 10
models = ["m"]
[backends.capabilities.m]
tools = true
[[backends]]
name = "b"
url = "http://b.test"
type = "vllm"
priority = 20
models = ["m"]
[backends.capabilities.m]
tools = true
"""


@dataclass
class Gateway:
    app: QuartTrio
    wiring: Wiring
    upstream: Upstream
    #: The dashboard's snapshot publisher (running), None with the dashboard off.
    dashboard: SnapshotPublisher | None = None

    async def post(self, path: str, body: object, **headers: str) -> Any:
        data = body if isinstance(body, bytes) else msgspec.json.encode(body)
        client = self.app.test_client()
        return await client.post(
            path, data=data, headers={"content-type": "application/json", **headers}
        )


class ASGICall:
    """One request driven straight through the ASGI app, with a client that can vanish.

    (Quart's test connection waits for a final body message that a disconnected client never
    gets, so disconnect tests talk ASGI directly.)
    """

    def __init__(
        self,
        app: QuartTrio,
        path: str,
        body: bytes,
        *,
        method: str = "POST",
        headers: Iterable[tuple[bytes, bytes]] = (),
    ) -> None:
        self.app = app
        self.scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"content-type", b"application/json"),
                (b"host", b"gw.test"),
                *headers,
            ],
            "client": ("127.0.0.1", 1234),
            "server": ("127.0.0.1", 8000),
            "extensions": {},
        }
        self.body = body
        self.gone = trio.Event()
        self.finished = trio.Event()
        self.messages_send, self.messages = trio.open_memory_channel[dict[str, Any]](100)
        self._body_sent = False

    async def _receive(self) -> dict[str, Any]:
        if not self._body_sent:
            self._body_sent = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: dict[str, Any]) -> None:
        await self.messages_send.send(message)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            await self.app(self.scope, self._receive, self._send)  # type: ignore[arg-type]
        finally:
            self.finished.set()

    async def next_body(self) -> bytes:
        while True:
            message = await self.messages.receive()
            if message["type"] == "http.response.body":
                body: bytes = message["body"]
                return body


@pytest.fixture
def make_gateway(nursery: trio.Nursery) -> Callable[..., Gateway]:
    """Build an in-process gateway; its disconnect watcher and dashboard publisher run until
    the test ends."""

    def make(
        config_text: str = BASE_CONFIG,
        env: dict[str, str] | None = None,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> Gateway:
        config: Config = parse_config(config_text)
        upstream = Upstream()
        transport = httpx.MockTransport(upstream)
        http = upstream_http_client(transport)
        wiring = Wiring.build(config, env or {}, http, transport=transport, wall_clock=wall_clock)
        nursery.start_soon(wiring.disconnects.run)
        if wiring.publisher is not None:
            nursery.start_soon(wiring.publisher.run)
        return Gateway(
            app=wiring.app(), wiring=wiring, upstream=upstream, dashboard=wiring.publisher
        )

    return make


@pytest.fixture
async def gateway(make_gateway: Callable[..., Gateway]) -> Gateway:
    return make_gateway()


CHAT = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
