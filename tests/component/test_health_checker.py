"""Health probes and the health checker loop (docs/routing.md#health-checks,
docs/routing.md#capabilities) over httpx.MockTransport.

Time is virtual (``autojump_clock``), so durations and tick times are asserted exactly.
"""

from __future__ import annotations

import logging

import httpx
import msgspec
import pytest
import trio
import trio.testing

from nexus_trio.config import parse_config
from nexus_trio.health import probe_backend
from nexus_trio.registry import Backend, Capabilities, HealthState
from nexus_trio.runtime.services import Services
from tests.component.fake_upstream import Handler, Upstream, answer, raw_response

KEY = "sk-very-secret"
CONFIG = """
[health_check]
interval_seconds = 10
timeout_seconds = 5
failure_threshold = 2
recovery_threshold = 2
[[backends]]
name = "ollama"
url = "http://ollama.test"
type = "ollama"
[[backends]]
name = "llama"
url = "http://llama.test"
type = "llamacpp"
[[backends]]
name = "cloud"
url = "http://cloud.test/openai"
type = "generic"
api_key_env = "CLOUD_KEY"
models = ["static-model"]
"""


def json_response(document: object, status: int = 200) -> httpx.Response:
    return raw_response(status, msgspec.json.encode(document))


def model_list(*models: str) -> httpx.Response:
    return json_response({"object": "list", "data": [{"id": m, "object": "model"} for m in models]})


def listing(*models: str) -> Handler:
    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        return model_list(*models)

    return handler


def show_document(
    capabilities: list[str] | None, context: int | None = None, families: list[str] | None = None
) -> dict[str, object]:
    document: dict[str, object] = {"details": {"families": families or ["llama"]}}
    if capabilities is not None:
        document["capabilities"] = capabilities
    if context is not None:
        document["model_info"] = {"general.architecture": "x", "x.context_length": context}
    return document


def ollama(tags: list[str], shows: dict[str, httpx.Response | dict[str, object]]) -> Handler:
    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        if request.url.path == "/api/tags":
            return json_response({"models": [{"name": t, "model": t} for t in tags]})
        answer = shows[msgspec.json.decode(body)["model"]]
        return answer if isinstance(answer, httpx.Response) else json_response(answer)

    return handler


def llamacpp_models(*models: str, n_ctx: int = 1024, vision: bool = False) -> httpx.Response:
    """A llama.cpp ``/v1/models`` as a real ``llama-server`` sends it (extra fields trimmed)."""
    inputs = ["text", "image"] if vision else ["text"]
    return json_response(
        {
            "models": [{"name": m, "model": m, "capabilities": ["completion"]} for m in models],
            "object": "list",
            "data": [
                {
                    "id": m,
                    "object": "model",
                    "owned_by": "llamacpp",
                    "architecture": {"input_modalities": inputs, "output_modalities": ["text"]},
                    "meta": {"n_ctx": n_ctx, "n_ctx_train": 8192, "n_embd": 576},
                }
                for m in models
            ],
        }
    )


def llamacpp_props(
    *, tools: bool = False, vision: bool = False, n_ctx: int = 1024
) -> dict[str, object]:
    """A llama.cpp ``/props`` as a real ``llama-server`` sends it (extra fields trimmed)."""
    return {
        "default_generation_settings": {"params": {"n_predict": -1}, "n_ctx": n_ctx},
        "total_slots": 2,
        "modalities": {"vision": vision, "video": False, "audio": False},
        "chat_template_caps": {"supports_tools": tools, "supports_tool_calls": tools},
        "build_info": "b0-unknown",
    }


def llamacpp(
    health_status: int,
    *models: str,
    props: httpx.Response | dict[str, object] | None = None,
) -> Handler:
    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        if request.url.path == "/health":
            return json_response(
                {"status": "ok" if health_status == 200 else "loading"}, health_status
            )
        if request.url.path == "/props":
            found = llamacpp_props() if props is None else props
            return found if isinstance(found, httpx.Response) else json_response(found)
        return llamacpp_models(*models)

    return handler


def slow(seconds: float, handler: Handler) -> Handler:
    async def delayed(request: httpx.Request, body: bytes) -> httpx.Response:
        await trio.sleep(seconds)
        return await handler(request, body)

    return delayed


def fail(exc: Exception) -> Handler:
    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        raise exc

    return handler


