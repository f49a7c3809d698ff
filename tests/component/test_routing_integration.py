"""Routing through the request path: retries, fallbacks, cooldowns, rejections and the queue.

Retries and the final answer (docs/proxying.md#retries), the ``X-Nexus-*`` headers
(docs/api.md#response-headers), embeddings (docs/proxying.md#embeddings), when nothing can serve
(docs/proxying.md#when-nothing-can-serve), routing (docs/routing.md#routing) and the queue
(docs/routing.md#queue-and-overload), driven through the in-process app with fake upstreams.
Where deadlines matter time is virtual (``autojump_clock``) and asserted exactly.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import httpx
import msgspec
import pytest
import trio
import trio.testing

from nexus_trio.api.admission_queue import AdmissionQueue
from nexus_trio.registry import HealthState
from tests.component.client import CHAT, ASGICall
from tests.component.configs import config_toml, fake_backend
from tests.component.conftest import Gateway
from tests.component.fake_upstream import (
    answer,
    by_model,
    gated,
    hang,
    refuse,
)
from tests.component.readings import attempts, error_of, hosts, metrics_text, models_sent, sample

MakeGateway = Callable[..., Gateway]
PATH = "/v1/chat/completions"
# --- retries ----------------------------------------------------------------------------------


async def test_5xx_is_retried_on_the_next_best_backend(make_gateway: MakeGateway) -> None:
    gateway = make_gateway(
        config_toml(fake_backend("a", 10), fake_backend("b", 20), fake_backend("c", 30))
    )
    gateway.upstream.handlers["a.test"] = answer(500)
    gateway.upstream.handlers["b.test"] = answer()
    gateway.upstream.handlers["c.test"] = answer()
    response = await gateway.post(PATH, CHAT)
    assert response.status_code == 200
    assert response.headers["x-nexus-backend"] == "b"
    assert response.headers["x-nexus-route-reason"] == "retry"
    assert response.headers["x-nexus-attempts"] == "2"
    assert "x-should-retry" not in response.headers
    assert hosts(gateway) == ["a", "b"]
    assert sample(gateway, "nexus_retries_total", backend="a") == 1
    assert (
        sample(gateway, "nexus_upstream_attempts_total", backend="a", model="m", outcome="failure")
        == 1
    )


@pytest.mark.parametrize("max_retries", [0, 1, 2])
async def test_max_retries_bounds_the_attempts(make_gateway: MakeGateway, max_retries: int) -> None:
    gateway = make_gateway(
        config_toml(
            *(
                fake_backend(name, priority)
                for name, priority in (("a", 1), ("b", 2), ("c", 3), ("d", 4))
            ),
            head=f"[routing]\nmax_retries = {max_retries}\n",
        )
    )
    for name in "abcd":
        gateway.upstream.handlers[f"{name}.test"] = answer(503, f'{{"who": "{name}"}}'.encode())
    response = await gateway.post(PATH, CHAT)
    attempts = max_retries + 1
    assert hosts(gateway) == list("abcd")[:attempts]
    assert response.status_code == 503
    # the last upstream answer, as-is
    assert msgspec.json.decode(await response.get_data()) == {"who": "abcd"[max_retries]}
    assert response.headers["x-nexus-attempts"] == str(attempts)
    assert response.headers["x-nexus-backend"] == "abcd"[max_retries]
    # x-should-retry: false only when the gateway itself made two or more attempts
    assert response.headers.get("x-should-retry") == ("false" if attempts >= 2 else None)


@pytest.mark.parametrize(("backends", "should_retry"), [(1, None), (2, "false")])
async def test_gateway_error_carries_x_should_retry_only_after_two_attempts(
    make_gateway: MakeGateway, backends: int, should_retry: str | None
) -> None:
    gateway = make_gateway(config_toml(*(fake_backend(name) for name in "ab"[:backends])))
    for name in "ab":
        gateway.upstream.handlers[f"{name}.test"] = refuse
    response = await gateway.post(PATH, CHAT)
    assert response.status_code == 502
    assert (await error_of(response))["code"] == "backend_unavailable"
    assert response.headers["x-nexus-attempts"] == str(backends)
    assert response.headers.get("x-should-retry") == should_retry


@pytest.mark.parametrize(
    ("failure", "fallback_host"),
    [("connect_error", "b"), ("attempt_timeout", "b"), ("status_500", "a")],
)
async def test_connect_error_or_timeout_skips_the_backend_for_the_rest_of_the_request(
    make_gateway: MakeGateway,
    autojump_clock: trio.testing.MockClock,
    failure: str,
    fallback_host: str,
) -> None:
    """A backend that failed to connect or timed out is not tried again, not even for another
    model of the fallback chain; one that answered 500 is (it is a different agent)."""
    gateway = make_gateway(
        config_toml(
            fake_backend("a", 10, models=["m", "f"]),
            fake_backend("b", 20, models=["m", "f"]),
            head='[server]\nattempt_timeout_seconds = 5\n[routing.fallbacks]\n"m" = ["f"]\n',
        )
    )
    failing = {"connect_error": refuse, "attempt_timeout": hang, "status_500": answer(500)}
    gateway.upstream.handlers["a.test"] = by_model(m=failing[failure], f=answer())
    gateway.upstream.handlers["b.test"] = by_model(m=answer(500), f=answer())
    start = trio.current_time()
    response = await gateway.post(PATH, CHAT)
    assert response.status_code == 200
    assert models_sent(gateway) == [("a", "m"), ("b", "m"), (fallback_host, "f")]
    assert response.headers["x-nexus-backend"] == fallback_host
    assert response.headers["x-nexus-fallback-model"] == "f"
    assert response.headers["x-nexus-attempts"] == "3"
    assert trio.current_time() - start == (5.0 if failure == "attempt_timeout" else 0.0)


# --- fallbacks and aliases --------------------------------------------------------------------

#: Compact, so that replacing ``model`` must leave every other byte where it was.
ODD_BODY = (
    b'{"model":"m","seed":42,"temperature":0.50,"messages":[{"role":"user","content":'
    b'"caf\\u00e9 \\"quoted\\"  spaced"}],"tools":[{"type":"function","function":{"name":"f",'
    b'"parameters":{ "type" : "object" }}}],"vendor_extra":{"nested":[1, 2.0e0,null,true]}}'
)


async def test_fallback_model_serves_with_header_metric_and_rewritten_body(
    make_gateway: MakeGateway,
) -> None:
    gateway = make_gateway(
        config_toml(
            fake_backend("a", 10, models=["m"], extra="[backends.capabilities.m]\ntools = true"),
            fake_backend("b", 20, models=["f"], extra="[backends.capabilities.f]\ntools = true"),
            head='[routing.fallbacks]\n"m" = ["f"]\n',
        )
    )
    gateway.upstream.handlers["a.test"] = answer(500)
    gateway.upstream.handlers["b.test"] = answer()
    response = await gateway.post(PATH, ODD_BODY)
    assert response.status_code == 200
    assert response.headers["x-nexus-backend"] == "b"
    assert response.headers["x-nexus-model"] == "f"
    assert response.headers["x-nexus-fallback-model"] == "f"
    assert response.headers["x-nexus-route-reason"] == "fallback"
    assert response.headers["x-nexus-attempts"] == "2"
    assert sample(gateway, "nexus_fallbacks_total", from_model="m", to_model="f") == 1
    first, second = gateway.upstream.bodies()
    assert first == ODD_BODY
    assert second == ODD_BODY.replace(b'"model":"m"', b'"model":"f"', 1)


async def test_fallback_when_no_candidate_survives_for_the_requested_model(
    make_gateway: MakeGateway,
) -> None:
    gateway = make_gateway(
        config_toml(
            fake_backend("a", 10, models=["m"]),
            fake_backend("b", 20, models=["f"]),
            head='[routing.fallbacks]\n"m" = ["f"]\n',
            health="[health_check]\ninterval_seconds = 10\n",
        )
    )
    gateway.services.registry.get("a").health = HealthState.UNHEALTHY  # type: ignore[union-attr]
    gateway.services.registry.get("b").health = HealthState.HEALTHY  # type: ignore[union-attr]
    gateway.upstream.handlers["b.test"] = answer()
    response = await gateway.post(PATH, CHAT)
    assert response.status_code == 200
    assert response.headers["x-nexus-fallback-model"] == "f"
    assert response.headers["x-nexus-route-reason"] == "fallback"
    assert response.headers["x-nexus-attempts"] == "1"
    assert models_sent(gateway) == [("b", "f")]


async def test_fallbacks_share_the_attempt_budget(make_gateway: MakeGateway) -> None:
    gateway = make_gateway(
        config_toml(
            fake_backend("a", 10),
            fake_backend("b", 20),
            fake_backend("c", 30, models=["f"]),
            head='[routing]\nmax_retries = 1\n[routing.fallbacks]\n"m" = ["f"]\n',
        )
    )
    gateway.upstream.handlers["a.test"] = answer(500)
    gateway.upstream.handlers["b.test"] = answer(502, b'{"last": true}')
    gateway.upstream.handlers["c.test"] = answer()
    response = await gateway.post(PATH, CHAT)
    assert hosts(gateway) == ["a", "b"]
    assert response.status_code == 502
    assert await response.get_data() == b'{"last": true}'
    assert response.headers["x-should-retry"] == "false"
    assert "x-nexus-fallback-model" not in response.headers


async def test_alias_resolves_and_upstream_receives_the_resolved_model(
    make_gateway: MakeGateway,
) -> None:
    gateway = make_gateway(
        config_toml(
            fake_backend("a", extra="[backends.capabilities.m]\ntools = true"),
            head='[routing.aliases]\n"gpt-4" = "smart"\n"smart" = "m"\n',
        )
    )
    gateway.upstream.handlers["a.test"] = answer()
    body = ODD_BODY.replace(b'"model":"m"', b'"model":"gpt-4"')
    response = await gateway.post(PATH, body)
    assert response.status_code == 200
    assert response.headers["x-nexus-model"] == "m"
    assert "x-nexus-fallback-model" not in response.headers
    assert gateway.upstream.bodies() == [ODD_BODY]


# --- the upstream does not know the model -----------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (404, b'{"error": {"message": "not found"}}'),
        (400, b'{"error": {"message": "model \'m\' does not exist", "code": "model_not_found"}}'),
    ],
    ids=["404", "400-model-does-not-exist"],
)
async def test_model_missing_upstream_is_hidden_there_and_retried_elsewhere(
    make_gateway: MakeGateway, status: int, body: bytes
) -> None:
    gateway = make_gateway(config_toml(fake_backend("a", 10), fake_backend("b", 20)))
    gateway.upstream.handlers["a.test"] = answer(status, body)
    gateway.upstream.handlers["b.test"] = answer()
    response = await gateway.post(PATH, CHAT)
    assert response.status_code == 200
    assert response.headers["x-nexus-backend"] == "b"
    assert response.headers["x-nexus-attempts"] == "2"
    assert "m" not in gateway.services.registry.get("a").models  # type: ignore[union-attr]
    # not the backend's fault: a client error, not a failure
    assert (
        sample(
            gateway, "nexus_upstream_attempts_total", backend="a", model="m", outcome="client_error"
        )
        == 1
    )
    again = await gateway.post(PATH, CHAT)
    assert again.headers["x-nexus-backend"] == "b"
    assert again.headers["x-nexus-attempts"] == "1"
    assert hosts(gateway) == ["a", "b", "b"]


# --- 429 and cooldown -------------------------------------------------------------------------


async def test_429_passes_through_and_cools_the_agent_down_for_retry_after(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock
) -> None:
    gateway = make_gateway(
        config_toml(
            fake_backend("a", 10), fake_backend("b", 20), head="[routing]\nmax_retries = 0\n"
        )
    )
    gateway.upstream.handlers["a.test"] = answer(
        429, b'{"e": "slow down"}', **{"retry-after": "30"}
    )
    gateway.upstream.handlers["b.test"] = answer()
    limited_at = trio.current_time()
    response = await gateway.post(PATH, CHAT)
    # the last (here: only) answer is the upstream's 429, as-is, Retry-After kept
    assert response.status_code == 429
    assert await response.get_data() == b'{"e": "slow down"}'
    assert response.headers["retry-after"] == "30"
    assert response.headers["x-nexus-attempts"] == "1"
    assert "x-should-retry" not in response.headers

    gateway.upstream.handlers["a.test"] = answer()
    await trio.sleep_until(limited_at + 29.5)
    cooling = await gateway.post(PATH, CHAT)
    assert cooling.status_code == 200
    assert cooling.headers["x-nexus-backend"] == "b"
    assert cooling.headers["x-nexus-attempts"] == "1"

    await trio.sleep_until(limited_at + 30)
    recovered = await gateway.post(PATH, CHAT)
    assert recovered.headers["x-nexus-backend"] == "a"
    assert hosts(gateway) == ["a", "b", "a"]


async def test_cooldown_never_removes_the_last_candidates(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock
) -> None:
    gateway = make_gateway(config_toml(fake_backend("a", 10), fake_backend("b", 20)))
    for name in "ab":
        gateway.upstream.handlers[f"{name}.test"] = answer(429, b"{}", **{"retry-after": "30"})
    limited = await gateway.post(PATH, CHAT)
    assert limited.status_code == 429
    assert limited.headers["x-should-retry"] == "false"
    for name in "ab":
        gateway.upstream.handlers[f"{name}.test"] = answer()
    await trio.sleep(10)
    # both agents are cooling down: neither is removed, the scheduler picks as usual
    response = await gateway.post(PATH, CHAT)
    assert response.status_code == 200
    assert response.headers["x-nexus-backend"] == "a"
    assert hosts(gateway) == ["a", "b", "a"]


# --- when nothing can serve -------------------------------------------------------------------


async def test_no_healthy_backend_gives_the_actionable_503(make_gateway: MakeGateway) -> None:
    gateway = make_gateway(
        config_toml(
            fake_backend("a", 10),
            fake_backend("b", 20),
            health="[health_check]\ninterval_seconds = 10\n",
        )
    )
    gateway.services.registry.get("a").health = HealthState.UNHEALTHY  # type: ignore[union-attr]
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
            health="[health_check]\ninterval_seconds = 10\n",
        )
    )
    gateway.services.registry.get("a").health = HealthState.UNHEALTHY  # type: ignore[union-attr]
    gateway.services.registry.get("b").health = HealthState.HEALTHY  # type: ignore[union-attr]
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
        await nursery.start(gateway.services.health_checker().run)
        assert gateway.services.registry.get("a").health is HealthState.UNHEALTHY  # type: ignore[union-attr]
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


# --- embeddings -------------------------------------------------------------------------------


async def test_embeddings_prefer_a_backend_known_to_embed(
    make_gateway: MakeGateway,
) -> None:
    gateway = make_gateway(
        config_toml(
            fake_backend("a", 10, models=["e5"]),
            fake_backend("b", 20, models=[], extra='embedding_models = ["e5"]'),
        )
    )
    gateway.upstream.handlers["a.test"] = answer()
    gateway.upstream.handlers["b.test"] = answer()
    embedding = await gateway.post("/v1/embeddings", {"model": "e5", "input": "hello"})
    assert embedding.status_code == 200
    assert embedding.headers["x-nexus-backend"] == "b"
    chat = await gateway.post(PATH, {**CHAT, "model": "e5"})
    assert chat.headers["x-nexus-backend"] == "a"
    paths = [(r.url.host, r.url.path) for r, _ in gateway.upstream.requests]
    assert paths == [("b.test", "/v1/embeddings"), ("a.test", PATH)]


async def test_embeddings_go_to_a_model_nobody_declared_either_way(
    make_gateway: MakeGateway,
) -> None:
    gateway = make_gateway(config_toml(fake_backend("a", models=["smollm2"])))
    gateway.upstream.handlers["a.test"] = answer()
    response = await gateway.post("/v1/embeddings", {"model": "smollm2", "input": "hello"})
    assert response.status_code == 200
    assert response.headers["x-nexus-backend"] == "a"
    assert [r.url.path for r, _ in gateway.upstream.requests] == ["/v1/embeddings"]


NOT_SUPPORTED = (
    b'{"error":{"code":501,"message":"This server does not support embeddings. '
    b'Start it with `--embeddings`","type":"not_supported_error"}}'
)


async def test_a_501_to_embeddings_is_learned_not_blamed(make_gateway: MakeGateway) -> None:
    # llama.cpp started without --embeddings answers 501; it is not a failing backend.
    gateway = make_gateway(config_toml(fake_backend("chat", 10), fake_backend("vec", 20)))
    refuse_embeddings, complete = answer(501, NOT_SUPPORTED), answer()

    async def chat_only(request: httpx.Request, data: bytes) -> httpx.Response:
        embeddings = request.url.path == "/v1/embeddings"
        return await (refuse_embeddings if embeddings else complete)(request, data)

    gateway.upstream.handlers["chat.test"] = chat_only
    gateway.upstream.handlers["vec.test"] = complete
    body = {"model": "m", "input": "hello"}
    first = await gateway.post("/v1/embeddings", body)
    assert first.status_code == 200
    assert first.headers["x-nexus-backend"] == "vec"
    second = await gateway.post("/v1/embeddings", body)
    assert second.headers["x-nexus-backend"] == "vec"
    chat = await gateway.post(PATH, CHAT)  # chat still goes to the chat backend
    assert chat.headers["x-nexus-backend"] == "chat"
    hosts = [r.url.host for r, _ in gateway.upstream.requests]
    assert hosts == ["chat.test", "vec.test", "vec.test", "chat.test"]
    outcomes = {
        outcome: attempts(gateway, outcome, "chat") for outcome in ("client_error", "failure")
    }
    assert outcomes == {"client_error": 1.0, "failure": 0.0}
    chat_backend = gateway.services.registry.get("chat")
    assert chat_backend is not None
    assert chat_backend.capabilities("m").embeddings is False
    assert chat_backend.refused_embeddings == {"m"}


async def test_a_501_to_embeddings_from_the_only_backend_reaches_the_client(
    make_gateway: MakeGateway,
) -> None:
    gateway = make_gateway(config_toml(fake_backend("chat")))
    gateway.upstream.handlers["chat.test"] = answer(501, NOT_SUPPORTED)
    response = await gateway.post("/v1/embeddings", {"model": "m", "input": "hello"})
    assert response.status_code == 501
    assert await response.get_data() == NOT_SUPPORTED


async def test_embeddings_on_a_model_known_not_to_embed_are_a_permanent_503(
    make_gateway: MakeGateway,
) -> None:
    gateway = make_gateway(
        config_toml(fake_backend("a", extra="[backends.capabilities.m]\nembeddings = false"))
    )
    response = await gateway.post("/v1/embeddings", {"model": "m", "input": "hello"})
    assert response.status_code == 503
    error = await error_of(response)
    assert error["rejections"] == [
        {
            "backend": "a",
            "reconciler": "request_analyzer",
            "reason": "missing_capability",
            "detail": "embeddings",
        }
    ]
    assert response.headers["x-should-retry"] == "false"
    assert gateway.upstream.requests == []


async def test_completions_are_retried_like_chat(make_gateway: MakeGateway) -> None:
    gateway = make_gateway(config_toml(fake_backend("a", 10), fake_backend("b", 20)))
    gateway.upstream.handlers["a.test"] = answer(500)
    gateway.upstream.handlers["b.test"] = answer()
    response = await gateway.post("/v1/completions", {"model": "m", "prompt": "Say hi"})
    assert response.status_code == 200
    assert response.headers["x-nexus-backend"] == "b"
    assert response.headers["x-nexus-route-reason"] == "retry"
    paths = [(r.url.host, r.url.path) for r, _ in gateway.upstream.requests]
    assert paths == [("a.test", "/v1/completions"), ("b.test", "/v1/completions")]


# --- capacity and the queue -------------------------------------------------------------------

ONE_SLOT = "max_concurrent_requests = 1"


class Client:
    """Requests sent from background tasks; remembers each answer and when it came."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.responses: dict[str, Any] = {}
        self.finished_at: dict[str, float] = {}

    async def post(self, label: str, **headers: str) -> None:
        body = {**CHAT, "messages": [{"role": "user", "content": label}]}
        response = await self.gateway.post(PATH, body, **headers)
        await response.get_data()
        self.responses[label] = response
        self.finished_at[label] = trio.current_time()


