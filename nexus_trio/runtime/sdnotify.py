"""systemd's notify protocol, written directly (docs/operations.md#systemd).

Theory of operation. systemd passes ``NOTIFY_SOCKET`` (a filesystem path, or ``@name`` for
the abstract namespace) to a ``Type=notify`` service; the service sends newline-separated
``KEY=VALUE`` datagrams to it: ``READY=1`` once it serves, ``STATUS=…`` for ``systemctl
status``, ``WATCHDOG=1`` at least every ``WATCHDOG_USEC``, ``RELOADING=1`` with
``MONOTONIC_USEC=`` before a reload and ``READY=1`` after, ``STOPPING=1`` (with
``EXTEND_TIMEOUT_USEC=``) when it starts to stop. Sending a datagram to a local socket does not
block, so :meth:`Notifier.notify` is a plain function; a failure to send is logged, never
raised. Without ``NOTIFY_SOCKET`` every method is a no-op.

The watchdog ping comes from a task of the event loop every ``WATCHDOG_USEC / 2``, so a loop
that stops running gets the service restarted. It is honoured only when ``WATCHDOG_PID`` is
unset or names this process.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

import trio

log = logging.getLogger("nexus_trio.sdnotify")

#: How often ``STATUS=`` is refreshed (docs/operations.md#systemd).
STATUS_INTERVAL_SECONDS = 5.0


def _address(value: str) -> str | bytes:
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


def _watchdog_seconds(env: Mapping[str, str]) -> float | None:
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 1_000_000


class Notifier:
    """Talks to systemd through ``NOTIFY_SOCKET`` (a no-op when it is not set)."""

    def __init__(self, env: Mapping[str, str], status: Callable[[], str]) -> None:
        """Read ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID`` from ``env``.

        Args:
            env: The process environment.
            status: Returns the current ``STATUS=`` text.
        """
        socket_path = env.get("NOTIFY_SOCKET", "")
        self._address = _address(socket_path) if socket_path else None
        self._watchdog = _watchdog_seconds(env) if socket_path else None
        self._status = status
        self._socket: socket.socket | None = None
        if self._address is not None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.setblocking(False)

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def notify(self, *fields: str) -> None:
        """Send one datagram of ``KEY=VALUE`` fields; failures are logged, not raised."""
        if self._socket is None or self._address is None:
            return
        try:
            self._socket.sendto("\n".join(fields).encode(), self._address)
        except OSError as exc:
            log.warning("sd_notify failed: %s", exc)

    def ready(self) -> None:
        self.notify("READY=1", f"STATUS={self._status()}")

    def reloading(self) -> None:
        monotonic_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.notify("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec}")

    def stopping(self, budget_seconds: float) -> None:
        """``STOPPING=1`` and ask systemd for ``budget_seconds`` + 5 s to finish."""
        extend = int((budget_seconds + 5.0) * 1_000_000)
        self.notify("STOPPING=1", f"EXTEND_TIMEOUT_USEC={extend}", "STATUS=draining")

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Send ``WATCHDOG=1`` every ``WATCHDOG_USEC / 2`` and ``STATUS=`` every 5 s.

        Reports started at once; runs until cancelled (returns at once when disabled).
        """
        task_status.started()
        if not self.enabled:
            return
        async with trio.open_nursery() as nursery:
            if self._watchdog is not None:
                nursery.start_soon(self._every, self._watchdog / 2, lambda: ("WATCHDOG=1",))
            nursery.start_soon(
                self._every, STATUS_INTERVAL_SECONDS, lambda: (f"STATUS={self._status()}",)
            )

    async def _every(self, period: float, fields: Callable[[], tuple[str, ...]]) -> None:
        start = trio.current_time()
        tick = 0
        while True:
            self.notify(*fields())
            tick += 1
            await trio.sleep_until(start + tick * period)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
