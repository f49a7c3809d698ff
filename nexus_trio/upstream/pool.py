"""Keep-alive connections to one backend host: the limit, the idle stack, the reuse check.

A :class:`HostPool` hands out :class:`Connection` objects and takes them back; it knows nothing
of HTTP beyond asking the last response's parser whether a connection may serve another
request. The HTTP exchange
itself lives in :mod:`nexus_trio.upstream.transport`, which also explains the whole design.
"""

from __future__ import annotations

import math
import socket
from collections import deque
from collections.abc import Callable

import httpx
import trio

from nexus_trio.upstream.response_parser import ResponseParser

__all__ = ["Connection", "HostPool"]


class Connection:
    """One TCP connection to a backend and the exchange it is serving.

    Attributes:
        stream: the socket stream (trio sets ``TCP_NODELAY`` on it).
        parser: the current (or last) response's parser; None before the first request.
        closing: the current request asked the server to close the connection.
        reused: it served a request before the current one.
        silent: no byte of the current response has arrived yet.
        idle_since: ``trio.current_time()`` when it was last put in the idle stack.
    """

    __slots__ = ("closing", "idle_since", "parser", "reused", "silent", "slot", "stream")

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.parser: ResponseParser | None = None
        self.closing = False
        self.reused = False
        self.silent = True
        self.idle_since = 0.0
        #: The pool slot the current request holds (its borrower token); None while idle.
        self.slot: object | None = None

    def reusable(self) -> bool:
        """Whether the last exchange ended cleanly, so the connection may serve another.

        Clean: the response parsed to its end (not to the server's close), neither side asked
        to close (``Connection: close``, HTTP/1.0), and nothing arrived past the response's end.
        """
        return not self.closing and self.parser is not None and self.parser.reusable

    def close(self) -> None:
        """Close the socket. Synchronous: it never blocks, so it also runs while cancelled."""
        self.stream.socket.close()


def _tokens(max_connections: int | None) -> float:
    return math.inf if max_connections is None else max_connections


