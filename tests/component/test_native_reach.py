"""What a request relayed untranslated may reach on the operator's account: server-side tools
and the gated body fields only where the backend's ``native_tools`` / ``native_fields`` allow
them (docs/messages-api.md#native-reach, docs/responses-api.md#native-reach)."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import pytest

from tests.component.fake_upstream import raw_response
from tests.component.in_process import Gateway, MakeGateway
from tests.component.test_native_messages import CONFIG as MESSAGES_CONFIG
from tests.component.test_native_messages import REQUEST as MESSAGES_REQUEST
from tests.component.test_native_messages import message
from tests.component.test_native_responses import CONFIG as RESPONSES_CONFIG
from tests.component.test_native_responses import response_object

CUSTOM = {"name": "Bash", "input_schema": {"type": "object"}}
WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
MESSAGES_EXTRAS: dict[str, Any] = {
    "mcp_servers": [{"type": "url", "url": "https://mcp.example", "name": "x"}],
    "container": "container_abc",
    "service_tier": "auto",
    "speed": "fast",
}
MESSAGES = {**MESSAGES_REQUEST, **MESSAGES_EXTRAS, "tools": [CUSTOM, WEB_SEARCH]}
FUNCTION = {"type": "function", "name": "shell", "parameters": {"type": "object"}}
NAMESPACE = {"type": "namespace", "name": "mcp__x__", "tools": [FUNCTION, {"type": "mcp"}]}
BUILT_IN = [{"type": "web_search"}, {"type": "file_search"}, {"type": "code_interpreter"}]
RESPONSES = {
    "model": "gpt-x",
    "input": "hello",
    "tools": [FUNCTION, {"type": "custom", "name": "apply_patch"}, NAMESPACE, *BUILT_IN],
    "service_tier": "priority",
}


def gateway_for(make_gateway: MakeGateway, config: str, host: str, answer: bytes) -> Gateway:
    gateway = make_gateway(config, env={"KEY": "k"})

    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        return raw_response(200, answer)

    gateway.upstream.handlers[host] = handler
    return gateway


def messages_gateway(make_gateway: MakeGateway, allow: str = "") -> Gateway:
    config = MESSAGES_CONFIG.replace('models = ["claude-x"]\n', f'models = ["claude-x"]\n{allow}')
    return gateway_for(make_gateway, config, "claude.test", msgspec.json.encode(message()))


def responses_gateway(make_gateway: MakeGateway, allow: str = "") -> Gateway:
    config = RESPONSES_CONFIG.replace('models = ["gpt-x"]\n', f'models = ["gpt-x"]\n{allow}', 1)
    return gateway_for(make_gateway, config, "native.test", msgspec.json.encode(response_object()))


def sent(gateway: Gateway) -> dict[str, Any]:
    [(_, body)] = gateway.upstream.requests
    return msgspec.json.decode(body)  # type: ignore[no-any-return]


async def test_server_tools_and_gated_fields_never_reach_anthropic_unless_allowed(
    make_gateway: MakeGateway,
) -> None:
    gateway = messages_gateway(make_gateway)
    assert (await gateway.post("/v1/messages", MESSAGES)).status_code == 200
    assert sent(gateway) == {**MESSAGES_REQUEST, "model": "claude-x", "tools": [CUSTOM]}


async def test_what_the_backend_allows_reaches_it(make_gateway: MakeGateway) -> None:
    allow = 'native_tools = ["web_search_20250305"]\nnative_fields = ["mcp_servers", "speed"]\n'
    gateway = messages_gateway(make_gateway, allow)
    assert (await gateway.post("/v1/messages", MESSAGES)).status_code == 200
    expected = {**MESSAGES, "model": "claude-x"}
    del expected["container"], expected["service_tier"]
    assert sent(gateway) == expected


@pytest.mark.parametrize(
    ("tools", "choice", "param"),
    [
        ([CUSTOM, WEB_SEARCH], {"type": "tool", "name": "web_search"}, "tool_choice.name"),
        ([WEB_SEARCH], {"type": "any"}, "tool_choice"),
    ],
)
async def test_forcing_a_server_tool_the_backend_does_not_allow_is_refused(
    make_gateway: MakeGateway, tools: list[Any], choice: dict[str, Any], param: str
) -> None:
    gateway = messages_gateway(make_gateway)
    body = {**MESSAGES_REQUEST, "tools": tools, "tool_choice": choice}
    response = await gateway.post("/v1/messages", body)
    assert response.status_code == 400
    error = msgspec.json.decode(await response.get_data())
    assert (error["type"], error["error"]["type"]) == ("error", "invalid_request_error")
    assert param in error["error"]["message"]
    assert gateway.upstream.requests == []


async def test_built_in_tools_never_reach_a_responses_backend_unless_allowed(
    make_gateway: MakeGateway,
) -> None:
    gateway = responses_gateway(make_gateway)
    assert (await gateway.post("/v1/responses", RESPONSES)).status_code == 200
    namespace = {**NAMESPACE, "tools": [FUNCTION]}
    tools = [FUNCTION, {"type": "custom", "name": "apply_patch"}, namespace]
    assert sent(gateway) == {"model": "gpt-x", "input": "hello", "tools": tools, "store": False}


async def test_allowed_built_in_tools_reach_a_responses_backend(make_gateway: MakeGateway) -> None:
    allow = 'native_tools = ["web_search", "mcp"]\nnative_fields = ["service_tier"]\n'
    gateway = responses_gateway(make_gateway, allow)
    assert (await gateway.post("/v1/responses", RESPONSES)).status_code == 200
    tools = [FUNCTION, {"type": "custom", "name": "apply_patch"}, NAMESPACE, BUILT_IN[0]]
    assert sent(gateway) == {**RESPONSES, "tools": tools, "store": False}


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tool_choice": {"type": "file_search"}}, "tool_choice"),
        ({"tools": BUILT_IN, "tool_choice": "required"}, "tool_choice"),
        ({"tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": BUILT_IN}}, "tools"),
        ({"background": True}, "background"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt"),
    ],
)
async def test_a_responses_request_forcing_what_is_not_allowed_is_refused(
    make_gateway: MakeGateway, extra: dict[str, Any], param: str
) -> None:
    gateway = responses_gateway(make_gateway)
    response = await gateway.post("/v1/responses", {**RESPONSES, **extra})
    assert response.status_code == 400
    error = msgspec.json.decode(await response.get_data())["error"]
    assert param in error["param"]
    assert gateway.upstream.requests == []


async def test_a_tool_with_fields_of_any_shape_is_filtered_not_failed(
    make_gateway: MakeGateway,
) -> None:
    # fields the translation ignores may hold anything: the filter reads only type and name
    odd = {**CUSTOM, "tools": 5, "type": "custom"}
    server = {**WEB_SEARCH, "tools": {"not": "a list"}}
    gateway = messages_gateway(make_gateway)
    body = {**MESSAGES_REQUEST, "tools": [odd, server], "tool_choice": {"type": "auto"}}
    assert (await gateway.post("/v1/messages", body)).status_code == 200
    assert sent(gateway)["tools"] == [odd]
