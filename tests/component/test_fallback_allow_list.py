"""Allow-lists follow fallbacks (docs/keys.md#keys, docs/routing.md#fallbacks): every model a
request is tried on must be allowed for its key; a fallback that is not is skipped with the
rejection reason ``model_not_allowed``, and the final answer says what really happened."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from nexus_trio.registry import HealthState
from tests.component.client import CHAT, PATH
from tests.component.fake_upstream import completion, raw_response
from tests.component.in_process import Gateway

CONFIG = """
[health_check]
enabled = false
[routing.fallbacks]
"m-cheap" = ["m-expensive"]
"m-gone" = ["m-expensive"]
[[backends]]
name = "cheap"
url = "http://cheap.test"
type = "generic"
models = ["m-cheap"]
[[backends]]
name = "expensive"
url = "http://expensive.test"
type = "openai"
models = ["m-expensive"]
[[pricing]]
backend = "expensive"
input_usd_per_million = 1000
output_usd_per_million = 1000
[[keys]]
name = "team"
key_env = "TEAM_KEY"
models = ["m-cheap", "m-gone"]
[[keys]]
name = "ops"
key_env = "OPS_KEY"
admin = true
"""
TEAM = {"authorization": "Bearer team"}
OPS = {"authorization": "Bearer ops"}


@pytest.fixture
def gateway(make_gateway: Callable[..., Gateway]) -> Gateway:
    gateway = make_gateway(CONFIG, env={"TEAM_KEY": "team", "OPS_KEY": "ops"})

    async def fail(request: httpx.Request, data: bytes) -> httpx.Response:
        return raw_response(500, b'{"error": {"message": "boom"}}')

    async def answer(request: httpx.Request, data: bytes) -> httpx.Response:
        return completion()

    gateway.upstream.handlers["cheap.test"] = fail
    gateway.upstream.handlers["expensive.test"] = answer
    return gateway


def upstream_hosts(gateway: Gateway) -> list[str]:
    return [request.url.host for request, _ in gateway.upstream.requests]


def exclusions(gateway: Gateway) -> float | None:
    return gateway.wiring.metrics.registry.get_sample_value(
        "nexus_reconciler_exclusions_total",
        {"reconciler": "request_analyzer", "reason": "model_not_allowed"},
    )


async def test_a_fallback_outside_the_allow_list_is_never_tried_nor_charged(
    gateway: Gateway,
) -> None:
    response = await gateway.post(PATH, {**CHAT, "model": "m-cheap"}, **TEAM)
    # The one model the key may use failed: its answer is the final one, passed through.
    assert response.status_code == 500
    assert "x-nexus-fallback-model" not in response.headers
    assert upstream_hosts(gateway) == ["cheap.test"]
    assert gateway.wiring.spend.statistics().by_key == {}
    assert exclusions(gateway) == 1.0
    # A key without an allow-list still falls back.
    served = await gateway.post(PATH, {**CHAT, "model": "m-cheap"}, **OPS)
    assert (served.status_code, served.headers["x-nexus-fallback-model"]) == (200, "m-expensive")


async def test_when_nothing_allowed_can_serve_the_503_says_why_for_every_model(
    gateway: Gateway,
) -> None:
    gateway.wiring.registry.get("cheap").health = HealthState.UNHEALTHY  # type: ignore[union-attr]
    response = await gateway.post(PATH, {**CHAT, "model": "m-cheap"}, **TEAM)
    assert response.status_code == 503
    assert response.headers["x-nexus-rejection-reasons"] == "unhealthy,model_not_allowed"
    assert "retry-after" in response.headers  # the allowed model may recover
    error = (await response.get_json())["error"]
    assert error["code"] == "no_available_backend"
    assert error["message"].startswith("No backend can serve 'm-cheap' now")
    assert [(r["backend"], r["reason"]) for r in error["rejections"]] == [
        ("cheap", "unhealthy"),
        ("expensive", "model_not_allowed"),
    ]
    assert "m-expensive" not in error["message"] + str(error["rejections"])
    assert upstream_hosts(gateway) == []


async def test_a_model_only_a_forbidden_fallback_serves_does_not_exist_for_the_key(
    gateway: Gateway,
) -> None:
    response = await gateway.post(PATH, {**CHAT, "model": "m-gone"}, **TEAM)
    assert response.status_code == 404
    error = (await response.get_json())["error"]
    assert error["code"] == "model_not_found"
    assert error["message"].endswith("Known models: m-cheap.")
    assert upstream_hosts(gateway) == []
