"""The official openai SDK through a real gateway process to a real (simulated) backend."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import msgspec
import openai
import pytest
import trio

from nexus_trio.simulator import FailMode, SimulatedBackend
from tests.system.conftest import GatewayFactory, gateway_config

pytestmark = pytest.mark.system

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
MESSAGES = [
    {"role": "user", "content": "weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"},
]


def _client(url: str, sent: list[bytes]) -> openai.OpenAI:
    """The SDK's sync client, run in worker threads (its async client leaks async generators
    under trio's strict finalizer, which this suite turns into errors)."""

    def capture(request: httpx.Request) -> None:
        sent.append(request.content)

    http = httpx.Client(event_hooks={"request": [capture]})
    return openai.OpenAI(
        base_url=f"{url}/v1", api_key="client-key", http_client=http, max_retries=0
    )


def _completion_bodies(backend: SimulatedBackend) -> list[bytes]:
    return [r.body for r in backend.received if r.path == "/v1/chat/completions"]


def _sdk_session(client: openai.OpenAI) -> dict[str, object]:
    """Plain, streaming, tool call, streamed tool call: what the SDK saw of each."""
    plain = client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "hello"}]
    )
    stream = client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "hello"}], stream=True
    )
    pieces = [c.choices[0].delta.content for c in stream if c.choices]
    tooled = client.chat.completions.create(
        model="demo", messages=MESSAGES, tools=TOOLS, seed=7, tool_choice="auto"
    )
    streamed_tools = client.chat.completions.create(
        model="demo", messages=MESSAGES, tools=TOOLS, seed=7, stream=True
    )
    names = [
        tc.function.name
        for c in streamed_tools
        if c.choices and c.choices[0].delta.tool_calls
        for tc in c.choices[0].delta.tool_calls
        if tc.function and tc.function.name
    ]
    return {"plain": plain, "pieces": pieces, "tooled": tooled, "streamed_names": names}


async def test_plain_streaming_and_tool_calls(
    start_backend: Callable[..., Awaitable[SimulatedBackend]],
    start_gateway: GatewayFactory,
) -> None:
    backend = await start_backend(name="sim", models=("demo",), ttft_ms=5, tokens_per_second=0)
    # the name "demo" says nothing about tool support: declare it (docs/routing.md#capabilities
    # override)
    config = gateway_config(backend) + "[backends.capabilities.demo]\ntools = true\n"
    gateway = await start_gateway(config)
    sent: list[bytes] = []
    client = _client(gateway.url, sent)
    seen = await trio.to_thread.run_sync(_sdk_session, client)

    plain = seen["plain"]
    assert plain.choices[0].message.content  # type: ignore[attr-defined]
    assert plain.usage.completion_tokens > 0  # type: ignore[attr-defined]
    assert "".join(p for p in seen["pieces"] if p)  # type: ignore[attr-defined]
    tooled = seen["tooled"]
    assert tooled.choices[0].message.tool_calls[0].function.name == "get_weather"  # type: ignore[attr-defined]
    assert tooled.choices[0].finish_reason == "tool_calls"  # type: ignore[attr-defined]
    assert seen["streamed_names"] == ["get_weather"]

    # what the SDK sent is exactly what the backend received
    assert _completion_bodies(backend) == sent
    received = msgspec.json.decode(_completion_bodies(backend)[2])
    assert received["tools"] == TOOLS
    assert received["seed"] == 7
    assert received["messages"][1]["tool_calls"] == MESSAGES[1]["tool_calls"]
    assert received["messages"][2]["tool_call_id"] == "call_1"
    # the client's key never reaches the backend
    for request in backend.received:
        assert all(name != b"authorization" for name, _ in request.headers)
    client.close()


def _consume(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "hello"}], stream=True
    )
    for _ in stream:
        pass


async def test_sdk_raises_on_a_truncated_stream(
    start_backend: Callable[..., Awaitable[SimulatedBackend]],
    start_gateway: GatewayFactory,
) -> None:
    backend = await start_backend(
        name="sim",
        models=("demo",),
        ttft_ms=5,
        tokens_per_second=0,
        error_rate=1.0,
        fail_mode=FailMode.RESET_MID,
    )
    gateway = await start_gateway(gateway_config(backend))
    client = _client(gateway.url, [])
    with pytest.raises(openai.APIError, match="backend connection failed"):
        await trio.to_thread.run_sync(_consume, client)
    client.close()
