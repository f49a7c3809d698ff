"""Stored responses of the Responses API: ``store``, ``previous_response_id``,
``GET``/``DELETE /v1/responses/{id}`` (docs/responses-api.md#conversations).

What it owns: the record of one stored response (:mod:`.record`: its id, the key that created
it, its model and creation time, its conversation as chat messages and its Response object),
the recent and not yet written ones in memory (:mod:`.memory`), the SQLite file in
``[state] dir`` (:mod:`.database`, blocking, run only in worker threads) and the store the
request path and the routes use, with its writer service (:mod:`.store`).

It never touches requests, routes or translation: the request path hands it finished records
and asks it for one by id and key; what a conversation holds is the Responses dialect's
business (:mod:`nexus_trio.dialects.responses`). The event loop never waits on SQLite for a
write, and reads the file only when memory does not hold what it asks for.
"""

from nexus_trio.responses_store.record import StoredResponse, is_response_id, new_response_id
from nexus_trio.responses_store.store import ResponseStore

__all__ = ["ResponseStore", "StoredResponse", "is_response_id", "new_response_id"]
