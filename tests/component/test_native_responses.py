"""``/v1/responses`` to a backend that serves the Responses API itself (``responses_api =
true``): the client's request and the backend's answer pass untranslated
(docs/responses-api.md#native-backends); the gateway reads usage, cost and the stream's end."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import openai

from tests.component.fake_upstream import ChunkStream, raw_response, stream_response
from tests.component.in_process import Gateway, MakeGateway

CONFIG = """
[health_check]
enabled = false
[[backends]]
name = "native"
url = "http://native.test"
type = "openai"
api_key_env = "KEY"
responses_api = true
models = ["gpt-x"]
[[backends]]
name = "chat-only"
url = "http://chat.test"
type = "openai"
api_key_env = "KEY"
priority = 90
models = ["gpt-y"]
[[pricing]]
backend = "native"
model = "gpt-x"
input_usd_per_million = 1.0
output_usd_per_million = 1.0
"""
REQUEST: dict[str, Any] = {
    "model": "gpt-x",
    "input": "hello",
    "tools": [{"type": "web_search"}],
    "reasoning": {"effort": "low", "summary": "auto"},
    "include": ["reasoning.encrypted_content"],
}
USAGE = {
    "input_tokens": 7,
    "output_tokens": 3,
    "total_tokens": 10,
    "input_tokens_details": {"cached_tokens": 0},
    "output_tokens_details": {"reasoning_tokens": 0},
}


def response_object(**extra: Any) -> dict[str, Any]:
    text = {"type": "output_text", "text": "hi there", "annotations": []}
    item = {
        "type": "message",
        "id": "msg_1",
        "status": "completed",
        "role": "assistant",
        "content": [text],
    }
    return {
        "id": "resp_upstream",
        "object": "response",
        "created_at": 1,
        "status": "completed",
        "model": "gpt-x",
        "output": [item],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": USAGE,
        **extra,
    }


def event(kind: str, sequence: int, **fields: Any) -> bytes:
    body = msgspec.json.encode({"type": kind, "sequence_number": sequence, **fields})
    return b"event: " + kind.encode() + b"\ndata: " + body + b"\n\n"


def native_gateway(make_gateway: MakeGateway, response: httpx.Response) -> Gateway:
    gateway = make_gateway(CONFIG, env={"KEY": "upstream-secret"})

    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        return response

    gateway.upstream.handlers["native.test"] = handler
    return gateway


async def test_a_response_passes_both_ways_untranslated(make_gateway: MakeGateway) -> None:
    answer = response_object()
    gateway = native_gateway(make_gateway, raw_response(200, msgspec.json.encode(answer)))
    response = await gateway.post("/v1/responses", REQUEST)
    assert response.status_code == 200
    assert msgspec.json.decode(await response.get_data()) == answer
    [(request, body)] = gateway.upstream.requests
    assert request.url.path == "/v1/responses"
    # reasoning, include and all; it stores nothing (the gateway cannot continue a
    # conversation the backend keeps), and web_search is not allowed (test_native_reach.py)
    tools_left_out = {key: value for key, value in REQUEST.items() if key != "tools"}
    assert msgspec.json.decode(body) == {**tools_left_out, "store": False}
    assert request.headers["authorization"] == "Bearer upstream-secret"
    assert gateway.wiring.state.statistics().spend.total_usd > 0  # usage read


async def test_a_backend_without_the_flag_gets_chat_completions(make_gateway: MakeGateway) -> None:
    gateway = make_gateway(CONFIG, env={"KEY": "k"})
    chat = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}]}

    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        return raw_response(200, msgspec.json.encode(chat))

    gateway.upstream.handlers["chat.test"] = handler
    response = await gateway.post("/v1/responses", {**REQUEST, "model": "gpt-y"})
    assert response.status_code == 200
    [(request, _)] = gateway.upstream.requests
    assert request.url.path == "/v1/chat/completions"
    parsed = openai.types.responses.Response.model_validate(
        msgspec.json.decode(await response.get_data())
    )
    assert parsed.output_text == "hi"


async def test_a_stream_is_relayed_event_by_event(make_gateway: MakeGateway) -> None:
    items = [
        event("response.created", 0, response=response_object(status="in_progress", usage=None)),
        event(
            "response.output_text.delta",
            1,
            item_id="msg_1",
            output_index=0,
            content_index=0,
            delta="hi",
        ),
        event("response.completed", 2, response=response_object()),
    ]
    gateway = native_gateway(make_gateway, stream_response(ChunkStream(list(items))))
    response = await gateway.post("/v1/responses", {**REQUEST, "stream": True})
    assert await response.get_data() == b"".join(items)
    stats = gateway.wiring.state.statistics()
    assert (stats.totals.success, stats.spend.total_usd > 0) == (1, True)


async def test_a_broken_stream_ends_with_a_numbered_error_event(make_gateway: MakeGateway) -> None:
    items = [
        event("response.created", 0, response=response_object(status="in_progress", usage=None)),
        event(
            "response.output_text.delta",
            1,
            item_id="msg_1",
            output_index=0,
            content_index=0,
            delta="hi",
        ),
    ]
    gateway = native_gateway(make_gateway, stream_response(ChunkStream(list(items))))
    response = await gateway.post("/v1/responses", {**REQUEST, "stream": True})
    data = await response.get_data()
    assert data.startswith(b"".join(items))
    tail = msgspec.json.decode(data[len(b"".join(items)) :].split(b"data: ", 1)[1])
    assert (tail["type"], tail["sequence_number"], tail["code"]) == ("error", 2, "stream_truncated")
    assert gateway.wiring.state.statistics().totals.errors == 1


async def test_the_backends_own_failure_is_relayed_alone(make_gateway: MakeGateway) -> None:
    failed = response_object(status="failed", error={"code": "server_error", "message": "x"})
    items = [event("response.failed", 0, response=failed)]
    gateway = native_gateway(make_gateway, stream_response(ChunkStream(list(items))))
    response = await gateway.post("/v1/responses", {**REQUEST, "stream": True})
    assert await response.get_data() == b"".join(items)
