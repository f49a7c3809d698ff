"""Many concurrent streams through one gateway to one upstream that can hold them all.

Run as ``python bench/streams.py`` (the three open-stream scenarios below, ~4 min),
``python bench/streams.py --paced [--hold]`` (issue 23's fresh-connection scenarios, below), or
one scenario with ``--streams N --ttft-ms T --events E --gap-ms G [--spread] [--fresh]
[--plain]``. Everything runs on 127.0.0.1:

- upstream: ``stream_upstream.py`` (trio + h11), answering every stream with ``E`` timed
  content events, each stamped with the ``time.monotonic()`` it was written at (a
  non-streaming request with the 700-byte completion after ``T`` ms), and counting the
  connections it is sent requests on;
- gateway: ``python -m nexus_trio serve`` with its **default** limits (one ``generic`` backend,
  health checks off, log level warning);
- noop: ``stream_noop_app.py``, the gateway's server stack (hypercorn-trio) answering the same
  way itself: the ceiling of the stack, in the same run;
- direct: the upstream alone, the clients straight to it (``--hold``);
- floor: ``floor_app.py``, a bare forwarder to the upstream on the gateway's server stack and
  upstream transport, no gateway logic (``--targets ... floor`` with ``--plain``: it reads
  whole answers, so it cannot relay a stream);
- clients: this process, one connection per request (``stream_clients.py``).

On 2+ cores the server under test is pinned to the first core, the upstream and the clients to
the second.

**Open streams** (the default set): the server's CPU counts from the moment every stream is
open (before any event) to the end. Reported per scenario: streams whole / truncated / failed;
the most streams the upstream held at once; RSS per request in flight ((RSS with every stream
open - RSS before) / streams); CPU seconds per 1,000 events received; and the delay added to
each event: the gap between two events as the client saw it minus the gap at which they were
written, p50 and p99 over every pair of consecutive content events. ``capacity`` — 5,000
streams, first event after 15 s, 10 events 500 ms apart; ``rate`` — 2,000 streams x 10
events/s (60 events 100 ms apart, first after 5 s), every stream writing in the same instant;
``rate-spread`` — the same with each stream's first event a random part of a gap later
(``--spread``), as independent streams' tokens arrive. Targets (issue 11): 5,000 streams all
whole; ≤ 40 KiB RSS per request in flight.

**Fresh connections** (``--paced``, ``--hold``, ``--fresh``): after a warm-up (16 quick
streams and 16 quick requests), N clients each open a new connection at once, send one request
and close the connection after the answer; the server's CPU counts over the whole scenario,
connection set-up included, and so does the time its main thread waited for its core (anything
else on that core shows there: the wall times and delays then say little, the CPU figures
less). ``stream_report.py`` has the scenarios, the table and the goals; ``--py-spy`` also
samples each server (``stream_profile.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import stream_profile
import stream_report
import trio
from stream_clients import HOST, Outcome, chat_body, http_get, one_request, one_stream, percentile
from stream_report import HOLD, PACED, Measured, Scenario

BENCH = Path(__file__).resolve().parent
#: Concurrent quick streams, and as many quick requests, before a fresh-connection scenario.
WARMUP = 16
#: The cores this process may use, read before it pins itself: its children inherit its own
#: affinity, so a child pinned by :func:`pin` must be given a core from this list, not its own.
CORES = sorted(os.sched_getaffinity(0))

SCENARIOS = (
    Scenario("capacity", 5000, 15000.0, 10, 500.0),
    Scenario("rate", 2000, 5000.0, 60, 100.0),
    Scenario("rate-spread", 2000, 5000.0, 60, 100.0, spread=True),
)


@dataclass(frozen=True)
class Server:
    """The process under test, the port the clients use, and the upstream's (if any)."""

    process: subprocess.Popen[bytes]
    port: int
    stats_port: int | None


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


