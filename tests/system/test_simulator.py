"""System tests of the simulated backend: a real server on 127.0.0.1, a real httpx client."""

from __future__ import annotations

import base64
import json
import random
import socket
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import trio

from nexus_trio.simulator import FailMode, SimulatedBackend, SimulatorOptions

pytestmark = pytest.mark.system

TOKENS = 5
CHAT = "/v1/chat/completions"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
ConnectionReset = httpx.ReadError  # ECONNRESET; a clean close raises RemoteProtocolError


@pytest.fixture
def options() -> SimulatorOptions:
    return SimulatorOptions(
        models=("demo", "llava:7b"),
        embedding_models=("nomic-embed-text",),
        ttft_ms=5,
        tokens_per_second=2000,
        completion_tokens=TOKENS,
        seed=7,
        name="sim-a",
    )


@pytest.fixture
async def backend(nursery: trio.Nursery, options: SimulatorOptions) -> SimulatedBackend:
    backend = SimulatedBackend(options)
    await nursery.start(backend.run)
    return backend


@pytest.fixture
async def client(backend: SimulatedBackend) -> AsyncIterator[httpx.AsyncClient]:
    base_url = f"http://127.0.0.1:{backend.port}"
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        yield client


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


async def test_keep_alive_and_received(
    client: httpx.AsyncClient, backend: SimulatedBackend
) -> None:
    await client.get("/health", headers={"x-test": "one"})
    await client.post(CHAT + "?trace=1", json=chat())
    assert backend.connections_accepted == 1
    health, completion = backend.received
    assert (health.method, health.path, health.body) == ("GET", "/health", b"")
    assert (b"x-test", b"one") in health.headers
    assert (completion.method, completion.path) == ("POST", CHAT + "?trace=1")
    assert json.loads(completion.body) == chat()
    assert health.at <= completion.at <= trio.current_time()


async def test_chunked_request_body(client: httpx.AsyncClient) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b'{"model": "demo", '
        yield b'"prompt": "hello"}'

    response = await client.post("/v1/completions", content=body())
    assert response.status_code == 200
    assert response.json()["object"] == "text_completion"


async def raw_exchange(port: int, data: bytes, *, until: bytes) -> bytes:
    """Send ``data`` on a fresh connection and read until ``until`` has arrived."""
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        await stream.send_all(data)
        received = b""
        while until not in received:
            received += await stream.receive_some()
        return received


async def test_pipelined_request_during_a_stream_waits_its_turn(
    backend: SimulatedBackend, options: SimulatorOptions
) -> None:
    options.tokens_per_second = 50  # the stream lasts ~100 ms: the next request comes meanwhile
    head, body = raw_chat(stream=True)
    async with await trio.open_tcp_stream("127.0.0.1", backend.port) as stream:
        await stream.send_all(head + body)
        received = b""
        while b"data: " not in received:
            received += await stream.receive_some()
        await stream.send_all(HEALTH_REQUEST)
        with trio.fail_after(2):
            while b'{"status":"ok"}' not in received:
                received += await stream.receive_some()
    assert received.index(b"data: [DONE]") < received.index(b"HTTP/1.1 200", 1)
    assert [request.path for request in backend.received] == [CHAT, "/health"]
    assert backend.disconnects == []
    assert backend.connections_accepted == 1


async def test_expect_100_continue(backend: SimulatedBackend) -> None:
    head, body = raw_chat(stream=False, expect_continue=True)
    async with await trio.open_tcp_stream("127.0.0.1", backend.port) as stream:
        await stream.send_all(head)
        assert (await stream.receive_some()).startswith(b"HTTP/1.1 100 ")
        await stream.send_all(body)
        assert (await stream.receive_some()).startswith(b"HTTP/1.1 200 ")


async def test_malformed_request_gets_400(backend: SimulatedBackend) -> None:
    reply = await raw_exchange(backend.port, b"NOT HTTP AT ALL\r\n\r\n", until=b"}")
    assert reply.startswith(b"HTTP/1.1 400 ")


async def test_options_are_read_per_request(
    client: httpx.AsyncClient, options: SimulatorOptions
) -> None:
    assert (await client.post(CHAT, json=chat())).status_code == 200
    options.error_rate = 1.0
    assert (await client.post(CHAT, json=chat())).status_code == 500
    options.error_rate = 0.0
    assert (await client.post(CHAT, json=chat())).status_code == 200


async def test_error_rate_follows_seeded_random(
    client: httpx.AsyncClient, options: SimulatorOptions
) -> None:
    options.error_rate = 0.5
    statuses = [(await client.post(CHAT, json=chat())).status_code for _ in range(20)]
    rng = random.Random(options.seed)
    assert statuses == [500 if rng.random() < 0.5 else 200 for _ in range(20)]
    assert {200, 500} <= set(statuses)


@pytest.mark.parametrize("stream", [False, True])
async def test_fail_500_429_and_html_502(
    client: httpx.AsyncClient, options: SimulatorOptions, stream: bool
) -> None:
    options.error_rate = 1.0
    options.retry_after_seconds = 3
    failed = await client.post(CHAT, json=chat(stream=stream))
    assert failed.status_code == 500
    assert failed.json()["error"]["code"]
    options.fail_mode = FailMode.HTTP_429
    limited = await client.post(CHAT, json=chat(stream=stream))
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "3")
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    options.fail_mode = FailMode.HTML_502
    proxy = await client.post(CHAT, json=chat(stream=stream))
    assert proxy.status_code == 502
    assert proxy.headers["content-type"] == "text/html"
    assert "<html>" in proxy.text


@pytest.mark.parametrize("stream", [False, True])
async def test_fail_reset(
    client: httpx.AsyncClient, options: SimulatorOptions, stream: bool
) -> None:
    options.error_rate = 1.0
    options.fail_mode = FailMode.RESET
    with pytest.raises(ConnectionReset):
        await client.post(CHAT, json=chat(stream=stream))