class Env:
    """Services over a fake upstream, and a checker for them."""

    def __init__(self, config_text: str = CONFIG) -> None:
        self.upstream = Upstream()
        transport = httpx.MockTransport(self.upstream)
        self.http = httpx.AsyncClient(transport=transport)
        self.services = Services.create(
            parse_config(config_text), {"CLOUD_KEY": KEY}, self.http, transport=transport
        )
        self.checker = self.services.health_checker()
        self.serve(ollama=ollama([], {}), llama=llamacpp(200), cloud=listing())

    def serve(self, **handlers: Handler) -> None:
        for name, handler in handlers.items():
            self.upstream.handlers[f"{name}.test"] = handler

    def backend(self, name: str) -> Backend:
        backend = self.services.registry.get(name)
        assert backend is not None
        return backend

    def duration_sum(self, name: str) -> float | None:
        return self.services.metrics.registry.get_sample_value(
            "nexus_health_check_duration_seconds_sum", {"backend": name}
        )

    def paths(self, host: str) -> list[str]:
        return [f"{r.method} {r.url.path}" for r, _ in self.upstream.requests if r.url.host == host]


@pytest.fixture
async def env() -> Env:
    return Env()


# --- one probe per backend type -------------------------------------------------------------


async def test_ollama_probe_lists_tags_and_detects_capabilities(env: Env) -> None:
    env.serve(
        ollama=ollama(
            ["llava:7b", "qwen3:8b", "nomic-embed-text", "old-llama3.1", "broken", "known"],
            {
                "llava:7b": show_document(["completion", "vision"], context=4096),
                "qwen3:8b": show_document(["completion", "tools"], context=40960),
                "nomic-embed-text": show_document(None, context=2048, families=["nomic-bert"]),
                "old-llama3.1": show_document(None),
                "broken": raw_response(500, b'{"error": "boom"}'),
            },
        )
    )
    backend = env.backend("ollama")
    backend.detected_capabilities["known"] = Capabilities(tools=True)
    result = await probe_backend(env.http, backend)
    assert result.ok
    assert result.error is None
    assert result.models == {
        "llava:7b",
        "qwen3:8b",
        "nomic-embed-text",
        "old-llama3.1",
        "broken",
        "known",
    }
    assert result.capabilities == {
        # Ollama 0.6+ declares every capability: what it leaves out is known to be missing.
        "llava:7b": Capabilities(vision=True, tools=False, embeddings=False, context_length=4096),
        "qwen3:8b": Capabilities(vision=False, tools=True, embeddings=False, context_length=40960),
        # No capabilities array (Ollama < 0.6): only a bert family says something.
        "nomic-embed-text": Capabilities(embeddings=True, context_length=2048),
        "old-llama3.1": Capabilities(),
    }
    shown = sorted(
        msgspec.json.decode(body)["model"]
        for r, body in env.upstream.requests
        if r.url.path == "/api/show"
    )
    assert shown == ["broken", "llava:7b", "nomic-embed-text", "old-llama3.1", "qwen3:8b"]


async def test_llamacpp_probe_checks_health_then_lists_models(env: Env) -> None:
    env.serve(llama=llamacpp(200, "qwen2.5-7b"))
    result = await probe_backend(env.http, env.backend("llama"))
    assert result.ok
    assert result.models == {"qwen2.5-7b"}
    assert env.paths("llama.test") == ["GET /health", "GET /v1/models", "GET /props"]
    # A template without tools says nothing: llama.cpp still answers tool requests.
    assert result.capabilities == {"qwen2.5-7b": Capabilities(vision=False, context_length=1024)}


@pytest.mark.parametrize(
    ("props", "declared"),
    [
        (llamacpp_props(tools=True), Capabilities(vision=False, tools=True, context_length=1024)),
        (
            llamacpp_props(vision=True, n_ctx=4096),
            Capabilities(vision=True, context_length=4096),
        ),
        # /props failing or from an older server: what /v1/models said still counts
        (
            raw_response(404, b'{"error": "File Not Found"}'),
            Capabilities(vision=False, context_length=1024),
        ),
        ({"build_info": "b1000"}, Capabilities(vision=False, context_length=1024)),
    ],
    ids=["tools", "vision", "no-props", "old-props"],
)
async def test_llamacpp_probe_reads_what_the_server_declares(
    env: Env, props: httpx.Response | dict[str, object], declared: Capabilities
) -> None:
    env.serve(llama=llamacpp(200, "smollm2", props=props))
    result = await probe_backend(env.http, env.backend("llama"))
    assert result.ok
    assert result.capabilities == {"smollm2": declared}


