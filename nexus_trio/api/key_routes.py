"""The admin API of keys (docs/keys.md#admin-api): ``/admin/keys`` and ``/admin/keys/<name>``.

The middleware lets only admin keys reach ``/admin/`` (docs/keys.md#roles). Created keys are
changed through :class:`~nexus_trio.key_store.KeyStore` (its file and shared store are written
in worker threads); keys of the configuration file are listed with ``source: config`` and are
refused 409 here. A secret appears once, in the answer that made it, and nowhere else.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from quart import Response, request
from quart_trio import QuartTrio

from nexus_trio import errors
from nexus_trio.config import KeyConfig
from nexus_trio.key_store import KeySettings, KeyStore, NewKey, Rotation
from nexus_trio.key_store.requests import decode, iso_time, key_view
from nexus_trio.keys.created import CreatedKey

_ENCODER = msgspec.json.Encoder()


def _json(body: object, status: int = 200) -> Response:
    return Response(_ENCODER.encode(body), status=status, content_type="application/json")


def config_key_view(key: KeyConfig) -> dict[str, Any]:
    """A ``[[keys]]`` entry as the admin API shows it (its ``key_env`` or digest never)."""
    return {
        "name": key.name,
        "source": "config",
        "state": "active",
        "models": key.models,
        "privacy": key.privacy,
        "requests_per_minute": key.requests_per_minute,
        "tokens_per_minute": key.tokens_per_minute,
        "max_concurrent_requests": key.max_concurrent_requests,
        "monthly_budget_usd": key.monthly_budget_usd,
        "expires_at": None,
        "admin": key.admin,
        "metadata": {},
    }


def register_key_routes(
    app: QuartTrio,
    store: KeyStore,
    *,
    configured: Callable[[], Sequence[KeyConfig]],
    spend_of: Callable[[str], float],
) -> None:
    """Add the admin API of keys to ``app``; ``configured``: the ``[[keys]]`` now,
    ``spend_of``: a key's spend this UTC month (the fleet's, with a shared store)."""
    index = store.index

    def created(record: CreatedKey, secret: str | None = None) -> dict[str, Any]:
        view = {"object": "key", **key_view(record, time.time())}
        if secret is not None:
            view["key"] = secret
        return view

    def detailed(view: dict[str, Any], last_used: float | None) -> dict[str, Any]:
        view["spend_usd_this_month"] = round(spend_of(view["name"]), 6)
        view["last_used_at"] = iso_time(last_used)
        return view

    @app.post("/admin/keys")
    async def create_key() -> Response:
        new = decode(await request.get_data(), NewKey)
        record, secret = await store.create(new)
        return _json(created(record, secret), 201)

    @app.get("/admin/keys")
    async def list_keys() -> Response:
        data = [detailed({"object": "key", **config_key_view(k)}, None) for k in configured()]
        data += [detailed(created(r), index.last_used(r.name)) for r in index.records()]
        return _json({"object": "list", "data": data})

    @app.get("/admin/keys/<name>")
    async def show_key(name: str) -> Response:
        record = index.get(name)
        if record is not None:
            return _json(detailed(created(record), index.last_used(name)))
        for key in configured():
            if key.name == name:
                return _json(detailed({"object": "key", **config_key_view(key)}, None))
        raise errors.NotFound(f"No key named '{name[:64]}'.")  # echoed, bounded

    @app.patch("/admin/keys/<name>")
    async def update_key(name: str) -> Response:
        settings = decode(await request.get_data(), KeySettings)
        return _json(created(await store.update(name, settings)))

    @app.delete("/admin/keys/<name>")
    async def revoke_key(name: str) -> Response:
        return _json(created(await store.revoke(name)))

    @app.post("/admin/keys/<name>/rotate")
    async def rotate_key(name: str) -> Response:
        rotation = decode(await request.get_data(), Rotation)
        record, secret = await store.rotate(name, rotation)
        return _json(created(record, secret))
