"""Soak: mixed traffic for a long time, one backend flapping; RSS, fds and in-flight stay flat.

Run: ``python -m bench.soak --minutes 30`` (prints one row per minute and a verdict).
A 60-second version runs in the test suite (``tests/system/test_soak.py``).

The soak starts two simulated backends in this process (``steady`` and ``flappy``), a real
``nexus-trio serve`` subprocess in front of them (health checks every second), and a bounded
number of concurrent clients sending a mix of streaming and non-streaming chat requests until
the time is up. ``flappy`` is stopped for the first half of every flap period and restarted
on the same port for the second half, so the gateway keeps marking it unhealthy and healthy
again and retries around it. Every report period the gateway's RSS (``/proc/<pid>/status``),
open file descriptors (``/proc/<pid>/fd``) and in-flight count (``/health``) are sampled.
Only loopback addresses are used; everything stops by itself.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import trio

from nexus_trio.simulator import SimulatedBackend, SimulatorOptions

JSON_HEADERS = {"content-type": "application/json"}

CHAT = b'{"model": "soak", "messages": [{"role": "user", "content": "hello there"}]}'
STREAM = b'{"model": "soak", "stream": true, "messages": [{"role": "user", "content": "hi"}]}'


@dataclass(frozen=True)
class Row:
    elapsed_s: int
    rss_mb: float
    open_fds: int
    in_flight: int
    requests: int
    non_2xx: int
    flappy_up: bool


@dataclass
class SoakReport:
    rows: list[Row] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    in_flight_after: int = -1
    fds_after: int = -1


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class _Flapper:
    """Runs a simulator that can be stopped and restarted on the same port."""

    def __init__(self, nursery: trio.Nursery, options: SimulatorOptions) -> None:
        self.nursery = nursery
        self.options = options
        self.scope = trio.CancelScope()
        self.stopped = trio.Event()
        self.up = False

    async def start(self) -> int:
        self.scope = trio.CancelScope()
        self.stopped = trio.Event()
        port: int = await self.nursery.start(self._run)
        self.options.port = port
        self.up = True
        return port

    async def stop(self) -> None:
        self.scope.cancel()
        await self.stopped.wait()
        self.up = False

    async def _run(self, *, task_status: trio.TaskStatus[int]) -> None:
        try:
            with self.scope:
                await SimulatedBackend(self.options).run(task_status=task_status)
        finally:
            self.stopped.set()


def _config(port: int, steady_port: int, flappy_port: int) -> str:
    return f"""
