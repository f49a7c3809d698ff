"""One health probe of one backend (docs/routing.md#health-checks, docs/routing.md#capabilities): is
it up, and which models does it serve.

Per backend type:

========================================  ============================================
type                                      requests (model list)
========================================  ============================================
``ollama``                                ``GET /api/tags`` (``models[].name``), then
                                          ``POST /api/show`` per model not yet detected
``llamacpp``                              ``GET /health`` (200 up, 503 loading = down),
                                          then ``GET /v1/models`` (``data[].id``), then
                                          ``GET /props`` (best effort)
``vllm``, ``lmstudio``, ``generic``,      ``GET /v1/models`` (``data[].id``)
``openai``
``anthropic``                             ``GET /v1/models?limit=1000`` (``data[].id``)
                                          with ``x-api-key`` and ``anthropic-version``
========================================  ============================================

An Anthropic probe lists models and never generates anything (it is not billed); every model
it lists gets what the gateway knows of Anthropic models (vision and tools translated, no
embeddings, no JSON mode).

What servers declare about their models becomes known capabilities
(:mod:`nexus_trio.health.declared` decodes it); everything else stays unknown.

Every request carries ``Accept-Encoding: identity`` and, when the backend has a key, its
bearer token (a llama.cpp server started with ``--api-key`` wants it on ``/v1/models`` too).
A probe never sends a completion. Bodies are decoded into view Structs holding only the fields
used. ``/api/show`` is best effort: a model it cannot describe is left out of
``capabilities`` (its name decides, docs/routing.md#capabilities) and is asked about again on the
next probe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import httpx
import msgspec
import trio

from nexus_trio import errors
from nexus_trio.dialects import dialect_for
from nexus_trio.health import declared
from nexus_trio.registry import Backend, Capabilities
from nexus_trio.upstream.client import read_body, translate_error

__all__ = ["ProbeResult", "probe_backend"]

#: Largest probe body read; an OpenAI-compatible cloud lists a few hundred models in < 1 MiB.
PROBE_BODY_LIMIT = 16 * 1024 * 1024
#: ``/api/show`` requests in flight at once per Ollama backend.
SHOW_CONCURRENCY = 8
_CLOSE_SECONDS = 1.0


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
            await fetch(http, backend, "GET", "/health")
            return await _llamacpp(http, backend)
        return await _openai(http, backend)
    except errors.UpstreamError as exc:
        return ProbeResult(ok=False, models=None, capabilities={}, error=exc.message)


async def _openai(http: httpx.AsyncClient, backend: Backend) -> ProbeResult:
    """The dialect's model list: each model with what it declares, or with the dialect's
    capabilities when every model has the same (Anthropic)."""
    dialect = dialect_for(backend.config.type)
    body = await fetch(http, backend, "GET", dialect.models_path)
    listing = _decode(declared.MODEL_LIST, body, backend, "/v1/models")
    models = frozenset(entry.id for entry in listing.data)
    listed = dialect.listed_capabilities
    if listed is not None:
        capabilities = dict.fromkeys(models, listed)
    else:
        capabilities = {
            entry.id: found for entry in listing.data if (found := entry.declared()) is not None
        }
    return ProbeResult(ok=True, models=models, capabilities=capabilities, error=None)


async def _llamacpp(http: httpx.AsyncClient, backend: Backend) -> ProbeResult:
    """``/v1/models``, then what ``/props`` declares of a server's one model (best effort)."""
    listed = await _openai(http, backend)
    if listed.models is None or len(listed.models) != 1:
        return listed  # router mode: /props describes the router, not a model
    try:
        props = _decode(
            declared.PROPS, await fetch(http, backend, "GET", "/props"), backend, "/props"
        )
    except errors.UpstreamError:
        return listed
    (model,) = listed.models
    found = props.declared()
    if model in listed.capabilities:
        found = found.over(listed.capabilities[model])
    return ProbeResult(ok=True, models=listed.models, capabilities={model: found}, error=None)


async def _ollama(http: httpx.AsyncClient, backend: Backend) -> ProbeResult:
    body = await fetch(http, backend, "GET", "/api/tags")
    models = frozenset(
        entry.name for entry in _decode(declared.TAGS, body, backend, "/api/tags").models
    )
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
        body = await fetch(http, backend, "POST", "/api/show", _ENCODER.encode({"model": model}))
        show = _decode(declared.SHOW, body, backend, "/api/show")
    except errors.UpstreamError:
        return None
    return show.declared()


def _decode(decoder: msgspec.json.Decoder[_T], body: bytes, backend: Backend, path: str) -> _T:
    try:
        return decoder.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise errors.BadUpstreamResponse(
            f"Backend '{backend.name}' sent an invalid {path} document."
        ) from exc


async def fetch(
    http: httpx.AsyncClient, backend: Backend, method: str, path: str, body: bytes | None = None
) -> bytes:
    """One exchange; the body of a 2xx answer. Raises :class:`UpstreamError` otherwise."""
    headers = {"accept-encoding": "identity"}
    if body is not None:
        headers["content-type"] = "application/json"
    headers.update(dialect_for(backend.config.type).probe_headers(backend))
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
