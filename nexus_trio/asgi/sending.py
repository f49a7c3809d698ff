"""Sending a :class:`~nexus_trio.asgi.reply.Reply` for a request: the headers every answer
carries (``X-Request-Id``, the ``X-Nexus-*`` of a routed request, CORS and rate-limit headers),
and the request marked answered."""

from __future__ import annotations

from hypercorn.typing import ASGISendCallable

from nexus_trio.asgi.context import RequestContext
from nexus_trio.asgi.reply import Reply


async def send_reply(send: ASGISendCallable, ctx: RequestContext, reply: Reply) -> None:
    """Send ``reply`` with ``X-Request-Id`` and the ``X-Nexus-*`` headers; mark ``ctx``.

    The request's status is the reply's, set here and nowhere else on the request path (the
    Quart routes' is set where their response starts, in the ASGI layer).
    """
    ctx.status = reply.status
    extra = [(b"x-request-id", ctx.request_id.encode()), *ctx.nexus_headers()]
    if ctx.response_headers is not None:
        extra += ctx.response_headers
    await reply.send(send, extra)
    ctx.completed = True
