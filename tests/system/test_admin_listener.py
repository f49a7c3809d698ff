"""The admin listener (docs/operations.md#admin-listener): instances sharing one public port,
each with its own admin port, scraped there by a real Prometheus."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
import trio

from nexus_trio.simulator import SimulatedBackend
from tests.system.configs import gateway_config
from tests.system.gateway_process import GatewayFactory
from tests.system.polling import poll
from tests.system.ports import free_port
from tests.system.prometheus_server import query, running_prometheus

pytestmark = pytest.mark.system

JSON_HEADERS = {"content-type": "application/json"}
CHAT = b'{"model": "demo", "messages": [{"role": "user", "content": "hi"}]}'
REQUESTS = 60


def consecutive_free_ports(count: int) -> int:
    """The first of ``count`` consecutive loopback ports that are free now."""
    while True:
        first = free_port()
        probes = [socket.socket() for _ in range(count - 1)]
        try:
            for offset, probe in enumerate(probes, start=1):
                probe.bind(("127.0.0.1", first + offset))
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
        return first


async def _send_traffic(url: str) -> None:
    """``REQUESTS`` chat requests, each on a new connection (the kernel spreads them), in
    bursts, so Prometheus scrapes between them."""
    for burst in range(6):
        for _ in range(REQUESTS // 6):
            async with httpx.AsyncClient() as client:
                response = await client.post(
                    f"{url}/v1/chat/completions", content=CHAT, headers=JSON_HEADERS
                )
                assert response.status_code == 200
        if burst < 5:
            await trio.sleep(0.3)  # pacing the traffic for the scrapes, not synchronisation


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus absent (Debian pkg)")
async def test_each_instance_is_scraped_on_its_own_admin_port(
    start_backend: Callable[..., Awaitable[SimulatedBackend]],
    start_gateway: GatewayFactory,
    tmp_path: Path,
) -> None:
    backend = await start_backend(name="sim", models=("demo",), ttft_ms=1, tokens_per_second=0)
    port = free_port()
    base = consecutive_free_ports(2) - 1  # NEXUS_INSTANCE 1 and 2: base + 1, base + 2
    config = gateway_config(
        backend,
        server="reuse_port = true",
        extra=f'[admin]\nlisten = "127.0.0.1:{base}"\nport_offset_env = "NEXUS_INSTANCE"\n'
        "only = true\n",
    ).replace("port = 0", f"port = {port}")
    for instance in ("1", "2"):
        await start_gateway(config, env={"NEXUS_INSTANCE": instance})
    admins = [f"127.0.0.1:{base + 1}", f"127.0.0.1:{base + 2}"]
    async with httpx.AsyncClient() as client:
        public = await client.get(f"http://127.0.0.1:{port}/metrics")
        assert public.status_code == 404  # [admin] only = true
        assert (await client.get(f"http://{admins[0]}/v1/models")).status_code == 404
    async with running_prometheus(admins, tmp_path, scrape_interval="200ms") as prometheus:
        await _send_traffic(f"http://127.0.0.1:{port}")
        totals: dict[str, float] = {}

        async def scraped_everything() -> bool:
            result = await query(prometheus, "sum by (instance) (nexus_requests_total)")
            totals.clear()
            totals.update({r["metric"]["instance"]: float(r["value"][1]) for r in result or ()})
            return sum(totals.values()) == REQUESTS

        with trio.fail_after(20):
            await poll(scraped_everything)
        samples = await query(prometheus, "nexus_requests_total[5m]")
    assert set(totals) == set(admins)
    assert all(total > 0 for total in totals.values()), totals  # both instances served
    assert samples
    for series in samples:
        values = [float(value) for _, value in series["values"]]
        assert values == sorted(values), series["metric"]  # no counter reset


async def test_status_reads_the_admin_listener_and_sigterm_closes_both(
    start_backend: Callable[..., Awaitable[SimulatedBackend]],
    start_gateway: GatewayFactory,
) -> None:
    backend = await start_backend(name="sim", models=("demo",))
    admin_port = free_port()
    extra = f'[admin]\nlisten = "127.0.0.1:{admin_port}"\nonly = true\n'
    gateway = await start_gateway(gateway_config(backend, extra=extra))
    assert f"admin listener on http://127.0.0.1:{admin_port}" in gateway.log_text()
    command = [sys.executable, "-m", "nexus_trio", "status", "--url"]
    admin = await trio.run_process(
        [*command, f"http://127.0.0.1:{admin_port}"], capture_stdout=True, check=False
    )
    assert admin.returncode == 0
    assert b"sim" in admin.stdout
    public = await trio.run_process(
        [*command, gateway.url], capture_stderr=True, check=False, stdout=subprocess.DEVNULL
    )
    assert public.returncode == 1
    assert b"[admin] only" in public.stderr
    gateway.send_signal(signal.SIGTERM)  # the drain closes both listeners; the process exits
    with trio.fail_after(10):
        assert await gateway.wait_exit() == 0
