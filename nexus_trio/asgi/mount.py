"""What can be mounted beside the API on the gateway's app: Quart views, and endpoints served at
the ASGI layer (a long-lived event stream, say) by exact path.

The app factory takes mounts; the server decides which (the dashboard is one), so the API never
imports what is mounted on it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from quart_trio import QuartTrio

from nexus_trio.asgi.context import RequestContext

#: An endpoint served at the ASGI layer: the ASGI arguments plus the request's context.
Endpoint = Callable[[Scope, ASGIReceiveCallable, ASGISendCallable, RequestContext], Awaitable[None]]


@dataclass(frozen=True)
class Mount:
    """Routes served beside the API: ``register`` adds Quart views to the app; ``endpoints``
    are answered before Quart, by exact path, after the request was authorised."""

    register: Callable[[QuartTrio], None]
    endpoints: Mapping[str, Endpoint] = field(default_factory=dict)
