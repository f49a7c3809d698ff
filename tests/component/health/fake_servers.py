"""Fake backends for the health probes: OpenAI-style model lists, Ollama's tags and show
documents, llama.cpp's health, models and props, and handlers that are slow or fail."""

from __future__ import annotations

import httpx
import msgspec
import trio

from tests.component.fake_upstream import Handler, raw_response


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
