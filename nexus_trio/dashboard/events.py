"""``GET /v1/dashboard/events``: the dashboard's server-sent-event stream.

Served at the ASGI layer (like the proxy routes, without Quart's machinery) so that the
stream's lifetime is owned in one function: :meth:`DashboardEvents.__call__` subscribes to the
:class:`~nexus_trio.dashboard.publisher.SnapshotPublisher`, sends the request log it holds
(``log`` event), then every published snapshot (``snapshot`` event), until

* the client goes away (its ``http.disconnect`` arrives), or
* the gateway's listener closes at the start of a drain: the stream ends with an ``end``
  event saying ``draining`` and the response completes, so a connected dashboard never holds
  up a drain. While the drain delay keeps the listener open, snapshots go on (showing
  ``draining``).

The route sits under ``/v1/``, so inbound auth applies before it is reached. What a stream
shows follows the key's role (docs/keys.md#roles): an admin key everything; a tenant key its
own requests and spend only, in the request log and in every snapshot. It is not a proxy
request: it is not counted in flight and not accounted. At most
``dashboard.max_connections`` streams run at once; one more is answered 503 ``overloaded``.
A tenant key has at most ``dashboard.max_connections_per_key`` of them; one more is answered
429 ``too_many_dashboards``, so one tenant cannot take every slot.
"""

from __future__ import annotations

import trio
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope

from nexus_trio import errors
from nexus_trio.asgi.context import RequestContext
from nexus_trio.asgi.reply import error_reply
from nexus_trio.asgi.sending import send_reply
from nexus_trio.dashboard.publisher import SnapshotPublisher, server_sent_event
from nexus_trio.dashboard.request_log import RequestEntry, entry_object
from nexus_trio.drain import Drain
from nexus_trio.gateway.generation import Generations
from nexus_trio.keys import ClientKey
from nexus_trio.stats.document import viewer

_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
]


#: ``Retry-After`` of a tenant over its dashboards: a slot frees only when one of them leaves.
_RETRY_AFTER_SECONDS = "5"


def _log_event(entries: list[RequestEntry], tenant: ClientKey | None) -> bytes:
    """The ``log`` event: every entry for an admin, a tenant's own (without the key column)."""
    if tenant is None:
        objects = [entry_object(entry, with_key=True) for entry in entries]
    else:
        objects = [entry_object(e, with_key=False) for e in entries if e.key == tenant.name]
    return server_sent_event("log", objects)


class DashboardEvents:
    """The ASGI endpoint of ``/v1/dashboard/events``; see the module docstring."""

    def __init__(
        self, publisher: SnapshotPublisher, generations: Generations, drain: Drain
    ) -> None:
        self.publisher = publisher
        self._generations = generations
        self._drain = drain

    async def __call__(
        self,
        scope: Scope,
        receive: ASGIReceiveCallable,
        send: ASGISendCallable,
        ctx: RequestContext,
    ) -> None:
        """Serve one dashboard until it leaves or the listener closes.

        Blocks for the life of the stream. Cancellation (a forced shutdown) ends it without
        the ``end`` event; the final body message is sent under a shielded scope either way.
        """
        try:
            tenant = self._admit(ctx)
        except errors.APIError as error:
            await send_reply(send, ctx, error_reply(error))
            return
        # Counted from here, before the first await: the caps hold for streams opened at once.
        with self.publisher.subscribe(tenant):
            await self._serve(receive, send, ctx, tenant)

    async def _serve(
        self,
        receive: ASGIReceiveCallable,
        send: ASGISendCallable,
        ctx: RequestContext,
        tenant: ClientKey | None,
    ) -> None:
        """The admitted stream: headers, events until the client leaves or the listener closes,
        then the last body message (``end`` when draining) under a shielded scope."""
        request_id = (b"x-request-id", ctx.request_id.encode())
        await send(
            {"type": "http.response.start", "status": 200, "headers": [*_HEADERS, request_id]}
        )
        ctx.status = 200
        listener_closed = self._drain.listener_closed
        with trio.CancelScope() as streaming:
            async with trio.open_nursery() as watchers:
                watchers.start_soon(_cancel_on_disconnect, receive, streaming)
                watchers.start_soon(_cancel_on_event, listener_closed, streaming)
                await self._stream(send, tenant)
        final = b""
        if listener_closed.is_set():
            final = server_sent_event("end", {"state": "draining"})
        with trio.CancelScope(shield=True):
            await send({"type": "http.response.body", "body": final, "more_body": False})
        ctx.completed = True

    def _admit(self, ctx: RequestContext) -> ClientKey | None:
        """Who the stream is for (None: an admin), if it may open now.

        Raises:
            APIError: not a GET (405); no key while keys are configured (401); the dashboards
                of the gateway (503 ``overloaded``) or of this tenant key (429) at their limit.
        """
        if ctx.method != "GET":
            raise errors.MethodNotAllowed("Only GET is allowed on this route.")
        generation = self._generations.current
        tenant = viewer(generation.keyring, ctx)
        dashboard = generation.config.dashboard
        if self.publisher.connected >= dashboard.max_connections:
            raise errors.Overloaded(
                "Too many dashboards are connected (dashboard.max_connections)."
            )
        if (
            tenant is not None
            and self.publisher.connected_by_tenant.get(tenant.name, 0)
            >= dashboard.max_connections_per_key
        ):
            raise errors.TooManyDashboards(
                f"Key '{tenant.name}' has {dashboard.max_connections_per_key} dashboards "
                "connected, its limit (dashboard.max_connections_per_key); close one first.",
                headers={"Retry-After": _RETRY_AFTER_SECONDS},
            )
        return tenant

    async def _stream(self, send: ASGISendCallable, tenant: ClientKey | None) -> None:
        """Send the request log, then every snapshot, as ``tenant`` (None: an admin) may see
        them; returns only by cancellation."""
        publisher = self.publisher
        request_log = publisher.request_log
        sent_log = request_log.last_seq
        await _send_chunk(send, _log_event(request_log.entries_after(0), tenant))
        latest = publisher.latest
        seq = 0 if latest is None else latest.seq - 1
        while True:
            published = await publisher.wait_published(seq)
            seq = published.seq
            if published.log_from > sent_log:
                # Skipped snapshots carried entries this dashboard has not had: catch up.
                missed = [
                    e for e in request_log.entries_after(sent_log) if e.seq <= published.log_from
                ]
                await _send_chunk(send, _log_event(missed, tenant))
            await _send_chunk(send, publisher.event(published, tenant))
            sent_log = max(sent_log, published.log_to)


async def _send_chunk(send: ASGISendCallable, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def _cancel_on_disconnect(receive: ASGIReceiveCallable, scope: trio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


async def _cancel_on_event(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()
