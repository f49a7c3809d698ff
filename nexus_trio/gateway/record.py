"""A finished proxy request, as one frozen record handed to every sink.

The request path settles a request's status and cost once, when it is over, and builds one
:class:`RequestRecord` (:mod:`nexus_trio.api.accounting`). The sinks registered at wiring — the
totals, the metrics, the spend book, the rate limiter, the dashboard's request log, the access
log — each read the record and nothing else of the request; tracing is one more
sink. A record holds metadata only: never prompts, completions or key secrets, only the
key's configured name.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from nexus_trio.keys import DEFAULT_KEY, ClientKey
from nexus_trio.tracing import RequestTrace


class RequestRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What one proxy request did, settled (a Struct: built once per request, cheaply)."""

    request_id: str
    method: str
    path: str
    #: The client's address (docs/operations.md#client-address).
    client: str
    #: ``trio.current_time()`` when the request arrived, and seconds until it was over.
    started: float
    elapsed_seconds: float
    #: ``time.time()`` when it was over.
    at_wall: float
    requested_model: str | None
    #: The model and backend of the last attempt; None when no attempt was made.
    served_model: str | None
    backend: str | None
    attempts: int
    #: The final status; None when the client went away (or was never answered).
    status: int | None
    #: The client went away before the last byte was handed to the server.
    cancelled: bool
    #: A 5xx, no status, or a truncated stream.
    failed: bool
    truncated: bool
    stream: bool
    #: ``cancelled`` when the client went away, else the error's code (or None).
    error_code: str | None
    route_reason: str | None
    ttft_ms: float | None
    #: Seconds until the response was committed (headers sent); None when never.
    committed_after: float | None
    #: Seconds spent waiting on upstreams.
    upstream_seconds: float
    prompt_tokens: int | None
    completion_tokens: int | None
    #: Prompt plus completion tokens, reported or estimated (docs/keys.md#rate-limits).
    tokens_used: int
    #: USD the request cost (0 when unpriced or unsettled), and whether it was estimated.
    cost_usd: float
    cost_estimated: bool
    #: The key the request presented; None when inbound auth is off or it presented none.
    key: ClientKey | None
    #: The client's ``User-Agent`` and the body's OpenAI ``user`` field, bounded; or None.
    user_agent: str | None = None
    end_user: str | None = None
    #: Inbound keys are on and the request presented no valid one (refused before or at its
    #: key): anyone can send these.
    unauthenticated: bool
    #: The request's trace, complete (its attempts ended); None unless it was traced.
    trace: RequestTrace | None = None
    #: The serving attempt waited for its model to load (docs/quality.md#cold-starts).
    cold_start: bool = False

    @property
    def key_name(self) -> str:
        """The name spend is attributed to: the key's, or ``default``."""
        return DEFAULT_KEY if self.key is None else self.key.name


#: A consumer of finished requests; synchronous, never raises for a well-formed record.
RequestSink = Callable[[RequestRecord], None]
