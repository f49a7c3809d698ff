"""The simulated backend's API over a real socket: the OpenAI, Ollama and llama.cpp probe
routes, chat and text completions, streams and their timing, tool calls and embeddings.
"""

from __future__ import annotations

import base64
import json
import struct

import httpx
import pytest
import trio

from nexus_trio.simulator import FailMode, SimulatorOptions
from tests.system.simulator.exchanges import CHAT, TOKENS, TOOLS, chat, sse_data

pytestmark = pytest.mark.system


async def test_openai_and_llamacpp_probes(client: httpx.AsyncClient) -> None:
    models = (await client.get("/v1/models")).json()
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == ["demo", "llava:7b", "nomic-embed-text"]
    assert {m["object"] for m in models["data"]} == {"model"}
    assert {m["owned_by"] for m in models["data"]} == {"sim-a"}
    assert all(isinstance(m["created"], int) for m in models["data"])
    health = await client.get("/health")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})


async def test_ollama_probes(client: httpx.AsyncClient) -> None:
    tags = (await client.get("/api/tags")).json()["models"]
    families = {m["name"]: m["details"]["families"] for m in tags}
    assert families == {"demo": ["llama"], "llava:7b": ["llama"], "nomic-embed-text": ["bert"]}
    assert all(m["model"] == m["name"] and m["modified_at"] and m["size"] for m in tags)

    show = (await client.post("/api/show", json={"model": "demo"})).json()
    assert show["capabilities"] == ["completion", "tools"]
    assert show["model_info"]["llama.context_length"] == 8192
    assert show["details"]["family"] == "llama"
    vision = (await client.post("/api/show", json={"name": "llava:7b"})).json()
    assert "vision" in vision["capabilities"]
    embed = (await client.post("/api/show", json={"model": "nomic-embed-text"})).json()
    assert embed["capabilities"] == ["embedding"]
    missing = await client.post("/api/show", json={"model": "nope"})
    assert missing.status_code == 404


async def test_unknown_routes_and_bad_requests(client: httpx.AsyncClient) -> None:
    unknown = await client.get("/v2/whatever")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"
    assert (await client.get(CHAT)).status_code == 405
    model = await client.post(CHAT, json=chat(model="x"))
    assert model.status_code == 404
    assert model.json() == {
        "error": {
            "message": "model 'x' not found",
            "type": "invalid_request_error",
            "param": None,
            "code": "model_not_found",
        }
    }
    bad = await client.post(CHAT, content=b"{not json")
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_json")
    wrong_kind = await client.post("/v1/embeddings", json={"model": "demo", "input": "a"})
    assert wrong_kind.status_code == 400


async def test_probe_routes_never_fail(
    client: httpx.AsyncClient, options: SimulatorOptions
) -> None:
    options.error_rate = 1.0
    options.fail_mode = FailMode.RESET
    for path in ("/v1/models", "/api/tags", "/health"):
        assert (await client.get(path)).status_code == 200
    assert (await client.post("/api/show", json={"model": "demo"})).status_code == 200


