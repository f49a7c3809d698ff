"""A real Prometheus server (Debian's ``prometheus``) scraping given targets, and its query API."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio

from tests.system.ports import free_port


@asynccontextmanager
async def running_prometheus(
    targets: Sequence[str], directory: Path, *, scrape_interval: str = "1s"
) -> AsyncIterator[httpx.AsyncClient]:
    """Prometheus scraping ``targets`` (``host:port``) as job ``nexus``; yields a client of its
    HTTP API (it may not answer yet: see :func:`query`). Stopped on exit."""
    port = free_port()
    config = directory / "prometheus.yml"
    listed = ", ".join(f"'{target}'" for target in targets)
    config.write_text(
        f"global:\n  scrape_interval: {scrape_interval}\n"
        "scrape_configs:\n  - job_name: nexus\n"
        f"    static_configs:\n      - targets: [{listed}]\n"
    )
    process = await trio.lowlevel.open_process(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={directory / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            yield client
    finally:
        process.terminate()
        with trio.move_on_after(5):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()


async def query(client: httpx.AsyncClient, promql: str) -> list[dict[str, Any]] | None:
    """The result of an instant query; None while Prometheus is not answering yet."""
    try:
        response = await client.get("/api/v1/query", params={"query": promql})
    except httpx.TransportError:
        return None  # not listening yet
    if response.status_code != 200:
        return None  # still starting
    result: list[dict[str, Any]] = response.json().get("data", {}).get("result", [])
    return result
