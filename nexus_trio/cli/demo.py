"""``nexus-trio demo``: the gateway plus two simulated backends in one process
(docs/cli.md#command-line).

One backend is fast, the other slow and flaky; both serve the model ``demo``. The banner
prints the dashboard's address first, then ``curl`` commands that work as pasted. Unless
``--no-traffic`` is given, a small traffic generator
(:class:`~nexus_trio.cli.demo_traffic.TrafficGenerator`) sends a few requests per second until the
drain begins, so the dashboard shows the quality tracker exclude the flaky backend, probe it
and readmit it within a couple of minutes.
The slow one is priced as if it cost money, so the dashboard, ``/v1/stats`` and
``nexus-trio status`` show spend; the ledger is kept in the state directory the caller gives
(docs/cli.md#demo: a temporary one, removed at exit; docs/spend.md#ledger).
"""

from __future__ import annotations

import os
from pathlib import Path

import trio

from nexus_trio.cli.demo_traffic import TrafficGenerator
from nexus_trio.config import (
    BackendConfig,
    Config,
    HealthCheckConfig,
    PriceConfig,
    QualityConfig,
    RoutingConfig,
    ServerConfig,
    StateConfig,
)
from nexus_trio.drain import Drain
from nexus_trio.runtime.supervisor import Supervisor
from nexus_trio.simulator import SimulatedBackend, SimulatorOptions

FAST = SimulatorOptions(name="fast", models=("demo",), ttft_ms=40.0, tokens_per_second=150.0)
SLOW_FLAKY = SimulatorOptions(
    name="slow-flaky", models=("demo",), ttft_ms=600.0, tokens_per_second=25.0, error_rate=0.5
)


def demo_config(port: int, fast_port: int, slow_port: int, state_dir: Path) -> Config:
    """The gateway configuration the demo runs with; its ledger in ``state_dir``."""
    return Config(
        server=ServerConfig(port=port, drain_timeout_seconds=5.0),
        health_check=HealthCheckConfig(interval_seconds=5.0, timeout_seconds=2.0),
        # Round robin, so the flaky backend keeps getting its share until quality excludes it.
        routing=RoutingConfig(strategy="round_robin"),
        # quick enough to watch: quality recomputed every 2 s, an error rate above 25 % over at
        # least 5 requests excludes, excluded agents are probed after 10 s
        quality=QualityConfig(
            metrics_interval_seconds=2.0,
            probe_interval_seconds=10.0,
            min_requests=5,
            error_rate_threshold=0.25,
            ttft_penalty_threshold_ms=300.0,
        ),
        backends=[
            BackendConfig(
                name="fast", url=f"http://127.0.0.1:{fast_port}", type="generic", models=["demo"]
            ),
            BackendConfig(
                name="slow-flaky",
                url=f"http://127.0.0.1:{slow_port}",
                type="generic",
                models=["demo"],
            ),
        ],
        pricing=[
            PriceConfig(backend="slow-flaky", input_usd_per_million=1.0, output_usd_per_million=2.0)
        ],
        state=StateConfig(dir=str(state_dir)),
    )


def banner(url: str, state_dir: Path, *, traffic: bool) -> str:
    chat = (
        f"curl -s {url}/v1/chat/completions -H 'Content-Type: application/json' "
        '-d \'{"model": "demo", "messages": [{"role": "user", "content": "Hello"}]}\''
    )
    stream = (
        f"curl -sN {url}/v1/chat/completions -H 'Content-Type: application/json' "
        '-d \'{"model": "demo", "stream": true, '
        '"messages": [{"role": "user", "content": "Hello"}]}\''
    )
    traffic_line = (
        "Demo traffic: 4 requests/s, kept out of the access log (--log-traffic logs them,"
        " --no-traffic sends none)."
        if traffic
        else "No demo traffic (--no-traffic): send requests with the commands below."
    )
    return "\n".join(
        [
            f"Dashboard: {url}/",
            "",
            f"nexus-trio demo: gateway on {url}, backends 'fast' and 'slow-flaky' (model 'demo')",
            traffic_line,
            "",
            "Try:",
            f"  {chat}",
            f"  {stream}",
            f"  curl -s {url}/v1/models",
            f"  curl -s {url}/health",
            f"  curl -s {url}/v1/stats        # per-backend quality: error rates, TTFT, state;"
            " spend",
            f"  curl -s {url}/metrics | grep ^nexus_",
            f"  nexus-trio status --url {url}",
            f"  nexus-trio spend --state-dir {state_dir}",
            "",
            "Ctrl-C drains and stops.",
            "",
        ]
    )


async def run_demo(port: int, state_dir: Path, *, traffic: bool = True) -> int:
    """Run the demo until interrupted, its ledger in ``state_dir``; returns the exit status.

    With ``traffic`` the generator runs from the moment the gateway is ready until its drain
    begins. Raises what the supervisor raises at start-up (``ListenError`` for a busy port).
    """
    fast = SimulatedBackend(FAST)
    slow = SimulatedBackend(SLOW_FLAKY)
    async with trio.open_nursery() as nursery:
        fast_port = await nursery.start(fast.run)
        slow_port = await nursery.start(slow.run)
        config = demo_config(port, fast_port, slow_port, state_dir)
        supervisor = Supervisor(config, env=os.environ)

        async def gateway(*, task_status: trio.TaskStatus[list[str]]) -> None:
            await supervisor.run(task_status=task_status)
            nursery.cancel_scope.cancel()

        binds = await nursery.start(gateway)
        print(banner(binds[0], state_dir, traffic=traffic), flush=True)
        if traffic and supervisor.wiring is not None:
            nursery.start_soon(_traffic_until_drain, binds[0], supervisor.wiring.drain)
    return 1 if supervisor.forced else 0


async def _traffic_until_drain(url: str, drain: Drain) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(TrafficGenerator(url).run)
        await drain.requested.wait()
        nursery.cancel_scope.cancel()
