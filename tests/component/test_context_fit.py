"""A translated client-API request's ``max_tokens`` is fitted to the served model's known
context (docs/messages-api.md#requests); a chat client's own body never is."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import pytest

from tests.component.fake_upstream import raw_response
from tests.component.in_process import MakeGateway
from tests.component.test_merge_system import CHAT, CLAUDE_CODE, CONFIG

KNOWN = CONFIG + "[backends.capabilities.small]\ncontext_length = 8192\n"


async def sent(make_gateway: MakeGateway, config: str, path: str, body: dict[str, Any]) -> bytes:
    gateway = make_gateway(config)

    async def handler(request: httpx.Request, data: bytes) -> httpx.Response:
        return raw_response(200, msgspec.json.encode(CHAT))

    gateway.upstream.handlers["local.test"] = handler
    assert (await gateway.post(path, body)).status_code == 200
    [(_, upstream)] = gateway.upstream.requests
    return upstream


async def test_claude_codes_32000_is_fitted_to_a_known_context(make_gateway: MakeGateway) -> None:
    body = await sent(make_gateway, KNOWN, "/v1/messages", {**CLAUDE_CODE, "max_tokens": 32000})
    assert msgspec.json.decode(body)["max_tokens"] == 8192 - len(body) // 4


@pytest.mark.parametrize(
    ("config", "path", "body"),
    [
        (CONFIG, "/v1/messages", {**CLAUDE_CODE, "max_tokens": 32000}),  # context unknown
        (KNOWN, "/v1/messages", {**CLAUDE_CODE, "max_tokens": 100}),  # fits
        (
            KNOWN,
            "/v1/chat/completions",
            {
                "model": "small",
                "max_tokens": 32000,
                "messages": [{"role": "user", "content": "hi"}],
            },
        ),
    ],
)
async def test_otherwise_max_tokens_is_sent_as_asked(
    make_gateway: MakeGateway, config: str, path: str, body: dict[str, Any]
) -> None:
    upstream = await sent(make_gateway, config, path, body)
    assert msgspec.json.decode(upstream)["max_tokens"] == body["max_tokens"]
