"""Loading and unloading models on a backend (docs/routing.md#model-lifecycle).

:class:`ModelControl` sends the one request each server takes: llama.cpp routers
``POST /models/load`` and ``POST /models/unload`` with ``{"model": ...}``; Ollama
``POST /api/generate`` with no prompt and ``keep_alive`` -1 (load and keep) or 0 (unload).
Other backend types cannot be told, and say so. The operator's commands (the admin routes,
``nexus-trio models``) and the watcher's ``warm_models`` both go through it; it never routes
and never runs on a proxy request's path.
"""

from __future__ import annotations

import httpx
import msgspec

from nexus_trio import errors
from nexus_trio.health.probe import fetch
from nexus_trio.registry import Backend, ModelResidency, Registry, Residency

#: Backend types the gateway can load and unload models on.
CONTROLLED_TYPES = frozenset({"llamacpp", "ollama"})

_ENCODER = msgspec.json.Encoder()


class ModelControl:
    """Loads and unloads models on the registry's backends."""

    def __init__(self, registry: Registry, http: httpx.AsyncClient) -> None:
        self._registry = registry
        self._http = http

    def target(self, backend_name: str, model: str) -> Backend:
        """The backend to tell about ``model``.

        Raises:
            NotFound: no backend of that name.
            InvalidValue: its type cannot be told, or it does not serve ``model``.
        """
        backend = self._registry.get(backend_name)
        if backend is None:
            raise errors.NotFound(f"No backend is named '{backend_name}'.", param="backend")
        if backend.config.type not in CONTROLLED_TYPES:
            raise errors.InvalidValue(
                f"Backend '{backend_name}' is of type '{backend.config.type}', which cannot be "
                "told to load or unload a model (only llamacpp and ollama can).",
                param="backend",
            )
        if not backend.serves(model):
            raise errors.InvalidValue(
                f"Backend '{backend_name}' does not serve model '{model}'.", param="model"
            )
        return backend

    async def load(self, backend: Backend, model: str) -> None:
        """Ask ``backend`` to load ``model`` (and Ollama to keep it); the caller bounds it.

        A llama.cpp router known to hold the model is not asked: it refuses to load a model
        twice.

        Raises:
            UpstreamError: the server refused or did not answer.
        """
        if backend.config.type == "ollama":
            await self._ollama(backend, model, keep_alive=-1)
            backend.residency[model] = ModelResidency(Residency.LOADED)
        elif backend.residency_of(model) is not Residency.LOADED:
            await self._llamacpp(backend, "/models/load", model)
            if backend.residency_of(model) is not Residency.LOADED:
                backend.residency[model] = ModelResidency(Residency.LOADING)

    async def unload(self, backend: Backend, model: str) -> None:
        """Ask ``backend`` to unload ``model``; the caller bounds it.

        Raises:
            UpstreamError: the server refused or did not answer.
        """
        if backend.config.type == "ollama":
            await self._ollama(backend, model, keep_alive=0)
        else:
            await self._llamacpp(backend, "/models/unload", model)
        backend.residency[model] = ModelResidency(Residency.UNLOADED)

    async def _ollama(self, backend: Backend, model: str, *, keep_alive: int) -> None:
        body = {"model": model, "keep_alive": keep_alive, "stream": False}
        await fetch(self._http, backend, "POST", "/api/generate", _ENCODER.encode(body))

    async def _llamacpp(self, backend: Backend, path: str, model: str) -> None:
        await fetch(self._http, backend, "POST", path, _ENCODER.encode({"model": model}))
