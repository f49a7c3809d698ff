"""A real ``redis-server`` for the fleet tests, on a free 127.0.0.1 port in a temporary directory.

It comes from Debian's ``redis-server`` package (``.ci/run`` installs it). Without it the tests
skip, saying so — except under CI (``CI`` set), where a missing server fails them. The server
runs without persistence (``--save '' --appendonly no``): killing it loses everything it held,
which is what the outage test wants. :meth:`RedisServer.kill` is ``kill -9``;
:meth:`RedisServer.start` (again) binds the same port.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
import trio

from nexus_trio.fleet.protocol import decode_rows, spend_key, versions_key
from nexus_trio.spend import SpendRow
from tests.system.polling import poll


def redis_server_path() -> str:
    """The ``redis-server`` binary; skips (fails under CI) when it is missing."""
    path = shutil.which("redis-server")
    if path:
        return path
    message = "redis-server is missing (apt-get install redis-server)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}: CI must run the fleet tests")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class RedisServer:
    """One ``redis-server`` process that a test can kill and start again on the same port."""

    binary: str
    directory: Path
    port: int = field(default_factory=free_port)
    password: str | None = None
    process: trio.Process | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)

    async def start(self) -> None:
        """Start the server; returns once it answers PING."""
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = await trio.lowlevel.open_process(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

        def ping() -> bool:
            client = self.client()
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False
            finally:
                client.close()

        async def answers() -> bool:
            return await trio.to_thread.run_sync(ping)

        with trio.fail_after(10):
            await poll(answers)

    async def kill(self) -> None:
        """``kill -9``: the server and everything it held are gone."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def month_rows(self, month: str) -> dict[str, dict[tuple[str, str, str], SpendRow]]:
        """Every ledger's rows of ``month`` as the store holds them, by ledger id."""

        def read() -> dict[str, dict[tuple[str, str, str], SpendRow]]:
            client = self.client()
            try:
                ledgers = [raw.decode() for raw in client.hkeys(versions_key(month))]
                return {
                    ledger: decode_rows(client.hgetall(spend_key(month, ledger)))
                    for ledger in ledgers
                }
            finally:
                client.close()

        return await trio.to_thread.run_sync(read)

    async def month_total(self, month: str) -> SpendRow:
        """The fleet's month as the store holds it: every ledger's rows added up."""
        total = SpendRow()
        for rows in (await self.month_rows(month)).values():
            for row in rows.values():
                total.add(row.usd, row.requests, row.estimated_usd)
        return total

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            await self.kill()