def labels_sent(gateway: Gateway) -> list[str]:
    return [
        msgspec.json.decode(body)["messages"][0]["content"] for body in gateway.upstream.bodies()
    ]


async def test_at_capacity_request_waits_and_is_served_the_moment_a_slot_frees(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock
) -> None:
    gateway = make_gateway(config_toml(fake_backend("a", extra=ONE_SLOT)))
    release = trio.Event()
    gateway.upstream.handlers["a.test"] = gated(release)
    client = Client(gateway)
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.post, "first")
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(client.post, "second")
        await trio.testing.wait_all_tasks_blocked()
        assert gateway.services.queue.depth == 1
        assert "\nnexus_queue_depth 1.0\n" in await metrics_text(gateway)
        assert gateway.services.in_flight == 2
        assert labels_sent(gateway) == ["first"]
        await trio.sleep(5)
        release.set()
    assert client.finished_at == {"first": start + 5, "second": start + 5}
    second = client.responses["second"]
    assert second.status_code == 200
    assert second.headers["x-nexus-attempts"] == "1"
    assert labels_sent(gateway) == ["first", "second"]
    assert "\nnexus_queue_depth 0.0\n" in await metrics_text(gateway)


async def test_high_priority_waiter_overtakes_a_normal_one(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock
) -> None:
    gateway = make_gateway(config_toml(fake_backend("a", extra=ONE_SLOT)))
    release = trio.Event()
    gateway.upstream.handlers["a.test"] = gated(release)
    client = Client(gateway)
    async with trio.open_nursery() as nursery:
        for label, headers in (
            ("holder", {}),
            ("normal-1", {}),
            ("normal-2", {"x-nexus-priority": "normal"}),
            ("urgent", {"x-nexus-priority": "high"}),
        ):
            nursery.start_soon(functools.partial(client.post, label, **headers))
            await trio.testing.wait_all_tasks_blocked()
        assert gateway.services.queue.depth == 3
        release.set()
    assert labels_sent(gateway) == ["holder", "urgent", "normal-1", "normal-2"]
    assert all(r.status_code == 200 for r in client.responses.values())


