"""The 5xx errors: an attempt on a backend failed, or the gateway cannot take the request now
(docs/api.md#errors)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from nexus_trio.errors.base import APIError


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


class BackendCredentialsRefused(APIError):
    """The backend answered 401 or 403 to the credentials the gateway sent for it: the client
    gets a neutral 502, never the backend's text, which may describe the operator's account
    (docs/proxying.md#retries). Not retried: the answer is the request's."""

    status = 502
    type = "upstream_error"
    code = "backend_unavailable"

    def __init__(self, backend: str) -> None:
        super().__init__(f"Backend '{backend}' could not serve the request.")


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
