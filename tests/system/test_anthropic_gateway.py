"""The official openai SDK through a real gateway to the fake Anthropic server.

Clients speak OpenAI; the gateway translates to Anthropic's Messages API and back. Each test
starts ``nexus-trio serve`` in front of one or two fake Anthropic servers (and simulated
OpenAI-compatible backends where the fleet needs them).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import openai
import pytest
import trio

from nexus_trio.simulator import SimulatedBackend
from tests.fake_anthropic import KEY, FakeAnthropic
from tests.system.gateway_process import GatewayFactory, GatewayProcess
from tests.system.polling import poll
from tests.system.raw_connection import RawConnection

pytestmark = pytest.mark.system

MODEL = "claude-sonnet-4"
KEY_ENV = {"NEXUS_TEST_ANTHROPIC_KEY": KEY}
TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
HELLO: Any = [{"role": "user", "content": "hello"}]
SCRIPTED = ("truncate", "stream-error", "slow", *(f"fail-{s}" for s in (400, 401, 403, 404)))
FAILING = tuple(f"fail-{s}" for s in (413, 429, 500, 529))


def anthropic_backend(
    name: str, fake: FakeAnthropic, models: tuple[str, ...], extra: str = ""
) -> str:
    listed = ", ".join(f'"{m}"' for m in models)
    return (
        f'[[backends]]\nname = "{name}"\ntype = "anthropic"\nurl = "{fake.url}"\n'
        f'api_key_env = "NEXUS_TEST_ANTHROPIC_KEY"\nmodels = [{listed}]\n{extra}\n'
    )


def anthropic_config(*backends: str, extra: str = "", health: bool = False) -> str:
    """A gateway on a free port with these backend entries; health checks every 0.2 s if on."""
    lines = ["[server]", 'host = "127.0.0.1"', "port = 0", "", extra, ""]
    lines += ["[health_check]", f"enabled = {str(health).lower()}", "interval_seconds = 0.2", ""]
    return "\n".join(lines) + "\n" + "\n".join(backends)


def _client(url: str) -> openai.OpenAI:
    """The SDK's sync client (run in worker threads), sending its own key as a client would."""
    return openai.OpenAI(base_url=f"{url}/v1", api_key="client-key", max_retries=0)


@pytest.fixture
async def fake(nursery: trio.Nursery) -> FakeAnthropic:
    server = FakeAnthropic(models=(MODEL, "claude-haiku-4", *SCRIPTED, *FAILING))
    await nursery.start(server.run)
    return server


@pytest.fixture
async def gateway(fake: FakeAnthropic, start_gateway: GatewayFactory) -> GatewayProcess:
    models = (MODEL, *SCRIPTED, *FAILING)
    return await start_gateway(
        anthropic_config(anthropic_backend("claude", fake, models)), env=KEY_ENV
    )


def _chat_session(client: openai.OpenAI) -> dict[str, Any]:
    """Plain and streamed chat, usage with and without include_usage, images."""
    plain = client.chat.completions.create(model=MODEL, messages=HELLO, user="u-1", stop="END")
    chunks = list(client.chat.completions.create(model=MODEL, messages=HELLO, stream=True))
    usage_chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )
    image: Any = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            ],
        }
    ]
    images = client.chat.completions.create(model=MODEL, messages=image)
    return {"plain": plain, "chunks": chunks, "usage_chunks": usage_chunks, "images": images}


