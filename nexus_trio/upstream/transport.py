"""A lean HTTP/1.1 keep-alive transport for httpx: llhttp (``httptools``) over trio sockets.

Theory of operation
-------------------
:class:`KeepAliveTransport` is an ``httpx.AsyncBaseTransport``, so the gateway keeps httpx as its
client API while the hot path skips httpcore, whose pool loses most of its throughput on trio
under concurrency. Only ``http://`` is handled here; every other scheme goes to a fallback
transport (by default httpx's own, created on first use, with certificate verification on).

**Pool.** One :class:`~nexus_trio.upstream.pool.HostPool` per ``(host, port)`` and pool name. A
request names its pool and the pool's size in the ``nexus.pool`` extension (a :class:`PoolSpec`:
the gateway gives each backend its own pool, as large as its ``max_concurrent_requests``, or
unlimited); without one it shares the host's default pool of ``max_connections_per_host``. A
request takes one of the pool's slots — waiting when all are taken, never polling — then the
most recently used idle connection (LIFO keeps a few connections warm and lets the rest
expire), or a new one. The connection and its slot come back when the response ends: to the
idle stack if the exchange finished cleanly (:meth:`~nexus_trio.upstream.pool.Connection.reusable`),
otherwise closed. A request may carry a
callback in the ``nexus.on_send`` extension, called when it holds its slot: the gateway starts
an attempt's clock there, so the wait for a slot is never the backend's.

**Reuse check.** Before an idle connection is reused it must be younger than
``keepalive_expiry`` and not readable: an idle HTTP/1.1 connection has nothing to say, so a
readable one was closed or reset by the server (or holds garbage) and is closed instead.

**Stale connections.** The check cannot see a close that is still on the wire when the request
goes out. A request on a reused connection that fails before any byte of the response arrived
(EOF, reset, or a failed write) raises :class:`StaleConnectionError`: the server never answered,
so the caller may retry once on a fresh connection. A fresh connection failing the same way, or
any connection failing after a response byte, raises a plain ``httpx.TransportError``.

**Streaming.** The response is returned as soon as its head is parsed. When the whole body
arrived with the head (a small answer usually does), it is taken from the parser at once and
the connection goes straight back to the pool: no read is waited for, nothing extra buffered.
Otherwise the body is a :class:`~nexus_trio.upstream.body.ResponseStream` that hands over what
came with the head, then what each read completes, without buffering, whatever the body's
framing (:mod:`nexus_trio.upstream.response_parser`).
Any failure or cancellation while a request owns a connection closes that connection. Closing
a socket is synchronous in trio, so no cleanup needs a shielded cancel scope.

Timeouts come from httpx's per-request ``timeout`` extension (``connect``, ``read``, ``write``,
``pool``); a ``None`` value means no limit and costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from nexus_trio.upstream.body import ResponseStream
from nexus_trio.upstream.exchange import StaleConnectionError, exchange
from nexus_trio.upstream.pool import HostPool
from nexus_trio.upstream.tls import UNLIMITED

__all__ = [
    "ON_SEND_EXTENSION",
    "POOL_EXTENSION",
    "KeepAliveTransport",
    "PoolSpec",
    "ResponseStream",
    "StaleConnectionError",
]

_NO_TIMEOUTS: Mapping[str, float | None] = {}
#: The request extension naming the pool a request uses.
POOL_EXTENSION = "nexus.pool"
#: The request extension holding a callable (no arguments) called once the request holds its
#: pool slot, before connecting and sending: where the wait for a connection ends.
ON_SEND_EXTENSION = "nexus.on_send"


@dataclass(frozen=True, slots=True)
class PoolSpec:
    """Which pool a request uses: its name (a backend) and size (None: no limit)."""

    name: str
    max_connections: int | None


class KeepAliveTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 keep-alive pools over trio sockets; ``https://`` goes to ``fallback``.

    Args:
        max_connections_per_host: open connections at most in a host's default pool (used by
            requests that name no pool); None = no limit.
        max_idle_per_host: idle connections kept per host; the oldest are closed first.
        keepalive_expiry: seconds an idle connection may wait before it is closed unused.
        connect_timeout: connect timeout when a request carries no ``timeout`` extension.
        fallback: the transport for every scheme but ``http`` (``https`` included); by default
            an ``httpx.AsyncHTTPTransport()`` created on first use, verifying certificates.
    """

    def __init__(
        self,
        *,
        max_connections_per_host: int | None = None,
        max_idle_per_host: int = 1024,
        keepalive_expiry: float = 30.0,
        connect_timeout: float | None = None,
        fallback: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._max_connections = max_connections_per_host
        self._max_idle = max_idle_per_host
        self._keepalive_expiry = keepalive_expiry
        self._connect_timeout = connect_timeout
        self._fallback = fallback
        self._pools: dict[tuple[bytes, int, str], HostPool] = {}
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``; return the response once its head arrived, body unread.

        Blocks while the slots of the request's pool are all in use, then while connecting,
        sending and waiting for the head; the ``nexus.on_send`` extension, if any, is called
        in between (for other schemes: before the fallback transport is called, its pool being
        unlimited). Cancellation closes the connection the request was using. The caller must
        close the response (``aclose()``) to give the connection back.

        Raises:
            StaleConnectionError: a reused connection failed before any response byte.
            httpx.TransportError: connecting, sending or reading failed or timed out.
            RuntimeError: the transport is closed.
        """
        on_send: Callable[[], object] | None = request.extensions.get(ON_SEND_EXTENSION)
        if request.url.raw_scheme != b"http":
            return await self._send_to_fallback(request, on_send)
        if self._closed:
            raise RuntimeError("The transport is closed.")
        pool = self._pool_for(request.url, request.extensions.get(POOL_EXTENSION))
        timeouts: Mapping[str, float | None] = request.extensions.get("timeout", _NO_TIMEOUTS)
        connection = await pool.acquire(
            connect_timeout=timeouts.get("connect", self._connect_timeout),
            pool_timeout=timeouts.get("pool"),
            on_slot=on_send,
        )
        answered = False
        try:
            parser = await exchange(connection, request, timeouts)
            received = parser.take()
            answered = True
        finally:
            if not answered:
                pool.release(connection, keep=False)
        stream: httpx.AsyncByteStream
        if parser.done:
            pool.release(connection, keep=connection.reusable())
            stream = httpx.ByteStream(b"".join(received))
        else:
            stream = ResponseStream(pool, connection, parser, timeouts.get("read"), received)
        return httpx.Response(
            parser.status,
            headers=parser.headers,
            stream=stream,
            extensions={"http_version": parser.version, "reason_phrase": parser.reason},
        )

    async def aclose(self) -> None:
        """Close every connection, idle or in use, then the fallback transport.

        A response still being read fails with ``httpx.ReadError``; later requests raise
        ``RuntimeError``. Only closing the fallback can block.
        """
        self._closed = True
        for pool in self._pools.values():
            pool.close()
        if self._fallback is not None:
            await self._fallback.aclose()

    async def _send_to_fallback(
        self, request: httpx.Request, on_send: Callable[[], object] | None
    ) -> httpx.Response:
        """Send a request of any scheme but ``http`` with the fallback transport, created on
        first use; its pool is unlimited, so ``on_send`` is called at once."""
        if on_send is not None:
            on_send()
        if self._fallback is None:
            self._fallback = httpx.AsyncHTTPTransport(limits=UNLIMITED)
        return await self._fallback.handle_async_request(request)

    def _pool_for(self, url: httpx.URL, spec: PoolSpec | None) -> HostPool:
        """The pool of ``url``'s host that ``spec`` names (without one, the host's default
        pool), created on first use and resized when the spec's size changed."""
        if spec is None:
            name, size = "", self._max_connections
        else:
            name, size = spec.name, spec.max_connections
        key = (url.raw_host, url.port or 80, name)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = HostPool(
                url.raw_host.decode("ascii"),
                key[1],
                max_connections=size,
                max_idle=self._max_idle,
                keepalive_expiry=self._keepalive_expiry,
            )
        elif pool.max_connections != size:
            pool.resize(size)
        return pool
