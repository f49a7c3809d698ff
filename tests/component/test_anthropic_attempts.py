"""Anthropic attempts in process: the translated stream through the relay, timed by the clock.

The upstream is an ``httpx.MockTransport`` answering with Anthropic's stream events (from the
fake server's generator) paced by the virtual clock.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
import trio
import trio.testing

from tests.component.client import ASGICall
from tests.component.fake_upstream import ChunkStream, raw_response, stream_response
from tests.component.in_process import Gateway
from tests.fake_anthropic import FakeAnthropic, stream_events

CONFIG = """
[health_check]
enabled = false
[server]
first_token_timeout_seconds = 30
[[backends]]
name = "claude"
type = "anthropic"
url = "http://claude.test"
api_key_env = "KEY"
models = ["claude-x"]
timeout_seconds = 5
"""
HELLO = {"model": "claude-x", "messages": [{"role": "user", "content": "hello"}]}


def events(model: str = "claude-x") -> list[bytes]:
    message = FakeAnthropic()._answer({**HELLO, "model": model}, "req_1")
    return stream_events(message, model)


async def run_stream(gateway: Gateway, items: list[object]) -> bytes:
    async def handler(request: Any, body: bytes) -> Any:
        return stream_response(ChunkStream(items))

    gateway.upstream.handlers["claude.test"] = handler
    call = ASGICall(
        gateway.app, "/v1/chat/completions", msgspec.json.encode({**HELLO, "stream": True})
    )
    out = b""
    async with trio.open_nursery() as nursery:
        await nursery.start(call.run)
        with trio.fail_after(60):
            await call.finished.wait()
    while True:
        try:
            message = call.messages.receive_nowait()
        except trio.WouldBlock:
            return out
        if message["type"] == "http.response.body":
            out += message["body"]


async def test_ttft_is_the_first_text_delta_and_usage_is_recorded(
    make_gateway: Callable[..., Gateway], autojump_clock: trio.testing.MockClock
) -> None:
    gateway = make_gateway(CONFIG, {"KEY": "k"})
    stream = events()
    # message_start, ping, content_block_start, then 2 s before the first text delta
    out = await run_stream(gateway, [*stream[:3], 2.0, *stream[3:]])
    assert out.endswith(b"data: [DONE]\n\n")
    assert b"stream_truncated" not in out
    sent = json.loads(gateway.upstream.requests[0][1])
    assert sent["stream"] is True
    assert gateway.upstream.requests[0][0].url.path == "/v1/messages"
    gateway.wiring.quality_loop().tick()
    metrics = gateway.wiring.quality.get(("claude", "claude-x"))
    assert metrics.avg_ttft_ms == pytest.approx(2000.0)
    assert metrics.successes_1h == 1
    registry = gateway.wiring.metrics.registry
    for kind, count in (("prompt", 15.0), ("completion", 7.0)):
        labels = {"backend": "claude", "model": "claude-x", "type": kind}
        assert registry.get_sample_value("nexus_tokens_total", labels) == count


@pytest.mark.parametrize(
    ("model", "items_after", "reason"),
    [
        ("claude-x", [40.0], "idle_timeout"),
        ("truncate", [], "upstream_closed"),
        ("stream-error", [], "upstream_error"),
    ],
)
async def test_a_translated_stream_keeps_the_relay_endings(
    make_gateway: Callable[..., Gateway],
    autojump_clock: trio.testing.MockClock,
    model: str,
    items_after: list[object],
    reason: str,
) -> None:
    gateway = make_gateway(
        CONFIG.replace("[server]", "[server]\nstream_idle_timeout_seconds = 10"), {"KEY": "k"}
    )
    stream = events(model)
    cut = stream[:4] if model == "claude-x" else stream
    out = await run_stream(gateway, [*cut, *items_after])
    assert b'"code":"stream_truncated"' in out
    assert out.endswith(b"data: [DONE]\n\n")
    truncated = gateway.wiring.metrics.registry.get_sample_value(
        "nexus_stream_truncated_total", {"backend": "claude", "reason": reason}
    )
    assert truncated == 1.0


async def test_backend_timeout_seconds_bounds_a_non_streaming_attempt(
    make_gateway: Callable[..., Gateway], autojump_clock: trio.testing.MockClock
) -> None:
    gateway = make_gateway(CONFIG, {"KEY": "k"})

    async def never(request: Any, body: bytes) -> Any:
        await trio.sleep_forever()

    gateway.upstream.handlers["claude.test"] = never
    start = trio.current_time()
    response = await gateway.post("/v1/chat/completions", HELLO)
    assert response.status_code == 504
    assert trio.current_time() - start == pytest.approx(5.0)


async def test_only_chat_is_served_and_a_refused_request_sends_nothing(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(CONFIG, {"KEY": "k"})
    completions = await gateway.post("/v1/completions", {"model": "claude-x", "prompt": "hi"})
    assert completions.status_code == 400
    refused = await gateway.post("/v1/chat/completions", {**HELLO, "n": 3})
    assert refused.status_code == 400
    assert (await refused.get_json())["error"]["param"] == "n"
    assert gateway.upstream.requests == []


async def test_a_429_with_retry_after_puts_the_model_in_cooldown(
    make_gateway: Callable[..., Gateway], autojump_clock: trio.testing.MockClock
) -> None:
    gateway = make_gateway(CONFIG, {"KEY": "k"})
    error = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}

    async def limited(request: Any, body: bytes) -> Any:
        return raw_response(429, json.dumps(error).encode(), **{"retry-after": "7"})

    gateway.upstream.handlers["claude.test"] = limited
    response = await gateway.post("/v1/chat/completions", HELLO)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert (await response.get_json())["error"]["message"] == "slow down"
    backend = gateway.wiring.registry.get("claude")
    assert backend is not None
    assert backend.cooldown_until["claude-x"] == pytest.approx(trio.current_time() + 7.0)
