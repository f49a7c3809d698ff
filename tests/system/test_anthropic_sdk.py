"""The official ``anthropic`` SDK through a real ``nexus-trio serve`` to a simulated
OpenAI-compatible backend: the Messages API translated to chat completions and back
(docs/messages-api.md), its errors as the SDK's error classes (docs/messages-api.md#errors).

The SDK's sync client runs in worker threads (its async client leaks async generators under
trio's strict finalizer, which this suite turns into errors); it never retries, so every error
seen is the gateway's answer.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import anthropic
import pytest
import trio

from nexus_trio.simulator import PARTIAL_EVENTS, SimulatedBackend
from tests.system.client_sdks import (
    BROKEN,
    FAST,
    HANGING,
    TOKENS,
    chat_bodies,
    one_request_held,
    sent_secrets,
    simulated_text,
    simulated_tokens,
)
from tests.system.configs import gateway_config
from tests.system.gateway_process import GatewayFactory
from tests.system.refusals import LIMITED_KEY, gateway_with_limited_key

pytestmark = pytest.mark.system

StartBackend = Callable[..., Awaitable[SimulatedBackend]]
HELLO: Any = [{"role": "user", "content": "hello"}]
#: The characters of the system text "be brief" and HELLO's text.
PROMPT_CHARS = len("be brief") + len("hello")
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}
TOOLS: Any = [{"name": "get_weather", "description": "Weather for a city", "input_schema": SCHEMA}]
WEATHER: Any = [{"role": "user", "content": "weather in Paris?"}]


def _client(url: str, key: str = "client-key", *, x_api_key: bool = False) -> anthropic.Anthropic:
    """The SDK as its users make it. This SDK sends its key as ``Authorization: Bearer``;
    with ``x_api_key`` it sends it as ``X-Api-Key`` alone, as Claude Code does."""
    headers = {"X-Api-Key": key, "Authorization": anthropic.omit} if x_api_key else None
    return anthropic.Anthropic(
        base_url=url, api_key=key, default_headers=headers, max_retries=0, timeout=10
    )


def _text_session(url: str) -> dict[str, Any]:
    with _client(url) as client:
        created = client.messages.create(
            model="demo", max_tokens=64, system="be brief", messages=HELLO
        )
        events = list(
            client.messages.create(model="demo", max_tokens=64, messages=HELLO, stream=True)
        )
        with client.messages.stream(model="demo", max_tokens=64, messages=HELLO) as stream:
            pieces = list(stream.text_stream)
            final = stream.get_final_message()
        counted = client.messages.with_raw_response.count_tokens(
            model="demo", system="be brief", messages=HELLO
        )
        with pytest.raises(anthropic.NotFoundError) as unknown:
            client.messages.create(model="no-such-model", max_tokens=64, messages=HELLO)
    return {
        "created": created,
        "events": events,
        "pieces": pieces,
        "final": final,
        "counted": counted,
        "unknown": unknown.value,
    }


async def test_create_stream_and_count_tokens(
    start_backend: StartBackend, start_gateway: GatewayFactory
) -> None:
    backend = await start_backend(**FAST)
    gateway = await start_gateway(gateway_config(backend))
    seen = await trio.to_thread.run_sync(_text_session, gateway.url)

    created = seen["created"]
    assert isinstance(created, anthropic.types.Message)
    assert (created.model, created.role, created.stop_reason) == ("demo", "assistant", "end_turn")
    assert [block.type for block in created.content] == ["text"]
    assert created.content[0].text == simulated_text()
    assert created.usage.output_tokens == TOKENS
    assert created.usage.input_tokens == PROMPT_CHARS // 4  # the simulator's count
    first = chat_bodies(backend)[0]
    assert first["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello"},
    ]
    assert first["max_tokens"] == 64

    # the raw event sequence of a stream (the SDK drops pings), then the SDK's stream helper
    assert [event.type for event in seen["events"]] == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * TOKENS,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert seen["events"][-2].usage.output_tokens == TOKENS
    assert seen["pieces"] == simulated_tokens()
    final = seen["final"]
    assert (final.content[0].text, final.stop_reason) == (simulated_text(), "end_turn")
    assert final.usage.output_tokens == TOKENS
    assert chat_bodies(backend)[1]["stream_options"] == {"include_usage": True}

    # count_tokens: the documented estimate, answered by the gateway alone
    counted = seen["counted"]
    assert counted.headers["x-nexus-token-count"] == "estimate"
    assert counted.parse().input_tokens == math.ceil(PROMPT_CHARS / 4)
    assert len(chat_bodies(backend)) == 3

    unknown = seen["unknown"]
    assert unknown.status_code == 404
    assert unknown.body["error"]["type"] == "not_found_error"
    assert sent_secrets(backend, "client-key") == []


def _tool_session(url: str) -> dict[str, Any]:
    with _client(url) as client:
        called = client.messages.create(model="demo", max_tokens=64, messages=WEATHER, tools=TOOLS)
        (use,) = called.content
        result = {"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 21C"}
        history = [
            *WEATHER,
            {"role": "assistant", "content": called.content},
            {"role": "user", "content": [result]},
        ]
        # without tools: the simulator answers every request offering tools with a call
        answered = client.messages.create(model="demo", max_tokens=64, messages=history)
        with client.messages.stream(
            model="demo", max_tokens=64, messages=WEATHER, tools=TOOLS
        ) as stream:
            streamed = stream.get_final_message()
    return {"called": called, "answered": answered, "streamed": streamed}


async def test_a_tool_round_trip(
    start_backend: StartBackend, start_gateway: GatewayFactory
) -> None:
    backend = await start_backend(**FAST)
    # the name "demo" says nothing about tool support: declare it (docs/routing.md)
    config = gateway_config(backend) + "[backends.capabilities.demo]\ntools = true\n"
    gateway = await start_gateway(config)
    seen = await trio.to_thread.run_sync(_tool_session, gateway.url)

    called = seen["called"]
    assert called.stop_reason == "tool_use"
    (use,) = called.content
    assert (use.type, use.name, use.input) == ("tool_use", "get_weather", {})
    answered = seen["answered"]
    assert (answered.stop_reason, answered.content[0].text) == ("end_turn", simulated_text())
    streamed = seen["streamed"]
    assert streamed.stop_reason == "tool_use"
    assert [(b.type, b.name, b.input) for b in streamed.content] == [
        ("tool_use", "get_weather", {})
    ]

    offered, replied, _ = chat_bodies(backend)
    assert offered["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": SCHEMA,
            },
        }
    ]
    call = {
        "id": use.id,
        "type": "function",
        "function": {"name": "get_weather", "arguments": "{}"},
    }
    assert replied["messages"][1:] == [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": use.id, "content": "sunny, 21C"},
    ]


def _refused_session(url: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for header in (False, True):
        with (
            _client(url, "not-a-key", x_api_key=header) as stranger,
            pytest.raises(anthropic.AuthenticationError) as wrong_key,
        ):
            stranger.messages.create(model="demo", max_tokens=8, messages=HELLO)
        seen[f"wrong_key_{header}"] = wrong_key.value
    with (
        _client(url, LIMITED_KEY) as bearer,
        _client(url, LIMITED_KEY, x_api_key=True) as limited,
    ):
        seen["by_bearer"] = bearer.messages.create(model="demo", max_tokens=8, messages=HELLO)
        seen["by_header"] = limited.messages.create(model="demo", max_tokens=8, messages=HELLO)
        with pytest.raises(anthropic.RateLimitError) as limited_out:
            limited.messages.create(model="demo", max_tokens=8, messages=HELLO)
    seen["limited"] = limited_out.value
    return seen


async def test_a_wrong_key_and_a_spent_rate_limit(
    start_backend: StartBackend, start_gateway: GatewayFactory
) -> None:
    """docs/keys.md#rate-limits: two requests a minute, so the third is refused at once, until
    the next one is back (30 s after the first)."""
    backend, gateway = await gateway_with_limited_key(start_backend, start_gateway, 2)
    seen = await trio.to_thread.run_sync(_refused_session, gateway.url)

    for header in (False, True):
        wrong_key = seen[f"wrong_key_{header}"]
        assert wrong_key.status_code == 401
        message = wrong_key.body["error"]["message"]
        assert wrong_key.body == {
            "type": "error",
            "error": {"type": "authentication_error", "message": message},
        }
        assert "not-a-key" not in message
    # the key is read from either header
    answer = simulated_text(backend.options.completion_tokens)
    assert seen["by_bearer"].content[0].text == answer
    assert seen["by_header"].content[0].text == answer
    limited = seen["limited"]
    assert limited.status_code == 429
    assert limited.body["error"]["type"] == "rate_limit_error"
    assert 1 <= int(limited.response.headers["retry-after"]) <= 30
    assert len(chat_bodies(backend)) == 2
    assert sent_secrets(backend, LIMITED_KEY, "not-a-key") == []


def _overloaded(url: str) -> anthropic.APIStatusError:
    with _client(url) as client, pytest.raises(anthropic.APIStatusError) as refused:
        client.messages.create(model="demo", max_tokens=8, messages=HELLO)
    return refused.value


async def test_an_overloaded_gateway_is_the_sdks_overloaded_error(
    start_backend: StartBackend, start_gateway: GatewayFactory
) -> None:
    """docs/messages-api.md#errors: 503 ``overloaded`` is 529 ``overloaded_error``."""
    backend = await start_backend(**HANGING)
    gateway = await start_gateway(gateway_config(backend, server="max_in_flight_requests = 1"))
    async with one_request_held(gateway.url, backend):
        refused = await trio.to_thread.run_sync(_overloaded, gateway.url)
    assert isinstance(refused, anthropic.OverloadedError)
    assert refused.status_code == 529
    assert refused.body["error"]["type"] == "overloaded_error"
    assert refused.response.headers["retry-after"] == "1"
    assert len(chat_bodies(backend)) == 1  # only the request held


