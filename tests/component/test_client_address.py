"""The client's address in the access log, behind trusted proxies and reloaded
(docs/operations.md#client-address)."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from nexus_trio.config import parse_config
from tests.component.configs import KEYED_OPENAI
from tests.component.fake_upstream import completion
from tests.component.in_process import Gateway, MakeGateway

CHAT = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'
TRUSTING = '[server]\ntrusted_proxies = ["127.0.0.1"]\n' + KEYED_OPENAI


async def post_from(gateway: Gateway, peer: str, forwarded: str) -> None:
    client = gateway.app.test_client()
    response = await client.post(
        "/v1/chat/completions",
        data=CHAT,
        headers={"content-type": "application/json", "x-forwarded-for": forwarded},
        scope_base={"client": (peer, 40000)},
    )
    assert response.status_code == 200


def clients(caplog: pytest.LogCaptureFixture) -> list[Any]:
    return [r.access.client for r in caplog.records if r.name == "nexus_trio.access"]  # type: ignore[attr-defined]


async def test_the_access_log_names_the_forwarded_client_of_a_trusted_proxy(
    make_gateway: MakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = make_gateway(TRUSTING, env={"A_KEY": "k"})

    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        return completion()

    gateway.upstream.handlers["a.test"] = handler
    caplog.set_level(logging.INFO, logger="nexus_trio.access")
    await post_from(gateway, "127.0.0.1", "6.6.6.6, 198.51.100.7")
    await post_from(gateway, "192.0.2.1", "198.51.100.7")  # not a trusted proxy
    gateway.wiring.apply_config(parse_config(KEYED_OPENAI))  # a reload trusts no proxy
    await post_from(gateway, "127.0.0.1", "198.51.100.7")
    assert clients(caplog) == ["198.51.100.7", "192.0.2.1", "127.0.0.1"]
