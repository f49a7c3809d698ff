"""The quality-tracking scenario, standalone: run ``python bench/quality_scenario.py``.

It starts two simulated backends, A and B, serving one model, and a real ``nexus-trio serve``
subprocess in front of them (loopback only, free ports), drives client traffic through the
gateway and prints a timeline: per half second the phase, the quality state of A and B as
``/v1/stats`` reports it, their average TTFT, the share of requests each backend served, the
route reasons that matter (retry, probe) and the errors clients saw; then the ``/metrics``
lines that tell the same story. (``tests/system/test_quality_scenario.py`` asserts it.)

The story (docs/quality.md#exclusion, docs/quality.md#ttft-penalty), with small ``[quality]`` values
so that it takes ~10 s:

1. One client sends plain requests; A (priority 10) serves them all. A starts failing:
   every request is retried on B and succeeds; after 3 failures in a row A is ejected; A heals
   and, one probe interval after its ejection, a probe readmits it.
2. Four clients stream; load spreads them over A and B. B's first tokens get slow (400 ms
   against a 150 ms threshold): once its average TTFT is recomputed its score is zeroed and the
   streams move to A, except one probe stream to B per probe interval.

Options: ``--phase-seconds`` (how long phase 2 is observed after the penalty, default 4).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trio
from prometheus_client.parser import text_string_to_metric_families

from nexus_trio.simulator import SimulatedBackend, SimulatorOptions

MODEL = "demo"
PATH = "/v1/chat/completions"
INTERVAL = 0.5
PROBE = 1.0
THRESHOLD_MS = 150.0
SLOW_TTFT_MS = 400.0
WINDOW = 0.5
READY_MARK = "nexus-trio ready on http://"

CONFIG = """[server]
host = "127.0.0.1"
port = 0

[health_check]
enabled = false

[routing]
max_retries = 2

# latency = 0: the TTFT penalty is the only latency signal. Priority decides between equally
# loaded backends; load spreads concurrent requests.
[routing.weights]
priority = 10
load = 90
latency = 0

[quality]
metrics_interval_seconds = {interval}
probe_interval_seconds = {probe}
min_requests = 5
error_rate_threshold = 0.5
consecutive_failures = 3
ttft_penalty_threshold_ms = {threshold}

[[backends]]
name = "A"
url = "http://127.0.0.1:{port_a}"
type = "generic"
priority = 10
models = ["{model}"]

