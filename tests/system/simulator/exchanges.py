"""Talking to a simulated backend: request bodies, raw HTTP/1.1 exchanges and reading streams."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import trio

TOKENS = 5
CHAT = "/v1/chat/completions"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
ConnectionReset = httpx.ReadError  # ECONNRESET; a clean close raises RemoteProtocolError


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "demo", "messages": [{"role": "user", "content": "x" * 40}], **extra}


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` every millisecond (the counters have no event); callers bound it."""
    while not condition():  # noqa: ASYNC110
        await trio.sleep(0.001)


async def read_lines(response: httpx.Response, into: list[str]) -> None:
    """Append the lines of a streamed body to ``into`` as they arrive, until it ends or fails."""
    async for line in response.aiter_lines():
        into.append(line)


def raw_chat(*, stream: bool, expect_continue: bool = False) -> tuple[bytes, bytes]:
    """A chat request as raw HTTP/1.1: (head, body)."""
    body = json.dumps(chat(stream=stream)).encode()
    expect = b"expect: 100-continue\r\n" if expect_continue else b""
    head = b"POST %s HTTP/1.1\r\nhost: x\r\n%scontent-length: %d\r\n\r\n"
    return head % (CHAT.encode(), expect, len(body)), body


HEALTH_REQUEST = b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n"


def sse_data(body: str) -> list[str]:
    """The ``data`` payloads of an SSE body, in order (the simulator sends one line each)."""
    return [line[len("data: ") :] for line in body.split("\n") if line.startswith("data: ")]


async def raw_exchange(port: int, data: bytes, *, until: bytes) -> bytes:
    """Send ``data`` on a fresh connection and read until ``until`` has arrived."""
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        await stream.send_all(data)
        received = b""
        while until not in received:
            received += await stream.receive_some()
        return received
