"""``GET`` and ``DELETE /v1/responses/<id>`` (docs/responses-api.md#stored-responses): a stored
Response object, and forgetting it. Only the key that stored a response finds it
(docs/keys.md#roles): for any other key, as for an id the gateway never made or one that
expired, the answer is 404 ``not_found``. Either route reads or writes the store's file in a
worker thread; a file that cannot be used is 503 ``service_unavailable``.
"""

from __future__ import annotations

import logging

import msgspec
from quart import Response, request
from quart_trio import QuartTrio

from nexus_trio import errors
from nexus_trio.asgi.context import RequestContext
from nexus_trio.errors import StateError
from nexus_trio.keys import DEFAULT_KEY
from nexus_trio.responses_store import ResponseStore, is_response_id

log = logging.getLogger("nexus_trio.api")
_ENCODER = msgspec.json.Encoder()


def _key() -> str:
    """The name of the request's key (``default`` without inbound keys)."""
    ctx: RequestContext | None = request.scope.get("nexus.context")  # type: ignore[assignment]
    return DEFAULT_KEY if ctx is None else ctx.key_name


def _not_found(response_id: str) -> errors.NotFound:
    what = f"with id '{response_id}'" if is_response_id(response_id) else "with this id"
    return errors.NotFound(f"Response {what} not found.")


def _unavailable(exc: StateError) -> errors.ServiceUnavailable:
    log.error("%s", exc)
    return errors.ServiceUnavailable("The response store cannot be used now; try again.")


def register_responses_routes(app: QuartTrio, store: ResponseStore) -> None:
    """Add ``GET`` and ``DELETE /v1/responses/<id>`` to ``app``."""

    @app.get("/v1/responses/<response_id>")
    async def retrieve_response(response_id: str) -> Response:
        try:
            stored = await store.lookup(response_id, _key())
        except StateError as exc:
            raise _unavailable(exc) from exc
        if stored is None:
            raise _not_found(response_id)
        return Response(stored.response, content_type="application/json")

    @app.delete("/v1/responses/<response_id>")
    async def delete_response(response_id: str) -> Response:
        try:
            deleted = await store.delete(response_id, _key())
        except StateError as exc:
            raise _unavailable(exc) from exc
        if not deleted:
            raise _not_found(response_id)
        body = {"id": response_id, "object": "response.deleted", "deleted": True}
        return Response(_ENCODER.encode(body), content_type="application/json")