[[backends]]
name = "B"
url = "http://127.0.0.1:{port_b}"
type = "generic"
priority = 20
models = ["{model}"]
"""


@dataclass(frozen=True)
class Result:
    sent: float
    done: float
    status: int
    backend: str | None
    reason: str | None
    attempts: int
    good: bool


@dataclass(frozen=True)
class StatsSample:
    at: float
    state: dict[str, str]
    ttft: dict[str, float | None]


@dataclass
class Scenario:
    client: httpx.AsyncClient
    url: str
    start: float
    results: list[Result] = field(default_factory=list)
    samples: list[StatsSample] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)
    #: (start time, label) of each phase.
    phases: list[tuple[float, str]] = field(default_factory=list)

    def now(self) -> float:
        return trio.current_time() - self.start

    def event(self, text: str) -> None:
        self.events.append((self.now(), text))

    async def phase(self, label: str) -> None:
        """Start a phase at the next timeline row, so that each row belongs to one phase."""
        row = math.ceil(max(self.now() - 0.05, 0.0) / WINDOW) * WINDOW
        await trio.sleep_until(self.start + row)
        self.phases.append((row, label))

    async def request(self, stream: bool) -> None:
        body = {"model": MODEL, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
        sent = self.now()
        async with self.client.stream("POST", f"{self.url}{PATH}", json=body) as response:
            data = await response.aread()
        good = response.status_code == 200 and b"stream_truncated" not in data
        if stream:
            good = good and data.endswith(b"data: [DONE]\n\n")
        headers = response.headers
        self.results.append(
            Result(
                sent,
                self.now(),
                response.status_code,
                headers.get("x-nexus-backend"),
                headers.get("x-nexus-route-reason"),
                int(headers.get("x-nexus-attempts", "0")),
                good,
            )
        )

    async def clients(self, count: int, stream: bool, stop: trio.Event) -> None:
        async def loop() -> None:
            while not stop.is_set():
                await self.request(stream)

        async with trio.open_nursery() as nursery:
            for _ in range(count):
                nursery.start_soon(loop)

    async def agents(self) -> dict[str, dict[str, Any] | None]:
        document = (await self.client.get(f"{self.url}/v1/stats")).json()
        return {b["name"]: b["agents"][0]["quality"] for b in document["backends"]}

    async def monitor(self) -> None:
        """Sample ``/v1/stats`` four times a second."""
        while True:
            agents = await self.agents()
            self.samples.append(
                StatsSample(
                    self.now(),
                    {n: (q or {}).get("state", "no data") for n, q in agents.items()},
                    {n: (q or {}).get("avg_ttft_ms") for n, q in agents.items()},
                )
            )
            await trio.sleep(0.25)

    async def wait_for(self, predicate: Any, limit: float = 10.0) -> float:
        """Poll ``predicate(agents)`` every 10 ms; returns the time it held."""
        with trio.fail_after(limit):
            while True:
                if predicate(await self.agents()):
                    return self.now()
                await trio.sleep(0.01)


def _state(agents: dict[str, dict[str, Any] | None], name: str) -> str | None:
    quality = agents[name]
    return None if quality is None else quality["state"]


async def phase_one(s: Scenario, a: SimulatedBackend) -> None:
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        await s.phase("1 plain, 1 client")
        nursery.start_soon(s.clients, 1, False, stop)
        await trio.sleep(1.0)
        failing = s.now()
        a.options.error_rate = 1.0
        s.event("A starts failing: every request gets a 500")
        excluded = await s.wait_for(lambda agents: _state(agents, "A") == "excluded")
        s.event(f"/v1/stats: A excluded, {excluded - failing:.2f} s after it started failing")
        await trio.sleep(0.3)
        healed = s.now()
        a.options.error_rate = 0.0
        s.event("A heals")
        back = await s.wait_for(lambda agents: _state(agents, "A") == "healthy")
        s.event(f"/v1/stats: A healthy again, {back - healed:.2f} s after healing (probe)")
        await trio.sleep(1.0)
        stop.set()


async def phase_two(s: Scenario, a: SimulatedBackend, b: SimulatedBackend, seconds: float) -> None:
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        await s.phase("2 streaming, 4 clients")
        for backend in (a, b):
            backend.options.tokens_per_second = 50  # streams of 10 tokens: ~200 ms
        b.options.ttft_ms = SLOW_TTFT_MS
        slow = s.now()
        s.event(f"B's first tokens slow down: {SLOW_TTFT_MS:.0f} ms (A: ~20 ms)")
        nursery.start_soon(s.clients, 4, True, stop)

        def penalised(agents: dict[str, dict[str, Any] | None]) -> bool:
            quality = agents["B"]
            return quality is not None and (quality["avg_ttft_ms"] or 0) >= 2 * THRESHOLD_MS

        at = await s.wait_for(penalised)
        s.event(f"/v1/stats: B avg TTFT >= {2 * THRESHOLD_MS:.0f} ms, {at - slow:.2f} s later")
        await trio.sleep(seconds)
        stop.set()


def timeline(s: Scenario) -> list[str]:
    out = [
        f"{'t (s)':>11}  {'phase':<22} {'A state':<9} {'B state':<9} {'A ttft':>7} "
        f"{'B ttft':>7} {'reqs':>5} {'A %':>5} {'B %':>5}  {'other routes':<36} {'errors':>6}"
    ]
    end = max(r.done for r in s.results)
    events = list(s.events)
    t = 0.0
    while t < end:
        for at, text in [e for e in events if e[0] < t + WINDOW]:
            out.append(f"{at:>11.2f}  » {text}")
            events.remove((at, text))
        window = [r for r in s.results if t <= r.sent < t + WINDOW]
        phase = next((label for at, label in reversed(s.phases) if at < t + WINDOW), "")
        sample = next((x for x in reversed(s.samples) if x.at <= t + WINDOW), None)
        if window:
            count = len(window)
            share_a = 100 * sum(r.backend == "A" for r in window) / count
            share_b = 100 * sum(r.backend == "B" for r in window) / count
            reasons: dict[str, int] = {}
            for r in window:
                if (r.reason, r.backend) != ("best_score", "A"):
                    key = f"{r.reason}->{r.backend}"
                    reasons[key] = reasons.get(key, 0) + 1
            text = " ".join(f"{k}:{v}" for k, v in sorted(reasons.items())) or "-"
            errors = sum(not r.good for r in window)
            states = (sample.state if sample else {}) or {}
            ttft = (sample.ttft if sample else {}) or {}
            out.append(
                f"{t:>5.1f}-{t + WINDOW:<5.1f}  {phase:<22} {states.get('A', '-'):<9} "
                f"{states.get('B', '-'):<9} {_ms(ttft.get('A')):>7} {_ms(ttft.get('B')):>7} "
                f"{count:>5} {share_a:>5.0f} {share_b:>5.0f}  {text:<36} {errors:>6}"
            )
        t += WINDOW
    return out


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}ms"


def summary(s: Scenario, metrics_text: str, stats: dict[str, Any]) -> list[str]:
    out = []
    for (start, label), nxt in zip(s.phases, [*s.phases[1:], (float("inf"), "")], strict=True):
        rows = [r for r in s.results if start <= r.sent < nxt[0]]
        by: dict[str, int] = {}
        for r in rows:
            key = f"{r.backend}/{r.reason}"
            by[key] = by.get(key, 0) + 1
        errors = sum(not r.good for r in rows)
        detail = ", ".join(f"{k} {v}" for k, v in sorted(by.items()))
        out.append(f"phase {label}: {len(rows)} requests, {errors} client errors ({detail})")
    requests = stats["requests"]
    out.append(
        f"/v1/stats requests: total {requests['total']}, success {requests['success']}, "
        f"errors {requests['errors']}, client_errors {requests['client_errors']}"
    )
    for backend in stats["backends"]:
        q = backend["quality"]
        out.append(
            f"/v1/stats {backend['name']}: state {q['state']}, error_rate_1h {q['error_rate_1h']},"
            f" avg_ttft_ms {q['avg_ttft_ms']}, p90_ttft_ms {q['p90_ttft_ms']},"
            f" request_count_1h {q['request_count_1h']}"
        )
    wanted = (
        "nexus_agent_state",
        "nexus_agent_error_rate",
        "nexus_upstream_attempts_total",
        "nexus_retries_total",
        "nexus_reconciler_exclusions_total",
        "nexus_agent_ttft_seconds_count",
        "nexus_agent_ttft_seconds_sum",
        "nexus_quality_panic_total",
        "nexus_requests_total",
    )
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name in wanted:
                labels = ",".join(f'{k}="{v}"' for k, v in sample.labels.items())
                out.append(f"/metrics {sample.name}{{{labels}}} {sample.value:g}")
    return out


@contextlib.asynccontextmanager
async def running_gateway(config: Path, log: list[str]) -> AsyncIterator[int]:
    """Run ``nexus-trio serve --config config``; yields its port once it reports ready.

    On the way out — also when it never got ready — the gateway gets SIGTERM (and SIGKILL if
    it has not drained within 10 s), so no process outlives the script.
    """
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "nexus_trio", "serve", "--config", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    ready, ports = trio.open_memory_channel[int](1)

    async def read_stderr() -> None:
        assert process.stderr is not None
        buffer = b""
        async for chunk in process.stderr:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for raw in lines:
                line = raw.decode(errors="replace")
                log.append(line)
                if READY_MARK in line:
                    ready.send_nowait(int(line.rsplit(":", 1)[1]))

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_stderr)
            with trio.fail_after(15):
                port = await ports.receive()
            yield port
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                with trio.move_on_after(10):
                    await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()


async def main(phase_seconds: float) -> None:
    async with trio.open_nursery() as nursery:
        fast = {"ttft_ms": 20.0, "tokens_per_second": 0.0, "completion_tokens": 10}
        a = SimulatedBackend(SimulatorOptions(name="A", models=(MODEL,), **fast))  # type: ignore[arg-type]
        b = SimulatedBackend(SimulatorOptions(name="B", models=(MODEL,), **fast))  # type: ignore[arg-type]
        await nursery.start(a.run)
        await nursery.start(b.run)
        log: list[str] = []
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "nexus.toml"
            config.write_text(
                CONFIG.format(
                    interval=INTERVAL,
                    probe=PROBE,
                    threshold=THRESHOLD_MS,
                    port_a=a.port,
                    port_b=b.port,
                    model=MODEL,
                )
            )
            async with (
                running_gateway(config, log) as port,
                httpx.AsyncClient(timeout=10) as client,
            ):
                url = f"http://127.0.0.1:{port}"
                scenario = Scenario(client, url, trio.current_time())
                with trio.fail_after(60):
                    async with trio.open_nursery() as inner:
                        inner.start_soon(scenario.monitor)
                        await phase_one(scenario, a)
                        await phase_two(scenario, a, b, phase_seconds)
                        inner.cancel_scope.cancel()
                stats = (await client.get(f"{url}/v1/stats")).json()
                metrics_text = (await client.get(f"{url}/metrics")).text
        header = (
            f"nexus-trio quality scenario: A (priority 10) and B (priority 20) serve {MODEL!r}; "
            f"[quality] metrics_interval {INTERVAL} s, probe_interval {PROBE} s, "
            f"consecutive_failures 3, ttft_penalty_threshold {THRESHOLD_MS:.0f} ms"
        )
        print(header)
        print("\n".join(timeline(scenario)))
        print()
        print("\n".join(summary(scenario, metrics_text, stats)))
        problems = [line for line in log if " ERROR " in line or "Traceback" in line]
        if problems:
            print("\ngateway log problems:\n" + "\n".join(problems))
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phase-seconds", type=float, default=4.0)
    args = parser.parse_args()
    trio.run(main, args.phase_seconds)
