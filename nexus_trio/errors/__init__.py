"""The one exception tree of nexus-trio.

Every error the gateway can report is one of these classes. Each class that reaches a client
knows its HTTP status, its OpenAI ``type`` and its ``code`` (docs/api.md#errors); the front end
renders all of them with one handler (``api/errors.py``). Library exceptions (httpx, msgspec, trio
timeouts) are translated into this tree once, where they are caught (``raise ... from exc``).
The roots live in ``base``, the 4xx in ``client``, the 5xx in ``server``; every class is used
from here (``from nexus_trio import errors``).

::

    NexusError
    ├── ConfigError                      invalid configuration (key path or line:column)
    ├── ListenError                      the listening socket could not be bound
    ├── StateError                       the spend ledger or the response store cannot be
    │                                    opened, read or written
    └── APIError                         rendered as the OpenAI error envelope
        ├── InvalidRequest               400 invalid_request_error
        │   ├── InvalidJSON              400 invalid_json
        │   ├── InvalidValue             400 invalid_value (param names the field)
        │   │   └── Untranslatable       valid in the client's API, no chat-completions
        │   │                            equivalent: refused where the backend translates
        │   ├── DuplicateKey             400 duplicate_key
        │   ├── InvalidTarget            400 invalid_request_target (not one canonical path)
        │   ├── AmbiguousFraming         400 ambiguous_framing (Content-Length and chunked)
        │   └── HostNotAllowed           400 host_not_allowed (``server.allowed_hosts``)
        ├── AuthenticationFailed         401 invalid_api_key
        │   └── KeyExpired               401 key_expired (a created key past expires_at)
        ├── PermissionDenied             403 permission_denied (the route needs an admin key)
        ├── OriginNotAllowed             403 origin_not_allowed (CORS preflight)
        ├── ModelNotAllowed              403 model_not_allowed (the key's models allow-list)
        ├── NotFound                     404 not_found
        │   └── PreviousResponseNotFound 404 previous_response_not_found (no such stored
        │                                response for the key)
        ├── ModelNotFound                404 model_not_found
        ├── MethodNotAllowed             405 method_not_allowed
        ├── RequestTimeout               408 request_timeout (the body was too slow to arrive)
        ├── Conflict                     409 conflict (a key name taken, a key of the
        │                                configuration file, a revoked key)
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
        ├── BackendCredentialsRefused    502 backend_unavailable (the upstream refused the
        │                                gateway's credentials: 401/403, its text only logged)
        └── ServiceUnavailable           503 service_unavailable
            ├── NoAvailableBackend       503 no_available_backend
            ├── QueueFull                503 queue_full
            ├── QueueTimeout             503 queue_timeout
            ├── ShuttingDown             503 shutting_down
            └── Overloaded               503 overloaded

Client-facing messages name backends by their configured ``name`` only, never by URL,
address or the text of a library exception.
"""

from nexus_trio.errors.base import (
    APIError,
    ConfigError,
    ListenError,
    NexusError,
    StateError,
)
from nexus_trio.errors.client import (
    AmbiguousFraming,
    AuthenticationFailed,
    BudgetExceeded,
    Conflict,
    DuplicateKey,
    HostNotAllowed,
    InvalidJSON,
    InvalidRequest,
    InvalidTarget,
    InvalidValue,
    KeyExpired,
    MethodNotAllowed,
    ModelNotAllowed,
    ModelNotFound,
    NotFound,
    OriginNotAllowed,
    PermissionDenied,
    PreviousResponseNotFound,
    RateLimitExceeded,
    RequestTimeout,
    RequestTooLarge,
    TooManyDashboards,
    UnsupportedMediaType,
    Untranslatable,
)
from nexus_trio.errors.server import (
    BackendCredentialsRefused,
    BackendTimeout,
    BackendUnavailable,
    BadUpstreamResponse,
    NoAvailableBackend,
    Overloaded,
    QueueFull,
    QueueTimeout,
    ServiceUnavailable,
    ShuttingDown,
    UpstreamCannotEmbed,
    UpstreamConnectError,
    UpstreamError,
    UpstreamModelMissing,
    UpstreamReset,
    UpstreamStatusError,
)

__all__ = [
    "APIError",
    "AmbiguousFraming",
    "AuthenticationFailed",
    "BackendCredentialsRefused",
    "BackendTimeout",
    "BackendUnavailable",
    "BadUpstreamResponse",
    "BudgetExceeded",
    "ConfigError",
    "Conflict",
    "DuplicateKey",
    "HostNotAllowed",
    "InvalidJSON",
    "InvalidRequest",
    "InvalidTarget",
    "InvalidValue",
    "KeyExpired",
    "ListenError",
    "MethodNotAllowed",
    "ModelNotAllowed",
    "ModelNotFound",
    "NexusError",
    "NoAvailableBackend",
    "NotFound",
    "OriginNotAllowed",
    "Overloaded",
    "PermissionDenied",
    "PreviousResponseNotFound",
    "QueueFull",
    "QueueTimeout",
    "RateLimitExceeded",
    "RequestTimeout",
    "RequestTooLarge",
    "ServiceUnavailable",
    "ShuttingDown",
    "StateError",
    "TooManyDashboards",
    "UnsupportedMediaType",
    "Untranslatable",
    "UpstreamCannotEmbed",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamModelMissing",
    "UpstreamReset",
    "UpstreamStatusError",
]
