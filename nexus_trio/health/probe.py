"""One health probe of one backend (SPEC §4.2, §4.3): is it up, and which models does it serve.

Per backend type:

========================================  ============================================
type                                      requests (model list)
========================================  ============================================
``ollama``                                ``GET /api/tags`` (``models[].name``), then
                                          ``POST /api/show`` per model not yet detected
``llamacpp``                              ``GET /health`` (200 up, 503 loading = down),
                                          then ``GET /v1/models`` (``data[].id``)
``vllm``, ``lmstudio``, ``generic``,      ``GET /v1/models`` (``data[].id``)
``openai``
========================================  ============================================

Every request carries ``Accept-Encoding: identity`` and, when the backend has a key, its
bearer token (a llama.cpp server started with ``--api-key`` wants it on ``/v1/models`` too).
A probe never sends a completion. Bodies are decoded into view Structs holding only the fields
used. ``/api/show`` is best effort: a model it cannot describe is left out of
``capabilities`` (its name decides, SPEC §4.3) and is asked about again on the next probe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import httpx
import msgspec
import trio

from nexus_trio import errors
from nexus_trio.registry import Backend, Capabilities, guess_capabilities
from nexus_trio.upstream.client import read_body, translate_error

__all__ = ["ProbeResult", "probe_backend"]

#: Largest probe body read; an OpenAI-compatible cloud lists a few hundred models in < 1 MiB.
PROBE_BODY_LIMIT = 16 * 1024 * 1024
#: ``/api/show`` requests in flight at once per Ollama backend.
SHOW_CONCURRENCY = 8
_CLOSE_SECONDS = 1.0


class _Named(msgspec.Struct):
    name: str


class _Tags(msgspec.Struct):
    models: list[_Named]


class _Identified(msgspec.Struct):
    id: str


class _ModelList(msgspec.Struct):
    data: list[_Identified]


class _Details(msgspec.Struct):
    families: list[str] | None = None


class _Show(msgspec.Struct):
    capabilities: list[str] | None = None
    model_info: dict[str, msgspec.Raw] | None = None
    details: _Details | None = None


_TAGS = msgspec.json.Decoder(_Tags)
_MODEL_LIST = msgspec.json.Decoder(_ModelList)
_SHOW = msgspec.json.Decoder(_Show)
_INT = msgspec.json.Decoder(int)
_ENCODER = msgspec.json.Encoder()

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What one probe found out.

    Attributes:
        ok: Whether the backend is up and answered a decodable model list.
        models: The model list it reported (possibly empty); None when ``ok`` is false.
        capabilities: Capabilities detected by this probe (Ollama ``/api/show``), only for
            models not detected before.
        error: Why the probe failed, naming the backend, never its URL or key; None if ``ok``.
    """

    ok: bool
    models: frozenset[str] | None
    capabilities: dict[str, Capabilities]
    error: str | None


async def probe_backend(http: httpx.AsyncClient, backend: Backend) -> ProbeResult:
    """Probe ``backend`` once and report whether it is up and what it serves.

    Blocks for the probe's few HTTP exchanges and has no deadline of its own: the caller bounds
    it (``trio.move_on_after``). Cancellation abandons the probe; an open response is closed
    under a short shielded scope before ``Cancelled`` propagates.

    Returns:
        On success, the model list and the capabilities newly detected; on a transport error,
        a non-2xx status or an undecodable body, a failure whose ``error`` names the backend
        and never its URL or key.
    """
    try:
        if backend.config.type == "ollama":
            return await _ollama(http, backend)
        if backend.config.type == "llamacpp":
            await _fetch(http, backend, "GET", "/health")
        return await _openai(http, backend)
    except errors.UpstreamError as exc:
        return ProbeResult(ok=False, models=None, capabilities={}, error=exc.message)


async def _openai(http: httpx.AsyncClient, backend: Backend) -> ProbeResult:
    body = await _fetch(http, backend, "GET", "/v1/models")
    listing = _decode(_MODEL_LIST, body, backend, "/v1/models")
    models = frozenset(entry.id for entry in listing.data)
    return ProbeResult(ok=True, models=models, capabilities={}, error=None)


async def _ollama(http: httpx.AsyncClient, backend: Backend) -> ProbeResult:
    body = await _fetch(http, backend, "GET", "/api/tags")
    models = frozenset(entry.name for entry in _decode(_TAGS, body, backend, "/api/tags").models)
    capabilities: dict[str, Capabilities] = {}
    limiter = trio.CapacityLimiter(SHOW_CONCURRENCY)

    async def show(model: str) -> None:
        async with limiter:
            detected = await _show(http, backend, model)
        if detected is not None:
            capabilities[model] = detected

    async with trio.open_nursery() as nursery:
        for model in sorted(models - backend.detected_capabilities.keys()):
            nursery.start_soon(show, model)
    return ProbeResult(ok=True, models=models, capabilities=capabilities, error=None)


async def _show(http: httpx.AsyncClient, backend: Backend, model: str) -> Capabilities | None:
    """Capabilities from Ollama ``POST /api/show``, or None if it cannot tell."""
    try:
        body = await _fetch(http, backend, "POST", "/api/show", _ENCODER.encode({"model": model}))
        show = _decode(_SHOW, body, backend, "/api/show")
    except errors.UpstreamError:
        return None
    families = show.details.families if show.details is not None else None
    bert = any("bert" in family for family in families or ())
    if show.capabilities is None:  # Ollama before 0.6: no capabilities array
        guess = guess_capabilities(model)
        vision, tools, embeddings = guess.vision, guess.tools, guess.embeddings or bert
    else:
        vision = "vision" in show.capabilities
        tools = "tools" in show.capabilities
        embeddings = "embedding" in show.capabilities or bert
    return Capabilities(
        vision=vision,
        tools=tools,
        embeddings=embeddings,
        context_length=_context_length(show.model_info or {}),
    )


def _context_length(model_info: dict[str, msgspec.Raw]) -> int | None:
    """The first positive integer ``<architecture>.context_length`` in ``model_info``."""
    for key, raw in model_info.items():
        if key.endswith(".context_length"):
            try:
                value = _INT.decode(raw)
            except msgspec.DecodeError:
                continue
            if value > 0:
                return value
    return None


def _decode(decoder: msgspec.json.Decoder[_T], body: bytes, backend: Backend, path: str) -> _T:
    try:
        return decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise errors.BadUpstreamResponse(
            f"Backend '{backend.name}' sent an invalid {path} document."
        ) from exc


async def _fetch(
    http: httpx.AsyncClient, backend: Backend, method: str, path: str, body: bytes | None = None
) -> bytes:
    """One exchange; the body of a 2xx answer. Raises :class:`UpstreamError` otherwise."""
    headers = {"accept-encoding": "identity"}
    if body is not None:
        headers["content-type"] = "application/json"
    if backend.api_key:
        headers["authorization"] = f"Bearer {backend.api_key}"
    request = http.build_request(
        method, backend.base_url + path, content=body, headers=headers, timeout=None
    )
    try:
        response = await http.send(request, stream=True)
    except httpx.HTTPError as exc:
        raise translate_error(exc, backend) from exc
    try:
        if not response.is_success:
            raise errors.BackendUnavailable(
                f"Backend '{backend.name}' answered {method} {path} with status "
                f"{response.status_code}."
            )
        return await read_body(response, backend, limit=PROBE_BODY_LIMIT)
    finally:
        with trio.move_on_after(_CLOSE_SECONDS, shield=True):
            await response.aclose()
