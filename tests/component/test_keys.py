"""Named keys on the request path (docs/keys.md#keys, docs/keys.md#rate-limits): who may ask
what, where it may go, how fast, and whose spend it is."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.component.client import CHAT, PATH, bearer
from tests.component.fake_upstream import completion
from tests.component.in_process import Gateway

CONFIG = """
[health_check]
enabled = false
[server]
api_keys_env = "OLD_KEYS"
[budget]
hard_limit_action = "reject"
[[backends]]
name = "cloud"
url = "http://cloud.test"
type = "openai"
models = ["m", "gpt"]
[[backends]]
name = "local"
url = "http://local.test"
type = "generic"
priority = 90
models = ["m"]
[[pricing]]
backend = "cloud"
input_usd_per_million = 1000000
output_usd_per_million = 1000000
[[keys]]
name = "team-a"
key_env = "TEAM_A_KEY"
models = ["m"]
requests_per_minute = 2
[[keys]]
name = "private"
key_env = "PRIVATE_KEY"
privacy = "restricted"
[[keys]]
name = "capped"
key_env = "CAPPED_KEY"
monthly_budget_usd = 5
"""
ENV = {
    "OLD_KEYS": "old",
    "TEAM_A_KEY": "team",
    "PRIVATE_KEY": "private",
    "CAPPED_KEY": "capped",
}


@pytest.fixture
def keyed(make_gateway: Callable[..., Gateway]) -> Gateway:
    gateway = make_gateway(CONFIG, env=ENV)

    async def answer(request: httpx.Request, body: bytes) -> httpx.Response:
        return completion()  # 3 + 2 tokens: $5 on the cloud

    gateway.upstream.handlers["cloud.test"] = answer
    gateway.upstream.handlers["local.test"] = answer
    return gateway


async def test_old_and_named_keys_both_authenticate(keyed: Gateway) -> None:
    assert (await keyed.post(PATH, CHAT, **bearer("old"))).status_code == 200
    assert (await keyed.post(PATH, CHAT, **bearer("team"))).status_code == 200
    assert (await keyed.post(PATH, CHAT, **bearer("wrong"))).status_code == 401
    by_key = keyed.wiring.spend.statistics().by_key
    assert by_key == {"default": 5.0, "team-a": 5.0}


async def test_a_model_outside_the_allow_list_is_403(keyed: Gateway) -> None:
    response = await keyed.post(PATH, {**CHAT, "model": "gpt"}, **bearer("team"))
    assert response.status_code == 403
    error = (await response.get_json())["error"]
    assert (error["code"], error["param"]) == ("model_not_allowed", "model")
    assert keyed.upstream.requests == []


async def test_a_restricted_key_never_reaches_the_cloud(keyed: Gateway) -> None:
    local = await keyed.post(PATH, CHAT, **bearer("private"))
    assert local.headers["x-nexus-backend"] == "local"
    cloud_only = await keyed.post(PATH, {**CHAT, "model": "gpt"}, **bearer("private"))
    assert cloud_only.status_code == 503
    assert cloud_only.headers["x-nexus-rejection-reasons"] == "privacy_zone"
    assert [r.url.host for r, _ in keyed.upstream.requests] == ["local.test"]


async def test_over_the_request_limit_is_429_with_openais_headers(keyed: Gateway) -> None:
    first = await keyed.post(PATH, CHAT, **bearer("team"))
    assert (
        first.headers["x-ratelimit-limit-requests"],
        first.headers["x-ratelimit-remaining-requests"],
    ) == ("2", "1")
    assert first.headers["x-ratelimit-reset-requests"].endswith("s")
    await keyed.post(PATH, CHAT, **bearer("team"))
    refused = await keyed.post(PATH, CHAT, **bearer("team"))
    assert refused.status_code == 429
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert 1 <= int(refused.headers["retry-after"]) <= 30
    error = (await refused.get_json())["error"]
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
    # Other keys are not limited by it, and carry no rate-limit headers.
    other = await keyed.post(PATH, CHAT, **bearer("old"))
    assert other.status_code == 200
    assert "x-ratelimit-limit-requests" not in other.headers
    registry = keyed.wiring.metrics.registry
    assert (
        registry.get_sample_value("nexus_rate_limited_total", {"key": "team-a", "kind": "requests"})
        == 1.0
    )


async def test_a_key_over_its_own_budget_is_refused_alone(keyed: Gateway) -> None:
    spent = await keyed.post(PATH, CHAT, **bearer("capped"))  # $5: the key's whole budget
    assert spent.headers["x-nexus-backend"] == "cloud"
    refused = await keyed.post(PATH, CHAT, **bearer("capped"))
    assert refused.status_code == 429
    assert refused.headers["x-should-retry"] == "false"
    error = (await refused.get_json())["error"]
    assert error["code"] == "budget_exceeded"
    assert "key 'capped'" in error["message"]
    assert (await keyed.post(PATH, CHAT, **bearer("old"))).status_code == 200


LISTING = """
[health_check]
enabled = false
[server]
api_keys_env = "OLD_KEYS"
[routing.aliases]
"fast" = "gpt-4o"        # allowed by name, its target is not
"llama" = "llama3:8b"    # its target is allowed, its name is not
"smart" = "llama"        # a chain; its name is not allowed either
"big" = "llama3:70b"     # name and target allowed
[[backends]]
name = "a"
url = "http://a.test"
type = "generic"
models = ["llama3:8b", "llama3:70b", "gpt-4o", "mistral"]
[[keys]]
name = "team-a"
key_env = "TEAM_A_KEY"
models = ["llama3*", "fast", "b?g"]
[[keys]]
name = "everything"
key_env = "ALL_KEY"
"""
EVERY_NAME = ["big", "fast", "gpt-4o", "llama", "llama3:70b", "llama3:8b", "mistral", "smart"]


async def listed(gateway: Gateway, token: str) -> list[str]:
    response = await gateway.app.test_client().get("/v1/models", headers=bearer(token))
    assert response.status_code == 200
    return [entry["id"] for entry in (await response.get_json())["data"]]


async def test_models_lists_exactly_what_the_key_may_ask_for(
    make_gateway: Callable[..., Gateway],
) -> None:
    """docs/keys.md#keys: a key with an allow-list sees the names it may request, and every
    name it sees is accepted; aliases by their own name, as the request path checks them."""
    gateway = make_gateway(LISTING, env={"OLD_KEYS": "old", "TEAM_A_KEY": "team", "ALL_KEY": "all"})

    async def answer(request: httpx.Request, body: bytes) -> httpx.Response:
        return completion()

    gateway.upstream.handlers["a.test"] = answer
    # the unnamed key and a named key without an allow-list see everything
    assert await listed(gateway, "old") == EVERY_NAME
    assert await listed(gateway, "all") == EVERY_NAME
    team = await listed(gateway, "team")
    assert team == ["big", "fast", "llama3:70b", "llama3:8b"]
    # what is listed is exactly what is accepted: every other name is 403 model_not_allowed
    for name in EVERY_NAME:
        response = await gateway.post(PATH, {**CHAT, "model": name}, **bearer("team"))
        assert (response.status_code == 200) == (name in team), (name, response.status_code)
        if name not in team:
            assert (await response.get_json())["error"]["code"] == "model_not_allowed"
    # an allowed name that nothing serves is 404, naming only models the key may ask for
    unknown = await gateway.post(PATH, {**CHAT, "model": "llama3:1b"}, **bearer("team"))
    assert unknown.status_code == 404
    message = (await unknown.get_json())["error"]["message"]
    assert message.endswith("Known models: big, fast, llama3:70b, llama3:8b.")
