"""The cost of every request (docs/spend.md#pricing): ``[[pricing]]``, usage asked of priced
streams and hidden from the client, the character estimate, ``X-Nexus-Cost-USD``, the access
log and ``nexus_spend_usd_total``."""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
import msgspec
import pytest

from tests.component.client import CHAT
from tests.component.fake_upstream import ChunkStream, chunk, raw_response, sse, stream_response
from tests.component.in_process import Gateway

CONFIG = """
[health_check]
enabled = false
[[backends]]
name = "cloud"
url = "http://cloud.test"
type = "openai"
models = ["gpt", "cheap"]
[[backends]]
name = "local"
url = "http://local.test"
type = "generic"
models = ["llama"]
[[pricing]]
backend = "cloud"
input_usd_per_million = 2.0
output_usd_per_million = 10.0
cached_input_usd_per_million = 0.5
[[pricing]]
backend = "cloud"
model = "cheap"
input_usd_per_million = 1.0
output_usd_per_million = 1.0
"""

USAGE = {
    "prompt_tokens": 1000,
    "completion_tokens": 200,
    "total_tokens": 1200,
    "prompt_tokens_details": {"cached_tokens": 400},
}


def completion_with_usage(content: str = "hello", usage: object = USAGE) -> httpx.Response:
    body: dict[str, object] = {
        "id": "c1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
    }
    if usage is not None:
        body["usage"] = usage
    return raw_response(200, msgspec.json.encode(body))


@pytest.fixture
def priced(make_gateway: Callable[..., Gateway]) -> Gateway:
    return make_gateway(CONFIG)


def access(caplog: pytest.LogCaptureFixture) -> list[object]:
    return [r.access for r in caplog.records if r.name == "nexus_trio.access"]  # type: ignore[attr-defined]


def spend_samples(gateway: Gateway) -> dict[tuple[str, ...], float]:
    metric = gateway.wiring.metrics.spend.metric
    return {
        tuple(sample.labels[k] for k in ("key", "backend", "model", "estimated")): sample.value
        for family in metric.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    }


