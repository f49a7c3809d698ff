"""Many concurrent streams through one gateway to one upstream that can hold them all.

Run as ``python bench/streams.py`` (both scenarios below, ~1 min) or one scenario with
``--streams N --ttft-ms T --events E --gap-ms G``. Everything runs on 127.0.0.1:

- upstream: ``stream_upstream.py`` (trio + h11), answering every stream with ``E`` timed
  content events, each stamped with the ``time.monotonic()`` it was written at;
- gateway: ``python -m nexus_trio serve`` with its **default** limits (one ``generic`` backend,
  health checks off, log level warning);
- clients: this process, one connection per stream (trio + h11 + the gateway's SSE parser).

On 2+ cores the gateway is pinned to the first core, the upstream and the clients to the
second. Reported per scenario: streams whole / truncated / failed; the most streams the upstream
held at once; gateway RSS per request in flight ((RSS with every stream open - RSS before) /
streams); gateway CPU seconds per 1,000 events relayed (all of its CPU over the load, accepts
and routing included); and the delay the gateway adds to each event: the gap between two
events as the client saw it minus the gap at which the upstream wrote them, p50 and p99 over
every pair of consecutive content events.

Scenarios (the defaults): ``capacity`` — 5,000 streams, first event after 15 s (every stream is
open before any event), 10 events 500 ms apart; ``rate`` — 2,000 streams x 10 events/s (60
events 100 ms apart, first after 5 s), every stream writing in the same instant (the worst
case: a burst of 2,000 events every 100 ms); ``rate-spread`` — the same with each stream's
first event a random part of a gap later (``--spread``), so events arrive spread over time as
independent streams' tokens do. Targets: 5,000 streams all whole; ≤ 40 KiB RSS per
request in flight; added per-event delay p99 ≤ 5 ms at 2,000 streams x 10 events/s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import h11
import trio

from nexus_trio.upstream.sse import SSEParser

BENCH = Path(__file__).resolve().parent
HOST = "127.0.0.1"
STAMP = re.compile(r'"t":([0-9.]+)')
BODY = json.dumps(
    {"model": "bench", "stream": True, "messages": [{"role": "user", "content": "go"}]}
).encode()


@dataclass(frozen=True)
class Scenario:
    name: str
    streams: int
    ttft_ms: float
    events: int
    gap_ms: float
    #: Each stream's first event a random part of a gap later, as independent streams are.
    spread: bool = False


SCENARIOS = (
    Scenario("capacity", 5000, 15000.0, 10, 500.0),
    Scenario("rate", 2000, 5000.0, 60, 100.0),
    Scenario("rate-spread", 2000, 5000.0, 60, 100.0, spread=True),
)


@dataclass
class Outcome:
    #: Responses whose head arrived (the no-op app sends it at once, the gateway at commit).
    heads: int = 0
    whole: int = 0
    truncated: int = 0
    failed: int = 0
    events: int = 0
    #: Added delay of each content event after the first of its stream, in seconds.
    delays: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def http_get(port: int, path: str) -> bytes:
    """One GET on a fresh connection; the whole body."""
    stream = await trio.open_tcp_stream(HOST, port)
    async with stream:
        conn = h11.Connection(h11.CLIENT)
        request = h11.Request(method="GET", target=path, headers=[("host", "bench")])
        await stream.send_all(conn.send(request) + conn.send(h11.EndOfMessage()))
        body = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                return body


async def one_stream(port: int, outcome: Outcome) -> None:
    """One streaming chat request; its events timed as they arrive."""
    try:
        stream = await trio.open_tcp_stream(HOST, port)
    except OSError as exc:
        outcome.failed += 1
        outcome.errors[type(exc).__name__] = outcome.errors.get(type(exc).__name__, 0) + 1
        return
    async with stream:
        conn = h11.Connection(h11.CLIENT)
        headers = [
            ("host", "bench"),
            ("content-type", "application/json"),
            ("content-length", str(len(BODY))),
        ]
        request = h11.Request(method="POST", target="/v1/chat/completions", headers=headers)
        parser = SSEParser()
        status = 0
        done = truncated = False
        previous: tuple[float, float] | None = None
        try:
            await stream.send_all(
                conn.send(request) + conn.send(h11.Data(data=BODY)) + conn.send(h11.EndOfMessage())
            )
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(65536))
                    continue
                if isinstance(event, h11.Response):
                    status = event.status_code
                    outcome.heads += 1
                elif isinstance(event, h11.Data):
                    now = time.monotonic()
                    for sse in parser.feed(bytes(event.data)):
                        outcome.events += 1
                        data = sse.data or ""
                        if sse.is_done:
                            done = True
                        elif "stream_truncated" in data:
                            truncated = True
                        elif '"content"' in data and (stamp := STAMP.search(data)):
                            sent = float(stamp.group(1))
                            if previous is not None:
                                outcome.delays.append((now - previous[0]) - (sent - previous[1]))
                            previous = (now, sent)
                elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    break
        except (OSError, trio.BrokenResourceError, h11.ProtocolError) as exc:
            outcome.errors[type(exc).__name__] = outcome.errors.get(type(exc).__name__, 0) + 1
    if status == 200 and done and not truncated:
        outcome.whole += 1
    elif status == 200 and truncated:
        outcome.truncated += 1
    else:
        outcome.failed += 1
        key = f"status {status}" if status != 200 else "ended without [DONE]"
        outcome.errors[key] = outcome.errors.get(key, 0) + 1


async def all_open(scenario: Scenario, outcome: Outcome, stats_port: int | None) -> None:
    """Wait until every stream is open: at the upstream, or (no-op app) its head arrived."""
    while True:
        if stats_port is None:
            opened = outcome.heads
        else:
            opened = json.loads(await http_get(stats_port, "/stats"))["open"]
        if opened >= scenario.streams:
            return
        await trio.sleep(0.05)


async def drive(
    scenario: Scenario,
    target: str,
    server: subprocess.Popen[bytes],
    port: int,
    stats_port: int | None,
) -> dict[str, str]:
    """Run one scenario's load against a running server; its report row.

    RSS and CPU are the server's (``server``); CPU counts from the moment every stream is open,
    before any event, to the end of the last stream.
    """
    outcome = Outcome()
    rss_before = rss_kib(server.pid)
    rss_full = 0
    cpu_open = client_open = 0.0
    started = time.monotonic()
    async with trio.open_nursery() as nursery:
        for _ in range(scenario.streams):
            nursery.start_soon(one_stream, port, outcome)
        with trio.move_on_after(scenario.ttft_ms / 1000.0 * 0.95):
            await all_open(scenario, outcome, stats_port)
            rss_full = rss_kib(server.pid)
            cpu_open = cpu_seconds(server.pid)
            client_open = time.process_time()
    elapsed = time.monotonic() - started
    cpu = cpu_seconds(server.pid) - cpu_open
    client_cpu = time.process_time() - client_open
    peak = "-"
    if stats_port is not None:
        peak = str(json.loads(await http_get(stats_port, "/stats"))["peak"])
    delays_ms = [d * 1000.0 for d in outcome.delays]
    per_request = (rss_full - rss_before) / scenario.streams
    return {
        "scenario": f"{scenario.name}: {scenario.streams} x {scenario.events} events / "
        f"{scenario.gap_ms:g} ms, TTFT {scenario.ttft_ms / 1000:g} s"
        + (", spread" if scenario.spread else ""),
        "target": target,
        "whole / truncated / failed": f"{outcome.whole} / {outcome.truncated} / {outcome.failed}",
        "upstream peak": peak,
        "RSS per request (KiB)": f"{per_request:.1f}" if rss_full else "not all open",
        "CPU s / 1000 events": (
            f"{cpu / (outcome.events / 1000.0):.3f}" if rss_full and outcome.events else "-"
        ),
        "added delay p50 / p99 (ms)": (
            f"{percentile(delays_ms, 0.5):.2f} / {percentile(delays_ms, 0.99):.2f}"
            if delays_ms
            else "-"
        ),
        "client CPU s": f"{client_cpu:.1f}",
        "wall s": f"{elapsed:.1f}",
        "errors": ", ".join(f"{k} x{v}" for k, v in sorted(outcome.errors.items())) or "none",
    }


def pin(cpu: int) -> None:
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {cpu})


def wait_listening(ports: list[int], log: Path) -> None:
    deadline = time.monotonic() + 30
    for port in ports:
        while True:
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit(f"a server did not start; see {log}")
                time.sleep(0.1)


@contextlib.contextmanager
def servers(
    scenario: Scenario, target: str, workdir: Path
) -> Iterator[tuple[subprocess.Popen[bytes], int, int | None]]:
    """Start what ``target`` needs; yield (server under test, its port, the stats port).

    ``gateway``: the upstream (second core) and a default gateway (first core); ``noop``: the
    no-op streaming app (first core). Everything is stopped on exit.
    """
    timing = [
        "--ttft-ms", str(scenario.ttft_ms), "--events", str(scenario.events),
        "--gap-ms", str(scenario.gap_ms),
        *(["--spread"] if scenario.spread else []),
    ]  # fmt: skip
    log_path = workdir / f"{scenario.name}-{target}.log"
    log = log_path.open("wb")
    processes: list[subprocess.Popen[bytes]] = []

    def start(command: list[str], cpu: int) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(command, stdout=log, stderr=log, preexec_fn=lambda: pin(cpu))
        processes.append(process)
        return process

    try:
        port = free_port()
        if target == "noop":
            server = start(
                [sys.executable, str(BENCH / "stream_noop_app.py"), "--port", str(port), *timing],
                0,
            )
            wait_listening([port], log_path)
            yield server, port, None
            return
        up_port = free_port()
        config = workdir / f"{scenario.name}.toml"
        config.write_text(
            f'[server]\nhost = "{HOST}"\nport = {port}\n[logging]\nlevel = "warning"\n'
            "[health_check]\nenabled = false\n"
            f'[[backends]]\nname = "up"\nurl = "http://{HOST}:{up_port}"\ntype = "generic"\n'
            'models = ["bench"]\n'
        )
        start(
            [sys.executable, str(BENCH / "stream_upstream.py"), "--port", str(up_port), *timing], 1
        )
        server = start([sys.executable, "-m", "nexus_trio", "serve", "--config", str(config)], 0)
        wait_listening([up_port, port], log_path)
        yield server, port, up_port
    finally:
        for process in processes:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
            if process.poll() is None:
                process.kill()
        log.close()


def render(rows: list[dict[str, str]]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(row[k] for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int)
    parser.add_argument("--ttft-ms", type=float, default=5000.0)
    parser.add_argument("--events", type=int, default=10)
    parser.add_argument("--gap-ms", type=float, default=100.0)
    parser.add_argument("--spread", action="store_true", help="a random phase per stream")
    parser.add_argument(
        "--targets",
        nargs="+",
        choices=("gateway", "noop"),
        default=["noop", "gateway"],
        help="what to measure: the gateway, and the no-op streaming app (the stack's ceiling)",
    )
    args = parser.parse_args()
    scenarios = SCENARIOS
    if args.streams:
        scenarios = (
            Scenario("custom", args.streams, args.ttft_ms, args.events, args.gap_ms, args.spread),
        )
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    pin(1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="nexus-streams-") as tmp:
        for scenario in scenarios:
            for target in args.targets:
                with servers(scenario, target, Path(tmp)) as (server, port, stats_port):
                    rows.append(trio.run(drive, scenario, target, server, port, stats_port))
                print(render(rows[-1:]), flush=True)
    print()
    print(f"load average {os.getloadavg()[0]:.2f}; cores {os.cpu_count()}")
    print(render(rows))


if __name__ == "__main__":
    main()
