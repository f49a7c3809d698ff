"""The ASGI layer around the Quart app: request ownership, drain answers, the final send.

:class:`GatewayASGI` is installed as the Quart app's ASGI middleware
(``app.asgi_app = GatewayASGI(app.asgi_app, proxy, services)``, so Quart's test client goes
through it too). The three proxy paths go to the
:class:`~nexus_trio.api.proxy.ProxyEndpoint` (the hot path, served without Quart); every other
request to the Quart app, except the dashboard's event stream, which has its own endpoint
(:class:`~nexus_trio.dashboard.events.DashboardEvents`). For every HTTP request it:

* creates the :class:`RequestContext` (request id, exit stack) the views fill in;
* answers on its own, before the body is read, a request that arrives after the listener
  closed (503 ``shutting_down``, ``Connection: close``) and a proxy request over
  ``server.max_in_flight_requests`` (503 ``overloaded``);
* counts proxy requests in flight from acceptance until they are accounted for;
* adds ``X-Request-Id`` to Quart's responses and performs their final body ``send`` inside a
  shielded scope. Quart-Trio cancels the app task while hypercorn is still doing its
  end-of-response bookkeeping inside that send (closing on ``Connection: close``, arming the
  keep-alive timer); shielding lets it finish (ARCHITECTURE, traps). The proxy endpoint's
  replies do both themselves (:mod:`nexus_trio.api.reply`);
* closes the request's exit stack under a shielded, bounded scope in ``finally``, so an
  upstream response handed to it is closed even when the body generator never started.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

import trio
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, ASGISendEvent, Scope

from nexus_trio import errors
from nexus_trio.api.accounting import record_request
from nexus_trio.api.context import RequestContext, request_id_from
from nexus_trio.api.proxy import ROUTES, ProxyEndpoint, send_reply
from nexus_trio.api.reply import encode_headers, error_reply
from nexus_trio.services import Services

ASGIApp = Callable[[Scope, ASGIReceiveCallable, ASGISendCallable], Awaitable[None]]
#: An endpoint served at the ASGI layer: the ASGI arguments plus the request's context.
Endpoint = Callable[[Scope, ASGIReceiveCallable, ASGISendCallable, RequestContext], Awaitable[None]]
#: Where the dashboard's event stream is served (when the dashboard is on).
DASHBOARD_EVENTS_PATH = "/v1/dashboard/events"

#: Upper bound on request cleanup (closing upstream responses) once the request is over.
_CLEANUP_SECONDS = 2.0


class GatewayASGI:
    """ASGI application: the proxy endpoint and the Quart app, with per-request ownership and
    accounting."""

    def __init__(
        self,
        app: ASGIApp,
        proxy: ProxyEndpoint,
        services: Services,
        dashboard_events: Endpoint | None = None,
    ) -> None:
        self.app = app
        self.proxy = proxy
        self.services = services
        self.dashboard_events = dashboard_events

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        services = self.services
        ctx = RequestContext(
            request_id=request_id_from(scope["headers"]),
            method=scope["method"],
            path=scope["path"],
            started=trio.current_time(),
            is_proxy=scope["method"] == "POST" and scope["path"] in ROUTES,
        )
        cast(dict[str, Any], scope)["nexus.context"] = ctx
        if services.drain.listener_closed.is_set():
            await self._reject(send, ctx, errors.ShuttingDown())
            return
        if services.keyring and ctx.path.startswith("/v1/"):
            ctx.key = services.keyring.authenticate(scope["headers"])
            if ctx.key is None:
                await self._reject(
                    send,
                    ctx,
                    errors.AuthenticationFailed(
                        "Missing or invalid API key (Authorization: Bearer <key>).",
                        headers={"WWW-Authenticate": "Bearer"},
                    ),
                )
                return
        if ctx.is_proxy:
            limit = services.config.server.max_in_flight_requests
            if limit and services.in_flight >= limit:
                await self._reject(send, ctx, errors.Overloaded())
                return
            key = ctx.key
            if key is not None and key.config is not None and key.limited:
                try:
                    headers = services.limiter.admit(key.name, key.config, ctx.started)
                except errors.RateLimitExceeded as exc:
                    services.metrics.rate_limited.labels(key.name, exc.kind).inc()
                    await self._reject(send, ctx, exc)
                    return
                ctx.rate_headers = encode_headers(headers)
            services.in_flight += 1
        try:
            if ctx.path in ROUTES:
                await self.proxy(scope, receive, send, ctx)
            elif ctx.path == DASHBOARD_EVENTS_PATH and self.dashboard_events is not None:
                await self.dashboard_events(scope, receive, send, ctx)
            else:
                await self.app(scope, receive, _ResponseSender(send, ctx))
        finally:
            if ctx.exit_stack is not None:
                with trio.move_on_after(_CLEANUP_SECONDS, shield=True):
                    await ctx.exit_stack.aclose()
            if ctx.is_proxy:
                services.in_flight -= 1
                record_request(services, ctx)

    async def _reject(
        self, send: ASGISendCallable, ctx: RequestContext, error: errors.APIError
    ) -> None:
        ctx.error_code = error.code
        await send_reply(send, ctx, error_reply(error))
        if ctx.is_proxy:
            record_request(self.services, ctx)


class _ResponseSender:
    """The ``send`` callable given to Quart: adds ``X-Request-Id``, shields the final send."""

    __slots__ = ("_ctx", "_send")

    def __init__(self, send: ASGISendCallable, ctx: RequestContext) -> None:
        self._send = send
        self._ctx = ctx

    async def __call__(self, message: ASGISendEvent) -> None:
        ctx = self._ctx
        if message["type"] == "http.response.start":
            ctx.status = message["status"]
            headers = [*message.get("headers", ()), (b"x-request-id", ctx.request_id.encode())]
            await self._send({**message, "headers": headers})
            return
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            with trio.CancelScope(shield=True):
                await self._send(message)
            ctx.completed = True
            return
        await self._send(message)