async def test_chat_completion(client: httpx.AsyncClient, options: SimulatorOptions) -> None:
    options.ttft_ms = 50
    started = trio.current_time()
    response = await client.post(CHAT, json=chat())
    assert trio.current_time() - started >= 0.05 + TOKENS / 2000
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "demo"
    assert body["id"]
    assert isinstance(body["created"], int)
    (choice,) = body["choices"]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"]
    assert choice["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 10, "completion_tokens": TOKENS, "total_tokens": 15}


async def test_text_completion(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/completions", json={"model": "demo", "prompt": "abcd" * 3})
    body = response.json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"]
    assert body["usage"]["prompt_tokens"] == 3


async def test_chat_stream(client: httpx.AsyncClient) -> None:
    request = chat(stream=True, stream_options={"include_usage": True})
    response = await client.post(CHAT, json=request)
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["transfer-encoding"] == "chunked"
    data = sse_data(response.text)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(item) for item in data[:-1]]
    for chunk in chunks:
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["model"] == "demo"
        assert chunk["id"] == chunks[0]["id"]
        assert isinstance(chunk["created"], int)
    first, *tokens, finish, usage = chunks
    assert first["choices"] == [
        {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
    ]
    assert len(tokens) == TOKENS
    assert all(token["choices"][0]["delta"]["content"] for token in tokens)
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == []
    assert usage["usage"]["completion_tokens"] == TOKENS


async def test_text_stream_without_usage(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/completions", json={"model": "demo", "prompt": "hi", "stream": True}
    )
    data = sse_data(response.text)
    chunks = [json.loads(item) for item in data[:-1]]
    assert data[-1] == "[DONE]"
    assert {chunk["object"] for chunk in chunks} == {"text_completion"}
    assert [chunk["choices"][0]["finish_reason"] for chunk in chunks][-1] == "stop"
    assert len(chunks) == 1 + TOKENS + 1  # start, tokens, finish: no usage chunk


async def test_stream_timing(client: httpx.AsyncClient, options: SimulatorOptions) -> None:
    options.ttft_ms = 300
    options.tokens_per_second = 20
    options.completion_tokens = 3
    started = trio.current_time()
    arrivals = []
    async with client.stream("POST", CHAT, json=chat(stream=True)) as response:
        assert trio.current_time() - started < 0.25  # headers come before the first token
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                arrivals.append((trio.current_time() - started, line))
    start_at, first_token_at = arrivals[0][0], arrivals[1][0]
    assert '"content":""' in arrivals[0][1]
    assert 0.3 <= start_at <= first_token_at < 0.5  # the start event and token 1 come together
    assert trio.current_time() - started >= 0.3 + 2 / 20


async def test_tool_call_answers(client: httpx.AsyncClient) -> None:
    whole = (await client.post(CHAT, json=chat(tools=TOOLS))).json()
    (choice,) = whole["choices"]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function"
    assert call["function"] == {"name": "get_weather", "arguments": "{}"}

    streamed = await client.post(CHAT, json=chat(tools=TOOLS, stream=True))
    chunks = [json.loads(item) for item in sse_data(streamed.text)[:-1]]
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks]
    (call,) = deltas[1]["tool_calls"]
    assert call["function"] == {"name": "get_weather", "arguments": "{}"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_embeddings_are_deterministic(client: httpx.AsyncClient) -> None:
    request = {"model": "nomic-embed-text", "input": ["alpha", "beta"]}
    first = (await client.post("/v1/embeddings", json=request)).json()
    second = (await client.post("/v1/embeddings", json=request)).json()
    assert first == second
    assert [item["index"] for item in first["data"]] == [0, 1]
    assert first["data"][0]["embedding"] != first["data"][1]["embedding"]
    assert all(len(item["embedding"]) == 8 for item in first["data"])
    assert first["usage"]["prompt_tokens"] == first["usage"]["total_tokens"] >= 1


async def test_embeddings_in_base64(client: httpx.AsyncClient) -> None:
    """``encoding_format: "base64"`` (the Node SDK's default) is honoured: float32 LE bytes."""
    request = {"model": "nomic-embed-text", "input": ["alpha", "beta"]}
    floats = (await client.post("/v1/embeddings", json=request)).json()
    explicit = await client.post("/v1/embeddings", json={**request, "encoding_format": "float"})
    assert explicit.json() == floats
    encoded = await client.post("/v1/embeddings", json={**request, "encoding_format": "base64"})
    assert encoded.status_code == 200
    for item, expected in zip(encoded.json()["data"], floats["data"], strict=True):
        raw = base64.b64decode(item["embedding"])
        decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
        assert decoded == pytest.approx(expected["embedding"], rel=1e-6)
    wrong = await client.post("/v1/embeddings", json={**request, "encoding_format": "int8"})
    assert wrong.status_code == 400
    assert wrong.json()["error"]["code"] == "invalid_value"
