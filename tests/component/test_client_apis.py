"""The Messages and Responses APIs through the gateway: translated once to chat completions,
answered, streamed and refused in the client's API (docs/api.md#client-apis)."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import msgspec
import openai
import pytest

from nexus_trio.registry import HealthState
from nexus_trio.upstream.relay import truncation_event
from tests.component.configs import BASE_CONFIG
from tests.component.fake_upstream import (
    ChunkStream,
    chunk,
    completion,
    raw_response,
    sse,
    stream_response,
)
from tests.component.in_process import Gateway

MESSAGES = {
    "model": "m",
    "max_tokens": 64,
    "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
    "messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}],
    "thinking": {"type": "adaptive"},
    "metadata": {"user_id": "{}"},
}
RESPONSES = {
    "model": "m",
    "instructions": "be brief",
    "input": [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello"}]}
    ],
    "tools": [{"type": "web_search"}],
    "store": False,
}
USAGE_CHUNK = {
    "choices": [],
    "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
}


def answer_with(response: httpx.Response) -> Any:
    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        return response

    return handler


def decoded(data: bytes) -> Any:
    return msgspec.json.decode(data)


def events(data: bytes) -> list[tuple[str, Any]]:
    """(event name, data) of each server-sent event."""
    out = []
    for block in data.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in lines:
            out.append((lines.get("event", ""), msgspec.json.decode(lines["data"])))
    return out


async def test_a_message_is_translated_both_ways(gateway: Gateway) -> None:
    gateway.upstream.handlers["a.test"] = answer_with(completion("hi there"))
    response = await gateway.post("/v1/messages?beta=true", MESSAGES)
    assert response.status_code == 200
    message = anthropic.types.Message.model_validate(decoded(await response.get_data()))
    assert (message.model, message.stop_reason, message.content[0].text) == (
        "m",
        "end_turn",
        "hi there",
    )
    assert (message.usage.input_tokens, message.usage.output_tokens) == (3, 2)
    assert response.headers["x-nexus-backend"] == "a"
    [(request, body)] = gateway.upstream.requests
    assert request.url.path == "/v1/chat/completions"
    sent = decoded(body)
    assert sent["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello"},
    ]
    assert "thinking" not in sent
    assert "metadata" not in sent


async def test_a_message_stream_is_anthropics_event_sequence(gateway: Gateway) -> None:
    stream = ChunkStream(
        sse(chunk("hi"), chunk(" there"), chunk(finish="stop"), USAGE_CHUNK, "[DONE]")
    )
    gateway.upstream.handlers["a.test"] = answer_with(stream_response(stream))
    response = await gateway.post("/v1/messages", {**MESSAGES, "stream": True})
    assert response.status_code == 200
    seen = events(await response.get_data())
    names = [name for name, _ in seen]
    assert names[0] == "message_start"
    assert names[-2:] == ["message_delta", "message_stop"]
    text = "".join(d["delta"]["text"] for n, d in seen if n == "content_block_delta")
    assert text == "hi there"
    assert seen[-2][1]["usage"]["output_tokens"] == 2
    [(_, body)] = gateway.upstream.requests
    assert decoded(body)["stream_options"] == {"include_usage": True}


async def test_a_broken_message_stream_ends_with_an_error_event(gateway: Gateway) -> None:
    stream = ChunkStream(sse(chunk("hi")))  # closed before any finish
    gateway.upstream.handlers["a.test"] = answer_with(stream_response(stream))
    response = await gateway.post("/v1/messages", {**MESSAGES, "stream": True})
    seen = events(await response.get_data())
    assert seen[-1][0] == "error"
    assert seen[-1][1]["error"]["type"] == "api_error"
    assert b"[DONE]" not in await response.get_data()


async def test_messages_errors_are_anthropics_envelope(make_gateway: Any) -> None:
    gateway = make_gateway(BASE_CONFIG)
    unknown = await gateway.post("/v1/messages", {**MESSAGES, "model": "nope"})
    assert unknown.status_code == 404
    body = decoded(await unknown.get_data())
    assert (body["type"], body["error"]["type"]) == ("error", "not_found_error")
    for name in ("a", "b"):
        gateway.wiring.registry.get(name).health = HealthState.UNHEALTHY  # type: ignore[union-attr]
    overloaded = await gateway.post("/v1/messages", MESSAGES)
    assert overloaded.status_code == 529
    assert decoded(await overloaded.get_data())["error"]["type"] == "overloaded_error"
    bad = await gateway.post("/v1/messages", {"model": "m", "messages": "hi"})
    assert bad.status_code == 400
    assert decoded(await bad.get_data())["error"]["type"] == "invalid_request_error"
    assert gateway.upstream.requests == []


async def test_count_tokens_is_an_estimate_that_says_so(gateway: Gateway) -> None:
    # b (vllm) has a tokenizer, which fails: the estimate answers.
    gateway.upstream.handlers["b.test"] = answer_with(httpx.Response(404))
    response = await gateway.post("/v1/messages/count_tokens", MESSAGES)
    assert response.status_code == 200
    assert response.headers["x-nexus-token-count"] == "estimate"
    assert decoded(await response.get_data())["input_tokens"] > 0
    bad = await gateway.post("/v1/messages/count_tokens", {"messages": []})
    assert decoded(await bad.get_data())["type"] == "error"


async def test_a_response_is_translated_both_ways(gateway: Gateway) -> None:
    gateway.upstream.handlers["a.test"] = answer_with(completion("hi there"))
    response = await gateway.post("/v1/responses", RESPONSES)
    assert response.status_code == 200
    answer = openai.types.responses.Response.model_validate(decoded(await response.get_data()))
    assert (answer.status, answer.output_text, answer.model) == ("completed", "hi there", "m")
    [(_, body)] = gateway.upstream.requests
    sent = decoded(body)
    assert sent["messages"][0] == {"role": "system", "content": "be brief"}
    assert "tools" not in sent  # web_search: no backend runs it


async def test_a_response_stream_ends_completed(gateway: Gateway) -> None:
    stream = ChunkStream(sse(chunk("hi"), chunk(finish="stop"), USAGE_CHUNK, "[DONE]"))
    gateway.upstream.handlers["a.test"] = answer_with(stream_response(stream))
    response = await gateway.post("/v1/responses", {**RESPONSES, "stream": True})
    seen = events(await response.get_data())
    assert seen[0][0] == "response.created"
    assert seen[-1][0] == "response.completed"
    assert seen[-1][1]["response"]["usage"]["output_tokens"] == 2
    assert [d["sequence_number"] for _, d in seen] == list(range(len(seen)))


async def test_a_broken_response_stream_raises_in_the_sdk_shape(gateway: Gateway) -> None:
    stream = ChunkStream(sse(chunk("hi")))
    gateway.upstream.handlers["a.test"] = answer_with(stream_response(stream))
    response = await gateway.post("/v1/responses", {**RESPONSES, "stream": True})
    seen = events(await response.get_data())
    assert "response.failed" in [name for name, _ in seen]
    assert seen[-1][1].get("error") is not None


@pytest.mark.parametrize("path", ["/v1/responses", "/v1/messages"])
async def test_client_api_requests_are_accounted_like_chat(gateway: Gateway, path: str) -> None:
    gateway.upstream.handlers["a.test"] = answer_with(completion("hi"))
    body = RESPONSES if path == "/v1/responses" else MESSAGES
    assert (await gateway.post(path, body)).status_code == 200
    stats = gateway.wiring.state.statistics()
    assert (stats.totals.success, stats.totals.by_model) == (1, {"m": 1})
    assert gateway.wiring.request_log is not None
    [entry] = gateway.wiring.request_log.entries_after(0)
    assert (entry.path, entry.backend, entry.status) == (path, "a", 200)


async def test_an_unknown_previous_response_id_is_not_found(gateway: Gateway) -> None:
    response = await gateway.post("/v1/responses", {**RESPONSES, "previous_response_id": "r1"})
    assert response.status_code == 404
    error = decoded(await response.get_data())["error"]
    assert (error["param"], error["code"]) == (
        "previous_response_id",
        "previous_response_not_found",
    )
    assert gateway.upstream.requests == []


TOKENIZING = """
[health_check]
enabled = false
[[backends]]
name = "llama"
url = "http://llama.test"
type = "llamacpp"
priority = 10
models = ["m"]
[[backends]]
name = "vllm"
url = "http://vllm.test"
type = "vllm"
priority = 20
models = ["m"]
[routing.aliases]
short = "m"
"""


async def test_count_tokens_asks_a_backends_tokenizer_first(make_gateway: Any) -> None:
    gateway = make_gateway(TOKENIZING)
    asked: list[Any] = []

    async def llama(request: httpx.Request, body: bytes) -> httpx.Response:
        asked.append(("llama", request.url.path, decoded(body)))
        return httpx.Response(503)

    async def vllm(request: httpx.Request, body: bytes) -> httpx.Response:
        asked.append(("vllm", request.url.path, decoded(body)))
        return httpx.Response(200, json={"count": 42, "tokens": [1] * 42, "max_model_len": 4096})

    gateway.upstream.handlers.update({"llama.test": llama, "vllm.test": vllm})
    response = await gateway.post("/v1/messages/count_tokens", {**MESSAGES, "model": "short"})
    assert response.status_code == 200
    assert decoded(await response.get_data()) == {"input_tokens": 42}
    assert response.headers["x-nexus-token-count"] == "tokenizer"
    assert [(name, path) for name, path, _ in asked] == [
        ("llama", "/tokenize"),
        ("vllm", "/tokenize"),
    ]
    text = asked[0][2]["content"]
    assert "be brief" in text
    assert "hello" in text
    assert asked[1][2] == {"model": "m", "prompt": text}


LIMITED = """
[[keys]]
name = "t1"
key_env = "T1"
requests_per_minute = 2
[health_check]
enabled = false
[[backends]]
name = "open-llama"
url = "http://llama.test"
type = "llamacpp"
zone = "open"
models = ["m"]
"""


async def test_count_tokens_is_admitted_and_limited_like_a_proxy_request(
    make_gateway: Any,
) -> None:
    gateway = make_gateway(LIMITED, env={"T1": "t1-key"})
    key = {"x-api-key": "t1-key"}
    answers = [await gateway.post("/v1/messages/count_tokens", MESSAGES, **key) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    refused = decoded(await answers[2].get_data())
    assert (refused["type"], refused["error"]["type"]) == ("error", "rate_limit_error")
    # An open-zone backend never sees a prompt only to count it: the estimate answers.
    assert answers[0].headers["x-nexus-token-count"] == "estimate"
    assert gateway.upstream.requests == []
    assert gateway.wiring.state.statistics().totals.total == 3


async def test_an_unreadable_answer_is_a_502_in_the_client_api(gateway: Gateway) -> None:
    not_a_completion = raw_response(200, b'{"object": "chat.completion", "usage": {}}')
    gateway.upstream.handlers["a.test"] = answer_with(not_a_completion)
    response = await gateway.post("/v1/messages", MESSAGES)
    assert response.status_code == 502
    assert decoded(await response.get_data())["type"] == "error"


ERROR_CHUNK = {"error": {"message": "out of memory", "type": "InternalServerError", "code": 500}}


@pytest.mark.parametrize(
    ("path", "body", "last"),
    [
        ("/v1/messages", {**MESSAGES, "stream": True}, "error"),
        ("/v1/responses", {**RESPONSES, "stream": True}, "error"),
        ("/v1/chat/completions", {"model": "m", "messages": [], "stream": True}, None),
    ],
)
async def test_an_upstream_error_event_ends_the_stream_truncated(
    gateway: Gateway, path: str, body: dict[str, Any], last: str | None
) -> None:
    stream = ChunkStream(sse(chunk("Hel"), ERROR_CHUNK, "[DONE]"))
    gateway.upstream.handlers["a.test"] = answer_with(stream_response(stream))
    if path == "/v1/chat/completions":
        body = {**body, "messages": [{"role": "user", "content": "hi"}]}
    response = await gateway.post(path, body)
    data = await response.get_data()
    if last is None:  # chat: the upstream's error as it is, then the gateway's truncation
        assert b"out of memory" in data
        assert data.endswith(truncation_event("upstream_error"))
    else:
        assert events(data)[-1][0] == last
    stats = gateway.wiring.state.statistics()
    assert (stats.totals.success, stats.totals.errors) == (0, 1)


@pytest.mark.parametrize("model", [None, "", 5])
async def test_a_response_request_without_a_model_is_a_400(gateway: Gateway, model: object) -> None:
    body = {"input": "hi"} if model is None else {"model": model, "input": "hi"}
    response = await gateway.post("/v1/responses", body)
    assert response.status_code == 400
    assert decoded(await response.get_data())["error"]["param"] == "model"
