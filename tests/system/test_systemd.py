"""sd_notify to a real datagram socket from a real ``nexus-trio serve``
(docs/operations.md#systemd)."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio

from nexus_trio.simulator import SimulatedBackend
from tests.system.configs import gateway_config
from tests.system.gateway_process import GatewayFactory

pytestmark = pytest.mark.system


class NotifySocket:
    """A unix datagram socket standing in for systemd; collects every message."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_DGRAM)
        self.messages: list[tuple[float, list[str]]] = []
        self.changed = trio.Event()

    async def collect(self) -> None:
        while True:
            data = await self.sock.recv(4096)
            self.messages.append((trio.current_time(), data.decode().split("\n")))
            self.changed.set()
            self.changed = trio.Event()

    def fields(self) -> list[str]:
        return [field for _, fields in self.messages for field in fields]

    async def wait_for(self, field: str, *, after: int = 0) -> int:
        """Wait until a message at index >= ``after`` holds ``field``; return its index."""
        while True:
            for index in range(after, len(self.messages)):
                if field in self.messages[index][1]:
                    return index
            await self.changed.wait()


async def test_ready_watchdog_status_reload_and_stopping(
    start_backend: Callable[..., Awaitable[SimulatedBackend]],
    start_gateway: GatewayFactory,
    tmp_path: Path,
) -> None:
    notify = NotifySocket(tmp_path / "notify.sock")
    await notify.sock.bind(str(notify.path))
    with notify.sock:
        async with trio.open_nursery() as collecting:
            collecting.start_soon(notify.collect)
            await _scenario(notify, start_backend, start_gateway)
            collecting.cancel_scope.cancel()


async def _scenario(
    notify: NotifySocket,
    start_backend: Callable[..., Awaitable[SimulatedBackend]],
    start_gateway: GatewayFactory,
) -> None:
    backend = await start_backend(name="sim", models=("demo",))
    gateway = await start_gateway(
        gateway_config(backend),
        env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "1000000"},
    )
    with trio.fail_after(2):
        ready = await notify.wait_for("READY=1")
    assert any(f.startswith("STATUS=") for f in notify.messages[ready][1])

    window_start = trio.current_time()
    await trio.sleep(3.0)  # the behaviour under test is a rate: count pings in 3 s
    pings = [t for t, fields in notify.messages if "WATCHDOG=1" in fields and t >= window_start]
    assert len(pings) >= 4, pings
    assert any(f.startswith("STATUS=") and "backend(s) healthy" in f for f in notify.fields())

    gateway.send_signal(signal.SIGHUP)
    with trio.fail_after(2):
        reloading = await notify.wait_for("RELOADING=1", after=ready + 1)
        assert any(f.startswith("MONOTONIC_USEC=") for f in notify.messages[reloading][1])
        await notify.wait_for("READY=1", after=reloading + 1)

    gateway.send_signal(signal.SIGTERM)
    with trio.fail_after(2):
        stopping = await notify.wait_for("STOPPING=1", after=reloading + 1)
    assert any(f.startswith("EXTEND_TIMEOUT_USEC=") for f in notify.messages[stopping][1])
    with trio.fail_after(5):
        assert await gateway.wait_exit() == 0


async def test_abstract_namespace_socket(
    start_backend: Callable[..., Awaitable[SimulatedBackend]],
    start_gateway: GatewayFactory,
) -> None:
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_DGRAM)
    name = f"nexus-trio-test-{id(sock)}"
    await sock.bind(b"\0" + name.encode())
    backend = await start_backend(name="sim", models=("demo",))
    await start_gateway(gateway_config(backend), env={"NOTIFY_SOCKET": f"@{name}"})
    with sock, trio.fail_after(2):
        while b"READY=1" not in (await sock.recv(4096)).split(b"\n"):
            pass
