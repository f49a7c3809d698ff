"""The official openai SDK through a real gateway process to a real (simulated) backend."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import openai
import pytest
import trio

from nexus_trio.simulator import FailMode, SimulatedBackend
from tests.system.configs import gateway_config
from tests.system.gateway_process import GatewayFactory
from tests.system.refusals import (
    LIMITED_KEY,
    assert_answered_then_budget_refused,
    assert_refused_then_answered,
    empty_request_bucket,
    gateway_with_limited_key,
    gateway_with_spent_budget,
)

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
    """Plain, streaming, a tool result answered, a streamed tool call: what the SDK saw of each."""
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
        model="demo", messages=MESSAGES[:1], tools=TOOLS, seed=7, stream=True
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
    # after the tool's result the simulator answers in text; asked afresh, it calls the tool
    tooled = seen["tooled"]
    assert tooled.choices[0].message.content  # type: ignore[attr-defined]
    assert tooled.choices[0].finish_reason == "stop"  # type: ignore[attr-defined]
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


@dataclass
class SDKCall:
    """One ``chat.completions.create`` of ``AsyncOpenAI``: what it returned or raised, how long
    it took, and every HTTP response the SDK received on the way (status, ``Retry-After``,
    and when it arrived)."""

    result: Any = None
    error: openai.APIError | None = None
    seconds: float = 0.0
    responses: list[tuple[int, str | None, float]] = field(default_factory=list)


async def _async_sdk_chat(url: str, key: str, max_retries: int) -> SDKCall:
    """Runs on asyncio, in a worker thread (see :func:`_client` for why not on trio)."""
    call = SDKCall()

    async def seen(response: Any) -> None:
        call.responses.append(
            (response.status_code, response.headers.get("retry-after"), time.monotonic())
        )

    http = openai.DefaultAsyncHttpxClient(event_hooks={"response": [seen]})
    async with openai.AsyncOpenAI(
        base_url=f"{url}/v1", api_key=key, http_client=http, max_retries=max_retries, timeout=10
    ) as client:
        started = time.monotonic()
        try:
            call.result = await client.chat.completions.create(
                model="demo", messages=[{"role": "user", "content": "hello"}]
            )
        except openai.APIError as exc:
            call.error = exc
        call.seconds = time.monotonic() - started
    return call


async def sdk_chat(url: str, key: str, max_retries: int) -> SDKCall:
    return await trio.to_thread.run_sync(
        lambda: asyncio.run(_async_sdk_chat(url, key, max_retries))
    )


async def test_the_sdk_waits_out_a_rate_limit_and_succeeds(
    start_backend: Callable[..., Awaitable[SimulatedBackend]],
    start_gateway: GatewayFactory,
) -> None:
    """docs/keys.md#rate-limits: over its limit a key gets 429 ``rate_limit_exceeded`` with
    ``Retry-After``, and the SDK's own retry waits that long and then gets the answer.

    60 requests a minute refill one request a second; with the bucket just emptied, the SDK's
    first request is refused with ``Retry-After: 1``, and its retry one second later is served.
    """
    backend, gateway = await gateway_with_limited_key(start_backend, start_gateway, 60)
    async with httpx.AsyncClient(timeout=10) as client:
        with trio.fail_after(10):
            admitted, refused = await empty_request_bucket(client, gateway.url, LIMITED_KEY, "demo")
            call = await sdk_chat(gateway.url, LIMITED_KEY, max_retries=1)
        assert call.error is None, call.error
        assert call.result.choices[0].message.content

        # the SDK got the 429 with Retry-After: 1, slept that long, and its retry was answered
        (first, retry_after, refused_at), (second, _, answered_at) = call.responses
        assert (first, retry_after, second) == (429, "1", 200)
        assert answered_at - refused_at >= 1.0
        assert 1.0 <= call.seconds < 2 * 1.0  # Retry-After, with 2x as the upper bound only
        # the retry is the request the backend got, marked as the SDK's first retry
        last = [r for r in backend.received if r.path == "/v1/chat/completions"][-1]
        assert dict(last.headers)[b"x-stainless-retry-count"] == b"1"

        # the gateway saw the refusal, then the answer
        await assert_refused_then_answered(client, gateway, admitted, refused)


async def test_the_sdk_does_not_retry_a_spent_budget(
    start_backend: Callable[..., Awaitable[SimulatedBackend]],
    start_gateway: GatewayFactory,
    tmp_path: Path,
) -> None:
    """docs/spend.md#budgets: with ``hard_limit_action = "reject"`` and the budget spent, the SDK
    (2 retries by default) raises RateLimitError ``budget_exceeded`` after one request.

    (The Python SDK would not wait out a ``Retry-After`` beyond two minutes either; the Node
    SDK would, so only ``x-should-retry: false`` stops it there: ``test_node_sdk.py``.)
    """
    backend, gateway = await gateway_with_spent_budget(
        start_backend, start_gateway, tmp_path / "state"
    )
    async with httpx.AsyncClient(timeout=10) as client:
        with trio.fail_after(10):
            call = await sdk_chat(gateway.url, "any", max_retries=2)
        assert isinstance(call.error, openai.RateLimitError), call.error
        assert call.error.code == "budget_exceeded"
        assert call.error.response.headers["x-should-retry"] == "false"
        assert [status for status, _, _ in call.responses] == [429]
        await assert_answered_then_budget_refused(gateway)
        stats = (await client.get(f"{gateway.url}/v1/stats")).json()
        assert stats["requests"]["total"] == 2
        assert len([r for r in backend.received if r.path == "/v1/chat/completions"]) == 1
