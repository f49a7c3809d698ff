"""The ASGI layer around the Quart app: request ownership, drain answers, the final send.

:class:`GatewayASGI` is installed as the Quart app's ASGI middleware
(``app.asgi_app = GatewayASGI(app.asgi_app, proxy, ...)``, so Quart's test client goes
through it too). The three proxy paths go to the
:class:`~nexus_trio.api.proxy.ProxyEndpoint` (the hot path, served without Quart); every other
request to the Quart app, except the ASGI-layer endpoints of what is mounted beside the API
(:class:`~nexus_trio.asgi.mount.Mount`: the dashboard's event stream). For every HTTP request
it:

* creates the :class:`RequestContext` (request id, client address, exit stack) the views fill
  in, and for a proxy request with tracing on, its trace (docs/operations.md#tracing);
* refuses, before any route runs and before the body is read, what no route may see
  (docs/api.md#routes): a request after the listener closed (503 ``shutting_down``); a path
  the listener does not serve (404, docs/operations.md#admin-listener); a target
  that is not one canonical path, ambiguous framing (``Connection: close``) or a host not
  allowed (:mod:`nexus_trio.api.gate`); a preflight from an origin not allowed
  (:mod:`nexus_trio.api.cors`); a missing or wrong key, or a tenant key on an admin route; and,
  with inbound keys off, a POST that is not JSON. It answers an allowed CORS preflight itself;
* adds ``X-Request-Id`` to Quart's responses and performs their final body ``send`` inside a
  shielded scope. Quart-Trio cancels the app task while hypercorn is still doing its
  end-of-response bookkeeping inside that send (closing on ``Connection: close``, arming the
  keep-alive timer); shielding lets it finish. The proxy endpoint's
  replies do both themselves (:mod:`nexus_trio.asgi.reply`);
* closes the request's exit stack under a shielded, bounded scope in ``finally``, so an
  upstream response handed to it is closed even when the body generator never started.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, cast

import trio
from hypercorn.typing import (
    ASGIReceiveCallable,
    ASGISendCallable,
    ASGISendEvent,
    HTTPScope,
    Scope,
)

from nexus_trio import errors
from nexus_trio.api import cors, gate
from nexus_trio.api.accounting import RequestAccounting
from nexus_trio.api.client_apis import reply_for_error
from nexus_trio.api.proxy import ROUTES, ProxyEndpoint
from nexus_trio.asgi.client_address import TrustedProxies
from nexus_trio.asgi.context import RequestContext, request_id_from
from nexus_trio.asgi.listener import listener_of
from nexus_trio.asgi.mount import Endpoint
from nexus_trio.asgi.reply import Reply
from nexus_trio.asgi.sending import send_reply
from nexus_trio.config import Config
from nexus_trio.drain import Drain
from nexus_trio.gateway.generation import Generations
from nexus_trio.keys import KeyRing
from nexus_trio.tracing import Sampler

ASGIApp = Callable[[Scope, ASGIReceiveCallable, ASGISendCallable], Awaitable[None]]

#: Upper bound on request cleanup (closing upstream responses) once the request is over.
_CLEANUP_SECONDS = 2.0


class GatewayASGI:
    """ASGI application: the proxy endpoint and the Quart app, with per-request ownership and
    accounting."""

    def __init__(
        self,
        app: ASGIApp,
        proxy: ProxyEndpoint,
        *,
        generations: Generations,
        drain: Drain,
        accounting: RequestAccounting,
        endpoints: Mapping[str, Endpoint] | None = None,
        sampler: Sampler | None = None,
    ) -> None:
        """``endpoints``: ASGI-layer endpoints by exact path (from mounts); ``sampler``: which
        proxy requests are traced (None: tracing is off)."""
        self.app = app
        self.proxy = proxy
        self._generations = generations
        self._drain = drain
        self._accounting = accounting
        self.endpoints = dict(endpoints or {})
        self._sampler = sampler
        self._trusted = TrustedProxies(generations.current.config.server.trusted_proxies)
        generations.on_swap(self._trust)

    def _trust(self, config: Config) -> None:
        self._trusted = TrustedProxies(config.server.trusted_proxies)

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "websocket":
            await _refuse_websocket(receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)  # lifespan
            return
        peer = scope.get("client")
        ctx = RequestContext(
            request_id=request_id_from(scope["headers"]),
            method=scope["method"],
            path=scope["path"],
            started=trio.current_time(),
            client=self._trusted.client(None if peer is None else peer[0], scope["headers"]),
            is_proxy=scope["method"] == "POST" and scope["path"] in ROUTES,
        )
        cast(dict[str, Any], scope)["nexus.context"] = ctx
        headers = cast(Sequence[tuple[bytes, bytes]], scope["headers"])  # a list, from hypercorn
        if ctx.is_proxy:
            ctx.user_agent = gate.user_agent(headers)
        if ctx.is_proxy and self._sampler is not None:
            ctx.trace = self._sampler.begin(headers)
        preflight = cors.is_preflight(ctx.method, headers)
        refusal = self._refusal(scope, headers, ctx, preflight=preflight)
        if refusal is not None:
            if isinstance(refusal, errors.AmbiguousFraming):
                await self._discard_body(receive, ctx)
            await self._reject(send, ctx, refusal)
            return
        if preflight:  # from an allowed origin, or it was refused above
            await send_reply(send, ctx, Reply.complete(204, {}, b""))
            return
        try:
            if ctx.path in ROUTES:
                await self.proxy(scope, receive, send, ctx)
            elif (endpoint := self.endpoints.get(ctx.path)) is not None:
                await endpoint(scope, receive, send, ctx)
            else:
                await self.app(scope, receive, _ResponseSender(send, ctx))
        finally:
            if ctx.exit_stack is not None:
                with trio.move_on_after(_CLEANUP_SECONDS, shield=True):
                    await ctx.exit_stack.aclose()
            if ctx.is_proxy:
                self._accounting.finish(ctx)

    def _refusal(
        self,
        scope: HTTPScope,
        headers: Sequence[tuple[bytes, bytes]],
        ctx: RequestContext,
        *,
        preflight: bool,
    ) -> errors.APIError | None:
        """Why the request is refused before any route runs, or None (docs/api.md#routes).

        In order: the drain and the listener; the target, framing and host
        (:mod:`nexus_trio.api.gate`); CORS (a preflight is answered by the caller); the key the
        route needs; and, with inbound keys off, a JSON content type on POST (a page on any
        origin could otherwise send a form or plain text). Sets ``ctx.key`` and the CORS
        headers of the answer.
        """
        if (early := _closed_or_elsewhere(self._drain, scope, ctx)) is not None:
            return early
        generation = self._generations.current
        config = generation.config
        error = gate.check_request(
            scope["raw_path"] or scope["path"].encode(),
            ctx.path,
            headers,
            config.server.allowed_hosts,
        )
        if error is not None:
            return error
        origin = cors.origin_of(headers)
        if cors.allowed(origin, config.server.cors_origins):
            assert origin is not None
            if preflight:
                ctx.response_headers = cors.preflight_headers(origin, headers)
                return None
            ctx.response_headers = cors.response_headers(origin)
        elif preflight:
            return errors.OriginNotAllowed(
                "This origin may not call the gateway (server.cors_origins)."
            )
        keyring = generation.keyring
        if not keyring:
            return _keyless_refusal(ctx, headers)
        access = gate.access_of(ctx.path, metrics_public=config.metrics.public)
        if access is gate.Access.OPEN:
            return None
        return _authorise(keyring, headers, ctx, access)

    async def _discard_body(self, receive: ASGIReceiveCallable, ctx: RequestContext) -> None:
        """Read and drop a refused request's body (as the server frames it), within the body's
        size and time limits, so the refusal is sent on a connection at rest; the connection
        is then closed, and nothing after the body is ever read as a request."""
        server = self._generations.current.config.server
        left = server.max_request_body_bytes
        with trio.move_on_at(
            ctx.started + min(server.body_timeout_seconds, server.request_timeout_seconds)
        ):
            while left > 0:
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    return
                left -= len(message["body"])

    async def _reject(
        self, send: ASGISendCallable, ctx: RequestContext, error: errors.APIError
    ) -> None:
        ctx.error_code = error.code
        if ctx.trace is not None and self._sampler is not None:
            ctx.trace = self._sampler.refused(ctx.trace)
        await send_reply(send, ctx, reply_for_error(ctx.path, error))
        if ctx.is_proxy:
            self._accounting.finish(ctx)


def _keyless_refusal(
    ctx: RequestContext, headers: Sequence[tuple[bytes, bytes]]
) -> errors.APIError | None:
    """With no inbound key: an admin route (no admin key exists) and a POST that is not JSON
    are refused (docs/keys.md#roles, docs/operations.md#security)."""
    if ctx.path.startswith(gate.ADMIN_PREFIX):
        return errors.PermissionDenied(
            f"{ctx.path} needs an admin key, and none is configured (docs/keys.md#roles)."
        )
    if ctx.method == "POST" and not gate.is_json(headers):
        return errors.UnsupportedMediaType(
            "Send the body as JSON with Content-Type: application/json."
        )
    return None


def _closed_or_elsewhere(
    drain: Drain, scope: HTTPScope, ctx: RequestContext
) -> errors.APIError | None:
    """503 once the listener closed (docs/operations.md#drain); 404 for a path the request's
    listener does not serve (docs/operations.md#admin-listener); else None."""
    if drain.listener_closed.is_set():
        return errors.ShuttingDown()
    if not gate.listener_serves(listener_of(scope), ctx.method, ctx.path):
        return errors.NotFound(
            "This path is not served on this listener (docs/operations.md#admin-listener)."
        )
    return None


def _authorise(
    keyring: KeyRing,
    headers: Sequence[tuple[bytes, bytes]],
    ctx: RequestContext,
    access: gate.Access,
) -> errors.APIError | None:
    """Set ``ctx.key`` from the key presented; the refusal when it is missing, wrong, expired
    (docs/keys.md#created-keys) or not an admin key on an admin route."""
    try:
        ctx.key = keyring.authenticate(headers)
    except errors.KeyExpired as exc:
        return exc
    if ctx.key is None:
        return errors.AuthenticationFailed(
            "Missing or invalid API key (Authorization: Bearer <key>).",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if access is gate.Access.ADMIN and not ctx.key.admin:
        return errors.PermissionDenied(f"{ctx.path} needs an admin key.")
    return None


async def _refuse_websocket(receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    """No route speaks WebSocket: close before accepting, which the server answers 403
    (docs/api.md#routes). Nothing reaches the app, so nothing is routed unauthorised."""
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": 1008, "reason": ""})


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
            if ctx.response_headers is not None:
                headers += ctx.response_headers
            await self._send({**message, "headers": headers})
            return
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            with trio.CancelScope(shield=True):
                await self._send(message)
            ctx.completed = True
            return
        await self._send(message)
