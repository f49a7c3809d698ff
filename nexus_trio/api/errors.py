"""Errors on the Quart routes: every one rendered as the OpenAI envelope (docs/api.md#errors),
or Anthropic's on the Messages API's routes (docs/api.md#client-apis).

Our own :class:`~nexus_trio.errors.APIError` tree is rendered by
:func:`~nexus_trio.asgi.reply.error_reply` (the proxy routes use it too); the framework's
``HTTPException``s (404 unknown path, 405 wrong method, 413 body too large, 400 …) are mapped
to the same tree first, so no response ever leaves in another shape.
"""

from __future__ import annotations

import logging

from quart import Response
from quart_trio import QuartTrio
from werkzeug.datastructures import Headers
from werkzeug.exceptions import HTTPException

from nexus_trio import errors
from nexus_trio.api.client_apis import reply_for_error
from nexus_trio.asgi.context import RequestContext

log = logging.getLogger("nexus_trio.api")

_FRAMEWORK_ERRORS: dict[int, type[errors.APIError]] = {
    400: errors.InvalidJSON,
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
    408: errors.RequestTimeout,
    413: errors.RequestTooLarge,
    415: errors.UnsupportedMediaType,
}

_FRAMEWORK_MESSAGES = {
    404: "Unknown path: {path}.",
    405: "Method {method} is not allowed on {path}.",
    408: "The request body did not arrive in time.",
    413: "The request body is larger than the gateway accepts.",
    415: "Unsupported content type.",
    400: "The request could not be read.",
}


def error_response(error: errors.APIError, path: str) -> Response:
    """The Quart response for one of our errors on ``path``, rendered by :func:`error_reply`
    or, on a route of another client API, in that API's envelope."""
    reply = reply_for_error(path, error)
    headers = Headers(
        [(name.decode("latin-1"), value.decode("latin-1")) for name, value in reply.headers]
    )
    return Response(reply.body, status=reply.status, headers=headers)


def from_http_exception(exc: HTTPException, method: str, path: str) -> errors.APIError:
    status = exc.code or 500
    cls = _FRAMEWORK_ERRORS.get(status)
    if cls is None:
        return errors.APIError(f"HTTP {status}.")
    message = _FRAMEWORK_MESSAGES[status].format(method=method, path=path)
    headers = {}
    if status == 405 and exc.get_headers():
        allow = dict(exc.get_headers()).get("Allow")
        if allow:
            headers["Allow"] = allow
    return cls(message, headers=headers)


def install_error_handlers(app: QuartTrio) -> None:
    """Register the envelope renderer for our errors, framework errors and the unexpected."""
    from quart import request

    def render(error: errors.APIError) -> Response:
        ctx: RequestContext | None = request.scope.get("nexus.context")  # type: ignore[assignment]
        if ctx is not None:
            ctx.error_code = error.code
        return error_response(error, request.path)

    @app.errorhandler(errors.APIError)
    async def _api_error(error: errors.APIError) -> Response:
        return render(error)

    @app.errorhandler(HTTPException)
    async def _http_error(exc: HTTPException) -> Response:
        return render(from_http_exception(exc, request.method, request.path))

    @app.errorhandler(Exception)
    async def _unexpected(exc: Exception) -> Response:
        log.exception("unexpected error serving %s %s", request.method, request.path)
        return render(errors.APIError("The gateway failed to handle the request."))