async def test_fail_hang_until_client_leaves(
    client: httpx.AsyncClient, backend: SimulatedBackend, options: SimulatorOptions
) -> None:
    options.error_rate = 1.0
    options.fail_mode = FailMode.HANG
    with pytest.raises(httpx.ReadTimeout):
        await client.post(CHAT, json=chat(), timeout=0.2)
    with trio.fail_after(1):
        await wait_until(lambda: backend.disconnects != [] and backend.active_responses == 0)


async def test_fail_garbage(client: httpx.AsyncClient, options: SimulatorOptions) -> None:
    options.error_rate = 1.0
    options.fail_mode = FailMode.GARBAGE
    whole = await client.post(CHAT, json=chat())
    assert (whole.status_code, whole.headers["content-type"]) == (200, "application/json")
    with pytest.raises(json.JSONDecodeError):
        whole.json()
    streamed = await client.post(CHAT, json=chat(stream=True))
    assert streamed.status_code == 200
    assert streamed.headers["content-type"] == "text/event-stream"
    assert streamed.headers["connection"] == "close"
    assert streamed.content
    assert b"data:" not in streamed.content
    assert b"\n" not in streamed.content


async def test_fail_reset_mid_whole(client: httpx.AsyncClient, options: SimulatorOptions) -> None:
    options.error_rate = 1.0
    options.fail_mode = FailMode.RESET_MID
    received: list[bytes] = []

    async def read_raw(response: httpx.Response) -> None:
        async for chunk in response.aiter_raw():
            received.append(chunk)

    async with client.stream("POST", CHAT, json=chat()) as response:
        assert response.status_code == 200
        with pytest.raises(ConnectionReset):
            await read_raw(response)
    assert 0 < len(b"".join(received)) < int(response.headers["content-length"])


async def test_fail_reset_mid_stream(client: httpx.AsyncClient, options: SimulatorOptions) -> None:
    options.error_rate = 1.0
    options.fail_mode = FailMode.RESET_MID
    lines: list[str] = []
    async with client.stream("POST", CHAT, json=chat(stream=True)) as response:
        assert response.status_code == 200
        with pytest.raises(ConnectionReset):
            await read_lines(response, lines)
    data = sse_data("\n".join(lines))
    assert len(data) == 1 + 3  # the start event and three tokens
    assert "[DONE]" not in data


async def test_fail_hang_mid_stream(
    client: httpx.AsyncClient, backend: SimulatedBackend, options: SimulatorOptions
) -> None:
    options.error_rate = 1.0
    options.fail_mode = FailMode.HANG_MID
    lines: list[str] = []
    async with client.stream("POST", CHAT, json=chat(stream=True), timeout=0.3) as response:
        with pytest.raises(httpx.ReadTimeout):
            await read_lines(response, lines)
    assert len(sse_data("\n".join(lines))) == 1 + 3
    with trio.fail_after(1):
        await wait_until(lambda: len(backend.disconnects) == 1 and backend.active_responses == 0)


async def test_fail_hang_mid_whole(client: httpx.AsyncClient, options: SimulatorOptions) -> None:
    options.error_rate = 1.0
    options.fail_mode = FailMode.HANG_MID
    async with client.stream("POST", CHAT, json=chat(), timeout=0.2) as response:
        assert response.status_code == 200
        with pytest.raises(httpx.ReadTimeout):
            await response.aread()


@pytest.mark.parametrize("abort", [False, True], ids=["close", "reset"])
async def test_client_leaving_mid_stream_is_noticed_at_once(
    backend: SimulatedBackend, options: SimulatorOptions, abort: bool
) -> None:
    options.tokens_per_second = 5  # a token every 200 ms: a failing write would notice late
    options.completion_tokens = 100
    head, body = raw_chat(stream=True)
    async with await trio.open_tcp_stream("127.0.0.1", backend.port) as stream:
        await stream.send_all(head + body)
        received = b""
        while b"data: " not in received:
            received += await stream.receive_some()
        assert backend.active_responses == 1
        if abort:
            stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    left_at = trio.current_time()
    with trio.fail_after(0.1):
        await wait_until(lambda: len(backend.disconnects) == 1 and backend.active_responses == 0)
    assert backend.disconnects[0] - left_at < 0.1


async def test_many_concurrent_streams(
    backend: SimulatedBackend, options: SimulatorOptions
) -> None:
    options.ttft_ms = 50
    done: list[str] = []
    limits = httpx.Limits(max_connections=None)
    base_url = f"http://127.0.0.1:{backend.port}"
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=10) as many:

        async def one() -> None:
            response = await many.post(CHAT, json=chat(stream=True))
            done.append(sse_data(response.text)[-1])

        async with trio.open_nursery() as nursery:
            for _ in range(200):
                nursery.start_soon(one)
    assert done == ["[DONE]"] * 200
    assert backend.connections_accepted == 200
    with trio.fail_after(1):
        await wait_until(lambda: backend.active_responses == 0)
    assert backend.disconnects == []


async def test_stopped_backend_refuses_connections(options: SimulatorOptions) -> None:
    backend = SimulatedBackend(options)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(backend.run)
        idle = await trio.open_tcp_stream("127.0.0.1", port)
        await idle.send_all(HEALTH_REQUEST)
        assert (await idle.receive_some()).startswith(b"HTTP/1.1 200 ")
        nursery.cancel_scope.cancel()
    async with idle:
        assert await idle.receive_some() == b""  # the idle keep-alive connection was closed
    with pytest.raises(OSError, match="all attempts to connect"):
        await trio.open_tcp_stream("127.0.0.1", port)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("/health")