TENANT_AND_ADMIN = (
    '[server]\napi_keys_env = "ADMIN_KEYS"\n[[keys]]\nname = "tenant"\nkey_env = "TENANT_KEY"\n'
)


async def test_only_admin_keys_jump_the_queue(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock
) -> None:
    """A tenant's ``X-Nexus-Priority: high`` is ignored: it waits its turn behind other tenants'
    requests; an admin key's is honoured (docs/routing.md#queue-and-overload)."""
    gateway = make_gateway(
        config_toml(fake_backend("a", extra=ONE_SLOT), head=TENANT_AND_ADMIN),
        env={"ADMIN_KEYS": "admin-key", "TENANT_KEY": "tenant-key"},
    )
    release = trio.Event()
    gateway.upstream.handlers["a.test"] = gated(release)
    client = Client(gateway)
    tenant = {"authorization": "Bearer tenant-key"}
    async with trio.open_nursery() as nursery:
        for label, headers in (
            ("holder", tenant),
            ("normal", tenant),
            ("tenant-urgent", {**tenant, "x-nexus-priority": "high"}),
            ("admin-urgent", {"authorization": "Bearer admin-key", "x-nexus-priority": "high"}),
        ):
            nursery.start_soon(functools.partial(client.post, label, **headers))
            await trio.testing.wait_all_tasks_blocked()
        assert gateway.services.queue.depth == 3
        release.set()
    assert labels_sent(gateway) == ["holder", "admin-urgent", "normal", "tenant-urgent"]


