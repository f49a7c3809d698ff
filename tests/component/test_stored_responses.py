"""Stored responses through the in-process gateway: ``store``, ``previous_response_id`` and
``GET``/``DELETE /v1/responses/<id>``, whole and streamed, per key
(docs/responses-api.md#conversations, docs/responses-api.md#stored-responses)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import msgspec
import openai
import pytest

from nexus_trio.registry import HealthState
from tests.component.configs import BASE_CONFIG
from tests.component.fake_upstream import ChunkStream, chunk, completion, sse, stream_response
from tests.component.in_process import Gateway, MakeGateway

FIRST = {"model": "m", "instructions": "be brief", "input": "hello"}
USAGE_CHUNK = {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}
KEYS = """
[[keys]]
name = "team-a"
key_env = "A_KEY"
[[keys]]
name = "team-b"
key_env = "B_KEY"
[[keys]]
name = "boss"
key_env = "BOSS_KEY"
admin = true
"""
ENV = {"A_KEY": "a", "B_KEY": "b", "BOSS_KEY": "boss"}


def config(state: Path, extra: str = "") -> str:
    return f'[state]\ndir = "{state}"\n{extra}\n{BASE_CONFIG}'


@pytest.fixture
def gateway(make_gateway: MakeGateway, tmp_path: Path) -> Gateway:
    return make_gateway(config(tmp_path))


def answers(*responses: httpx.Response) -> Any:
    """Backend ``a`` answers the n-th request with the n-th response."""
    pending = list(responses)

    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        return pending.pop(0)

    return handler


def tool_call() -> httpx.Response:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    body = {"choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]}
    return httpx.Response(200, json=body)


def sent(gateway: Gateway) -> list[Any]:
    """The messages of each chat request the backends received."""
    return [msgspec.json.decode(body)["messages"] for _, body in gateway.upstream.requests]


async def create(gateway: Gateway, body: dict[str, Any], **headers: str) -> Any:
    response = await gateway.post("/v1/responses", body, **headers)
    assert response.status_code == 200, await response.get_data()
    return msgspec.json.decode(await response.get_data())


async def error_of(response: Any, status: int) -> Any:
    assert response.status_code == status
    return msgspec.json.decode(await response.get_data())["error"]


def stream_events(data: bytes) -> list[Any]:
    return [
        msgspec.json.decode(line[6:])
        for line in data.decode().splitlines()
        if line.startswith("data: ")
    ]


async def test_previous_response_id_continues_the_stored_conversation(gateway: Gateway) -> None:
    gateway.upstream.handlers["a.test"] = answers(
        completion("hi there"), completion("again"), completion("done")
    )
    first = await create(gateway, FIRST)
    assert first["store"] is True
    second = await create(
        gateway,
        {
            "model": "m",
            "instructions": "be terse",
            "input": "more?",
            "previous_response_id": first["id"],
        },
    )
    third = await create(
        gateway, {"model": "m", "input": "bye", "previous_response_id": second["id"]}
    )
    openai.types.responses.Response.model_validate(third)
    assert (second["previous_response_id"], third["previous_response_id"]) == (
        first["id"],
        second["id"],
    )
    turns = [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi there"},
        {"role": "user", "content": "more?"},
    ]
    assert sent(gateway) == [
        [{"role": "system", "content": "be brief"}, turns[0]],
        [{"role": "system", "content": "be terse"}, *turns],  # the new instructions only
        [*turns, {"role": "assistant", "content": "again"}, {"role": "user", "content": "bye"}],
    ]


async def test_a_stream_is_stored_once_it_ended_well(gateway: Gateway) -> None:
    good = ChunkStream(
        sse(chunk("hi"), chunk(" there"), chunk(finish="stop"), USAGE_CHUNK, "[DONE]")
    )
    broken = ChunkStream(sse(chunk("cut")))  # closed before any finish
    gateway.upstream.handlers["a.test"] = answers(
        stream_response(good), stream_response(broken), completion("ok")
    )
    streamed = await gateway.post("/v1/responses", {**FIRST, "stream": True})
    completed = stream_events(await streamed.get_data())[-1]
    assert completed["type"] == "response.completed"
    response_id = completed["response"]["id"]
    retrieved = await gateway.app.test_client().get(f"/v1/responses/{response_id}")
    assert msgspec.json.decode(await retrieved.get_data()) == completed["response"]

    cut = await gateway.post("/v1/responses", {**FIRST, "stream": True})
    failed = stream_events(await cut.get_data())[-2]
    assert failed["type"] == "response.failed"
    continued = {"model": "m", "input": "and?", "previous_response_id": failed["response"]["id"]}
    error = await error_of(await gateway.post("/v1/responses", continued), 404)
    assert error["code"] == "previous_response_not_found"

    await create(gateway, {**continued, "previous_response_id": response_id})
    assert sent(gateway)[-1] == [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi there"},
        {"role": "user", "content": "and?"},
    ]


async def test_a_function_call_is_answered_through_previous_response_id(gateway: Gateway) -> None:
    gateway.upstream.handlers["a.test"] = answers(tool_call(), completion("sunny"))
    tools = [{"type": "function", "name": "f", "parameters": {"type": "object"}}]
    called = await create(gateway, {"model": "m", "input": "weather?", "tools": tools})
    assert called["output"][0]["type"] == "function_call"
    output = {"type": "function_call_output", "call_id": "call_1", "output": "21C"}
    answered = {
        "model": "m",
        "input": [output],
        "tools": tools,
        "previous_response_id": called["id"],
    }
    assert (await create(gateway, answered))["output"][0]["content"][0]["text"] == "sunny"
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    assert sent(gateway)[-1] == [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "21C"},
    ]


async def test_store_false_keeps_nothing(make_gateway: MakeGateway, tmp_path: Path) -> None:
    for extra, body in (("", {**FIRST, "store": False}), ("[responses]\nstore = false", FIRST)):
        gateway = make_gateway(config(tmp_path, extra))
        gateway.upstream.handlers["a.test"] = answers(completion("hi"))
        first = await create(gateway, body)
        assert first["store"] is False
        follow_up = {"model": "m", "input": "more", "previous_response_id": first["id"]}
        await error_of(await gateway.post("/v1/responses", follow_up), 404)
        retrieved = await gateway.app.test_client().get(f"/v1/responses/{first['id']}")
        assert retrieved.status_code == 404
        assert len(gateway.upstream.requests) == 1


async def test_get_and_delete_a_stored_response(gateway: Gateway) -> None:
    gateway.upstream.handlers["a.test"] = answers(completion("hi there"))
    response = await gateway.post("/v1/responses", FIRST)
    body = await response.get_data()
    response_id = msgspec.json.decode(body)["id"]
    client = gateway.app.test_client()
    retrieved = await client.get(f"/v1/responses/{response_id}")
    assert (retrieved.status_code, await retrieved.get_data()) == (200, body)
    assert retrieved.headers["content-type"] == "application/json"
    deleted = await client.delete(f"/v1/responses/{response_id}")
    assert msgspec.json.decode(await deleted.get_data()) == {
        "id": response_id,
        "object": "response.deleted",
        "deleted": True,
    }
    for again in (client.get, client.delete):
        error = await error_of(await again(f"/v1/responses/{response_id}"), 404)
        assert (error["code"], error["message"]) == (
            "not_found",
            f"Response with id '{response_id}' not found.",
        )
    follow_up = {"model": "m", "input": "more", "previous_response_id": response_id}
    await error_of(await gateway.post("/v1/responses", follow_up), 404)


@pytest.mark.parametrize("response_id", ["resp_unknown", "x" * 300, "resp_" + "0" * 32])
async def test_ids_the_gateway_never_made_are_not_found(gateway: Gateway, response_id: str) -> None:
    client = gateway.app.test_client()
    for method in (client.get, client.delete):
        error = await error_of(await method(f"/v1/responses/{response_id}"), 404)
        assert ("x" * 300) not in error["message"]
    follow_up = {"model": "m", "input": "more", "previous_response_id": response_id}
    error = await error_of(await gateway.post("/v1/responses", follow_up), 404)
    assert (error["param"], error["type"]) == ("previous_response_id", "invalid_request_error")
    assert gateway.upstream.requests == []


async def test_only_the_key_that_stored_a_response_sees_it(
    make_gateway: MakeGateway, tmp_path: Path
) -> None:
    gateway = make_gateway(config(tmp_path, KEYS), ENV)
    gateway.upstream.handlers["a.test"] = answers(completion("secret"), completion("ok"))
    first = await create(gateway, FIRST, authorization="Bearer a")
    path = f"/v1/responses/{first['id']}"
    client = gateway.app.test_client()
    follow_up = {"model": "m", "input": "more", "previous_response_id": first["id"]}
    for token in ("b", "boss"):  # another tenant, and an admin key: not theirs
        auth = {"authorization": f"Bearer {token}"}
        assert (await client.get(path, headers=auth)).status_code == 404
        assert (await client.delete(path, headers=auth)).status_code == 404
        await error_of(await gateway.post("/v1/responses", follow_up, **auth), 404)
    assert (await client.get(path)).status_code == 401
    assert len(gateway.upstream.requests) == 1
    own = {"authorization": "Bearer a"}
    assert (await client.get(path, headers=own)).status_code == 200
    await create(gateway, follow_up, **own)
    assert (await client.delete(path, headers=own)).status_code == 200


async def test_an_expired_response_is_not_found(make_gateway: MakeGateway, tmp_path: Path) -> None:
    now = [time.time()]
    gateway = make_gateway(
        config(tmp_path, "[responses]\nretention_seconds = 600"), wall_clock=lambda: now[0]
    )
    gateway.upstream.handlers["a.test"] = answers(completion("hi"))
    path = f"/v1/responses/{(await create(gateway, FIRST))['id']}"
    client = gateway.app.test_client()
    assert (await client.get(path)).status_code == 200
    now[0] += 601
    assert (await client.get(path)).status_code == 404
    follow_up = {"model": "m", "input": "more", "previous_response_id": path.rsplit("/", 1)[1]}
    await error_of(await gateway.post("/v1/responses", follow_up), 404)


async def test_a_conversation_over_its_bound_is_answered_not_stored(
    make_gateway: MakeGateway, tmp_path: Path
) -> None:
    gateway = make_gateway(config(tmp_path, "[responses]\nmax_conversation_bytes = 1200"))
    gateway.upstream.handlers["a.test"] = answers(completion("hi"), completion("x" * 400))
    small = await create(gateway, FIRST)
    large = await create(gateway, FIRST)
    client = gateway.app.test_client()
    assert (await client.get(f"/v1/responses/{small['id']}")).status_code == 200
    assert (await client.get(f"/v1/responses/{large['id']}")).status_code == 404


NATIVE_TOO = """
[[backends]]
name = "native"
url = "http://native.test"
type = "openai"
api_key_env = "KEY"
responses_api = true
priority = 90
models = ["m"]
"""


async def test_a_continued_conversation_is_translated_for_a_native_backend(
    make_gateway: MakeGateway, tmp_path: Path
) -> None:
    gateway = make_gateway(config(tmp_path, "") + NATIVE_TOO, {"KEY": "k"})
    gateway.upstream.handlers["a.test"] = answers(completion("hi there"))
    first = await create(gateway, FIRST)
    for name in ("a", "b"):  # only the native backend is left
        gateway.wiring.registry.get(name).health = HealthState.UNHEALTHY  # type: ignore[union-attr]
    gateway.upstream.handlers["native.test"] = answers(completion("again"))
    follow_up = {"model": "m", "input": "more?", "previous_response_id": first["id"]}
    second = await create(gateway, follow_up)
    assert (second["previous_response_id"], second["output"][0]["content"][0]["text"]) == (
        first["id"],
        "again",
    )
    request, body = gateway.upstream.requests[-1]
    assert (request.url.host, request.url.path) == ("native.test", "/v1/chat/completions")
    assert "previous_response_id" not in msgspec.json.decode(body)
    assert sent(gateway)[-1] == [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi there"},
        {"role": "user", "content": "more?"},
    ]
