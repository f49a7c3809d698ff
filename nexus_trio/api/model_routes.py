"""The admin routes that load and unload a model on a backend (docs/routing.md#model-lifecycle).

``POST /admin/models/load`` and ``POST /admin/models/unload`` take
``{"backend": "<name>", "model": "<id>"}`` and answer, once the server has taken the order,
``{"backend", "model", "residency"}``. Like every route under ``/admin/``, only an admin key
may call them (docs/keys.md#roles). The server's request is bounded by
``[health_check] timeout_seconds`` plus ``server.cold_start_allowance_seconds`` (an Ollama
load answers when the model is in memory).
"""

from __future__ import annotations

from typing import Any

import msgspec
import trio
from quart import request
from quart_trio import QuartTrio

from nexus_trio import errors
from nexus_trio.gateway.generation import Generations
from nexus_trio.residency import ModelControl

#: The largest body these routes read.
MAX_BODY_BYTES = 4096


class _Order(msgspec.Struct, forbid_unknown_fields=True):
    backend: str
    model: str


_ORDER = msgspec.json.Decoder(_Order)


def register_model_routes(app: QuartTrio, control: ModelControl, generations: Generations) -> None:
    """Add ``/admin/models/load`` and ``/admin/models/unload`` to ``app``."""

    async def order(unload: bool) -> dict[str, Any]:
        body = await request.get_data(as_text=False)
        if len(body) > MAX_BODY_BYTES:
            raise errors.InvalidValue(f"The body is over {MAX_BODY_BYTES} bytes.")
        try:
            wanted = _ORDER.decode(body)
        except msgspec.DecodeError as exc:
            raise errors.InvalidValue(
                'The body must be {"backend": "<name>", "model": "<id>"}: ' + str(exc)
            ) from exc
        backend = control.target(wanted.backend, wanted.model)
        config = generations.current.config
        bound = config.health_check.timeout_seconds + config.server.cold_start_allowance_seconds
        with trio.move_on_after(bound) as scope:
            await (control.unload if unload else control.load)(backend, wanted.model)
        if scope.cancelled_caught:
            raise errors.BackendTimeout(
                f"Backend '{backend.name}' did not take the order within {bound:g} s."
            )
        state = backend.residency_of(wanted.model).value
        return {"backend": backend.name, "model": wanted.model, "residency": state}

    @app.post("/admin/models/load")
    async def load_model() -> dict[str, Any]:
        return await order(unload=False)

    @app.post("/admin/models/unload")
    async def unload_model() -> dict[str, Any]:
        return await order(unload=True)
