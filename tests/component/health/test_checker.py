"""The health checker loop (docs/routing.md#health-checks): model lists kept or replaced,
thresholds over sweeps, concurrency, timeouts, the drift-free grid, reloads and backends replaced
mid-sweep. Time is virtual (``autojump_clock``), so durations and tick times are asserted
exactly.
"""

from __future__ import annotations

import logging

import httpx
import pytest
import trio
import trio.testing

from nexus_trio.config import parse_config
from nexus_trio.registry import Capabilities, HealthState
from tests.component.fake_upstream import Handler
from tests.component.health.checker_env import CONFIG, KEY, Env
from tests.component.health.fake_servers import fail, listing, llamacpp, ollama, show_document, slow

# --- the checker ----------------------------------------------------------------------------


def recorder(times: list[float], handler: Handler) -> Handler:
    async def record(request: httpx.Request, body: bytes) -> httpx.Response:
        times.append(trio.current_time())
        return await handler(request, body)

    return record


async def run_for(env: Env, seconds: float) -> float:
    """Start the checker, let it run ``seconds`` after it started; returns the start time."""
    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        await nursery.start(env.checker.run)
        await trio.sleep(seconds)
        nursery.cancel_scope.cancel()
    return t0


async def test_success_replaces_the_model_list_and_failure_keeps_it(env: Env) -> None:
    cloud = env.backend("cloud")
    env.serve(cloud=listing("a", "b"))
    await env.checker.sweep()
    assert cloud.discovered_models == {"a", "b"}
    assert cloud.models == {"a", "b", "static-model"}
    env.serve(cloud=fail(httpx.ConnectError("refused")))
    await env.checker.sweep()
    assert cloud.discovered_models == {"a", "b"}
    env.serve(cloud=listing())
    await env.checker.sweep()
    assert cloud.discovered_models == frozenset()
    assert cloud.models == {"static-model"}


async def test_success_forgets_missing_models_and_vanished_capabilities(env: Env) -> None:
    shows = {m: show_document(["completion"], context=100) for m in ("a", "b")}
    env.serve(ollama=ollama(["a", "b"], shows))
    backend = env.backend("ollama")
    await env.checker.sweep()
    assert set(backend.detected_capabilities) == {"a", "b"}
    backend.missing_models.add("a")
    assert backend.models == {"b"}
    env.serve(ollama=ollama(["a"], shows))
    await env.checker.sweep()
    assert backend.missing_models == set()
    assert backend.models == {"a"}
    assert backend.detected_capabilities == {
        "a": Capabilities(vision=False, tools=False, embeddings=False, context_length=100)
    }
    # Known models are not shown again.
    shown = sorted(body for r, body in env.upstream.requests if r.url.path == "/api/show")
    assert shown == [b'{"model":"a"}', b'{"model":"b"}']


async def test_thresholds_apply_over_sweeps(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "nexus_trio.health")
    cloud = env.backend("cloud")
    assert cloud.health is HealthState.UNKNOWN
    up, down = listing("m"), fail(httpx.ConnectError("refused"))
    states = []
    for handler in (up, down, down, up, down, down, up, up):
        env.serve(cloud=handler)
        await env.checker.sweep()
        states.append(cloud.health.value[0])  # h(ealthy) / u(nhealthy)
    assert "".join(states) == "hhuuuuuh"
    messages = [r.getMessage() for r in caplog.records if "'cloud'" in r.getMessage()]
    assert messages == [
        "backend 'cloud' is healthy (1 model(s) discovered)",
        "backend 'cloud' is now unhealthy after 2 failed probe(s): "
        "Backend 'cloud' could not be reached.",
        "backend 'cloud' is healthy again after 2 successful probe(s) (1 model(s))",
    ]
    assert [r.levelname for r in caplog.records if "'cloud'" in r.getMessage()] == [
        "INFO",
        "WARNING",
        "INFO",
    ]
    assert not any("cloud.test" in r.getMessage() or KEY in r.getMessage() for r in caplog.records)


async def test_probes_run_concurrently(env: Env, autojump_clock: trio.testing.MockClock) -> None:
    # Each probe takes 4.5 s: /api/tags + /api/show, /health + /v1/models + /props, /v1/models.
    env.serve(
        ollama=slow(2.25, ollama(["m"], {"m": show_document(["completion"])})),
        llama=slow(1.5, llamacpp(200, "m")),
        cloud=slow(4.5, listing("m")),
    )
    t0 = trio.current_time()
    await env.checker.sweep()
    assert trio.current_time() - t0 == 4.5
    assert {b.health for b in env.wiring.registry} == {HealthState.HEALTHY}
    assert [env.duration_sum(name) for name in ("ollama", "llama", "cloud")] == [4.5, 4.5, 4.5]
    # A probe never asks for a completion.
    requests = {f"{r.method} {r.url.path}" for r, _ in env.upstream.requests}
    assert requests == {
        "GET /api/tags",
        "POST /api/show",
        "GET /health",
        "GET /openai/v1/models",
        "GET /props",
        "GET /v1/models",
    }


