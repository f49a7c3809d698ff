"""Fake backends behind ``httpx.MockTransport``: one handler per host, and the responses they
give (whole bodies, SSE streams delivered chunk by chunk)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import trio

#: The last event of an OpenAI stream.
DONE = b"data: [DONE]\n\n"
#: A first event that carries the role and no content.
ROLE_ONLY = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}

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


# --- handlers: what a fake backend does with each request ----------------------------------


def answer(status: int = 200, body: bytes | None = None, **headers: str) -> Handler:
    """Every request gets this answer (200 without a body = a valid completion)."""

    async def handler(request: httpx.Request, data: bytes) -> httpx.Response:
        if status == 200 and body is None:
            return completion(**headers)
        return raw_response(status, body or b'{"error": {"message": "boom"}}', **headers)

    return handler


async def refuse(request: httpx.Request, data: bytes) -> httpx.Response:
    raise httpx.ConnectError("[Errno 111] Connection refused")


async def hang(request: httpx.Request, data: bytes) -> httpx.Response:
    await trio.sleep_forever()
    raise AssertionError("unreachable")


def by_model(**handlers: Handler) -> Handler:
    """Dispatch on the ``model`` of the forwarded body."""

    async def handler(request: httpx.Request, data: bytes) -> httpx.Response:
        return await handlers[msgspec.json.decode(data)["model"]](request, data)

    return handler


def gated(*gates: trio.Event) -> Handler:
    """The n-th request waits for the n-th gate (if any), then gets a completion."""
    pending = list(gates)

    async def handler(request: httpx.Request, data: bytes) -> httpx.Response:
        if pending:
            await pending.pop(0).wait()
        return completion()

    return handler


def script(*answers: Callable[[], httpx.Response] | Exception) -> Handler:
    """The n-th request gets the n-th answer (a response factory, or an exception raised as a
    transport failure); the last answer repeats."""
    pending = list(answers)

    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        answer = pending.pop(0) if len(pending) > 1 else pending[0]
        if isinstance(answer, Exception):
            raise answer
        return answer()

    return handler


# --- response factories for script() ---------------------------------------------------------


def status(code: int, body: bytes = b'{"error": {"message": "nope"}}') -> Callable[[], Any]:
    return lambda: raw_response(code, body)


def ok() -> httpx.Response:
    return completion()


def truncated_stream() -> httpx.Response:
    """A stream that ends without ``finish_reason`` or ``[DONE]``."""
    return stream_response(ChunkStream(sse(chunk("a"), chunk("b"))))