async def test_plain_streamed_usage_and_images(
    fake: FakeAnthropic, gateway: GatewayProcess
) -> None:
    with _client(gateway.url) as client:
        seen = await trio.to_thread.run_sync(_chat_session, client)
    plain = seen["plain"]
    assert plain.choices[0].message.content == "Hello from the fake Claude."
    assert plain.choices[0].finish_reason == "stop"
    assert plain.object == "chat.completion"
    assert plain.id.startswith("msg_")
    assert (plain.usage.prompt_tokens, plain.usage.completion_tokens) == (15, 7)
    assert plain.usage.total_tokens == 22
    assert plain.usage.prompt_tokens_details.cached_tokens == 3

    chunks = seen["chunks"]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)
    usage_chunks = seen["usage_chunks"]
    assert usage_chunks[-1].choices == []
    assert usage_chunks[-1].usage.prompt_tokens == 15
    assert usage_chunks[-1].usage.completion_tokens == 7

    assert seen["images"].choices[0].message.content == "I see 2 images: base64,url"
    sent = fake.received[0]
    assert sent["metadata"] == {"user_id": "u-1"}
    assert sent["stop_sequences"] == ["END"]
    assert sent["max_tokens"] == 4096
    # the key goes as x-api-key; the client's Authorization never leaves the gateway
    for headers in fake.headers:
        assert headers["x-api-key"] == KEY
        assert headers["anthropic-version"] == "2023-06-01"
        assert "authorization" not in headers
    async with httpx.AsyncClient() as client:
        metrics = (await client.get(f"{gateway.url}/metrics")).text
        stats = (await client.get(f"{gateway.url}/v1/stats")).text
    for text_out in (metrics, stats, gateway.log_text()):
        assert KEY not in text_out


def _tool_round_trip(client: openai.OpenAI) -> dict[str, Any]:
    ask: Any = [{"role": "user", "content": "weather in Paris?"}]
    first = client.chat.completions.create(model=MODEL, messages=ask, tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]
    follow: Any = [
        *ask,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"},
    ]
    final = client.chat.completions.create(model=MODEL, messages=follow, tools=TOOLS)
    streamed = list(
        client.chat.completions.create(model=MODEL, messages=ask, tools=TOOLS, stream=True)
    )
    return {"first": first, "final": final, "streamed": streamed}


async def test_tool_call_round_trip(fake: FakeAnthropic, gateway: GatewayProcess) -> None:
    with _client(gateway.url) as client:
        seen = await trio.to_thread.run_sync(_tool_round_trip, client)
    first = seen["first"].choices[0]
    assert first.finish_reason == "tool_calls"
    assert first.message.content == "Let me check."
    (call,) = first.message.tool_calls
    assert (call.type, call.function.name) == ("function", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert seen["final"].choices[0].message.content == "The tool said: sunny, 21C"
    sent = fake.received[1]
    assert [turn["role"] for turn in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][2]["content"][0]["type"] == "tool_result"
    assert sent["tools"][0]["input_schema"] == TOOLS[0]["function"]["parameters"]

    deltas = [d for c in seen["streamed"] if c.choices for d in c.choices[0].delta.tool_calls or ()]
    assert deltas[0].id.startswith("toolu_")
    assert deltas[0].function.name == "get_weather"
    assert {d.index for d in deltas} == {0}
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {"city": "Paris"}
    assert seen["streamed"][-1].choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("status", "client_status", "error_class"),
    [
        (400, 400, openai.BadRequestError),
        (401, 502, openai.InternalServerError),
        (403, 502, openai.InternalServerError),
        (404, 404, openai.NotFoundError),
        (413, 413, openai.APIStatusError),
        (429, 429, openai.RateLimitError),
        (500, 500, openai.InternalServerError),
        (529, 503, openai.InternalServerError),
    ],
)
async def test_each_anthropic_error_maps_to_the_openai_envelope(
    gateway: GatewayProcess, status: int, client_status: int, error_class: type[Exception]
) -> None:
    def call() -> openai.APIStatusError:
        with _client(gateway.url) as client, pytest.raises(error_class) as info:
            client.chat.completions.create(model=f"fail-{status}", messages=HELLO)
        assert isinstance(info.value, openai.APIStatusError)
        return info.value

    error = await trio.to_thread.run_sync(call)
    assert error.status_code == client_status
    assert isinstance(error.body, dict)
    if status in (401, 403):  # the operator's key refused: a neutral 502, nothing of the text
        assert error.body["message"] == "Backend 'claude' could not serve the request."
        return
    assert error.body["message"].startswith("Fake ")
    assert error.response.headers["x-nexus-backend"] == "claude"
    assert error.response.headers["x-upstream-request-id"].startswith("req_fake")
    if status == 429:
        assert error.response.headers["retry-after"] == "7"
    assert KEY not in error.response.text


