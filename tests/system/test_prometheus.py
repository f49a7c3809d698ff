"""``/metrics`` against the real Prometheus tools (docs/metrics.md#metrics): promtool and a scraping
server."""

from __future__ import annotations

import shutil
import subprocess
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

JSON_HEADERS = {"content-type": "application/json"}

pytestmark = pytest.mark.system

CHAT = b'{"model": "demo", "messages": [{"role": "user", "content": "hi"}]}'
STREAM = b'{"model": "demo", "stream": true, "messages": [{"role": "user", "content": "hi"}]}'


async def _traffic(url: str) -> str:
    async with httpx.AsyncClient() as client:
        for body in (CHAT, STREAM, b"{broken", CHAT):
            await client.post(f"{url}/v1/chat/completions", content=body, headers=JSON_HEADERS)
        await client.post(
            f"{url}/v1/chat/completions",
            content=CHAT.replace(b"demo", b"nope"),
            headers=JSON_HEADERS,
        )
        return (await client.get(f"{url}/metrics")).text


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool absent (Debian: prometheus)")
async def test_promtool_accepts_the_exposition(
    start_backend: Callable[..., Awaitable[SimulatedBackend]],
    start_gateway: GatewayFactory,
) -> None:
    backend = await start_backend(name="sim", models=("demo",), ttft_ms=1, tokens_per_second=0)
    gateway = await start_gateway(gateway_config(backend))
    text = await _traffic(gateway.url)
    result = await trio.run_process(
        ["promtool", "check", "metrics"],
        stdin=text.encode(),
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus absent (Debian pkg)")
async def test_a_real_prometheus_scrapes_the_gateway(
    start_backend: Callable[..., Awaitable[SimulatedBackend]],
    start_gateway: GatewayFactory,
    tmp_path: Path,
) -> None:
    backend = await start_backend(name="sim", models=("demo",), ttft_ms=1, tokens_per_second=0)
    gateway = await start_gateway(gateway_config(backend))
    await _traffic(gateway.url)
    prometheus_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n  - job_name: nexus\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{gateway.port}']\n"
    )
    process = await trio.lowlevel.open_process(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        query = 'sum(nexus_requests_total{model="demo",code="2xx"})'
        values: list[float] = []
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{prometheus_port}") as client:

            async def scraped() -> bool:
                try:
                    response = await client.get("/api/v1/query", params={"query": query})
                except httpx.TransportError:
                    return False  # not listening yet
                if response.status_code != 200:
                    return False  # still starting
                result = response.json().get("data", {}).get("result", [])
                values[:] = [float(item["value"][1]) for item in result]
                return bool(values)

            with trio.fail_after(20):
                await poll(scraped)
        assert values == [3.0]
    finally:
        process.terminate()
        with trio.move_on_after(5):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()
