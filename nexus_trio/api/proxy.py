"""The proxy routes: chat, completions, embeddings (SPEC §3)."""

from __future__ import annotations

from quart import Response, request
from quart_trio import QuartTrio

from nexus_trio import errors
from nexus_trio.api.context import RequestContext
from nexus_trio.api.forwarding import Forwarder
from nexus_trio.api.views import RouteKind, decode_view

_ROUTES = {
    "/v1/chat/completions": RouteKind.CHAT,
    "/v1/completions": RouteKind.COMPLETIONS,
    "/v1/embeddings": RouteKind.EMBEDDINGS,
}


def current_context() -> RequestContext:
    """The context the ASGI wrapper attached to the request being served."""
    ctx: RequestContext = request.scope["nexus.context"]  # type: ignore[typeddict-item]
    return ctx


def register_proxy_routes(app: QuartTrio, forwarder: Forwarder) -> None:
    """Add the three proxy routes to ``app``."""

    async def proxy() -> Response:
        ctx = current_context()
        content_type = request.headers.get("content-type", "")
        if content_type.lower().startswith("multipart/"):
            raise errors.UnsupportedMediaType(
                "multipart bodies are not accepted; send JSON (application/json)."
            )
        body = await request.get_data(cache=False)
        assert isinstance(body, bytes)
        view = decode_view(_ROUTES[request.path], body)
        headers = list(request.scope["headers"])
        return await forwarder.forward(ctx, view, request.path, body, headers)

    for path in _ROUTES:
        app.add_url_rule(path, f"proxy:{path}", proxy, methods=["POST"])