async def test_529_is_retried_on_another_backend(
    fake: FakeAnthropic, nursery: trio.Nursery, start_gateway: GatewayFactory
) -> None:
    overloaded = FakeAnthropic(models=("claude-haiku-4",), fail=529)
    await nursery.start(overloaded.run)
    gateway = await start_gateway(
        anthropic_config(
            anthropic_backend("busy", overloaded, ("claude-haiku-4",), "priority = 1"),
            anthropic_backend("spare", fake, ("claude-haiku-4",), "priority = 90"),
        ),
        env=KEY_ENV,
    )
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{gateway.url}/v1/chat/completions",
            json={"model": "claude-haiku-4", "messages": HELLO},
        )
        metrics = (await client.get(f"{gateway.url}/metrics")).text
    assert response.status_code == 200
    assert response.headers["x-nexus-backend"] == "spare"
    assert response.headers["x-nexus-attempts"] == "2"
    assert response.headers["x-nexus-route-reason"] == "retry"
    assert len(overloaded.received) == 1
    attempts = [line for line in metrics.splitlines() if line.startswith("nexus_upstream_attempts")]
    assert any(
        'backend="busy"' in a and 'outcome="failure"' in a and a.endswith(" 1.0") for a in attempts
    )
    assert any('backend="spare"' in a and 'outcome="success"' in a for a in attempts)


def _consume(client: openai.OpenAI, model: str) -> None:
    for _ in client.chat.completions.create(model=model, messages=HELLO, stream=True):
        pass


@pytest.mark.parametrize(
    ("model", "words"),
    [("truncate", "closed the stream"), ("stream-error", "reported an error mid-stream")],
)
async def test_a_broken_or_failed_stream_ends_truncated(
    gateway: GatewayProcess, model: str, words: str
) -> None:
    with _client(gateway.url) as client, pytest.raises(openai.APIError, match=words):
        await trio.to_thread.run_sync(_consume, client, model)


async def test_client_disconnect_closes_the_upstream_stream(
    fake: FakeAnthropic, gateway: GatewayProcess
) -> None:
    connection = await RawConnection.open(gateway.port)
    body = json.dumps({"model": "slow", "messages": HELLO, "stream": True}).encode()
    headers = [("content-type", "application/json")]
    await connection.send_request("POST", "/v1/chat/completions", body, headers)
    response = await connection.next_event()
    assert getattr(response, "status_code", None) == 200
    first = await connection.next_event()
    assert b"chat.completion.chunk" in getattr(first, "data", b"")
    await connection.aclose()
    with trio.fail_after(5):
        await fake.disconnected.wait()


async def test_requests_refused_before_sending(
    fake: FakeAnthropic, gateway: GatewayProcess
) -> None:
    """What Anthropic cannot do is a 400 naming the field; nothing reaches Anthropic."""
    cases: list[tuple[dict[str, Any], str]] = [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"response_format": {"type": "json_schema", "json_schema": {}}}, "response_format"),
        ({"audio": {"voice": "alloy", "format": "mp3"}, "modalities": ["audio"]}, "audio"),
    ]
    async with httpx.AsyncClient() as client:
        for extra, param in cases:
            body = {"model": "claude-sonnet-4", "messages": HELLO, **extra}
            response = await client.post(f"{gateway.url}/v1/chat/completions", json=body)
            if param == "response_format":  # routing knows Anthropic models have no JSON mode
                assert response.status_code == 503
                assert "missing_capability" in response.headers["x-nexus-rejection-reasons"]
                continue
            assert response.status_code == 400, response.text
            assert response.json()["error"]["param"] == param
        embeddings = await client.post(
            f"{gateway.url}/v1/embeddings", json={"model": MODEL, "input": "hello"}
        )
    assert embeddings.status_code == 503
    assert embeddings.headers["x-nexus-rejection-reasons"] == "missing_capability"
    assert fake.received == []


