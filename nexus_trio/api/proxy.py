"""The proxy routes — chat, completions, embeddings (docs/proxying.md#proxying-requests), and the
client APIs translated to chat (docs/api.md#client-apis) — served at the ASGI layer.

Every other route is a Quart view; these three are the hot path and are answered by
:class:`ProxyEndpoint` straight from the ASGI messages, without Quart's request and response
objects, contexts and signal machinery (their cost on the hot path is the reason;
``bench/hot_path.py`` measures the path). What Quart did for them is done here, explicitly:

* the body is read to its end before anything is routed: ``multipart/*`` → 415; larger than
  ``server.max_request_body_bytes`` → 413, from ``Content-Length`` before reading or while
  reading, never buffering the rest (docs/proxying.md#request-body); not complete within
  ``server.body_timeout_seconds`` (capped by ``request_timeout_seconds``) of the request's
  start → 408 ``request_timeout``;
* only then does the request take its slots — one of ``server.max_in_flight_requests`` (503
  ``overloaded``), one of its key's ``max_concurrent_requests`` and a request of its key's
  rate limits (429 ``rate_limit_exceeded``) — so a client sending its body slowly holds none;
* a client that disconnects cancels the request: the request registers the scope that
  routes, forwards and relays with :class:`~nexus_trio.asgi.disconnects.DisconnectWatcher`, which
  watches it for ``http.disconnect`` once it has run 20 ms (the attempt is then recorded
  ``cancelled``, the upstream response closed, the queue left);
* every error is rendered by :func:`~nexus_trio.asgi.reply.error_reply`, the same renderer the
  Quart routes use — in the envelope of the route's client API on ``/v1/messages``
  (:mod:`nexus_trio.api.client_apis`, which also translates those requests and their answers).

Another method than POST on a proxy path is answered 405 with ``Allow: POST``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import trio
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, HTTPScope

from nexus_trio import errors
from nexus_trio.api.bodies import RouteKind, decode_view
from nexus_trio.api.client_apis import CHAT_PATH, CLIENT_APIS, reply_for_error
from nexus_trio.api.client_requests import ClientAPIs
from nexus_trio.api.forwarding import Forwarder
from nexus_trio.api.token_counter import COUNT_TOKENS_PATH, TokenCounter
from nexus_trio.asgi.context import RequestContext
from nexus_trio.asgi.disconnects import DisconnectWatcher
from nexus_trio.asgi.reply import Reply, encode_headers
from nexus_trio.asgi.sending import send_reply
from nexus_trio.gateway.generation import Generations
from nexus_trio.gateway.state import InFlight
from nexus_trio.keys import KeyConcurrency, RateLimiter
from nexus_trio.metrics import Metrics

log = logging.getLogger("nexus_trio.api")

ROUTES = {
    "/v1/chat/completions": RouteKind.CHAT,
    "/v1/completions": RouteKind.COMPLETIONS,
    "/v1/embeddings": RouteKind.EMBEDDINGS,
    # Translated to chat completions before routing (nexus_trio.api.client_apis).
    "/v1/messages": RouteKind.CHAT,
    COUNT_TOKENS_PATH: RouteKind.CHAT,  # answered by the gateway (TokenCounter)
    "/v1/responses": RouteKind.CHAT,
}


class ProxyEndpoint:
    """Answers ``POST`` on the three proxy paths: reads the body, admits, forwards."""

    def __init__(
        self,
        generations: Generations,
        forwarder: Forwarder,
        *,
        in_flight: InFlight,
        key_concurrency: KeyConcurrency,
        limiter: RateLimiter,
        disconnects: DisconnectWatcher,
        metrics: Metrics,
        client_apis: ClientAPIs,
        token_counter: TokenCounter,
    ) -> None:
        """``client_apis``: builds the requests of the client APIs (the response store's);
        ``token_counter`` answers the Messages API's ``count_tokens``."""
        self._generations = generations
        self.forwarder = forwarder
        self._in_flight = in_flight
        self._key_concurrency = key_concurrency
        self._limiter = limiter
        self._disconnects = disconnects
        self._metrics = metrics
        self._client_apis = client_apis
        self._token_counter = token_counter

    async def __call__(
        self,
        scope: HTTPScope,
        receive: ASGIReceiveCallable,
        send: ASGISendCallable,
        ctx: RequestContext,
    ) -> None:
        """Serve one request. Returns when the response is sent or the client is gone."""
        if scope["method"] != "POST":
            error = errors.MethodNotAllowed(
                f"Method {scope['method']} is not allowed on {scope['path']}.",
                headers={"Allow": "POST"},
            )
            await send_reply(send, ctx, self._error(ctx, error))
            return
        try:
            body = await self._read_body(scope, receive, ctx)
            if body is None:
                return  # the client left before its body arrived
            self._admit(ctx)
        except errors.APIError as error:
            await send_reply(send, ctx, self._error(ctx, error))
            return
        try:
            with trio.CancelScope() as request_scope:
                watch = ctx.watch = self._disconnects.watch(receive, request_scope)
                try:
                    reply = await self._answer(ctx, scope, body)
                    await send_reply(send, ctx, reply)
                finally:
                    watch.finish()
        finally:
            self._release(ctx)

    def _admit(self, ctx: RequestContext) -> None:
        """Take the request's slots, now that its body is here (docs/routing.md#queue-and-overload,
        docs/keys.md#keys): one of ``server.max_in_flight_requests``, one of its key's
        ``max_concurrent_requests``, and a request of its key's rate limits.

        Raises:
            Overloaded, RateLimitExceeded: nothing was taken.
        """
        limit = self._generations.current.config.server.max_in_flight_requests
        if limit and self._in_flight.count >= limit:
            raise errors.Overloaded()
        key = ctx.key
        config = None if key is None else key.config
        if key is not None and config is not None:
            try:
                self._key_concurrency.take(key.name, config.max_concurrent_requests)
            except errors.RateLimitExceeded as exc:
                self._metrics.rate_limited.labels(self._metrics.key_label(key.name), exc.kind).inc()
                raise
            if key.limited:
                try:
                    headers = self._limiter.admit(key.name, config, ctx.started)
                except errors.RateLimitExceeded as exc:
                    self._key_concurrency.give_back(key.name)
                    self._metrics.rate_limited.labels(
                        self._metrics.key_label(key.name), exc.kind
                    ).inc()
                    raise
                ctx.response_headers = [*(ctx.response_headers or ()), *encode_headers(headers)]
        self._in_flight.count += 1
        ctx.admitted = True

    def _release(self, ctx: RequestContext) -> None:
        """Give back what :meth:`_admit` took."""
        if not ctx.admitted:
            return
        self._in_flight.count -= 1
        key = ctx.key
        if key is not None and key.config is not None:
            self._key_concurrency.give_back(key.name)

    async def _read_body(
        self, scope: HTTPScope, receive: ASGIReceiveCallable, ctx: RequestContext
    ) -> bytes | None:
        """The whole request body, or None when the client disconnected first.

        Raises:
            UnsupportedMediaType, RequestTooLarge, RequestTimeout.
        """
        server = self._generations.current.config.server
        limit = server.max_request_body_bytes
        seconds = min(server.body_timeout_seconds, server.request_timeout_seconds)
        for name, value in scope["headers"]:
            if name == b"content-type" and value[:10].lower() == b"multipart/":
                raise errors.UnsupportedMediaType(
                    "multipart bodies are not accepted; send JSON (application/json)."
                )
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                raise _too_large(limit)
        parts: list[bytes] = []
        size = 0
        with trio.move_on_at(ctx.started + seconds):
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return None  # http.disconnect
                chunk = message["body"]
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                parts.append(chunk)
                if not message.get("more_body", False):
                    return parts[0] if len(parts) == 1 else b"".join(parts)
        raise errors.RequestTimeout(f"The request body did not arrive within {seconds:g} s.")

    async def _answer(self, ctx: RequestContext, scope: HTTPScope, body: bytes) -> Reply:
        """Decode (translating another client API to chat completions), route and forward;
        any failure becomes its error reply, in the client's API."""
        path = scope["path"]
        client = None
        try:
            if path == COUNT_TOKENS_PATH:
                return await self._token_counter.answer(ctx, body)
            if path in CLIENT_APIS:
                client = await self._client_apis.request(path, body, ctx.key_name)
                ctx.client_api = client
                path, body = CHAT_PATH, client.body
            view = decode_view(ROUTES[path], body)
            headers = _forwardable(scope["headers"], ctx)
            reply = await self.forwarder.forward(ctx, view, path, body, headers)
        except errors.APIError as error:
            return self._error(ctx, error)
        except Exception:
            log.exception("unexpected error serving POST %s", scope["path"])
            return self._error(ctx, errors.APIError("The gateway failed to handle the request."))
        if client is None or reply.pump is not None or ctx.answered_natively:
            return reply
        try:
            return client.reply(reply)
        except errors.APIError as error:  # an answer the client API cannot be given
            return self._error(ctx, error)

    @staticmethod
    def _error(ctx: RequestContext, error: errors.APIError) -> Reply:
        ctx.error_code = error.code
        return reply_for_error(ctx.path, error)


def _forwardable(
    headers: Iterable[tuple[bytes, bytes]], ctx: RequestContext
) -> list[tuple[bytes, bytes]]:
    """The client's headers an attempt may pass on: without ``Authorization`` once a key of
    this gateway authenticated the request (it carried that key, which no backend is to see,
    a ``forward_authorization`` one included: created keys turn authentication on at run time,
    whatever the file says, docs/proxying.md#headers)."""
    if ctx.key is None:
        return list(headers)
    return [pair for pair in headers if pair[0] != b"authorization"]


def _too_large(limit: int) -> errors.RequestTooLarge:
    return errors.RequestTooLarge(f"The request body is larger than {limit} bytes.")
