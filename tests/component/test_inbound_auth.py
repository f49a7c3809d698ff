"""Optional inbound bearer keys (docs/configuration.md#inbound-authentication)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import msgspec
import pytest

from nexus_trio.config import parse_config
from nexus_trio.errors import ConfigError
from nexus_trio.runtime.wiring import Wiring
from tests.component.client import CHAT
from tests.component.fake_upstream import completion
from tests.component.in_process import Gateway

AUTH_CONFIG = """
[server]
api_keys_env = "GATEWAY_KEYS"
[health_check]
enabled = false
[[backends]]
name = "a"
url = "http://a.test"
type = "generic"
models = ["m"]
"""


def completion_handler(request: httpx.Request) -> httpx.Response:
    return completion()


@pytest.fixture
async def secured(make_gateway: Callable[..., Gateway]) -> Gateway:
    gateway = make_gateway(AUTH_CONFIG, env={"GATEWAY_KEYS": "key-one, key-two"})

    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        return completion()

    gateway.upstream.handlers["a.test"] = handler
    return gateway


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic key-one", "Bearer ", "key-one"])
async def test_missing_or_wrong_key_is_401(secured: Gateway, header: str | None) -> None:
    headers = {} if header is None else {"authorization": header}
    response = await secured.post("/v1/chat/completions", CHAT, **headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    error = msgspec.json.decode(await response.get_data())["error"]
    assert (error["type"], error["code"]) == ("authentication_error", "invalid_api_key")
    assert secured.upstream.requests == []


async def test_any_configured_key_is_accepted_and_not_forwarded(secured: Gateway) -> None:
    for key in ("key-one", "key-two"):
        response = await secured.post("/v1/chat/completions", CHAT, authorization=f"Bearer {key}")
        assert response.status_code == 200
    assert all("authorization" not in r.headers for r, _ in secured.upstream.requests)


async def test_v1_reads_and_metrics_need_a_key_health_stays_open(secured: Gateway) -> None:
    client = secured.app.test_client()
    for path in ("/v1/models", "/metrics"):
        assert (await client.get(path)).status_code == 401
        ok = await client.get(path, headers={"authorization": "Bearer key-two"})
        assert ok.status_code == 200
    for path in ("/health", "/health/live"):
        assert (await client.get(path)).status_code == 200


async def test_keys_variable_without_keys_is_a_config_error() -> None:
    config = parse_config(AUTH_CONFIG)
    transport = httpx.MockTransport(completion_handler)
    async with httpx.AsyncClient(transport=transport) as http:
        with pytest.raises(ConfigError, match="GATEWAY_KEYS holds no key"):
            Wiring.build(config, {"GATEWAY_KEYS": " , "}, http, transport=transport)


async def test_admin_routes_are_refused_when_no_key_could_be_an_admin(
    make_gateway: Callable[..., Gateway],
) -> None:
    open_gateway = make_gateway(AUTH_CONFIG.replace('api_keys_env = "GATEWAY_KEYS"', ""))
    response = await open_gateway.app.test_client().get("/admin/keys")
    assert response.status_code == 403
    error = msgspec.json.decode(await response.get_data())["error"]
    assert error["code"] == "permission_denied"
    # The rest of an open gateway stays open.
    assert (await open_gateway.app.test_client().get("/v1/models")).status_code == 200
