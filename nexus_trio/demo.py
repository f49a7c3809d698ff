"""``nexus-trio demo``: the gateway plus two simulated backends in one process
(docs/cli.md#command-line).

One backend is fast, the other slow and flaky; both serve the model ``demo``. The banner
prints ``curl`` commands that work as pasted.
"""

from __future__ import annotations

import os

import trio

from nexus_trio.config import (
    BackendConfig,
    Config,
    HealthCheckConfig,
    QualityConfig,
    ServerConfig,
)
from nexus_trio.daemon import Supervisor
from nexus_trio.simulator import SimulatedBackend, SimulatorOptions

FAST = SimulatorOptions(name="fast", models=("demo",), ttft_ms=40.0, tokens_per_second=150.0)
SLOW_FLAKY = SimulatorOptions(
    name="slow-flaky", models=("demo",), ttft_ms=600.0, tokens_per_second=25.0, error_rate=0.3
)


def demo_config(port: int, fast_port: int, slow_port: int) -> Config:
    """The gateway configuration the demo runs with."""
    return Config(
        server=ServerConfig(port=port, drain_timeout_seconds=5.0),
        health_check=HealthCheckConfig(interval_seconds=5.0, timeout_seconds=2.0),
        # quick enough to watch: quality recomputed every 2 s, excluded agents probed after 10 s,
        # first tokens slower than 300 ms penalised
        quality=QualityConfig(
            metrics_interval_seconds=2.0,
            probe_interval_seconds=10.0,
            min_requests=5,
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
    )


def banner(url: str) -> str:
    chat = (
        f"curl -s {url}/v1/chat/completions -H 'Content-Type: application/json' "
        '-d \'{"model": "demo", "messages": [{"role": "user", "content": "Hello"}]}\''
    )
    stream = (
        f"curl -sN {url}/v1/chat/completions -H 'Content-Type: application/json' "
        '-d \'{"model": "demo", "stream": true, '
        '"messages": [{"role": "user", "content": "Hello"}]}\''
    )
    return "\n".join(
        [
            "",
            f"nexus-trio demo: gateway on {url}, backends 'fast' and 'slow-flaky' (model 'demo')",
            "",
            "Try:",
            f"  {chat}",
            f"  {stream}",
            f"  curl -s {url}/v1/models",
            f"  curl -s {url}/health",
            f"  curl -s {url}/v1/stats        # per-backend quality: error rates, TTFT, state",
            f"  curl -s {url}/metrics | grep ^nexus_",
            f"  nexus-trio status --url {url}",
            "",
            "Ctrl-C drains and stops.",
            "",
        ]
    )


async def run_demo(port: int) -> int:
    """Run the demo until interrupted; returns the exit status."""
    fast = SimulatedBackend(FAST)
    slow = SimulatedBackend(SLOW_FLAKY)
    async with trio.open_nursery() as nursery:
        fast_port = await nursery.start(fast.run)
        slow_port = await nursery.start(slow.run)
        supervisor = Supervisor(demo_config(port, fast_port, slow_port), env=os.environ)

        async def gateway(*, task_status: trio.TaskStatus[list[str]]) -> None:
            await supervisor.run(task_status=task_status)
            nursery.cancel_scope.cancel()

        binds = await nursery.start(gateway)
        print(banner(binds[0]), flush=True)
    return 1 if supervisor.forced else 0
