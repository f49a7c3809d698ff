"""When nothing can serve a request (docs/proxying.md#when-nothing-can-serve): the actionable
503 (its documented example included), permanent and transient rejections, ``Retry-After``,
capabilities such as tools, vision and context length (docs/routing.md#routing), and the unknown
model's 404.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from nexus_trio.registry import HealthState
from tests.component.client import CHAT, PATH
from tests.component.configs import PROBED_EVERY_10S, config_toml, fake_backend
from tests.component.fake_upstream import answer
from tests.component.in_process import MakeGateway
from tests.component.readings import error_of

# --- when nothing can serve -------------------------------------------------------------------


async def test_no_healthy_backend_gives_the_actionable_503(make_gateway: MakeGateway) -> None:
    gateway = make_gateway(
        config_toml(
            fake_backend("a", 10),
            fake_backend("b", 20),
            health=PROBED_EVERY_10S,
        )
    )
    gateway.wiring.registry.get("a").health = HealthState.UNHEALTHY  # type: ignore[union-attr]
    # b is still ``unknown`` (never probed)
    response = await gateway.post(PATH, CHAT)
    assert response.status_code == 503
    error = await error_of(response)
    assert error["code"] == "no_available_backend"
    assert error["type"] == "service_unavailable"
    assert error["message"] == (
        "No backend can serve 'm' now: 2 excluded (1 unhealthy, 1 unknown_health)"
    )
    assert error["rejections"] == [
        {
            "backend": "a",
            "reconciler": "health",
            "reason": "unhealthy",
            "detail": "failing health checks",
        },
        {
            "backend": "b",
            "reconciler": "health",
            "reason": "unknown_health",
            "detail": "not probed yet",
        },
    ]
    assert response.headers["x-nexus-rejection-reasons"] == "unhealthy,unknown_health"
    assert response.headers["retry-after"] == "10"
    assert "x-should-retry" not in response.headers
    assert gateway.upstream.requests == []


def documented_503() -> dict[str, Any]:
    """The example body of docs/proxying.md#when-nothing-can-serve."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "proxying.md").read_text()
    section = page.split("## When nothing can serve", 1)[1]
    block = section.split("```json\n", 1)[1].split("```", 1)[0]
    body: dict[str, Any] = json.loads(block)
    return body


async def test_the_documented_503_is_what_the_gateway_answers(make_gateway: MakeGateway) -> None:
    big = '[backends.capabilities."llama3:70b"]\ncontext_length = 32768'
    small = '[backends.capabilities."llama3:70b"]\ncontext_length = 8192'
    gateway = make_gateway(
        config_toml(
            fake_backend("gpu-a", models=["llama3:70b"], extra=big),
            fake_backend("gpu-b", models=["llama3:70b"], extra=small),
            health=PROBED_EVERY_10S,
        )
    )
    gateway.wiring.registry.get("gpu-a").health = HealthState.UNHEALTHY  # type: ignore[union-attr]
    gateway.wiring.registry.get("gpu-b").health = HealthState.HEALTHY  # type: ignore[union-attr]
    prompt = {"role": "user", "content": "x" * 48_000}  # about 12 000 tokens
    response = await gateway.post(PATH, {"model": "llama3:70b", "messages": [prompt]})
    assert response.status_code == 503
    assert json.loads(await response.get_data()) == documented_503()
    assert response.headers["x-nexus-rejection-reasons"] == "unhealthy,context_too_long"
    assert response.headers["retry-after"] == "10"
    assert gateway.upstream.requests == []


VISION_CHAT = {
    "model": "m",
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        }
    ],
}
LONG_CHAT = {"model": "m", "messages": [{"role": "user", "content": "x" * 400}]}


@pytest.mark.parametrize(
    ("body", "reason", "detail"),
    [
        (VISION_CHAT, "missing_capability", "vision"),
        (LONG_CHAT, "context_too_long", "~100 tokens > context length 50"),
    ],
    ids=["vision", "context"],
)
async def test_permanent_rejections_say_do_not_retry(
    make_gateway: MakeGateway, body: dict[str, Any], reason: str, detail: str
) -> None:
    small = "[backends.capabilities.m]\ncontext_length = 50\nvision = false"
    gateway = make_gateway(
        config_toml(fake_backend("a", 10, extra=small), fake_backend("b", 20, extra=small))
    )
    response = await gateway.post(PATH, body)
    assert response.status_code == 503
    error = await error_of(response)
    assert error["code"] == "no_available_backend"
    assert [(r["backend"], r["reason"], r["detail"]) for r in error["rejections"]] == [
        ("a", reason, detail),
        ("b", reason, detail),
    ]
    assert response.headers["x-nexus-rejection-reasons"] == reason
    assert response.headers["x-should-retry"] == "false"
    assert "retry-after" not in response.headers
    assert gateway.upstream.requests == []


TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


@pytest.mark.parametrize(
    "model", ["smollm2", "my-finetune", "gemma-3", "deepseek-v3", "phi-4", "gpt-5"]
)
async def test_tools_for_a_model_on_no_list_are_sent_upstream(
    make_gateway: MakeGateway, model: str
) -> None:
    gateway = make_gateway(config_toml(fake_backend("a", models=[model])))
    gateway.upstream.handlers["a.test"] = answer()
    body = {**CHAT, "model": model, "tools": TOOLS}
    response = await gateway.post(PATH, body)
    assert response.status_code == 200
    assert response.headers["x-nexus-backend"] == "a"
    assert len(gateway.upstream.requests) == 1


async def test_tools_prefer_a_backend_known_to_have_them(make_gateway: MakeGateway) -> None:
    gateway = make_gateway(
        config_toml(
            fake_backend("guess", 10),
            fake_backend("known", 90, extra="[backends.capabilities.m]\ntools = true"),
        )
    )
    gateway.upstream.handlers["guess.test"] = answer()
    gateway.upstream.handlers["known.test"] = answer()
    with_tools = await gateway.post(PATH, {**CHAT, "tools": TOOLS})
    assert with_tools.headers["x-nexus-backend"] == "known"
    without = await gateway.post(PATH, CHAT)
    assert without.headers["x-nexus-backend"] == "guess"


async def test_mixed_permanent_and_transient_rejections_keep_retry_after(
    make_gateway: MakeGateway,
) -> None:
    gateway = make_gateway(
        config_toml(
            fake_backend("a", 10, extra="[backends.capabilities.m]\nvision = true"),
            fake_backend("b", 20, extra="[backends.capabilities.m]\nvision = false"),
            health=PROBED_EVERY_10S,
        )
    )
    gateway.wiring.registry.get("a").health = HealthState.UNHEALTHY  # type: ignore[union-attr]
    gateway.wiring.registry.get("b").health = HealthState.HEALTHY  # type: ignore[union-attr]
    response = await gateway.post(PATH, VISION_CHAT)
    assert response.status_code == 503
    assert response.headers["x-nexus-rejection-reasons"] == "unhealthy,missing_capability"
    assert response.headers["retry-after"] == "10"
    assert "x-should-retry" not in response.headers


async def test_retry_after_counts_down_to_the_next_health_probe(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock
) -> None:
    gateway = make_gateway(
        config_toml(
            fake_backend("a"),
            health="[health_check]\ninterval_seconds = 10\ntimeout_seconds = 1\n"
            "failure_threshold = 1\nrecovery_threshold = 1\n",
        )
    )
    gateway.upstream.handlers["a.test"] = answer(503)  # the probe (GET /v1/models) fails
    async with trio.open_nursery() as nursery:
        await nursery.start(gateway.wiring.health_checker().run)
        assert gateway.wiring.registry.get("a").health is HealthState.UNHEALTHY  # type: ignore[union-attr]
        await trio.sleep(7)
        response = await gateway.post(PATH, CHAT)
        nursery.cancel_scope.cancel()
    assert response.status_code == 503
    # the next probe is 3 s away, and one success (recovery_threshold = 1) heals the backend
    assert response.headers["retry-after"] == "3"


async def test_unknown_model_is_404_listing_known_models_and_aliases(
    make_gateway: MakeGateway,
) -> None:
    gateway = make_gateway(
        config_toml(
            fake_backend("a", models=["m", "other"]),
            fake_backend("b", models=["m"]),
            head='[routing.aliases]\n"smart" = "m"\n',
        )
    )
    response = await gateway.post(PATH, {**CHAT, "model": "nope"})
    assert response.status_code == 404
    error = await error_of(response)
    assert error["code"] == "model_not_found"
    assert error["param"] == "model"
    assert error["message"] == "The model 'nope' does not exist. Known models: m, other, smart."
    assert "x-nexus-backend" not in response.headers
    assert gateway.upstream.requests == []
