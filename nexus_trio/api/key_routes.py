"""The admin API of keys (docs/keys.md#admin-api): ``/admin/keys`` and ``/admin/keys/<name>``.

The middleware lets only admin keys reach ``/admin/`` (docs/keys.md#roles). Created keys are
changed through :class:`~nexus_trio.key_store.KeyStore` (its file and shared store are written
in worker threads); keys of the configuration file are listed with ``source: config`` and are
refused 409 here. A secret appears once, in the answer that made it, and nowhere else. Every
change is logged at INFO: which key, what changed, and the admin key and client that changed it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from quart import Response, request
from quart_trio import QuartTrio

from nexus_trio import errors
from nexus_trio.asgi.context import RequestContext
from nexus_trio.config import KeyConfig
from nexus_trio.key_store import KeySettings, KeyStore, NewKey, Rotation
from nexus_trio.key_store.requests import decode, iso_time, key_view
from nexus_trio.keys.created import CreatedKey

_ENCODER = msgspec.json.Encoder()
log = logging.getLogger("nexus_trio.keys")


def _audit(record: CreatedKey, change: str) -> None:
    """Log a change of a created key (docs/keys.md#admin-api): never a secret."""
    ctx: RequestContext | None = request.scope.get("nexus.context")  # type: ignore[assignment]
    by = "-" if ctx is None or ctx.key is None else ctx.key.name
    log.info(
        "key %s %s by key %s from %s (admin: %s)",
        record.name,
        change,
        by,
        "-" if ctx is None else ctx.client,
        "yes" if record.admin else "no",
    )


def _created(record: CreatedKey, secret: str | None = None) -> dict[str, Any]:
    """A created key as the API shows it, with its secret in the answers that make one."""
    view = {"object": "key", **key_view(record, time.time())}
    if secret is not None:
        view["key"] = secret
    return view


def _fields(settings: KeySettings) -> str:
    """The settings a body sets, by name."""
    named = [f for f in settings.__struct_fields__ if getattr(settings, f) is not msgspec.UNSET]
    return ", ".join(named) or "nothing"


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

    def detailed(view: dict[str, Any], last_used: float | None) -> dict[str, Any]:
        view["spend_usd_this_month"] = round(spend_of(view["name"]), 6)
        view["last_used_at"] = iso_time(last_used)
        return view

    @app.post("/admin/keys")
    async def create_key() -> Response:
        new = decode(await request.get_data(), NewKey)
        record, secret = await store.create(new)
        _audit(record, "created")
        return _json(_created(record, secret), 201)

    @app.get("/admin/keys")
    async def list_keys() -> Response:
        data = [detailed({"object": "key", **config_key_view(k)}, None) for k in configured()]
        data += [detailed(_created(r), index.last_used(r.name)) for r in index.records()]
        return _json({"object": "list", "data": data})

    @app.get("/admin/keys/<name>")
    async def show_key(name: str) -> Response:
        record = index.get(name)
        if record is not None:
            return _json(detailed(_created(record), index.last_used(name)))
        for key in configured():
            if key.name == name:
                return _json(detailed({"object": "key", **config_key_view(key)}, None))
        raise errors.NotFound(f"No key named '{name[:64]}'.")  # echoed, bounded

    @app.patch("/admin/keys/<name>")
    async def update_key(name: str) -> Response:
        settings = decode(await request.get_data(), KeySettings)
        record = await store.update(name, settings)
        _audit(record, f"changed ({_fields(settings)})")
        return _json(_created(record))

    @app.delete("/admin/keys/<name>")
    async def revoke_key(name: str) -> Response:
        record = await store.revoke(name)
        _audit(record, "revoked")
        return _json(_created(record))

    @app.post("/admin/keys/<name>/rotate")
    async def rotate_key(name: str) -> Response:
        rotation = decode(await request.get_data(), Rotation)
        record, secret = await store.rotate(name, rotation)
        _audit(record, f"rotated (grace {rotation.grace_seconds} s)")
        return _json(_created(record, secret))
