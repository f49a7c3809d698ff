"""The HTTP front end services: the app served by hypercorn's trio worker, on the public
listener and, with ``[admin] listen``, on the admin one (docs/operations.md#admin-listener)."""

from __future__ import annotations

import logging
import socket

import hypercorn.trio
import trio
from hypercorn.config import Config as HypercornConfig

from nexus_trio.asgi.listener import ASGIApp, Listener, ListenerApp
from nexus_trio.drain import Drain
from nexus_trio.errors import ListenError
from nexus_trio.gateway.generation import Generations

#: Hypercorn's own drain bound: ours plus a margin, so the relays end streams first (traps).
_GRACE_MARGIN_SECONDS = 2.0


def bind_listener(
    host: str, port: int, *, reuse_port: bool, stall_timeout_seconds: float
) -> socket.socket:
    """Create and bind the listening socket ourselves (docs/operations.md#scaling-out).

    Hypercorn sets ``SO_REUSEPORT`` only in its multi-worker mode, so the daemon binds the
    socket and hands hypercorn its descriptor (``fd://N``). Every accepted connection inherits
    the listener's ``TCP_USER_TIMEOUT``: the kernel closes a connection whose sent bytes stay
    unacknowledged for ``stall_timeout_seconds`` (a client that stopped reading, or vanished),
    which fails the send waiting on it (docs/proxying.md#timeouts).

    Raises:
        ListenError: the address cannot be bound (in use, not local, no permission).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, round(stall_timeout_seconds * 1000)
        )
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


class FrontEnd:
    """Serves the app on one address until the drain completes: ``server.host:server.port``
    (with ``server.reuse_port``), or the admin listener's ``address``."""

    def __init__(
        self,
        app: ASGIApp,
        generations: Generations,
        drain: Drain,
        *,
        address: tuple[str, int] | None = None,
    ) -> None:
        self.app = app
        self._generations = generations
        self._drain = drain
        self._address = address
        self.stopped = trio.Event()

    def hypercorn_config(self, listener: socket.socket) -> HypercornConfig:
        server = self._generations.current.config.server
        config = HypercornConfig()
        config.bind = [f"fd://{listener.detach()}"]
        config.keep_alive_timeout = server.keep_alive_timeout_seconds
        config.graceful_timeout = server.drain_timeout_seconds + _GRACE_MARGIN_SECONDS
        # A burst of as many connections as requests may be in flight is queued, not dropped
        # (the kernel caps the backlog at net.core.somaxconn).
        config.backlog = min(max(server.max_in_flight_requests, 1024), 65535)
        config.accesslog = None
        config.errorlog = logging.getLogger("hypercorn.error")
        return config

    async def run(
        self, *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Bind, report the bound URLs, serve; return once hypercorn finished draining.

        Raises :class:`ListenError` before ``started()`` if the address cannot be bound.

        The listener closes when the drain reaches :meth:`Drain.close_listener`; in-flight
        connections then have ``drain_timeout_seconds`` (plus a margin) to finish.
        """
        server = self._generations.current.config.server
        host, port, reuse_port = (
            (server.host, server.port, server.reuse_port)
            if self._address is None
            else (*self._address, False)
        )
        listener = bind_listener(
            host,
            port,
            reuse_port=reuse_port,
            stall_timeout_seconds=server.client_stall_timeout_seconds,
        )
        try:
            await hypercorn.trio.serve(
                self.app,
                self.hypercorn_config(listener),
                shutdown_trigger=self._drain.wait_listener_closed,
                task_status=task_status,
                mode="asgi",
            )
        finally:
            self.stopped.set()


def front_ends(
    app: ASGIApp,
    generations: Generations,
    drain: Drain,
    admin: tuple[str, int] | None,
    *,
    admin_only: bool,
) -> tuple[FrontEnd, FrontEnd | None]:
    """The public front end and, at ``admin``'s address, the admin one: one app, each listener
    marking its requests (docs/operations.md#admin-listener); only the public one runs the
    app's lifespan, so start it first."""
    if admin is None:
        return FrontEnd(app, generations, drain), None
    public = ListenerApp(app, Listener.PUBLIC if admin_only else Listener.SHARED, lifespan=True)
    admin_app = ListenerApp(app, Listener.ADMIN, lifespan=False)
    return (
        FrontEnd(public, generations, drain),
        FrontEnd(admin_app, generations, drain, address=admin),
    )
