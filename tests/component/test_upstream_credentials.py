"""A backend refusing the gateway's own credentials (401, 403) never shows a tenant its text,
which may describe the operator's account: a neutral 502 in the client's envelope, the text
logged redacted (docs/proxying.md#retries)."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import msgspec
import pytest

from tests.component.configs import KEYED_OPENAI
from tests.component.fake_upstream import raw_response
from tests.component.in_process import Gateway, MakeGateway
from tests.component.test_native_messages import CONFIG as ANTHROPIC_CONFIG
from tests.component.test_native_messages import REQUEST as MESSAGES_REQUEST

SECRET = "sk-proj-Zr8wQ1mN4vB7"
REFUSAL = {"error": {"message": f"Incorrect API key provided: {SECRET}. Account acme-corp."}}
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def refusing(make_gateway: MakeGateway, config: str, host: str, status: int) -> Gateway:
    gateway = make_gateway(config, env={"A_KEY": "operator-key", "KEY": "operator-key"})

    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        return raw_response(status, msgspec.json.encode(REFUSAL))

    gateway.upstream.handlers[host] = handler
    return gateway


async def answer(gateway: Gateway, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
    response = await gateway.post(path, body)
    return response.status_code, await response.get_data()


@pytest.mark.parametrize("status", [401, 403])
async def test_a_chat_client_gets_a_neutral_502(
    make_gateway: MakeGateway, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = refusing(make_gateway, KEYED_OPENAI, "a.test", status)
    with caplog.at_level(logging.WARNING, logger="nexus_trio.api"):
        code, data = await answer(gateway, "/v1/chat/completions", CHAT)
    assert code == 502
    error = msgspec.json.decode(data)["error"]
    assert (error["code"], error["message"]) == (
        "backend_unavailable",
        "Backend 'a' could not serve the request.",
    )
    [record] = [r for r in caplog.records if "refused the gateway's credentials" in r.message]
    assert "acme-corp" in record.message  # the operator sees why
    assert SECRET not in record.message
    assert "sk-proj" not in record.message


async def test_a_messages_client_gets_it_in_anthropics_envelope(make_gateway: MakeGateway) -> None:
    gateway = refusing(make_gateway, ANTHROPIC_CONFIG, "claude.test", 401)
    code, data = await answer(gateway, "/v1/messages", MESSAGES_REQUEST)
    assert code == 502
    assert msgspec.json.decode(data)["error"]["type"] == "api_error"
    assert b"acme" not in data


async def test_a_backend_given_the_clients_own_key_passes_its_401_on(
    make_gateway: MakeGateway,
) -> None:
    config = KEYED_OPENAI.replace('api_key_env = "A_KEY"', "forward_authorization = true")
    gateway = refusing(make_gateway, config, "a.test", 401)
    code, data = await answer(gateway, "/v1/chat/completions", CHAT)
    assert (code, msgspec.json.decode(data)) == (401, REFUSAL)
