"""Which listener a request came through (docs/operations.md#admin-listener).

The daemon serves one app on one or two listeners: the public one and, with ``[admin] listen``,
the admin one. Each listener hands hypercorn the app wrapped in a :class:`ListenerApp`, which
marks every request's scope with its :class:`Listener`; the ASGI layer of the API refuses
(404) the paths that listener does not serve, before any route runs. There is one copy of the
routes: a route added to the app is on both listeners, and which of them serves it follows
from its path alone.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from typing import Any, cast

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope

#: The scope key holding the request's :class:`Listener`; absent means :attr:`Listener.SHARED`.
LISTENER_KEY = "nexus.listener"

ASGIApp = Callable[[Scope, ASGIReceiveCallable, ASGISendCallable], Awaitable[None]]


class Listener(enum.Enum):
    """A listener, by the routes it serves."""

    #: Every route: the only listener, or the public one beside ``[admin] only = false``.
    SHARED = "shared"
    #: Every route but the admin ones (``[admin] only = true``).
    PUBLIC = "public"
    #: The admin routes and the health probes.
    ADMIN = "admin"


def listener_of(scope: Scope) -> Listener:
    """The listener the request in ``scope`` came through."""
    listener: Listener = cast(dict[str, Any], scope).get(LISTENER_KEY, Listener.SHARED)
    return listener


class ListenerApp:
    """``app`` as served on one listener: each request's scope marked with ``listener``.

    With ``lifespan = False`` the app's lifespan events are answered here instead of reaching
    the app, so an app served on two listeners starts and stops once (on the other one).
    """

    def __init__(self, app: ASGIApp, listener: Listener, *, lifespan: bool) -> None:
        self.app = app
        self.listener = listener
        self.lifespan = lifespan

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "lifespan" and not self.lifespan:
            await _answer_lifespan(receive, send)
            return
        cast(dict[str, Any], scope)[LISTENER_KEY] = self.listener
        await self.app(scope, receive, send)


async def _answer_lifespan(receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    """Complete the startup and the shutdown without running anything."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