async def test_full_queue_answers_503_queue_full(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock
) -> None:
    gateway = make_gateway(
        config_toml(fake_backend("a", extra=ONE_SLOT), head="[queue]\nmax_size = 1\n")
    )
    release = trio.Event()
    gateway.upstream.handlers["a.test"] = gated(release)
    client = Client(gateway)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.post, "holder")
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(client.post, "waiter")
        await trio.testing.wait_all_tasks_blocked()
        start = trio.current_time()
        response = await gateway.post(PATH, CHAT)
        assert trio.current_time() == start
        assert response.status_code == 503
        assert (await error_of(response))["code"] == "queue_full"
        assert gateway.services.queue.depth == 1
        release.set()
    assert client.responses["waiter"].status_code == 200
    assert sample(gateway, "nexus_capacity_rejections_total", code="queue_full") == 1


@pytest.mark.parametrize(
    ("settings", "waited"),
    [
        ("[queue]\nmax_wait_seconds = 5\n", 5.0),
        ("[server]\nrequest_timeout_seconds = 3\n[queue]\nmax_wait_seconds = 30\n", 3.0),
    ],
    ids=["max-wait", "request-deadline"],
)
async def test_waiting_too_long_answers_503_queue_timeout(
    make_gateway: MakeGateway,
    autojump_clock: trio.testing.MockClock,
    settings: str,
    waited: float,
) -> None:
    gateway = make_gateway(config_toml(fake_backend("a", extra=ONE_SLOT), head=settings))
    release = trio.Event()
    gateway.upstream.handlers["a.test"] = gated(release)
    client = Client(gateway)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.post, "holder")
        await trio.testing.wait_all_tasks_blocked()
        start = trio.current_time()
        response = await gateway.post(PATH, CHAT)
        assert trio.current_time() - start == waited
        assert response.status_code == 503
        assert (await error_of(response))["code"] == "queue_timeout"
        assert int(response.headers["retry-after"]) >= 1
        assert gateway.services.queue.depth == 0
        release.set()
    assert labels_sent(gateway) == ["holder"]
    # The wait was the gateway's: visible as such, and no attempt (outcome) of the backend's
    # but the holder's own.
    assert sample(gateway, "nexus_capacity_rejections_total", code="queue_timeout") == 1
    outcomes = ("success", "failure", "cancelled", "client_error")
    recorded = [attempts(gateway, o) for o in outcomes]
    assert sum(recorded) == 1


