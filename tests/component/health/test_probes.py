"""One health probe per backend type (docs/routing.md#health-checks, docs/routing.md#capabilities):
what each asks, what it learns about models and capabilities, and how its failures are worded.
"""

from __future__ import annotations

import httpx
import msgspec
import pytest

from nexus_trio.health import probe_backend
from nexus_trio.registry import Capabilities
from tests.component.fake_upstream import Handler, answer, raw_response
from tests.component.health.checker_env import KEY, Env
from tests.component.health.fake_servers import (
    fail,
    json_response,
    listing,
    llamacpp,
    llamacpp_props,
    ollama,
    show_document,
)

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