def waiting_seconds(pid: int) -> float:
    """Time the process's main thread has spent runnable but waiting for a core (schedstat)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


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


def delay_text(outcome: Outcome) -> str:
    delays_ms = [d * 1000.0 for d in outcome.delays]
    if not delays_ms:
        return "-"
    return f"{percentile(delays_ms, 0.5):.2f} / {percentile(delays_ms, 0.99):.2f}"


async def drive(scenario: Scenario, target: str, server: Server) -> dict[str, str]:
    """Run one open-stream scenario against a running server; its report row.

    RSS and CPU are the server's; CPU counts from the moment every stream is open, before any
    event, to the end of the last stream.
    """
    outcome = Outcome()
    pid = server.process.pid
    rss_before = rss_kib(pid)
    rss_full = 0
    cpu_open = client_open = 0.0
    started = time.monotonic()
    body = chat_body(streaming=True)
    async with trio.open_nursery() as nursery:
        for _ in range(scenario.streams):
            nursery.start_soon(one_stream, server.port, outcome, body)
        with trio.move_on_after(scenario.ttft_ms / 1000.0 * 0.95):
            await all_open(scenario, outcome, server.stats_port)
            rss_full = rss_kib(pid)
            cpu_open = cpu_seconds(pid)
            client_open = time.process_time()
    elapsed = time.monotonic() - started
    cpu = cpu_seconds(pid) - cpu_open
    client_cpu = time.process_time() - client_open
    peak = "-"
    if server.stats_port is not None:
        peak = str(json.loads(await http_get(server.stats_port, "/stats"))["peak"])
    per_request = (rss_full - rss_before) / scenario.streams
    return {
        "scenario": scenario.title(),
        "target": target,
        "whole / truncated / failed": f"{outcome.whole} / {outcome.truncated} / {outcome.failed}",
        "upstream peak": peak,
        "RSS per request (KiB)": f"{per_request:.1f}" if rss_full else "not all open",
        "CPU s / 1000 events": (
            f"{cpu / (outcome.events / 1000.0):.3f}" if rss_full and outcome.events else "-"
        ),
        "added delay p50 / p99 (ms)": delay_text(outcome),
        "client CPU s": f"{client_cpu:.1f}",
        "wall s": f"{elapsed:.1f}",
        "errors": ", ".join(f"{k} x{v}" for k, v in sorted(outcome.errors.items())) or "none",
    }


async def upstream_counts(stats_port: int | None) -> tuple[int, int, int]:
    """The upstream's (connections, requests, peak) so far; zeros without an upstream."""
    if stats_port is None:
        return 0, 0, 0
    stats = json.loads(await http_get(stats_port, "/stats"))
    return stats["connections"], stats["requests"], stats["peak"]


async def warm_up(port: int) -> None:
    """Quick streams and quick requests through ``port``, all at once, at most 30 s."""
    outcome = Outcome()
    with trio.move_on_after(30):
        async with trio.open_nursery() as nursery:
            for _ in range(WARMUP):
                nursery.start_soon(one_stream, port, outcome, chat_body(streaming=True, quick=True))
                nursery.start_soon(
                    one_request, port, outcome, chat_body(streaming=False, quick=True)
                )
    if outcome.whole != 2 * WARMUP:
        sys.exit(f"warm-up: {outcome.whole} of {2 * WARMUP} answers whole ({outcome.errors})")


async def event_phase(
    delay: float, pid: int, cpu: list[float], sampler: stream_profile.Sampler | None
) -> None:
    """After ``delay`` seconds, append ``pid``'s CPU seconds to ``cpu`` and start ``sampler``."""
    await trio.sleep(delay)
    cpu.append(cpu_seconds(pid))
    if sampler is not None:
        sampler.start()


