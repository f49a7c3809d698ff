"""The supervisor: one nursery, the start order, the drain order (docs/operations.md#runtime-shape,
docs/operations.md#drain).

Theory of operation. :meth:`Supervisor.run` owns the process tree::

    Supervisor.run
    └── nursery
        ├── signal watcher      SIGTERM/SIGINT → drain, again → force; SIGHUP → reload
        ├── health checker      first sweep done before it reports started
        ├── quality loop        recomputes agent quality every metrics_interval_seconds
        ├── notifier            systemd WATCHDOG=1 and STATUS= (READY=1 once all is up)
        ├── disconnect watcher  watches the clients of requests running over 20 ms
        ├── dashboard publisher one snapshot per second while a dashboard is connected
        ├── spend ledger        loads the month, writes spend every second and at the end
        ├── store sync          in a fleet: shares spend and rate windows through Redis
        ├── response store      writes stored responses as they finish, forgets expired ones
        ├── span export         with [tracing]: exports traced requests' spans from a thread
        ├── front end           hypercorn serving the app, until drained
        └── admin front end     with [admin] listen: the same app on the admin listener

Services start in dependency order with ``await nursery.start(...)``; each reports
``started()`` when really ready. Shutdown is a trigger plus deadlines: the first signal marks
the gateway draining, waits ``drain_delay_seconds``, then closes the listener and fixes the
drain deadline (:class:`~nexus_trio.drain.Drain`), for both listeners at once; hypercorn
returns once its connections are done; the background services are cancelled last. A second
signal cancels the whole tree at once (exit status 1).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path

import httpx
import trio

from nexus_trio.config import Config, Overrides, admin_address, config_warnings, load_config
from nexus_trio.errors import ConfigError
from nexus_trio.gateway.counts import ReloadResult
from nexus_trio.runtime import open_files
from nexus_trio.runtime.front_end import front_ends
from nexus_trio.runtime.sdnotify import Notifier
from nexus_trio.runtime.wiring import Wiring
from nexus_trio.upstream.client import upstream_http_client
from nexus_trio.upstream.tls import https_mounts
from nexus_trio.upstream.transport import KeepAliveTransport

log = logging.getLogger("nexus_trio.daemon")


#: Settings a running process cannot change (docs/configuration.md#reload).
def restart_required(old: Config, new: Config) -> list[str]:
    """Settings whose change only takes effect after a restart (docs/configuration.md#reload).

    Besides the listener and the log format, the https transports (``tls_ca_file``), whether
    health checks run, the whole ``[dashboard]`` and ``[admin]`` sections and ``[tracing]`` but
    its ``sample_ratio`` are set up at start-up.
    """
    changed = [
        key
        for key, before, after in (
            ("server.host", old.server.host, new.server.host),
            ("server.port", old.server.port, new.server.port),
            ("server.reuse_port", old.server.reuse_port, new.server.reuse_port),
            (
                "server.keep_alive_timeout_seconds",
                old.server.keep_alive_timeout_seconds,
                new.server.keep_alive_timeout_seconds,
            ),
            (
                "server.client_stall_timeout_seconds",
                old.server.client_stall_timeout_seconds,
                new.server.client_stall_timeout_seconds,
            ),
            ("logging.format", old.logging.format, new.logging.format),
            ("health_check.enabled", old.health_check.enabled, new.health_check.enabled),
            ("state.dir", old.state.dir, new.state.dir),
            ("state.store", old.state.store, new.state.store),
            (
                "state.sync_interval_seconds",
                old.state.sync_interval_seconds,
                new.state.sync_interval_seconds,
            ),
            ("spend ledger (pricing or budget)", old.keeps_spend, new.keeps_spend),
            ("tracing.otlp_endpoint", old.tracing.otlp_endpoint, new.tracing.otlp_endpoint),
            ("tracing.service_name", old.tracing.service_name, new.tracing.service_name),
            (
                "tracing.max_queued_requests",
                old.tracing.max_queued_requests,
                new.tracing.max_queued_requests,
            ),
        )
        if before != after
    ]
    changed += [
        f"{section}.{key}"
        for section in ("dashboard", "admin")
        for key in getattr(old, section).__struct_fields__
        if getattr(getattr(old, section), key) != getattr(getattr(new, section), key)
    ]
    old_ca = {b.name: b.tls_ca_file for b in old.backends}
    changed += [
        f"backends.{b.name}.tls_ca_file"
        for b in new.backends
        if b.name in old_ca and old_ca[b.name] != b.tls_ca_file
    ]
    return changed


class Supervisor:
    """Runs the gateway until it has drained (or is forced down)."""

    def __init__(
        self,
        config: Config,
        *,
        env: Mapping[str, str] | None = None,
        config_path: Path | None = None,
        overrides: Overrides | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.env = dict(os.environ if env is None else env)
        self.config_path = config_path
        self.overrides = overrides or Overrides()
        self.transport = transport
        self.forced = False
        self.open_files_limit = 0
        self.wiring: Wiring | None = None
        self.notifier = Notifier({}, str)

    async def run(
        self, *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until drained. ``task_status.started`` gets the public listener's URLs.

        Raises :class:`ConfigError` before binding anything if the admin listener's port cannot
        be resolved (docs/operations.md#admin-listener).
        """
        admin = admin_address(self.config.admin, self.env)
        self.open_files_limit = open_files.raise_soft_limit()
        open_files.warn_if_short(self.config.server.max_in_flight_requests, self.open_files_limit)
        # Plain-HTTP backends go through our keep-alive pool (the hot path); https ones
        # through httpx's own transports, verifying certificates (https_mounts).
        transport = self.transport or KeepAliveTransport()
        mounts = https_mounts(self.config.backends)
        async with upstream_http_client(transport, mounts) as http:
            wiring = self.wiring = Wiring.build(
                self.config, self.env, http, transport=transport, mounts=mounts
            )
            state = wiring.state
            self.notifier = Notifier(self.env, lambda: state.statistics().status_line())
            front_end, admin_end = front_ends(
                wiring.app(),
                wiring.generations,
                wiring.drain,
                admin,
                admin_only=self.config.admin.only,
            )
            with trio.CancelScope() as everything:
                async with trio.open_nursery() as nursery:
                    await nursery.start(self._watch_signals, wiring, everything)
                    await nursery.start(self.notifier.run)
                    for service in wiring.background_services():
                        await nursery.start(service)
                    binds = await nursery.start(front_end.run)
                    if admin_end is not None:
                        admin_binds = await nursery.start(admin_end.run)
                        log.info("admin listener on %s", ", ".join(admin_binds))
                    self.notifier.ready()
                    log.info("nexus-trio ready on %s", ", ".join(binds))
                    task_status.started(binds)
                    await front_end.stopped.wait()
                    if admin_end is not None:
                        await admin_end.stopped.wait()
                    log.info("drain complete; stopping background services")
                    nursery.cancel_scope.cancel()
            self.notifier.close()

    async def _watch_signals(
        self,
        wiring: Wiring,
        everything: trio.CancelScope,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        wanted = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        with trio.open_signal_receiver(*wanted) as signals:
            task_status.started()
            async with trio.open_nursery() as nursery:
                async for signum in signals:
                    if signum == signal.SIGHUP:
                        self.reload(wiring)
                    elif not wiring.drain.draining:
                        nursery.start_soon(self._drain, wiring)
                    else:
                        log.warning(
                            "second %s: forcing shutdown, dropping %d request(s) in flight",
                            signal.Signals(signum).name,
                            wiring.state.in_flight.count,
                        )
                        self.forced = True
                        everything.cancel()

    async def _drain(self, wiring: Wiring) -> None:
        server = wiring.config.server
        wiring.drain.request()
        self.notifier.stopping(server.drain_delay_seconds + server.drain_timeout_seconds)
        log.info("drain started: health reports draining")
        if server.drain_delay_seconds > 0:
            log.info("drain: keeping the listener open %.1f s", server.drain_delay_seconds)
            await trio.sleep(server.drain_delay_seconds)
        wiring.drain.close_listener(server.drain_timeout_seconds)
        log.info(
            "drain: listener closed; %d request(s) in flight, deadline in %.1f s",
            wiring.state.in_flight.count,
            server.drain_timeout_seconds,
        )

    def reload(self, wiring: Wiring) -> bool:
        """Re-read the config file; swap it in if valid (docs/configuration.md#reload). Returns
        success.

        Sends ``RELOADING=1`` … ``READY=1`` to systemd around it either way.
        """
        self.notifier.reloading()
        old = wiring.config
        try:
            new = load_config(self.config_path, env=self.env, overrides=self.overrides)
            wiring.apply_config(new)
        except ConfigError as exc:
            log.error("reload failed, keeping the running configuration: %s", exc)
            wiring.metrics.config_reloads.labels("error").inc()
            wiring.state.reloaded(ReloadResult(ok=False, at_wall=time.time(), error=str(exc)))
            return False
        else:
            needs_restart = restart_required(old, new)
            if needs_restart:
                log.warning("restart required for: %s", ", ".join(needs_restart))
            wiring.state.reloaded(
                ReloadResult(ok=True, at_wall=time.time(), restart_required=tuple(needs_restart))
            )
            wiring.metrics.config_reloads.labels("ok").inc()
            log.info("configuration reloaded (%d backend(s))", len(new.backends))
            for warning in config_warnings(new, self.env):
                log.warning("%s", warning)
            open_files.warn_if_short(new.server.max_in_flight_requests, self.open_files_limit)
            return True
        finally:
            self.notifier.ready()
