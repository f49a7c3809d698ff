"""The 4xx errors: what the client sent, or may do, is refused (docs/api.md#errors)."""

from __future__ import annotations

from typing import Any

from nexus_trio.errors.base import APIError


class InvalidRequest(APIError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_value"


class InvalidJSON(InvalidRequest):
    code = "invalid_json"


class InvalidValue(InvalidRequest):
    code = "invalid_value"


class Untranslatable(InvalidValue):
    """A client-API request (``/v1/messages``, ``/v1/responses``) valid in that API, with no
    chat-completions equivalent: refused only where the backend must translate it
    (docs/api.md#client-apis)."""


class DuplicateKey(InvalidRequest):
    code = "duplicate_key"


class InvalidTarget(InvalidRequest):
    """The request target is not one canonical path (docs/api.md#request-targets)."""

    code = "invalid_request_target"


class AmbiguousFraming(InvalidRequest):
    """Both ``Content-Length`` and ``Transfer-Encoding``: the connection is closed after it."""

    code = "ambiguous_framing"


class HostNotAllowed(InvalidRequest):
    """The ``Host`` header names no host of ``server.allowed_hosts``."""

    code = "host_not_allowed"


class AuthenticationFailed(APIError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class KeyExpired(AuthenticationFailed):
    """A created key past its ``expires_at`` (docs/keys.md#created-keys)."""

    code = "key_expired"


class Conflict(APIError):
    """The change contradicts what exists: a name taken, a key from the configuration file, a
    revoked key (docs/keys.md#created-keys)."""

    status = 409
    type = "invalid_request_error"
    code = "conflict"


class NotFound(APIError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class PreviousResponseNotFound(NotFound):
    """``previous_response_id`` names no response the key's stored responses hold."""

    code = "previous_response_not_found"


class ModelNotFound(APIError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class MethodNotAllowed(APIError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class RequestTimeout(APIError):
    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class RequestTooLarge(APIError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class UnsupportedMediaType(APIError):
    status = 415
    type = "invalid_request_error"
    code = "unsupported_media_type"


class PermissionDenied(APIError):
    """A valid key without the role the route needs (docs/keys.md#roles)."""

    status = 403
    type = "permission_error"
    code = "permission_denied"


class OriginNotAllowed(APIError):
    """A CORS preflight from an origin not in ``server.cors_origins``."""

    status = 403
    type = "invalid_request_error"
    code = "origin_not_allowed"


class ModelNotAllowed(APIError):
    """The key's ``models`` allow-list does not include the model (docs/keys.md#keys)."""

    status = 403
    type = "invalid_request_error"
    code = "model_not_allowed"


class RateLimitExceeded(APIError):
    """A key went over its requests or tokens per minute (docs/keys.md#rate-limits)."""

    status = 429
    type = "requests"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, kind: str, headers: dict[str, str]) -> None:
        super().__init__(message, headers=headers)
        #: ``requests``, ``tokens`` or ``concurrent_requests``: which limit; the envelope's
        #: ``type`` and ``nexus_rate_limited_total{kind}``.
        self.kind = kind

    def envelope(self) -> dict[str, Any]:
        body = super().envelope()
        body["error"]["type"] = self.kind
        return body


class TooManyDashboards(APIError):
    """A tenant key already has ``dashboard.max_connections_per_key`` event streams open
    (docs/api.md#dashboard)."""

    status = 429
    type = "requests"
    code = "too_many_dashboards"


class BudgetExceeded(APIError):
    """The monthly budget is spent and its action is ``reject`` (docs/spend.md#budgets).

    Waiting does not help before the month rolls over: ``x-should-retry: false``.
    """

    status = 429
    type = "insufficient_quota"
    code = "budget_exceeded"
