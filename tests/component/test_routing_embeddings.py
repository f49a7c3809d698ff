"""Embeddings through the request path (docs/proxying.md#embeddings): which backend embeds,
a 501 learned rather than blamed, and completions retried like chat.
"""

from __future__ import annotations

import httpx

from tests.component.client import CHAT, PATH
from tests.component.configs import config_toml, fake_backend
from tests.component.fake_upstream import answer
from tests.component.in_process import MakeGateway
from tests.component.readings import attempts, error_of

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
    chat_backend = gateway.wiring.registry.get("chat")
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