async def test_non_streaming_cost_from_usage_in_header_log_and_metric(
    priced: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        return completion_with_usage()

    priced.upstream.handlers["cloud.test"] = handler
    caplog.set_level(logging.INFO, logger="nexus_trio.access")
    response = await priced.post("/v1/chat/completions", {**CHAT, "model": "gpt"})
    assert response.status_code == 200
    # 600 uncached input at $2/M, 400 cached at $0.5/M, 200 output at $10/M.
    expected = (600 * 2.0 + 400 * 0.5 + 200 * 10.0) / 1e6
    assert response.headers["x-nexus-cost-usd"] == f"{expected:.8f}"
    (record,) = access(caplog)
    assert record.cost_usd == pytest.approx(expected)  # type: ignore[attr-defined]
    assert record.cost_estimated is False  # type: ignore[attr-defined]
    assert spend_samples(priced) == {("default", "cloud", "gpt", "false"): pytest.approx(expected)}
    # Forwarded untouched: non-streaming requests are never rewritten for usage.
    assert priced.upstream.bodies() == [msgspec.json.encode({**CHAT, "model": "gpt"})]


async def test_model_entry_wins_over_the_backend_default(priced: Gateway) -> None:
    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        return completion_with_usage(usage={"prompt_tokens": 1000, "completion_tokens": 1000})

    priced.upstream.handlers["cloud.test"] = handler
    response = await priced.post("/v1/chat/completions", {**CHAT, "model": "cheap"})
    assert response.headers["x-nexus-cost-usd"] == f"{2000 / 1e6:.8f}"


async def test_unpriced_local_backend_costs_zero_and_is_not_counted(priced: Gateway) -> None:
    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        return completion_with_usage()

    priced.upstream.handlers["local.test"] = handler
    response = await priced.post("/v1/chat/completions", {**CHAT, "model": "llama"})
    assert response.headers["x-nexus-cost-usd"] == "0.00000000"
    assert spend_samples(priced) == {}


async def test_no_usage_is_estimated_from_the_body_and_the_characters_generated(
    priced: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        return completion_with_usage(content="x" * 41, usage=None)

    priced.upstream.handlers["cloud.test"] = handler
    caplog.set_level(logging.INFO, logger="nexus_trio.access")
    body = {"model": "gpt", "messages": [{"role": "user", "content": "y" * 400}]}
    response = await priced.post("/v1/chat/completions", body)
    # The body's 457 bytes in = 114 tokens at $2/M; 41 characters out = 11 tokens at $10/M.
    assert len(msgspec.json.encode(body)) == 457
    expected = (114 * 2.0 + 11 * 10.0) / 1e6
    assert response.headers["x-nexus-cost-usd"] == f"{expected:.8f}"
    (record,) = access(caplog)
    assert record.cost_estimated is True  # type: ignore[attr-defined]
    assert spend_samples(priced) == {("default", "cloud", "gpt", "true"): pytest.approx(expected)}


def _usage_stream() -> ChunkStream:
    return ChunkStream(
        sse(
            chunk("hel"),
            chunk("lo", finish="stop"),
            {"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 2}},
            "[DONE]",
        )
    )


async def test_priced_stream_asks_for_usage_and_hides_the_usage_chunk(
    priced: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        return stream_response(_usage_stream())

    priced.upstream.handlers["cloud.test"] = handler
    caplog.set_level(logging.INFO, logger="nexus_trio.access")
    client_body = {**CHAT, "model": "gpt", "stream": True, "stream_options": {"x": 1}}
    response = await priced.post("/v1/chat/completions", client_body)
    text = (await response.get_data()).decode()
    assert "x-nexus-cost-usd" not in response.headers
    assert '"usage"' not in text
    assert text.count("data: ") == 3  # two content chunks and [DONE]
    (sent,) = priced.upstream.bodies()
    assert msgspec.json.decode(sent) == {
        **client_body,
        "stream_options": {"x": 1, "include_usage": True},
    }
    (record,) = access(caplog)
    assert record.cost_usd == pytest.approx((10 * 2.0 + 2 * 10.0) / 1e6)  # type: ignore[attr-defined]
    assert record.cost_estimated is False  # type: ignore[attr-defined]


async def test_client_that_asked_for_usage_gets_it_and_its_body_untouched(
    priced: Gateway,
) -> None:
    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        return stream_response(_usage_stream())

    priced.upstream.handlers["cloud.test"] = handler
    client_body = msgspec.json.encode(
        {**CHAT, "model": "gpt", "stream": True, "stream_options": {"include_usage": True}}
    )
    response = await priced.post("/v1/chat/completions", client_body)
    assert '"usage"' in (await response.get_data()).decode()
    assert priced.upstream.bodies() == [client_body]


async def test_unpriced_stream_is_forwarded_untouched(priced: Gateway) -> None:
    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        return stream_response(ChunkStream(sse(chunk("hi", finish="stop"), "[DONE]")))

    priced.upstream.handlers["local.test"] = handler
    client_body = msgspec.json.encode({**CHAT, "model": "llama", "stream": True})
    response = await priced.post("/v1/chat/completions", client_body)
    assert response.status_code == 200
    assert priced.upstream.bodies() == [client_body]


async def test_stream_without_usage_is_estimated(
    priced: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        return stream_response(ChunkStream(sse(chunk("abcd" * 5, finish="stop"), "[DONE]")))

    priced.upstream.handlers["cloud.test"] = handler
    caplog.set_level(logging.INFO, logger="nexus_trio.access")
    body = {"model": "gpt", "stream": True, "messages": [{"role": "user", "content": "y" * 8}]}
    response = await priced.post("/v1/chat/completions", body)
    await response.get_data()
    (record,) = access(caplog)
    assert record.cost_estimated is True  # type: ignore[attr-defined]
    inputs = len(msgspec.json.encode(body)) // 4  # the body's bytes / 4
    assert record.cost_usd == pytest.approx((inputs * 2.0 + 5 * 10.0) / 1e6)  # type: ignore[attr-defined]


ANTHROPIC = """
[health_check]
enabled = false
[[backends]]
name = "claude"
type = "anthropic"
url = "http://claude.test"
api_key_env = "KEY"
models = ["claude-x"]
[[pricing]]
backend = "claude"
input_usd_per_million = 3.0
output_usd_per_million = 15.0
cached_input_usd_per_million = 0.3
"""
#: 100 uncached + 50 cache-read + 10 cache-write input tokens, 20 output tokens.
ANTHROPIC_USAGE = {
    "input_tokens": 100,
    "cache_read_input_tokens": 50,
    "cache_creation_input_tokens": 10,
}
#: Translated: 160 prompt tokens of which 50 cached; written cache tokens at the input price.
ANTHROPIC_COST = (110 * 3.0 + 50 * 0.3 + 20 * 15.0) / 1e6


async def test_anthropic_cost_comes_from_the_usage_it_translates(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(ANTHROPIC, env={"KEY": "sk-ant"})
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [{"type": "text", "text": "hi"}],
        "stop_reason": "end_turn",
        "usage": {**ANTHROPIC_USAGE, "output_tokens": 20},
    }

    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        return raw_response(200, msgspec.json.encode(message))

    gateway.upstream.handlers["claude.test"] = handler
    response = await gateway.post("/v1/chat/completions", {**CHAT, "model": "claude-x"})
    assert response.status_code == 200
    assert response.headers["x-nexus-cost-usd"] == f"{ANTHROPIC_COST:.8f}"


async def test_anthropic_stream_is_charged_without_asking_or_hiding_anything(
    make_gateway: Callable[..., Gateway], caplog: pytest.LogCaptureFixture
) -> None:
    gateway = make_gateway(ANTHROPIC, env={"KEY": "sk-ant"})
    start = {"id": "msg_1", "model": "claude-x", "usage": {**ANTHROPIC_USAGE, "output_tokens": 1}}
    upstream_events = sse(
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 20},
        },
        {"type": "message_stop"},
    )

    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        return stream_response(ChunkStream(upstream_events))

    gateway.upstream.handlers["claude.test"] = handler
    caplog.set_level(logging.INFO, logger="nexus_trio.access")
    body = {**CHAT, "model": "claude-x", "stream": True}
    response = await gateway.post("/v1/chat/completions", body)
    text = (await response.get_data()).decode()
    assert '"usage"' not in text  # the client did not ask; the translator adds none
    assert "stream_options" not in gateway.upstream.bodies("/v1/messages")[0].decode()
    (record,) = access(caplog)
    assert record.cost_usd == pytest.approx(ANTHROPIC_COST)  # type: ignore[attr-defined]
    assert record.cost_estimated is False  # type: ignore[attr-defined]