[server]
host = "127.0.0.1"
port = {port}
[logging]
level = "warning"
[health_check]
interval_seconds = 1
timeout_seconds = 1
failure_threshold = 1
recovery_threshold = 1
[quality]
probe_interval_seconds = 5
[[backends]]
name = "steady"
url = "http://127.0.0.1:{steady_port}"
type = "generic"
models = ["soak"]
[[backends]]
name = "flappy"
url = "http://127.0.0.1:{flappy_port}"
type = "generic"
priority = 10
models = ["soak"]
"""


async def _client(url: str, until: float, report: SoakReport, index: int) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        sent = 0
        while trio.current_time() < until:
            body = STREAM if (sent + index) % 2 else CHAT
            try:
                response = await client.post(
                    f"{url}/v1/chat/completions", content=body, headers=JSON_HEADERS
                )
                if response.status_code != 200:
                    report.statuses[str(response.status_code)] += 1
                elif b"stream_truncated" in response.content:
                    # a stream committed to ``flappy`` when it was stopped: honest truncation
                    report.statuses["truncated"] += 1
                else:
                    report.statuses["2xx"] += 1
            except httpx.HTTPError as exc:
                report.statuses[type(exc).__name__] += 1
            sent += 1


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _wait_live(url: str) -> None:
    """Poll ``/health/live`` until the gateway answers (the caller bounds the wait)."""
    async with httpx.AsyncClient() as client:
        while True:
            try:
                if (await client.get(f"{url}/health/live")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await trio.sleep(0.05)


async def run_soak(
    *,
    seconds: float,
    report_every: float,
    flap_period: float,
    concurrency: int = 8,
    on_row: object = None,
) -> SoakReport:
    """Soak a gateway for ``seconds``; one :class:`Row` every ``report_every`` seconds."""
    report = SoakReport()
    async with trio.open_nursery() as nursery:
        steady = _Flapper(
            nursery,
            SimulatorOptions(
                name="steady",
                models=("soak",),
                ttft_ms=20,
                tokens_per_second=200,
                completion_tokens=10,
            ),
        )
        flappy = _Flapper(
            nursery,
            SimulatorOptions(
                name="flappy",
                models=("soak",),
                ttft_ms=10,
                tokens_per_second=400,
                completion_tokens=10,
            ),
        )
        steady_port = await steady.start()
        flappy_port = await flappy.start()
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "soak.toml"
            port = _free_port()
            config.write_text(_config(port, steady_port, flappy_port))
            process = await trio.lowlevel.open_process(
                [sys.executable, "-m", "nexus_trio", "serve", "--config", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            url = f"http://127.0.0.1:{port}"
            with trio.fail_after(15):
                await _wait_live(url)
            start = trio.current_time()
            until = start + seconds
            async with trio.open_nursery() as load:
                for index in range(concurrency):
                    load.start_soon(_client, url, until, report, index)
                async with httpx.AsyncClient() as probe:
                    tick = 0
                    while trio.current_time() < until:
                        tick += 1
                        next_report = start + tick * report_every
                        while trio.current_time() < min(next_report, until):
                            phase = (trio.current_time() - start) % flap_period
                            if phase < flap_period / 2 and flappy.up:
                                await flappy.stop()
                            elif phase >= flap_period / 2 and not flappy.up:
                                await flappy.start()
                            await trio.sleep(min(1.0, max(next_report - trio.current_time(), 0)))
                        health = (await probe.get(f"{url}/health")).json()
                        row = Row(
                            elapsed_s=round(trio.current_time() - start),
                            rss_mb=round(_rss_mb(process.pid), 1),
                            open_fds=_open_fds(process.pid),
                            in_flight=health["in_flight_requests"],
                            requests=sum(report.statuses.values()),
                            non_2xx=sum(v for k, v in report.statuses.items() if k != "2xx"),
                            flappy_up=flappy.up,
                        )
                        report.rows.append(row)
                        if callable(on_row):
                            on_row(row)
            async with httpx.AsyncClient() as probe:
                report.in_flight_after = (await probe.get(f"{url}/health")).json()[
                    "in_flight_requests"
                ]
            report.fds_after = _open_fds(process.pid)
            process.terminate()
            with trio.fail_after(40):
                await process.wait()
        nursery.cancel_scope.cancel()
    return report


def _print_row(row: object) -> None:
    assert isinstance(row, Row)
    print(
        f"| {row.elapsed_s:>6} | {row.rss_mb:>7.1f} | {row.open_fds:>4} | {row.in_flight:>9} "
        f"| {row.requests:>8} | {row.non_2xx:>7} | {'up' if row.flappy_up else 'down':>6} |",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--report-seconds", type=float, default=60.0)
    parser.add_argument("--flap-seconds", type=float, default=60.0)
    args = parser.parse_args()
    print("| time s | RSS MiB |  fds | in flight | requests | non-2xx | flappy |")
    print("|-------:|--------:|-----:|----------:|---------:|--------:|-------:|")
    report = trio.run(
        lambda: run_soak(
            seconds=args.minutes * 60,
            report_every=args.report_seconds,
            flap_period=args.flap_seconds,
            on_row=_print_row,
        )
    )
    first, last = report.rows[1] if len(report.rows) > 1 else report.rows[0], report.rows[-1]
    print(f"\nstatuses: {dict(report.statuses)}")
    print(
        f"RSS growth after warm-up: {last.rss_mb - first.rss_mb:+.1f} MiB; "
        f"fds {first.open_fds} -> {last.open_fds}; in flight after load: "
        f"{report.in_flight_after}; fds after load: {report.fds_after}"
    )


if __name__ == "__main__":
    main()
