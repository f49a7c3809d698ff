"""Content only a native backend takes (documents, server-tool history, files, a choice forcing
a server-side tool) is routed first and refused only where the backend must translate it
(docs/messages-api.md#native-only-content, docs/responses-api.md#native-only-content)."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import pytest

from tests.component.fake_upstream import raw_response
from tests.component.in_process import Gateway, MakeGateway
from tests.component.test_native_messages import CONFIG as MESSAGES_CONFIG
from tests.component.test_native_messages import message
from tests.component.test_native_responses import CONFIG as RESPONSES_CONFIG
from tests.component.test_native_responses import response_object

TRANSLATING = """
[[backends]]
name = "local"
url = "http://local.test"
type = "llamacpp"
models = ["small"]
"""
CHAT = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}]}
DOCUMENT = {
    "type": "document",
    "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
}
SEARCH = {
    "type": "server_tool_use",
    "id": "srvtoolu_1",
    "name": "web_search",
    "input": {"query": "q"},
}
RESULTS = {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []}
WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search"}
MESSAGES: dict[str, Any] = {
    "max_tokens": 64,
    "messages": [
        {"role": "user", "content": [DOCUMENT, {"type": "text", "text": "summarise, then search"}]},
        {"role": "assistant", "content": [SEARCH, RESULTS, {"type": "text", "text": "found"}]},
        {"role": "user", "content": "thanks"},
    ],
}
FILE = {"type": "input_file", "file_id": "file-1"}
RESPONSES: dict[str, Any] = {
    "input": [{"role": "user", "content": [FILE, {"type": "input_text", "text": "read it"}]}],
}


def gateway_for(make_gateway: MakeGateway, config: str, native: tuple[str, bytes]) -> Gateway:
    gateway = make_gateway(config + TRANSLATING, env={"KEY": "k"})

    async def answer(request: httpx.Request, body: bytes) -> httpx.Response:
        return raw_response(200, native[1])

    async def chat(request: httpx.Request, body: bytes) -> httpx.Response:
        return raw_response(200, msgspec.json.encode(CHAT))

    gateway.upstream.handlers[native[0]] = answer
    gateway.upstream.handlers["local.test"] = chat
    return gateway


def messages_gateway(make_gateway: MakeGateway, allow: str = "") -> Gateway:
    config = MESSAGES_CONFIG.replace('models = ["claude-x"]\n', f'models = ["claude-x"]\n{allow}')
    return gateway_for(make_gateway, config, ("claude.test", msgspec.json.encode(message())))


def responses_gateway(make_gateway: MakeGateway, allow: str = "") -> Gateway:
    config = RESPONSES_CONFIG.replace('models = ["gpt-x"]\n', f'models = ["gpt-x"]\n{allow}', 1)
    answer = msgspec.json.encode(response_object())
    return gateway_for(make_gateway, config, ("native.test", answer))


async def refused(gateway: Gateway, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await gateway.post(path, body)
    assert response.status_code == 400
    assert gateway.upstream.requests == []
    return msgspec.json.decode(await response.get_data())  # type: ignore[no-any-return]


async def test_documents_and_server_tool_history_reach_a_native_backend(
    make_gateway: MakeGateway,
) -> None:
    gateway = messages_gateway(make_gateway)
    response = await gateway.post("/v1/messages", {**MESSAGES, "model": "claude-x"})
    assert response.status_code == 200
    [(_, body)] = gateway.upstream.requests
    assert msgspec.json.decode(body) == {**MESSAGES, "model": "claude-x"}


async def test_they_are_refused_where_the_backend_translates(make_gateway: MakeGateway) -> None:
    gateway = messages_gateway(make_gateway)
    error = await refused(gateway, "/v1/messages", {**MESSAGES, "model": "small"})
    assert error["error"]["type"] == "invalid_request_error"
    assert "'messages[0].content[0].type' 'document'" in error["error"]["message"]


@pytest.mark.parametrize(
    ("allow", "status"), [('native_tools = ["web_search_20250305"]\n', 200), ("", 400)]
)
async def test_a_choice_forcing_a_server_tool_reaches_a_backend_that_allows_it(
    make_gateway: MakeGateway, allow: str, status: int
) -> None:
    gateway = messages_gateway(make_gateway, allow)
    body = {**MESSAGES, "model": "claude-x", "tools": [WEB_SEARCH]}
    body["tool_choice"] = {"type": "tool", "name": "web_search"}
    response = await gateway.post("/v1/messages", body)
    assert response.status_code == status
    assert len(gateway.upstream.requests) == (status == 200)


async def test_a_file_reaches_a_native_responses_backend(make_gateway: MakeGateway) -> None:
    gateway = responses_gateway(make_gateway)
    response = await gateway.post("/v1/responses", {**RESPONSES, "model": "gpt-x"})
    assert response.status_code == 200
    [(request, body)] = gateway.upstream.requests
    assert request.url.path == "/v1/responses"
    assert msgspec.json.decode(body) == {**RESPONSES, "model": "gpt-x", "store": False}


@pytest.mark.parametrize("model", ["gpt-y", "small"])
async def test_a_file_is_refused_where_the_backend_translates(
    make_gateway: MakeGateway, model: str
) -> None:
    gateway = responses_gateway(make_gateway)
    error = await refused(gateway, "/v1/responses", {**RESPONSES, "model": model})
    assert error["error"]["param"] == "input[0].content[0]"


@pytest.mark.parametrize(("allow", "status"), [('native_tools = ["web_search"]\n', 200), ("", 400)])
async def test_a_responses_choice_forcing_a_built_in_tool(
    make_gateway: MakeGateway, allow: str, status: int
) -> None:
    gateway = responses_gateway(make_gateway, allow)
    body = {"model": "gpt-x", "input": "hi", "tools": [{"type": "web_search"}]}
    response = await gateway.post("/v1/responses", {**body, "tool_choice": {"type": "web_search"}})
    assert response.status_code == status
    assert len(gateway.upstream.requests) == (status == 200)
