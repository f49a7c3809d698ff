"""The one exception tree of nexus-trio.

Every error the gateway can report is one of these classes. Each class that reaches a client
knows its HTTP status, its OpenAI ``type`` and its ``code`` (docs/api.md#errors); the front end
renders all of them with one handler (``api/errors.py``). Library exceptions (httpx, msgspec, trio
timeouts) are translated into this tree once, where they are caught (``raise ... from exc``).

::

    NexusError
    ├── ConfigError                      invalid configuration (key path or line:column)
    ├── ListenError                      the listening socket could not be bound
    ├── StateError                       the spend ledger cannot be opened, read or written
    └── APIError                         rendered as the OpenAI error envelope
        ├── InvalidRequest               400 invalid_request_error
        │   ├── InvalidJSON              400 invalid_json
        │   ├── InvalidValue             400 invalid_value (param names the field)
        │   ├── DuplicateKey             400 duplicate_key
        │   ├── InvalidTarget            400 invalid_request_target (not one canonical path)
        │   ├── AmbiguousFraming         400 ambiguous_framing (Content-Length and chunked)
        │   └── HostNotAllowed           400 host_not_allowed (``server.allowed_hosts``)
        ├── AuthenticationFailed         401 invalid_api_key
        ├── PermissionDenied             403 permission_denied (the route needs an admin key)
        ├── OriginNotAllowed             403 origin_not_allowed (CORS preflight)
        ├── ModelNotAllowed              403 model_not_allowed (the key's models allow-list)
        ├── NotFound                     404 not_found
        ├── ModelNotFound                404 model_not_found
        ├── MethodNotAllowed             405 method_not_allowed
        ├── RequestTimeout               408 request_timeout (the body was too slow to arrive)
        ├── RequestTooLarge              413 request_too_large
        ├── UnsupportedMediaType         415 unsupported_media_type
        ├── BudgetExceeded               429 budget_exceeded (hard limit, action "reject")
        ├── RateLimitExceeded            429 rate_limit_exceeded (a key's requests, tokens or
        │                                concurrent requests)
        ├── TooManyDashboards            429 too_many_dashboards (a tenant key's event streams)
        ├── UpstreamError                an attempt failed: the next agent may be tried
        │   ├── BackendUnavailable       502 backend_unavailable
        │   │   ├── UpstreamConnectError connect refused / DNS / TLS: nothing was sent
        │   │   └── UpstreamReset        connection closed or reset before a full response
        │   ├── BadUpstreamResponse      502 bad_upstream_response (invalid body, too large)
        │   ├── BackendTimeout           504 backend_timeout
        │   └── UpstreamStatusError      the upstream's own 5xx/408/429, passed through as-is
        │       ├── UpstreamModelMissing the upstream does not know the model (404 / 400)
        │       └── UpstreamCannotEmbed  the upstream does not embed (501 to /v1/embeddings)
        └── ServiceUnavailable           503 service_unavailable
            ├── NoAvailableBackend       503 no_available_backend
            ├── QueueFull                503 queue_full
            ├── QueueTimeout             503 queue_timeout
            ├── ShuttingDown             503 shutting_down
            └── Overloaded               503 overloaded

Client-facing messages name backends by their configured ``name`` only, never by URL,
address or the text of a library exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class NexusError(Exception):
    """Base of every error nexus-trio raises on purpose."""


class ConfigError(NexusError):
    """The configuration is invalid.

    ``str(error)`` is the one-line reason shown to the operator; it names the key path
    (``$.backends[1].url``) or, for TOML syntax errors, the line and column.
    """


class ListenError(NexusError):
    """The gateway could not bind its listening socket (fatal at start-up)."""


class StateError(NexusError):
    """The spend ledger cannot be used (docs/spend.md#ledger): fatal at start-up.

    ``str(error)`` is the one-line reason: the path and what is wrong with it.
    """


class APIError(NexusError):
    """An error rendered to the client as the OpenAI error envelope."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "api_error"
    code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers: dict[str, str] = dict(headers or {})
        self.extra: dict[str, Any] = dict(extra or {})

    def envelope(self) -> dict[str, Any]:
        """The JSON body: ``{"error": {"message", "type", "param", "code", ...extra}}``."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
                **self.extra,
            }
        }


class InvalidRequest(APIError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_value"


class InvalidJSON(InvalidRequest):
    code = "invalid_json"


class InvalidValue(InvalidRequest):
    code = "invalid_value"


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


class NotFound(APIError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


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


class UpstreamError(APIError):
    """One attempt on a backend failed; the retry loop decides what the client sees."""

    status = 502
    type = "upstream_error"
    code = "backend_unavailable"
    #: Whether the backend should be skipped for the rest of the request
    #: (docs/routing.md#scheduler).
    skip_backend: ClassVar[bool] = False


class BackendUnavailable(UpstreamError):
    code = "backend_unavailable"


class UpstreamConnectError(BackendUnavailable):
    """The connection could not be opened: nothing reached the backend."""

    skip_backend = True


class UpstreamReset(BackendUnavailable):
    """The connection was closed or reset before a complete response arrived.

    ``before_response`` is true when not one response byte had arrived; together with
    ``reused_connection`` it marks a keep-alive race, retried once on a fresh connection.
    """

    def __init__(
        self, message: str, *, before_response: bool = False, reused_connection: bool = False
    ) -> None:
        super().__init__(message)
        self.before_response = before_response
        self.reused_connection = reused_connection


class BadUpstreamResponse(UpstreamError):
    code = "bad_upstream_response"


class BackendTimeout(UpstreamError):
    status = 504
    code = "backend_timeout"
    skip_backend = True


class UpstreamStatusError(UpstreamError):
    """The upstream answered 5xx, 408 or 429; the client gets its status and body as-is."""

    def __init__(self, backend: str, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        super().__init__(f"Backend '{backend}' answered {status}.", headers=headers)
        self.upstream_status = status
        self.body = body


class UpstreamModelMissing(UpstreamStatusError):
    """The backend answered that it does not serve the model: try another backend."""


class UpstreamCannotEmbed(UpstreamStatusError):
    """The backend answered 501 to an embeddings request: try one that embeds."""


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


class ServiceUnavailable(APIError):
    status = 503
    type = "service_unavailable"
    code = "service_unavailable"


class NoAvailableBackend(ServiceUnavailable):
    code = "no_available_backend"


class QueueFull(ServiceUnavailable):
    code = "queue_full"


class QueueTimeout(ServiceUnavailable):
    code = "queue_timeout"


class ShuttingDown(ServiceUnavailable):
    code = "shutting_down"

    def __init__(
        self, message: str = "The gateway is shutting down; retry on another instance."
    ) -> None:
        super().__init__(message, headers={"Retry-After": "1", "Connection": "close"})


class Overloaded(ServiceUnavailable):
    code = "overloaded"

    def __init__(self, message: str = "The gateway is at its in-flight request limit.") -> None:
        super().__init__(message, headers={"Retry-After": "1"})