async def drive_fresh(
    scenario: Scenario, target: str, server: Server, raw_profile: Path | None
) -> Measured:
    """Run one fresh-connection scenario against a running server, after a warm-up.

    The server's CPU counts from just before the first client connects to a quarter of a second
    after the last answer ended (the server's closing work); the wall time to the last answer.
    For streams it is also read just before the first token is due (0.95 x TTFT): the CPU from
    there on is the events' (and the streams' ends), if every stream was set up by then.
    Clients still running after the scenario's time limit are cancelled and counted as failed.
    With ``raw_profile``, py-spy samples the server over the same span into that file, and a
    stream's event phase into a file of the same name ending ``-events.txt``.
    """
    await warm_up(server.port)
    pid = server.process.pid
    connections, requests, _ = await upstream_counts(server.stats_port)
    outcome = Outcome()
    client = one_stream if scenario.streaming else one_request
    body = chat_body(streaming=scenario.streaming)
    sampler = events_sampler = None
    if raw_profile is not None:
        sampler = stream_profile.Sampler(pid, raw_profile, CORES[-1])
        events_path = raw_profile.with_suffix(".events.txt")
        events_sampler = stream_profile.Sampler(pid, events_path, CORES[-1])
        sampler.start()
    cpu_before, client_before = cpu_seconds(pid), time.process_time()
    waiting_before, started = waiting_seconds(pid), time.monotonic()
    at_first_token: list[float] = []
    with trio.move_on_after(scenario.time_limit()):
        async with trio.open_nursery() as nursery:
            for _ in range(scenario.streams):
                nursery.start_soon(client, server.port, outcome, body)
            if scenario.streaming:
                due = 0.95 * scenario.ttft_ms / 1000
                nursery.start_soon(event_phase, due, pid, at_first_token, events_sampler)
    wall = time.monotonic() - started
    client_cpu = time.process_time() - client_before
    await trio.sleep(0.25)
    cpu_after = cpu_seconds(pid)
    waiting = waiting_seconds(pid) - waiting_before
    profile = None if sampler is None else sampler.stop()
    event_profile = None if events_sampler is None else events_sampler.stop()
    unfinished = scenario.streams - outcome.whole - outcome.truncated - outcome.failed
    if unfinished:
        outcome.failed += unfinished
        outcome.errors["unfinished at the time limit"] = unfinished
    after = await upstream_counts(server.stats_port)
    return Measured(
        scenario=scenario,
        target=target,
        outcome=outcome,
        cpu=cpu_after - cpu_before,
        cpu_events=cpu_after - at_first_token[0] if at_first_token else None,
        waiting=waiting,
        wall=wall,
        client_cpu=client_cpu,
        upstream=(after[0] - connections, after[1] - requests, after[2]),
        profile=profile,
        event_profile=event_profile,
    )