async def test_llamacpp_router_mode_skips_props(env: Env) -> None:
    env.serve(llama=llamacpp(200, "a", "b"))
    result = await probe_backend(env.http, env.backend("llama"))
    assert result.models == {"a", "b"}
    assert env.paths("llama.test") == ["GET /health", "GET /v1/models"]
    declared = Capabilities(vision=False, context_length=1024)
    assert result.capabilities == {"a": declared, "b": declared}


async def test_vllm_max_model_len_is_the_context_length(env: Env) -> None:
    document = {"object": "list", "data": [{"id": "m", "max_model_len": 32768}, {"id": "n"}]}

    async def vllm(request: httpx.Request, body: bytes) -> httpx.Response:
        return json_response(document)

    env.serve(cloud=vllm)
    result = await probe_backend(env.http, env.backend("cloud"))
    assert result.models == {"m", "n"}
    assert result.capabilities == {"m": Capabilities(context_length=32768)}


async def test_llamacpp_loading_is_a_failure(env: Env) -> None:
    env.serve(llama=llamacpp(503, "qwen2.5-7b"))
    result = await probe_backend(env.http, env.backend("llama"))
    assert not result.ok
    assert result.models is None
    assert result.error == "Backend 'llama' answered GET /health with status 503."
    assert env.paths("llama.test") == ["GET /health"]


async def test_generic_probe_sends_the_bearer_key_and_identity_encoding(env: Env) -> None:
    env.serve(cloud=listing("gpt-4o", "gpt-4o-mini"))
    result = await probe_backend(env.http, env.backend("cloud"))
    assert result.ok
    assert result.models == {"gpt-4o", "gpt-4o-mini"}
    assert result.capabilities == {}
    [(request, _)] = env.upstream.requests
    assert request.method == "GET"
    assert str(request.url) == "http://cloud.test/openai/v1/models"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["accept-encoding"] == "identity"


@pytest.mark.parametrize(
    ("handler", "error"),
    [
        (fail(httpx.ConnectError("refused")), "Backend 'cloud' could not be reached."),
        (fail(httpx.ReadError("reset")), "Backend 'cloud' closed the connection unexpectedly."),
        (
            answer(401, b'{"error": "bad key sk-very-secret"}'),
            "Backend 'cloud' answered GET /v1/models with status 401.",
        ),
        (
            answer(200, b"<html>http://cloud.test/openai</html>"),
            "Backend 'cloud' sent an invalid /v1/models document.",
        ),
        (answer(200, b'{"models": []}'), "Backend 'cloud' sent an invalid /v1/models document."),
    ],
    ids=["connect", "reset", "status", "not-json", "wrong-shape"],
)
async def test_failures_name_the_backend_never_its_url_or_key(
    env: Env, handler: Handler, error: str
) -> None:
    env.serve(cloud=handler)
    result = await probe_backend(env.http, env.backend("cloud"))
    assert (result.ok, result.models, result.capabilities) == (False, None, {})
    assert result.error == error
    assert "cloud.test" not in error
    assert KEY not in error


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
    assert {b.health for b in env.services.registry} == {HealthState.HEALTHY}
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
        assert {b.health for b in env.services.registry} == {HealthState.HEALTHY}
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
    env.services.config = parse_config(
        CONFIG.replace("interval_seconds = 10", "interval_seconds = 2")
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
        env.services.apply_config(
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
    for backend in env.services.registry:
        backend.health = HealthState.UNKNOWN
    async with trio.open_nursery() as nursery:
        await nursery.start(env.checker.run)
        assert {b.health for b in env.services.registry} == {HealthState.HEALTHY}
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
    env.services.apply_config(parse_config(without_cloud))
    await env.checker.sweep()
    env.services.apply_config(parse_config(CONFIG))
    await env.checker.sweep()  # the first result decides again
    assert env.backend("cloud").health is HealthState.UNHEALTHY


async def test_a_result_for_a_backend_replaced_mid_sweep_is_dropped(
    env: Env, autojump_clock: trio.testing.MockClock
) -> None:
    env.serve(cloud=slow(2, listing("m")))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(env.checker.sweep)
        await trio.sleep(1)
        env.services.apply_config(parse_config(CONFIG.replace("cloud.test/openai", "cloud.test")))
    cloud = env.backend("cloud")
    assert cloud.health is HealthState.UNKNOWN
    assert cloud.discovered_models == frozenset()
    assert env.backend("llama").health is HealthState.HEALTHY
