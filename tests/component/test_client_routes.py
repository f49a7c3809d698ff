"""What today's clients need around the proxy routes: ``HEAD /``, ``GET /v1/models/<id>`` and
keys sent as ``X-Api-Key`` (docs/api.md#routes, docs/configuration.md#inbound-authentication)."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import msgspec
import pytest

from nexus_trio.runtime.supervisor import Supervisor
from tests.component.client import CHAT
from tests.component.configs import BASE_CONFIG
from tests.component.fake_upstream import completion
from tests.component.in_process import Gateway, MakeGateway

KEYED = """
[server]
api_keys_env = "GATEWAY_KEYS"
[[keys]]
name = "narrow"
key_env = "NARROW_KEY"
models = ["m"]
[health_check]
enabled = false
[[backends]]
name = "a"
url = "http://a.test"
type = "generic"
models = ["m", "other"]
"""
ENV = {"GATEWAY_KEYS": "admin-key", "NARROW_KEY": "narrow-key"}


async def answered(request: httpx.Request, body: bytes) -> httpx.Response:
    return completion()


async def test_head_root_is_200_with_and_without_the_dashboard(make_gateway: MakeGateway) -> None:
    assert (await make_gateway().app.test_client().head("/")).status_code == 200  # the page
    client = make_gateway(BASE_CONFIG + "[dashboard]\nenabled = false\n").app.test_client()
    response = await client.head("/")
    assert response.status_code == 200
    assert await response.get_data() == b""
    assert (await client.get("/")).status_code == 404


async def test_one_model_is_the_listed_entry(gateway: Gateway) -> None:
    client = gateway.app.test_client()
    listed = msgspec.json.decode(await (await client.get("/v1/models")).get_data())["data"]
    response = await client.get("/v1/models/m")
    assert response.status_code == 200
    assert msgspec.json.decode(await response.get_data()) == listed[0]
    missing = await client.get("/v1/models/nope")
    assert missing.status_code == 404
    error = msgspec.json.decode(await missing.get_data())["error"]
    assert (error["code"], error["param"]) == ("model_not_found", "model")


async def test_one_model_follows_the_keys_allow_list(make_gateway: MakeGateway) -> None:
    client = make_gateway(KEYED, env=ENV).app.test_client()
    narrow = {"authorization": "Bearer narrow-key"}
    assert (await client.get("/v1/models/m", headers=narrow)).status_code == 200
    assert (await client.get("/v1/models/other", headers=narrow)).status_code == 404
    admin = {"authorization": "Bearer admin-key"}
    assert (await client.get("/v1/models/other", headers=admin)).status_code == 200
    assert (await client.get("/v1/models/m")).status_code == 401


async def test_a_key_may_come_as_x_api_key(make_gateway: MakeGateway) -> None:
    gateway = make_gateway(KEYED, env=ENV)
    gateway.upstream.handlers["a.test"] = answered
    ok = await gateway.post("/v1/chat/completions", CHAT, **{"x-api-key": "narrow-key"})
    assert ok.status_code == 200
    wrong = await gateway.post("/v1/chat/completions", CHAT, **{"x-api-key": "nope"})
    assert wrong.status_code == 401
    # Authorization, when sent, decides alone.
    both = {"x-api-key": "narrow-key", "authorization": "Bearer nope"}
    assert (await gateway.post("/v1/chat/completions", CHAT, **both)).status_code == 401
    assert len(gateway.upstream.requests) == 1


async def test_a_reload_warns_of_a_backend_whose_key_variable_is_unset(
    gateway: Gateway, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "nexus.toml"
    keyed = BASE_CONFIG.replace('type = "generic"', 'type = "generic"\napi_key_env = "UNSET_KEY"')
    path.write_text(keyed)
    supervisor = Supervisor(gateway.wiring.config, config_path=path, env={})
    with caplog.at_level(logging.WARNING, logger="nexus_trio.daemon"):
        assert supervisor.reload(gateway.wiring)
    assert any("UNSET_KEY" in record.getMessage() for record in caplog.records)