async def test_a_hung_backend_fails_after_exactly_timeout_seconds(
    env: Env, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    env.serve(cloud=slow(3600, listing("m")))
    t0 = trio.current_time()
    await env.checker.sweep()
    assert trio.current_time() - t0 == 5
    assert env.backend("cloud").health is HealthState.UNHEALTHY
    assert env.backend("llama").health is HealthState.HEALTHY
    assert env.duration_sum("cloud") == 5
    assert "backend 'cloud' is unhealthy: Backend 'cloud' timed out after 5 s." in caplog.messages


async def test_first_sweep_is_done_before_started(
    env: Env, autojump_clock: trio.testing.MockClock
) -> None:
    env.serve(cloud=slow(3, listing("m")))
    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        await nursery.start(env.checker.run)
        assert trio.current_time() - t0 == 3
        assert {b.health for b in env.wiring.registry} == {HealthState.HEALTHY}
        assert env.backend("cloud").models == {"m", "static-model"}
        assert env.checker.next_sweep_at == t0 + 10
        nursery.cancel_scope.cancel()


async def test_first_sweep_is_bounded_by_timeout_seconds(
    env: Env, autojump_clock: trio.testing.MockClock
) -> None:
    env.serve(cloud=slow(3600, listing("m")))
    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        await nursery.start(env.checker.run)
        assert trio.current_time() - t0 == 5
        assert env.backend("cloud").health is HealthState.UNHEALTHY
        nursery.cancel_scope.cancel()


async def test_sweeps_follow_a_drift_free_grid(
    env: Env, autojump_clock: trio.testing.MockClock
) -> None:
    times: list[float] = []
    env.serve(cloud=recorder(times, slow(1.5, listing("m"))))
    t0 = await run_for(env, 40)
    assert [t - t0 for t in times] == [0, 10, 20, 30, 40]


async def test_sweeps_that_overrun_the_interval_skip_ticks(
    env: Env, autojump_clock: trio.testing.MockClock
) -> None:
    env.wiring.apply_config(
        parse_config(CONFIG.replace("interval_seconds = 10", "interval_seconds = 2"))
    )
    times: list[float] = []
    env.serve(cloud=recorder(times, slow(3600, listing("m"))))
    t0 = await run_for(env, 20)  # started at 5
    # Each sweep lasts 5 s (the timeout); the next starts at the next multiple of 2 s.
    assert [t - t0 for t in times] == [0, 6, 12, 18, 24]


async def test_a_new_interval_applies_from_the_last_tick(
    env: Env, autojump_clock: trio.testing.MockClock
) -> None:
    times: list[float] = []
    env.serve(cloud=recorder(times, listing("m")))
    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        await nursery.start(env.checker.run)
        await trio.sleep(15)  # sweeps at 0 and 10; waiting for 20
        env.wiring.apply_config(
            parse_config(CONFIG.replace("interval_seconds = 10", "interval_seconds = 3"))
        )
        await trio.sleep(15)
        nursery.cancel_scope.cancel()
    # The tick due at 20 keeps its time; the grid then continues from it at 3 s.
    assert [t - t0 for t in times] == [0, 10, 20, 23, 26, 29]


async def test_a_failing_sweep_is_logged_and_the_next_one_runs(
    env: Env, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    # A bug, not a transport error: httpx lets the handler's exception through.
    env.serve(cloud=fail(RuntimeError("bug")))
    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        await nursery.start(env.checker.run)  # the failing first sweep still reports started
        assert trio.current_time() == t0
        assert "health check sweep failed; the next one runs on schedule" in caplog.messages
        env.serve(cloud=listing("m"))
        await trio.sleep(11)
        assert env.backend("cloud").health is HealthState.HEALTHY
        nursery.cancel_scope.cancel()


async def test_disabled_health_checks_mark_every_backend_healthy(
    autojump_clock: trio.testing.MockClock,
) -> None:
    env = Env(CONFIG.replace("[health_check]", "[health_check]\nenabled = false"))
    for backend in env.wiring.registry:
        backend.health = HealthState.UNKNOWN
    async with trio.open_nursery() as nursery:
        await nursery.start(env.checker.run)
        assert {b.health for b in env.wiring.registry} == {HealthState.HEALTHY}
        assert env.checker.next_sweep_at == float("inf")
        await trio.sleep(3600)
        nursery.cancel_scope.cancel()
    assert env.upstream.requests == []
    assert env.backend("cloud").models == {"static-model"}


async def test_a_backend_removed_and_added_again_starts_unknown(env: Env) -> None:
    env.serve(cloud=listing("m"))
    await env.checker.sweep()
    env.serve(cloud=fail(httpx.ConnectError("refused")))
    await env.checker.sweep()  # 1 of 2 failures: still healthy
    assert env.backend("cloud").health is HealthState.HEALTHY
    without_cloud = CONFIG[: CONFIG.index('[[backends]]\nname = "cloud"')]
    env.wiring.apply_config(parse_config(without_cloud))
    await env.checker.sweep()
    env.wiring.apply_config(parse_config(CONFIG))
    await env.checker.sweep()  # the first result decides again
    assert env.backend("cloud").health is HealthState.UNHEALTHY


async def test_a_result_for_a_backend_replaced_mid_sweep_is_dropped(
    env: Env, autojump_clock: trio.testing.MockClock
) -> None:
    env.serve(cloud=slow(2, listing("m")))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(env.checker.sweep)
        await trio.sleep(1)
        env.wiring.apply_config(parse_config(CONFIG.replace("cloud.test/openai", "cloud.test")))
    cloud = env.backend("cloud")
    assert cloud.health is HealthState.UNKNOWN
    assert cloud.discovered_models == frozenset()
    assert env.backend("llama").health is HealthState.HEALTHY