def _ip_family(host: str) -> socket.AddressFamily | None:
    """The address family of an IP literal; None for a name (resolved at each connect)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return family
    return None


async def _open_ip_stream(family: socket.AddressFamily, host: str, port: int) -> trio.SocketStream:
    """Connect to an IP literal: one socket, one ``connect``, no resolver and no task of its own
    (``trio.open_tcp_stream`` runs its happy-eyeballs attempts in a nursery even for one address).
    """
    sock = trio.socket.socket(family, socket.SOCK_STREAM)
    try:
        await sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock)


def _connect_failure(exc: OSError) -> str:
    """Why a connect failed, without the address (trio groups one error per address tried)."""
    cause = exc.__cause__
    if isinstance(cause, ExceptionGroup):
        reasons = {e.strerror for e in cause.exceptions if isinstance(e, OSError) and e.strerror}
        if reasons:
            return f"Connection failed: {', '.join(sorted(reasons))}."
    return f"Connection failed: {exc.strerror or type(exc).__name__}."


class HostPool:
    """The connections to one ``(scheme, host, port)`` for one pool name (a backend).

    Every connection in use holds one of ``max_connections`` slots (None: no limit). A request
    first takes a slot, then the most recently used idle connection that passes the reuse
    check, or else a new connection. Connections are opened only when no idle one is left, so
    open (idle plus in use) never exceeds the number of slots. The limit can change while
    requests hold slots (:meth:`resize`): a larger one admits waiters at once, a smaller one
    admits none until enough slots came back.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        max_connections: int | None,
        max_idle: int,
        keepalive_expiry: float,
    ) -> None:
        self._host = host
        self._port = port
        self._family = _ip_family(host)
        self._max_idle = max_idle
        self._keepalive_expiry = keepalive_expiry
        self._slots = trio.CapacityLimiter(_tokens(max_connections))
        self._idle: deque[Connection] = deque()
        self._open: set[Connection] = set()
        self._closed = False

    @property
    def max_connections(self) -> int | None:
        tokens = self._slots.total_tokens
        return None if math.isinf(tokens) else int(tokens)

    def resize(self, max_connections: int | None) -> None:
        """Change the number of slots (a reload changed the backend's limit)."""
        self._slots.total_tokens = _tokens(max_connections)

    async def acquire(
        self,
        *,
        connect_timeout: float | None,
        pool_timeout: float | None,
        on_slot: Callable[[], object] | None = None,
    ) -> Connection:
        """Take a slot and a connection for one request; give both back with :meth:`release`.

        Blocks while every slot is in use (first come, first served), then while connecting.
        ``on_slot`` is called once the slot is taken, before any connecting: the wait for a
        slot is the caller's, what follows is the backend's (docs/proxying.md#timeouts).
        Cancellation while waiting or connecting leaves nothing held.

        Raises:
            RuntimeError: the pool was closed.
            httpx.PoolTimeout: no slot freed within ``pool_timeout`` seconds.
            httpx.ConnectTimeout: the TCP connect took longer than ``connect_timeout`` seconds.
            httpx.ConnectError: the TCP connect failed.
        """
        slot = object()
        try:
            self._slots.acquire_on_behalf_of_nowait(slot)
        except trio.WouldBlock:
            try:
                with trio.fail_after(math.inf if pool_timeout is None else pool_timeout):
                    await self._slots.acquire_on_behalf_of(slot)
            except trio.TooSlowError as exc:
                raise httpx.PoolTimeout("Timed out waiting for a free connection.") from exc
        if self._closed:
            self._slots.release_on_behalf_of(slot)
            raise RuntimeError("The transport is closed.")
        if on_slot is not None:
            on_slot()
        connection = self.take_idle(trio.current_time())
        if connection is None:
            connected = False
            try:
                with trio.fail_after(math.inf if connect_timeout is None else connect_timeout):
                    connection = await self._connect()
                connected = True
            except trio.TooSlowError as exc:
                raise httpx.ConnectTimeout("Timed out connecting.") from exc
            finally:
                if not connected:
                    self._slots.release_on_behalf_of(slot)
            self._open.add(connection)
        connection.slot = slot
        return connection

    async def _connect(self) -> Connection:
        try:
            if self._family is None:
                stream = await trio.open_tcp_stream(self._host, self._port)
            else:
                stream = await _open_ip_stream(self._family, self._host, self._port)
        except OSError as exc:
            raise httpx.ConnectError(_connect_failure(exc)) from exc
        return Connection(stream)

    def take_idle(self, now: float) -> Connection | None:
        """Pop the newest idle connection still fit for reuse; close the unfit ones on the way.

        Unfit: idle for longer than the keep-alive expiry, or readable while idle — the server
        closed or reset it, or sent bytes nobody asked for.
        """
        idle = self._idle
        while idle:
            connection = idle.pop()
            if now - connection.idle_since <= self._keepalive_expiry and not (
                connection.stream.socket.is_readable()
            ):
                return connection
            self._discard(connection)
        return None

    def release(self, connection: Connection, *, keep: bool) -> None:
        """Give back a connection and its slot; keep it idle if ``keep`` and there is room.

        ``keep`` must only be true when :meth:`Connection.reusable` says so. The
        oldest idle connections are closed first: the expired ones, then one if the stack is full.
        """
        if keep and not self._closed and self._max_idle:
            now = trio.current_time()
            idle = self._idle
            while idle and (
                len(idle) >= self._max_idle or now - idle[0].idle_since > self._keepalive_expiry
            ):
                self._discard(idle.popleft())
            connection.reused = True
            connection.idle_since = now
            idle.append(connection)
        else:
            self._discard(connection)
        slot, connection.slot = connection.slot, None
        self._slots.release_on_behalf_of(slot)

    def close(self) -> None:
        """Close every connection, idle or in use; later acquires raise ``RuntimeError``."""
        self._closed = True
        self._idle.clear()
        for connection in self._open:
            connection.close()
        self._open.clear()

    def _discard(self, connection: Connection) -> None:
        connection.close()
        self._open.discard(connection)
