"""Per-request state: what the access log, the metrics and the response headers report.

One :class:`RequestContext` lives from the moment the ASGI wrapper accepts a request until
its last byte is sent (or the client is gone). What the request hands over with
:meth:`RequestContext.defer` — an open upstream stream, an unfinished attempt — goes on an
``AsyncExitStack`` that the wrapper closes under a shielded scope in its ``finally``, so it is
cleaned up even if the response body is never iterated.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from nexus_trio.asgi.disconnects import Watch
from nexus_trio.dialects.base import ClientBody
from nexus_trio.errors import Untranslatable
from nexus_trio.keys import DEFAULT_KEY, ClientKey
from nexus_trio.spend.reservations import Reservation
from nexus_trio.tracing import RequestTrace
from nexus_trio.upstream.stream import ClientEvents

_PRINTABLE_ID = re.compile(rb"[\x21-\x7e]{1,128}")


def request_id_from(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The client's ``X-Request-Id`` if usable (1 to 128 printable ASCII), else a new UUID4."""
    for name, value in headers:
        if name == b"x-request-id":
            if _PRINTABLE_ID.fullmatch(value):
                return value.decode("ascii")
            break
    return str(uuid.uuid4())


class ClientAPI(ClientBody, Protocol):
    """The client API of a request that is not chat completions, as an attempt and a committed
    stream need it (``nexus_trio.api.client_apis``)."""

    #: Why a backend that must translate the request cannot serve it: refused, with nothing
    #: sent, by an attempt that is not native (None: every backend can).
    refusal: Untranslatable | None

    def events(self) -> ClientEvents:
        """A new translator of the stream's events into the client API's."""
        ...


@dataclass(eq=False, slots=True)
class RequestContext:
    """What one client request did, filled in as it goes."""

    request_id: str
    method: str
    path: str
    started: float
    #: The client's address: the peer, or per ``server.trusted_proxies``
    #: (docs/operations.md#client-address).
    client: str = "-"
    #: What :meth:`defer` handed over; created on first use (most requests need none).
    exit_stack: contextlib.AsyncExitStack | None = None
    is_proxy: bool = False
    stream: bool = False
    requested_model: str | None = None
    served_model: str | None = None
    backend: str | None = None
    backend_location: str | None = None
    privacy_zone: str | None = None
    route_reason: str | None = None
    fallback_model: str | None = None
    attempts: int = 0
    status: int | None = None
    error_code: str | None = None
    truncated: bool = False
    ttft_ms: float | None = None
    #: The last attempt waited for its model to load (docs/quality.md#cold-starts).
    cold_start: bool = False
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int = 0
    #: The server-side tool uses the backend reported (``Usage.server_tool_use``, raw).
    server_tool_use: bytes = b""
    #: The request's input estimate in tokens (docs/spend.md#estimates): what it reserves for
    #: its input, and is charged for it when no usage arrives.
    estimated_prompt_tokens: int = 0
    #: Characters of generated content; for the cost estimate when no usage arrived.
    output_chars: int = 0
    #: USD this request cost (docs/spend.md#pricing); None until settled.
    cost_usd: float | None = None
    #: The cost was estimated from characters: the backend reported no usage.
    cost_estimated: bool = False
    #: Seconds spent waiting on upstreams (for the gateway-overhead histogram).
    upstream_seconds: float = 0.0
    #: Set once the final body message has been handed to the server.
    completed: bool = False
    #: Set when response headers have been sent (a streaming response commits here).
    committed_at: float | None = None
    #: The request's registration with the disconnect watcher, once its body is read.
    watch: Watch | None = None
    #: The inbound key the request presented; None when inbound auth is off.
    key: ClientKey | None = None
    #: The ``User-Agent`` header and the body's OpenAI ``user`` field (proxy requests; at
    #: most 256 characters each), for the access log (docs/operations.md#logging).
    user_agent: str | None = None
    end_user: str | None = None
    #: Headers every answer to this request carries: CORS (docs/api.md#cors), and the key's
    #: ``x-ratelimit-*`` at admission (docs/keys.md#rate-limits).
    response_headers: list[tuple[bytes, bytes]] | None = None
    #: The request holds one of ``server.max_in_flight_requests`` (its body has been read), and
    #: one of its named key's ``max_concurrent_requests``.
    admitted: bool = False
    #: The worst case held for the current attempt to a priced agent, until it is released
    #: (docs/spend.md#reservations).
    reservation: Reservation | None = None
    #: The last attempt was sent and ended with no outcome of its own — the client left, the
    #: request deadline passed or the drain cut it: its input is charged (docs/spend.md#pricing).
    cut_short_after_send: bool = False
    #: The request's API when it is not chat completions (its stream is relayed in it).
    client_api: ClientAPI | None = None
    #: The last attempt's answer is in the client's API already (a native exchange).
    answered_natively: bool = False
    #: The request's trace and its attempts' spans; None unless it is traced.
    trace: RequestTrace | None = None

    @property
    def key_name(self) -> str:
        """The name spend is attributed to: the key's, or ``default``."""
        return DEFAULT_KEY if self.key is None else self.key.name

    def defer(self, callback: Callable[..., Awaitable[object]], *args: object) -> None:
        """Have ``await callback(*args)`` run when the request is over, whatever happens."""
        if self.exit_stack is None:
            self.exit_stack = contextlib.AsyncExitStack()
        self.exit_stack.push_async_callback(callback, *args)

    def nexus_headers(self) -> list[tuple[bytes, bytes]]:
        """The ``X-Nexus-*`` headers of a routed response (docs/api.md#response-headers)."""
        if self.backend is None:
            return []
        pairs = [
            (b"x-nexus-backend", self.backend),
            (b"x-nexus-backend-type", self.backend_location or "local"),
            (b"x-nexus-model", self.served_model or ""),
            (b"x-nexus-route-reason", self.route_reason or "only_candidate"),
            (b"x-nexus-attempts", str(self.attempts)),
            (b"x-nexus-privacy-zone", self.privacy_zone or "restricted"),
        ]
        if self.fallback_model is not None:
            pairs.append((b"x-nexus-fallback-model", self.fallback_model))
        if self.cost_usd is not None and not self.stream:
            pairs.append((b"x-nexus-cost-usd", f"{self.cost_usd:.8f}"))
        return [(name, value.encode("latin-1", "replace")) for name, value in pairs]
