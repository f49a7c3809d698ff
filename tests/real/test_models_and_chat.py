"""Models, the ``llamacpp`` probe, chat, streaming, tools and TTFT against a real llama-server."""

from __future__ import annotations

import time
from typing import Any

import httpx
import msgspec
import openai
import pytest
import trio

from tests.real.gateway_client import (
    agent_quality,
    backend_stats,
    get_json,
    metric_value,
    metrics_text,
    sdk_client,
    wait_metric,
)
from tests.real.llama_server import ServerFactory, real_config
from tests.system.gateway_process import GatewayFactory
from tests.system.polling import poll

pytestmark = pytest.mark.real

HELLO = [{"role": "user", "content": "Say hello."}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


async def test_models_and_health_probe_of_type_llamacpp(
    start_llama: ServerFactory, start_gateway: GatewayFactory
) -> None:
    llama = await start_llama("smol-chat")
    gateway = await start_gateway(real_config(llama))
    own_models = await llama.get_json("/v1/models")
    props = await llama.get_json("/props")

    # the model list comes from the probe alone: the config names no model
    listing = await get_json(gateway.url, "/v1/models")
    (model,) = listing["data"]
    assert model["id"] == "smol-chat"
    assert model["backends"] == ["smol-chat"]
    # capabilities are what the real server declares, nothing guessed: its /v1/models
    # (meta.n_ctx: one slot's context) and /props (vision); its template has no tools, which
    # llama.cpp does not turn into a "no", so tools stay unknown (absent)
    (own,) = own_models["data"]
    assert model["capabilities"] == {
        "vision": props["modalities"]["vision"],
        "context_length": own["meta"]["n_ctx"],
    }
    assert own["meta"]["n_ctx"] == 1024  # -c 2048 shared by -np 2 slots
    assert props["chat_template_caps"]["supports_tools"] is False

    health = await get_json(gateway.url, "/health")
    assert health["status"] == "healthy"
    assert health["backends"]["healthy"] == 1
    stats = await get_json(gateway.url, "/v1/stats")
    assert backend_stats(stats, "smol-chat")["type"] == "llamacpp"
    assert backend_stats(stats, "smol-chat")["status"] == "healthy"

    client = sdk_client(gateway.url)
    listed = await trio.to_thread.run_sync(client.models.list)
    assert [m.id for m in listed.data] == ["smol-chat"]
    client.close()


def _plain_and_streamed(url: str) -> dict[str, Any]:
    client = sdk_client(url)
    raw = client.chat.completions.with_raw_response.create(
        model="smol-chat", messages=HELLO, max_tokens=8, temperature=0
    )
    chunks = list(
        client.chat.completions.create(
            model="smol-chat",
            messages=HELLO,
            max_tokens=8,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    client.close()
    return {"headers": raw.headers, "plain": raw.parse(), "chunks": chunks}


async def test_plain_and_streamed_chat_through_the_openai_sdk(
    start_llama: ServerFactory, start_gateway: GatewayFactory
) -> None:
    llama = await start_llama("smol-chat")
    gateway = await start_gateway(real_config(llama))
    seen = await trio.to_thread.run_sync(_plain_and_streamed, gateway.url)

    assert seen["headers"]["x-nexus-backend"] == "smol-chat"
    assert seen["headers"]["x-nexus-attempts"] == "1"
    assert seen["headers"]["x-request-id"]  # llama-server sends none: the gateway's
    plain = seen["plain"]
    assert plain.choices[0].message.content
    assert plain.choices[0].finish_reason in ("stop", "length")
    assert 1 <= plain.usage.completion_tokens <= 8

    chunks = seen["chunks"]
    with_choices = [c for c in chunks if c.choices]
    # llama.cpp's first chunk carries the role and "content": null, relayed as is
    assert with_choices[0].choices[0].delta.role == "assistant"
    assert with_choices[0].choices[0].delta.content is None
    assert "".join(c.choices[0].delta.content or "" for c in with_choices)
    assert with_choices[-1].choices[0].finish_reason in ("stop", "length")
    # stream_options.include_usage reaches the server: its last chunk has usage, no choices
    assert not chunks[-1].choices
    assert 1 <= chunks[-1].usage.completion_tokens <= 8

    # on the wire the stream ends with the server's own [DONE], no truncation event
    async with (
        httpx.AsyncClient(timeout=30) as http,
        http.stream(
            "POST",
            f"{gateway.url}/v1/chat/completions",
            json={"model": "smol-chat", "messages": HELLO, "max_tokens": 4, "stream": True},
        ) as response,
    ):
        assert response.status_code == 200
        body = b"".join([chunk async for chunk in response.aiter_raw()])
    assert body.endswith(b"data: [DONE]\n\n")
    assert b"stream_truncated" not in body


def _tools_request(url: str) -> Any:
    client = sdk_client(url)
    raw = client.chat.completions.with_raw_response.create(
        model="house-model-7",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=TOOLS,
        tool_choice="auto",
        max_tokens=16,
        temperature=0,
    )
    client.close()
    return raw


async def test_tools_request_for_a_model_on_no_list(
    start_llama: ServerFactory, start_gateway: GatewayFactory
) -> None:
    # "house-model-7" matches no name list and its server does not declare tool support:
    # unknown is not "no", so the request goes to the server, which answers it
    llama = await start_llama("house-model-7")
    gateway = await start_gateway(real_config(llama))
    (model,) = (await get_json(gateway.url, "/v1/models"))["data"]
    assert "tools" not in model["capabilities"]

    raw = await trio.to_thread.run_sync(_tools_request, gateway.url)
    assert raw.status_code == 200
    assert raw.headers["x-nexus-backend"] == "house-model-7"
    choice = raw.parse().choices[0]
    assert choice.finish_reason in ("stop", "length", "tool_calls")
    assert choice.message.content or choice.message.tool_calls


async def _first_content_ms(http: httpx.AsyncClient, url: str, prompt: str) -> tuple[float, Any]:
    """One stream: client-side time to the first content chunk, and the server's timings."""
    body = {
        "model": "smol-chat",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 4,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    sent = time.perf_counter()
    first: float | None = None
    timings: Any = None
    async with http.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if not line.startswith("data: {"):
                continue
            event = msgspec.json.decode(line[len("data: ") :])
            choices = event.get("choices") or [{}]
            if first is None and choices[0].get("delta", {}).get("content"):
                first = (time.perf_counter() - sent) * 1000
            timings = event.get("timings", timings)
    assert first is not None
    return first, timings


async def test_real_ttft_in_stats(
    start_llama: ServerFactory, start_gateway: GatewayFactory
) -> None:
    llama = await start_llama("smol-chat")
    config = real_config(llama, extra="[quality]\nmetrics_interval_seconds = 0.2")
    gateway = await start_gateway(config)
    client_ms: list[float] = []
    prompt_ms: list[float] = []
    async with httpx.AsyncClient(timeout=30) as http:
        for prompt in ("Name a colour.", "Name a fruit.", "Name a city."):
            first, timings = await _first_content_ms(http, gateway.url, prompt)
            client_ms.append(first)
            prompt_ms.append(timings["prompt_ms"])

    async def recomputed() -> bool:
        stats = await get_json(gateway.url, "/v1/stats")
        quality = agent_quality(stats, "smol-chat", "smol-chat")
        return quality is not None and quality["request_count_1h"] == 3

    with trio.fail_after(10):
        await poll(recomputed)
    quality = agent_quality(await get_json(gateway.url, "/v1/stats"), "smol-chat", "smol-chat")
    # the gateway's TTFT lies between what the server spent on the prompt (no token can come
    # sooner) and what the client saw (which adds the gateway and the client's own socket)
    average = quality["avg_ttft_ms"]
    assert sum(prompt_ms) / 3 <= average <= sum(client_ms) / 3, (prompt_ms, average, client_ms)
    assert quality["p90_ttft_ms"] > 0
    assert quality["error_rate_1h"] == 0

    with trio.fail_after(5):
        await wait_metric(gateway.url, "nexus_agent_ttft_seconds_count", 3, backend="smol-chat")


def _too_long(url: str, content: str) -> openai.APIStatusError:
    client = sdk_client(url)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="smol-chat", messages=[{"role": "user", "content": content}], max_tokens=4
        )
    client.close()
    return caught.value


async def test_context_length_from_the_server_gates_requests(
    start_llama: ServerFactory, start_gateway: GatewayFactory
) -> None:
    llama = await start_llama("smol-chat")
    gateway = await start_gateway(real_config(llama))

    # ~3,000 words against the 1,024 tokens the server declared: refused before any upstream
    # request, and no wait helps
    refused = await trio.to_thread.run_sync(_too_long, gateway.url, "word " * 3000)
    assert refused.status_code == 503
    assert refused.code == "no_available_backend"
    assert refused.response.headers["x-nexus-rejection-reasons"] == "context_too_long"
    assert refused.response.headers["x-should-retry"] == "false"

    # digits are a token each, four times the estimate: the server itself says no, and its 400
    # reaches the client as the request's fault, not the backend's
    rejected = await trio.to_thread.run_sync(_too_long, gateway.url, "7" * 3000)
    assert rejected.status_code == 400
    assert rejected.response.headers["x-nexus-backend"] == "smol-chat"
    assert rejected.type == "exceed_context_size_error"
    with trio.fail_after(5):
        await wait_metric(
            gateway.url,
            "nexus_upstream_attempts_total",
            1,
            backend="smol-chat",
            outcome="client_error",
        )
    text = await metrics_text(gateway.url)
    assert metric_value(text, "nexus_upstream_attempts_total", outcome="failure") == 0