def _streamed_text(client: anthropic.Anthropic, pieces: list[str]) -> anthropic.types.Message:
    """Read a stream with the SDK's helper, each text piece into ``pieces`` as it arrives."""
    with client.messages.stream(model="demo", max_tokens=64, messages=HELLO) as stream:
        pieces.extend(stream.text_stream)
        return stream.get_final_message()


def _broken_streams(url: str) -> dict[str, Any]:
    raw: list[Any] = []
    pieces: list[str] = []
    with _client(url) as client:
        stream = client.messages.create(model="demo", max_tokens=64, messages=HELLO, stream=True)
        with pytest.raises(anthropic.APIStatusError) as from_create:
            raw.extend(stream)  # keeps what arrived before the raise
        with pytest.raises(anthropic.APIStatusError) as from_helper:
            _streamed_text(client, pieces)
    return {"raw": raw, "create": from_create.value, "pieces": pieces, "helper": from_helper.value}


async def test_a_broken_stream_raises_during_iteration(
    start_backend: StartBackend, start_gateway: GatewayFactory
) -> None:
    backend = await start_backend(**BROKEN)
    gateway = await start_gateway(gateway_config(backend))
    seen = await trio.to_thread.run_sync(_broken_streams, gateway.url)

    # the tokens sent before the reset arrived, then the SDK raised instead of ending
    assert [event.type for event in seen["raw"]] == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * PARTIAL_EVENTS,
    ]
    assert "".join(seen["pieces"]) == simulated_text(PARTIAL_EVENTS)
    for error in (seen["create"], seen["helper"]):
        assert error.body["type"] == "error"
        assert error.body["error"]["type"] == "api_error"
        assert "backend connection failed" in error.body["error"]["message"]
