"""What the official SDK tests of the client APIs (``/v1/messages``, ``/v1/responses``) share:
the simulator's answers, what it was sent, and a gateway held at its in-flight limit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import msgspec
import trio

from nexus_trio.simulator import FailMode, SimulatedBackend
from nexus_trio.simulator.completion import token
from tests.system.polling import poll

#: Simulator options: unpaced answers of :data:`TOKENS` tokens.
TOKENS = 5
FAST: dict[str, Any] = {
    "name": "sim",
    "models": ("demo",),
    "ttft_ms": 5,
    "tokens_per_second": 0,
    "completion_tokens": TOKENS,
}
#: Simulator options: every answer streams a few tokens, then the connection is reset.
BROKEN: dict[str, Any] = {**FAST, "error_rate": 1.0, "fail_mode": FailMode.RESET_MID}
#: Simulator options: every answer's headers, then nothing until the client leaves.
HANGING: dict[str, Any] = {**FAST, "error_rate": 1.0, "fail_mode": FailMode.HANG_MID}


def simulated_tokens(tokens: int = TOKENS) -> list[str]:
    """The tokens of a simulated answer of ``tokens`` tokens, in order."""
    return [token(index) for index in range(tokens)]


def simulated_text(tokens: int = TOKENS) -> str:
    """The text of a simulated answer of ``tokens`` tokens."""
    return "".join(simulated_tokens(tokens))


def chat_bodies(backend: SimulatedBackend) -> list[Any]:
    """The chat-completions requests the backend received, decoded, in order."""
    return [
        msgspec.json.decode(r.body) for r in backend.received if r.path == "/v1/chat/completions"
    ]


def sent_secrets(backend: SimulatedBackend, *secrets: str) -> list[bytes]:
    """Every header value the backend received that contains one of ``secrets``."""
    return [
        value
        for request in backend.received
        for _, value in request.headers
        if any(secret.encode() in value for secret in secrets)
    ]


@asynccontextmanager
async def one_request_held(url: str, backend: SimulatedBackend) -> AsyncIterator[None]:
    """A streamed chat request in flight through the gateway at ``url`` to ``backend`` (which
    must hang: :data:`HANGING`) for the body of the ``async with``; cancelled on exit."""
    body = {"model": "demo", "stream": True, "messages": [{"role": "user", "content": "hold"}]}
    held = len(chat_bodies(backend)) + 1
    async with httpx.AsyncClient(timeout=30) as http, trio.open_nursery() as nursery:

        async def hold() -> None:
            async with http.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
                async for _ in response.aiter_bytes():
                    pass

        nursery.start_soon(hold)
        with trio.fail_after(10):
            await poll(lambda: len(chat_bodies(backend)) == held and backend.active_responses > 0)
        yield
        nursery.cancel_scope.cancel()