async def test_client_gone_while_queued_leaves_the_queue_at_once(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock
) -> None:
    gateway = make_gateway(config_toml(fake_backend("a", extra=ONE_SLOT)))
    release = trio.Event()
    gateway.upstream.handlers["a.test"] = gated(release)
    client = Client(gateway)
    call = ASGICall(gateway.app, PATH, msgspec.json.encode(CHAT))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.post, "holder")
        await trio.testing.wait_all_tasks_blocked()
        await nursery.start(call.run)
        await trio.testing.wait_all_tasks_blocked()
        assert gateway.services.queue.depth == 1
        gone_at = trio.current_time()
        call.gone.set()
        with trio.fail_after(1):
            await call.finished.wait()
        assert trio.current_time() == gone_at
        assert gateway.services.queue.depth == 0
        assert gateway.services.in_flight == 1
        await trio.sleep(1)
        release.set()
    assert labels_sent(gateway) == ["holder"]
    assert gateway.services.totals.cancelled == 1
    assert gateway.services.in_flight == 0


async def test_a_wakeup_is_not_lost_when_the_woken_waiter_is_cancelled(
    make_gateway: MakeGateway,
) -> None:
    gateway = make_gateway(config_toml(fake_backend("a", extra=ONE_SLOT)))
    a = gateway.services.registry.get("a")
    assert a is not None
    queue = AdmissionQueue()
    first = queue.ticket("m", high_priority=False)
    second = queue.ticket("m", high_priority=False)
    first_scope = trio.CancelScope()
    served: list[str] = []

    async def wait(ticket: Any, label: str, scope: trio.CancelScope) -> None:
        with scope:
            await queue.wait_for_slot(ticket, max_size=10)
            served.append(label)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait, first, "first", first_scope)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(wait, second, "second", trio.CancelScope())
        await trio.testing.wait_all_tasks_blocked()
        assert queue.depth == 2
        # The first waiter's client goes away and, in the same instant, a slot frees.
        first_scope.cancel()
        queue.slot_freed(a)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert served == ["second"]
