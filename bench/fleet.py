"""What a fleet's shared store costs (docs/spend.md#a-fleet): one sync, and the request path.

Run as ``python bench/fleet.py [--requests 3000]`` from the work tree, in the venv, with Debian's
``redis-server`` installed (``apt-get install redis-server``). Everything runs on 127.0.0.1, on
free ports, in a temporary directory; about a minute.

1. **One sync**, in-process: :meth:`~nexus_trio.fleet.store.RedisStore.exchange` against a real
   ``redis-server``, with three other ledgers of 50 rows each in the store. ``quiet``: nothing
   owed, nothing changed (the steady state of an idle fleet: one round trip). ``busy``: this
   ledger pushes 50 rows and all three others changed since the last sync (two round trips,
   150 rows decoded). Wall and CPU µs per exchange: the CPU is what the worker thread takes
   from the process (and, briefly, from the event loop: it holds the GIL meanwhile).
2. **The request path**: ``nexus-trio serve`` (pricing and a rate-limited key, so every request
   is charged and counted) in front of ``nexus-trio simulate`` (no delay), driven by one
   sequential client, in three modes — ``alone`` (no store), ``redis up``, and ``redis
   black-holed`` (the server is SIGSTOPped: it accepts connections and answers nothing, so
   every sync waits for its timeouts). A fresh gateway per mode, 300 warm-up requests, then
   ``--requests`` timed ones; the modes run twice (A B C C B A) and the report gives each
   mode's median over its two runs: latency p50 and p99 as the client saw it, and the
   gateway's CPU µs per request (its user + system time over the timed requests, syncs
   included).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from nexus_trio.fleet.protocol import Push
from nexus_trio.fleet.store import RedisStore
from nexus_trio.spend import SpendRow

HOST = "127.0.0.1"
KEY = "bench-key"
CHAT = {"model": "bench", "messages": [{"role": "user", "content": "hello there"}]}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def accepts(port: int) -> bool:
    with socket.create_connection((HOST, port)):
        return True


def wait_for(check: Callable[[], object], what: str, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.05)
    raise SystemExit(f"bench/fleet.py: {what} did not come up")


@contextmanager
def redis_server(directory: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("bench/fleet.py needs redis-server: apt-get install redis-server")
    port = free_port()
    args = [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(
        [*args, "--dir", str(directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"redis://{HOST}:{port}/0"
    try:
        wait_for(lambda: accepts(port), "redis-server")
        yield process, url
    finally:
        process.send_signal(signal.SIGCONT)
        process.kill()
        process.wait()


def rows(prefix: str, usd: float) -> dict[tuple[str, str, str], SpendRow]:
    return {
        (f"{prefix}-{i}", "cloud", f"model-{i % 5}"): SpendRow(usd + i, i, 0.0) for i in range(50)
    }


def sync_cost(url: str, exchanges: int = 1000) -> dict[str, tuple[float, float]]:
    """Wall and CPU µs per exchange, quiet and busy."""
    others = [RedisStore(url) for _ in range(3)]
    store = RedisStore(url)
    month = "2026-01"

    def push(
        ledger: str, token: str, spend: dict[str, dict[tuple[str, str, str], SpendRow]]
    ) -> Push:
        rates = {(1, "team", "requests"): 5}
        return Push(ledger, ledger, token, month, spend, rates, windows=(0, 1))

    results: dict[str, tuple[float, float]] = {}
    for mode in ("quiet", "busy"):
        wall = cpu = 0.0
        for n in range(exchanges):
            if mode == "busy" or n == 0:
                for index, other in enumerate(others):
                    other.exchange(push(f"other-{index}", f"t{n}", {month: rows("k", n)}))
            spend = {month: rows("mine", n)} if mode == "busy" or n == 0 else {}
            started, started_cpu = time.perf_counter(), time.process_time()
            store.exchange(push("mine", f"m{n}", spend))
            if n:  # the first exchange connects
                wall += time.perf_counter() - started
                cpu += time.process_time() - started_cpu
        results[mode] = (wall / (exchanges - 1) * 1e6, cpu / (exchanges - 1) * 1e6)
    for each in (store, *others):
        each.close()
    return results


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def gateway_config(backend_port: int, state: Path, store: str | None) -> str:
    lines = [
        "[server]",
        f'host = "{HOST}"',
        "port = 0",
        "[logging]",
        'level = "warning"',
        "[health_check]",
        "enabled = false",
        "[state]",
        f'dir = "{state}"',
    ]
    if store:
        lines.append(f'store = "{store}"')
    lines += [
        "[[backends]]", 'name = "sim"', f'url = "http://{HOST}:{backend_port}"',
        'type = "generic"', 'models = ["bench"]',
        "[[pricing]]", 'backend = "sim"', "input_usd_per_million = 2.5",
        "output_usd_per_million = 10",
        "[[keys]]", 'name = "team"', 'key_env = "BENCH_KEY"',
        "requests_per_minute = 100000000", "tokens_per_minute = 1000000000",
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def request_path(
    mode: str, redis: tuple[subprocess.Popen[bytes], str], backend_port: int, work: Path, n: int
) -> tuple[float, float, float]:
    """p50 ms, p99 ms and gateway CPU µs per request of one mode."""
    process, url = redis
    state = Path(tempfile.mkdtemp(dir=work))
    config = state / "nexus.toml"
    config.write_text(gateway_config(backend_port, state, None if mode == "alone" else url))
    port = free_port()
    gateway = subprocess.Popen(
        [sys.executable, "-m", "nexus_trio", "serve", "--config", str(config), "--port", str(port)],
        env={**os.environ, "BENCH_KEY": KEY},
        stderr=subprocess.DEVNULL,
    )
    base = f"http://{HOST}:{port}"
    headers = {"authorization": f"Bearer {KEY}"}
    try:
        with httpx.Client(headers=headers, timeout=10) as client:
            wait_for(lambda: client.get(f"{base}/health/live").status_code == 200, "gateway")
            for _ in range(300):
                client.post(f"{base}/v1/chat/completions", json=CHAT).raise_for_status()
            if mode == "redis black-holed":
                process.send_signal(signal.SIGSTOP)
                wait_for(
                    lambda: not client.get(f"{base}/v1/stats").json()["spend"]["stores"]["redis"],
                    "degraded state",
                )
            latencies = []
            cpu_before = cpu_seconds(gateway.pid)
            for _ in range(n):
                started = time.perf_counter()
                client.post(f"{base}/v1/chat/completions", json=CHAT).raise_for_status()
                latencies.append(time.perf_counter() - started)
            cpu = cpu_seconds(gateway.pid) - cpu_before
    finally:
        process.send_signal(signal.SIGCONT)
        gateway.kill()
        gateway.wait()
    quantiles = statistics.quantiles(latencies, n=100)
    return quantiles[49] * 1e3, quantiles[98] * 1e3, cpu / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nexus-fleet-bench-") as tmp:
        work = Path(tmp)
        with redis_server(work) as redis:
            costs = sync_cost(redis[1])
            print("| one sync | wall µs | CPU µs |\n|---|---|---|")
            for mode, (wall, cpu) in costs.items():
                print(f"| {mode} | {wall:.0f} | {cpu:.0f} |")
            backend_port = free_port()
            backend = subprocess.Popen(
                [sys.executable, "-m", "nexus_trio", "simulate", "--port", str(backend_port),
                 "--model", "bench", "--ttft-ms", "0", "--tokens-per-second", "1000000",
                 "--completion-tokens", "5"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                wait_for(lambda: accepts(backend_port), "simulator")
                modes = ["alone", "redis up", "redis black-holed"]
                runs: dict[str, list[tuple[float, float, float]]] = {mode: [] for mode in modes}
                for mode in [*modes, *reversed(modes)]:
                    runs[mode].append(request_path(mode, redis, backend_port, work, args.requests))
            finally:
                backend.kill()
                backend.wait()
    print(f"\n| request path ({args.requests} sequential requests, median of 2 runs) "
          "| p50 ms | p99 ms | gateway CPU µs/request |\n|---|---|---|---|")  # fmt: skip
    for mode, results in runs.items():
        p50, p99, cpu = (statistics.median(column) for column in zip(*results, strict=True))
        print(f"| {mode} | {p50:.2f} | {p99:.2f} | {cpu:.0f} |")


if __name__ == "__main__":
    main()