async def test_privacy_keeps_restricted_requests_off_every_cloud_backend(
    fake: FakeAnthropic,
    start_backend: Callable[..., Awaitable[SimulatedBackend]],
    start_gateway: GatewayFactory,
) -> None:
    local = await start_backend(name="local", models=("secret-model",), ttft_ms=1)
    cloud = await start_backend(name="cloud", models=("secret-model", "secret-cloud"), ttft_ms=1)
    openai_backend = (
        f'[[backends]]\nname = "cloud"\ntype = "openai"\nurl = "http://127.0.0.1:{cloud.port}"\n'
        'models = ["secret-model", "secret-cloud"]\npriority = 1\n'
    )
    local_backend = (
        f'[[backends]]\nname = "local"\ntype = "generic"\nurl = "http://127.0.0.1:{local.port}"\n'
        'models = ["secret-model"]\npriority = 99\n'
    )
    policy = '[[routing.policies]]\nmodel_pattern = "secret-*"\nprivacy = "restricted"\n'
    claude = anthropic_backend("claude", fake, ("secret-model", "secret-cloud"), "priority = 1")
    gateway = await start_gateway(
        anthropic_config(claude, openai_backend, local_backend, extra=policy), env=KEY_ENV
    )
    async with httpx.AsyncClient() as client:
        for _ in range(5):
            body = {"model": "secret-model", "messages": HELLO}
            response = await client.post(f"{gateway.url}/v1/chat/completions", json=body)
            assert response.status_code == 200
            assert response.headers["x-nexus-backend"] == "local"
            assert response.headers["x-nexus-privacy-zone"] == "restricted"
        body = {"model": "secret-cloud", "messages": HELLO}
        refused = await client.post(f"{gateway.url}/v1/chat/completions", json=body)
    assert refused.status_code == 503
    assert refused.headers["x-nexus-rejection-reasons"] == "privacy_zone"
    assert fake.received == []
    assert [r for r in cloud.received if r.method == "POST"] == []


async def test_local_model_falls_back_to_claude_and_probe_lists_models_for_free(
    fake: FakeAnthropic, start_gateway: GatewayFactory
) -> None:
    closed = trio.socket.socket()
    await closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: the local backend is down
    local = (
        f'[[backends]]\nname = "local"\ntype = "generic"\nurl = "http://127.0.0.1:{port}"\n'
        'models = ["llama3:8b"]\n'
    )
    claude = (
        f'[[backends]]\nname = "claude"\ntype = "anthropic"\nurl = "{fake.url}"\n'
        'api_key_env = "NEXUS_TEST_ANTHROPIC_KEY"\n'
    )
    fallbacks = '[routing.fallbacks]\n"llama3:8b" = ["claude-sonnet-4"]\n'
    gateway = await start_gateway(
        anthropic_config(claude, local, extra=fallbacks, health=True), env=KEY_ENV
    )
    async with httpx.AsyncClient() as client:

        async def listed() -> bool:
            models = (await client.get(f"{gateway.url}/v1/models")).json()["data"]
            return any(m["id"] == MODEL for m in models)

        with trio.fail_after(10):
            await poll(listed)
        models = (await client.get(f"{gateway.url}/v1/models")).json()["data"]
        claude_model = next(m for m in models if m["id"] == MODEL)
        assert fake.model_listings >= 1
        assert fake.received == []  # the probe never sent a message: nothing billed
        response = await client.post(
            f"{gateway.url}/v1/chat/completions", json={"model": "llama3:8b", "messages": HELLO}
        )
    assert claude_model["capabilities"]["embeddings"] is False
    assert claude_model["capabilities"]["tools"] is True
    assert response.status_code == 200
    assert response.headers["x-nexus-route-reason"] == "fallback"
    assert response.headers["x-nexus-fallback-model"] == MODEL
    assert response.headers["x-nexus-backend"] == "claude"
    assert fake.received[-1]["model"] == MODEL
