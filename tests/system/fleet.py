"""A fleet of simulated backends that tests can kill and bring back, and a gateway config for it.

Each backend runs under its own cancel scope inside the test's nursery: :meth:`Fleet.kill`
cancels it (the listener and every connection close, so the port refuses connections, as a
crashed server does) and :meth:`Fleet.restart` binds a new simulator on the same port with the
same (mutable) options.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

from nexus_trio.simulator import SimulatedBackend, SimulatorOptions

#: Health checks fast enough for tests: a dead backend is unhealthy within about a second.
FAST_HEALTH = """[health_check]
interval_seconds = 0.5
timeout_seconds = 0.5
failure_threshold = 2
recovery_threshold = 2
# a backend that quality tracking ejected during an outage is probed again quickly
[quality]
probe_interval_seconds = 0.5
"""


@dataclass
class _Member:
    backend: SimulatedBackend
    scope: trio.CancelScope
    stopped: trio.Event


@dataclass
class Fleet:
    """Simulated backends by name, started in ``nursery``."""

    nursery: trio.Nursery
    members: dict[str, _Member] = field(default_factory=dict)
    #: Extra lines of each backend's ``[[backends]]`` entry (``priority = 10``, ...).
    settings: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> SimulatedBackend:
        return self.members[name].backend

    async def start(self, name: str, settings: str = "", **options: object) -> SimulatedBackend:
        """Start a simulator called ``name``; ``settings`` go into its gateway config entry."""
        self.settings[name] = settings
        return await self._launch(SimulatedBackend(SimulatorOptions(name=name, **options)))  # type: ignore[arg-type]

    async def kill(self, name: str) -> None:
        """Stop the simulator; returns once its port refuses connections."""
        member = self.members[name]
        member.scope.cancel()
        await member.stopped.wait()

    async def restart(self, name: str) -> SimulatedBackend:
        """Bind a new simulator on the killed one's port, with the same options object."""
        old = self.members[name].backend
        old.options.port = old.port
        return await self._launch(SimulatedBackend(old.options))

    async def _launch(self, backend: SimulatedBackend) -> SimulatedBackend:
        member = _Member(backend, trio.CancelScope(), trio.Event())
        self.members[backend.options.name] = member
        await self.nursery.start(self._run, member)
        return backend

    @staticmethod
    async def _run(member: _Member, *, task_status: trio.TaskStatus[int]) -> None:
        try:
            with member.scope:
                await member.backend.run(task_status=task_status)
        finally:
            member.stopped.set()

    def gateway_config(
        self, *, server: str = "", extra: str = "", health: str = FAST_HEALTH
    ) -> str:
        """A gateway config on a free port serving every member's models."""
        lines = ["[server]", 'host = "127.0.0.1"', "port = 0", server, "", extra, "", health]
        for name, member in self.members.items():
            models = ", ".join(f'"{m}"' for m in member.backend.options.models)
            lines += [
                "[[backends]]",
                f'name = "{name}"',
                f'url = "http://127.0.0.1:{member.backend.port}"',
                'type = "generic"',
                f"models = [{models}]",
                self.settings[name],
                "",
            ]
        return "\n".join(lines)