def pin(index: int) -> None:
    """Pin the calling process to the ``index``-th of :data:`CORES` (with 2 or more)."""
    if len(CORES) > 1:
        os.sched_setaffinity(0, {CORES[index]})


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
    scenario: Scenario, target: str, workdir: Path, profile_to: Path | None = None
) -> Iterator[Server]:
    """Start what ``target`` needs; yield the server under test.

    ``gateway``: the upstream (second core) and a default gateway (first core); ``noop``: the
    no-op streaming app (first core); ``direct``: the upstream alone (second core, where it
    runs in front of the gateway too). Everything is stopped on exit. With ``profile_to``
    the gateway or no-op app runs under cProfile, stopped with SIGINT so that it writes its
    statistics there.
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

    def start_server(arguments: list[str]) -> subprocess.Popen[bytes]:
        profiler = [] if profile_to is None else ["-m", "cProfile", "-o", str(profile_to)]
        return start([sys.executable, *profiler, *arguments], 0)

    try:
        port = free_port()
        if target == "noop":
            server = start_server([str(BENCH / "stream_noop_app.py"), "--port", str(port), *timing])
            wait_listening([port], log_path)
            yield Server(server, port, None)
            return
        up_port = free_port()
        upstream = start(
            [sys.executable, str(BENCH / "stream_upstream.py"), "--port", str(up_port), *timing], 1
        )
        if target == "direct":
            wait_listening([up_port], log_path)
            yield Server(upstream, up_port, up_port)
            return
        if target == "floor":
            server = start_server(
                [
                    str(BENCH / "floor_app.py"),
                    "--port",
                    str(port),
                    "--upstream",
                    f"http://{HOST}:{up_port}",
                ]
            )
            wait_listening([up_port, port], log_path)
            yield Server(server, port, up_port)
            return
        config = workdir / f"{scenario.name}.toml"
        config.write_text(
            f'[server]\nhost = "{HOST}"\nport = {port}\n[logging]\nlevel = "warning"\n'
            "[health_check]\nenabled = false\n"
            f'[[backends]]\nname = "up"\nurl = "http://{HOST}:{up_port}"\ntype = "generic"\n'
            'models = ["bench"]\n'
        )
        server = start_server(["-m", "nexus_trio", "serve", "--config", str(config)])
        wait_listening([up_port, port], log_path)
        yield Server(server, port, up_port)
    finally:
        for process in processes:
            if profile_to is not None and process is processes[-1]:
                process.send_signal(signal.SIGINT)
            else:
                process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
            if process.poll() is None:
                process.kill()
        log.close()


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paced", action="store_true", help="issue 23's scenarios (a)-(d)")
    parser.add_argument("--hold", action="store_true", help="3,000 x 4.5 s, gateway and direct")
    parser.add_argument("--streams", type=int, help="one scenario of N clients")
    parser.add_argument("--ttft-ms", type=float, default=5000.0)
    parser.add_argument("--events", type=int, default=10)
    parser.add_argument("--gap-ms", type=float, default=100.0)
    parser.add_argument("--spread", action="store_true", help="a random phase per stream")
    parser.add_argument("--fresh", action="store_true", help="CPU over the whole scenario")
    parser.add_argument("--plain", action="store_true", help="non-streaming (with --fresh)")
    parser.add_argument(
        "--py-spy", action="store_true", help="sample the server of each fresh-connection run"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="repeat --paced/--hold; medians of the rounds"
    )
    parser.add_argument(
        "--targets",
        nargs="+",
        choices=("gateway", "noop", "direct", "floor"),
        default=["noop", "gateway"],
        help="what to measure (default set and --streams): the gateway, the no-op streaming app "
        "(the stack's ceiling), the upstream directly, the bare forwarder (--plain only)",
    )
    return parser.parse_args()


def plan(args: argparse.Namespace) -> list[tuple[Scenario, str, int]]:
    """The (scenario, target, round) to run, in order; the gateway goes first in odd rounds."""
    if args.streams:
        custom = Scenario(
            "custom", args.streams, args.ttft_ms, args.events, args.gap_ms, args.spread,
            streaming=not args.plain, fresh=args.fresh or args.plain,
        )  # fmt: skip
        return [(custom, target, 0) for target in args.targets]
    if not (args.paced or args.hold):
        return [(scenario, target, 0) for scenario in SCENARIOS for target in args.targets]
    pairs: list[tuple[Scenario, str, int]] = []
    for round_ in range(args.rounds):
        ours = ["gateway"] if round_ % 2 else []
        if args.paced:
            targets = [*ours, "noop", *(["gateway"] if not ours else [])]
            pairs += [(s, t, round_) for s in PACED for t in targets]
        if args.hold:
            targets = [*ours, "direct", *(["gateway"] if not ours else [])]
            pairs += [(HOLD, t, round_) for t in targets]
    return pairs


def main() -> None:
    args = arguments()
    if args.py_spy and stream_profile.py_spy() is None:
        sys.exit("py-spy is not installed: pip install py-spy")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    pin(1)
    when = datetime.datetime.now()
    results = BENCH / "results"
    results.mkdir(exist_ok=True)
    rows: list[dict[str, str]] = []
    measured: list[Measured] = []
    with tempfile.TemporaryDirectory(prefix="nexus-streams-") as tmp:
        for scenario, target, round_ in plan(args):
            with servers(scenario, target, Path(tmp)) as server:
                if scenario.fresh:
                    name = f"{when:%Y%m%d-%H%M%S}-{scenario.name}-{target}-{round_ + 1}"
                    raw = results / f"profile-streams-{name}.txt" if args.py_spy else None
                    run = trio.run(drive_fresh, scenario, target, server, raw)
                    measured.append(dataclasses.replace(run, round=round_))
                    rows.append(measured[-1].row())
                else:
                    rows.append(trio.run(drive, scenario, target, server))
            print(stream_report.render(rows[-1:]), flush=True)
    report = [
        f"{when:%Y-%m-%d %H:%M}; load average {os.getloadavg()[0]:.2f}; cores {os.cpu_count()}",
        "",
        stream_report.render(rows),
    ]
    if args.paced or args.hold:
        report += ["", stream_report.summary(measured)]
    profiles = {
        (m.scenario.name, m.target): (m.profile, m.per_request_ms())
        for m in measured
        if m.profile is not None
    }
    for m in measured:
        if m.event_profile is not None and (per_event := m.per_event_ms()) is not None:
            profiles[(f"{m.scenario.name} events", m.target)] = (m.event_profile, per_event)
    if profiles:
        report += ["", stream_profile.report(profiles)]
    print()
    print("\n".join(report))
    path = results / f"streams-{when:%Y%m%d-%H%M%S}.md"
    path.write_text("\n".join(report) + "\n")
    print(f"\nwritten to {path.relative_to(BENCH.parent)}", file=sys.stderr)


if __name__ == "__main__":
    main()
