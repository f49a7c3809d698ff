"""The dialect interface: how one attempt speaks a backend's API and how its answer comes back
in OpenAI's (docs/proxying.md#request-body, docs/proxying.md#headers).

A :class:`Dialect` is chosen once per attempt from the backend's type
(:func:`nexus_trio.dialects.dialect_for`); it prepares one :class:`Exchange` — the upstream
path, body and complete header list — and the exchange turns what comes back (a whole body or
a stream) into what the client gets. The attempt path calls only this interface: a new provider
is a new module here, not a branch in the API or the health checker.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import httpx

from nexus_trio.registry import Backend, Capabilities
from nexus_trio.upstream.stream import UpstreamStream


class ClientBody(Protocol):
    """A request the client sent in another API than chat completions, as a dialect that
    speaks that API natively takes it."""

    #: The client API's path (``/v1/messages``, ``/v1/responses``).
    native_path: str

    def native_body(self, model: str) -> bytes:
        """The client's own request body, asking for ``model``."""
        ...


class Exchange(Protocol):
    """One attempt's request in the backend's API, and the way back to OpenAI's."""

    #: The upstream path and body to send.
    path: str
    body: bytes
    #: The answer is already in the client's own API (a native exchange): it is relayed
    #: as it is, and only read, in its chat-completions form, for usage and characters.
    native: bool

    def readable(self, data: bytes) -> bytes:
        """The chat-completions form of a 2xx answer body :meth:`answer` returned, which the
        gateway reads usage and generated characters from."""
        ...

    def headers(self) -> list[tuple[bytes, bytes]]:
        """Every header of the upstream request but ``Host`` and ``Content-Length``."""
        ...

    def answer(
        self, status: int, data: bytes, upstream: httpx.Headers
    ) -> tuple[int, dict[str, str], bytes]:
        """The client's status, headers and body for a whole upstream answer.

        Raises:
            BadUpstreamResponse: a 2xx body the dialect cannot read.
        """
        ...

    def stream(
        self, response: httpx.Response, backend: Backend, *, sent_at: float
    ) -> UpstreamStream:
        """The stream relayed to the client from a 2xx event-stream answer."""
        ...


class Dialect(Protocol):
    """What a backend's API needs from the gateway, for attempts and for probes."""

    #: Its streams report usage unasked: nothing to add for a priced stream's cost.
    reports_stream_usage: bool
    #: Where a probe lists the backend's models (an OpenAI-style ``data[].id`` list).
    models_path: str
    #: Capabilities every listed model has, or None: each declares its own.
    listed_capabilities: Capabilities | None

    def exchange(
        self,
        backend: Backend,
        path: str,
        body: bytes,
        model: str,
        *,
        client_headers: Iterable[tuple[bytes, bytes]],
        request_id: str,
        strip_usage: bool,
        client_body: ClientBody | None = None,
    ) -> Exchange:
        """Prepare one attempt of the client's request on ``path`` for ``model``.

        ``strip_usage``: the gateway asked this stream for usage; its usage-only chunk is not
        relayed. ``client_body``: the request as the client sent it in another API; a dialect
        that speaks that API natively sends it as it is (a native exchange).

        Raises:
            InvalidValue: a request the backend's API cannot serve (nothing was sent).
        """
        ...

    def probe_headers(self, backend: Backend) -> dict[str, str]:
        """The credentials a probe of ``backend`` sends."""
        ...

    def output_allowance(self, backend: Backend, default: int) -> int:
        """The output tokens a request that names none may generate on ``backend``."""
        ...
