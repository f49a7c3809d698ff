"""Building each client-API request on the proxy path: a Responses request with the response
store, continuing the conversation its ``previous_response_id`` names
(docs/responses-api.md#conversations).

The lookup is the only await between reading a body and routing it: memory answers a
follow-up to a recent response, and only an older one is read from the file, in a worker
thread (:class:`~nexus_trio.responses_store.ResponseStore`). A request without a
``previous_response_id`` is translated once, as before; one with it twice (the second time
with the conversation before its input), which keeps a stateless request's cost unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from nexus_trio import errors
from nexus_trio.api.client_apis import MessagesRequest, ResponsesRequest
from nexus_trio.config import ResponsesConfig
from nexus_trio.errors import StateError
from nexus_trio.responses_store import ResponseStore, is_response_id

log = logging.getLogger("nexus_trio.api")


class ClientAPIs:
    """Builds the request of each client API; a Responses request with the response store,
    continuing the conversation its ``previous_response_id`` names
    (docs/responses-api.md#conversations)."""

    def __init__(self, store: ResponseStore, settings: Callable[[], ResponsesConfig]) -> None:
        """``settings`` is read per request (a reload applies at once)."""
        self._store = store
        self._settings = settings

    async def request(self, path: str, body: bytes, key: str) -> MessagesRequest | ResponsesRequest:
        """The request of ``path`` (a key of :data:`CLIENT_APIS`) sent by ``key``. Reads the
        response store in a worker thread when the conversation is not in memory.

        Raises:
            APIError: the body cannot be translated (400), ``previous_response_id`` names no
                response ``key`` stored (404 ``previous_response_not_found``), or the store
                cannot be read (503).
        """
        if path != ResponsesRequest.native_path:
            return MessagesRequest(body)
        store = self._store if self._settings().store else None
        request = ResponsesRequest(body, store=store, key=key)
        previous = request.request.previous_response_id
        if previous is not None:
            request.continue_from(await self._history(previous, key))
        return request

    async def _history(self, previous: str, key: str) -> list[dict[str, Any]]:
        try:
            stored = await self._store.lookup(previous, key)
        except StateError as exc:
            log.error("%s", exc)
            raise errors.ServiceUnavailable(
                "The response store cannot be read now; try again."
            ) from exc
        if stored is None:
            what = f"with id '{previous}'" if is_response_id(previous) else "with this id"
            raise errors.PreviousResponseNotFound(
                f"Previous response {what} not found.", param="previous_response_id"
            )
        return stored.history()
