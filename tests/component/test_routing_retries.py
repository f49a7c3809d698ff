"""Retries, fallbacks, aliases and cooldowns through the request path.

Retries and the final answer (docs/proxying.md#retries), the ``X-Nexus-*`` headers
(docs/api.md#response-headers), fallback models, aliases and 429 cooldowns
(docs/routing.md#routing), driven through the in-process app with fake upstreams. Where
deadlines matter time is virtual (``autojump_clock``) and asserted exactly.
"""

from __future__ import annotations

import msgspec
import pytest
import trio
import trio.testing

from nexus_trio.registry import HealthState
from tests.component.client import CHAT, PATH
from tests.component.configs import PROBED_EVERY_10S, config_toml, fake_backend
from tests.component.fake_upstream import answer, by_model, hang, refuse
from tests.component.in_process import MakeGateway
from tests.component.readings import error_of, hosts, models_sent, sample

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
            health=PROBED_EVERY_10S,
        )
    )
    gateway.wiring.registry.get("a").health = HealthState.UNHEALTHY  # type: ignore[union-attr]
    gateway.wiring.registry.get("b").health = HealthState.HEALTHY  # type: ignore[union-attr]
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
    assert "m" not in gateway.wiring.registry.get("a").models  # type: ignore[union-attr]
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
