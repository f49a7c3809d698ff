"""The HTTP front end service: the app served by hypercorn's trio worker."""

from __future__ import annotations

import logging

import hypercorn.trio
import trio
from hypercorn.config import Config as HypercornConfig

from nexus_trio.api.app import create_app
from nexus_trio.services import Services

#: Hypercorn's own drain bound: ours plus a margin, so the relays end streams first (traps).
_GRACE_MARGIN_SECONDS = 2.0


class FrontEnd:
    """Serves the gateway on ``server.host:server.port`` until the drain completes."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.stopped = trio.Event()

    def hypercorn_config(self) -> HypercornConfig:
        server = self.services.config.server
        config = HypercornConfig()
        host = f"[{server.host}]" if ":" in server.host else server.host
        config.bind = [f"{host}:{server.port}"]
        config.keep_alive_timeout = server.keep_alive_timeout_seconds
        config.graceful_timeout = server.drain_timeout_seconds + _GRACE_MARGIN_SECONDS
        config.backlog = 1024
        config.accesslog = None
        config.errorlog = logging.getLogger("hypercorn.error")
        return config

    async def run(
        self, *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Bind, report the bound URLs, serve; return once hypercorn finished draining.

        The listener closes when the drain reaches :meth:`Drain.close_listener`; in-flight
        connections then have ``drain_timeout_seconds`` (plus a margin) to finish.
        """
        try:
            await hypercorn.trio.serve(
                create_app(self.services),
                self.hypercorn_config(),
                shutdown_trigger=self.services.drain.wait_listener_closed,
                task_status=task_status,
                mode="asgi",
            )
        finally:
            self.stopped.set()
