"""Residency-aware routing against residency-blind routing, same run: ``python -m bench.residency``.

Two simulated Ollama-like backends, A and B, serve the same two models, ``m1`` and ``m2``, and
hold one model at a time (``max_loaded = 1``): a request for the other model waits for a load
(``--load-ms``, 400 by default) that evicts the one held. Mixed traffic — ``--clients``
concurrent clients streaming chat requests, each for ``m1`` or ``m2`` at random (seeded) — goes
through a real ``nexus-trio serve`` in two ways:

- **aware**: the backends are of type ``ollama``: the gateway learns what each holds
  (``/api/ps`` each 0.5 s and its own requests) and routes by it (docs/routing.md#warm-preference);
- **blind**: the same simulators declared ``generic``: residency is unknown and routing is
  what it was before (score: priority, load, latency).

Each round runs both, in alternating order, each on fresh simulators (nothing loaded) and its
own gateway, ``--requests`` requests each. The client measures the time to the first content
chunk. Printed per round and as medians over ``--rounds``: p50 and p95 TTFT, the loads the
simulators performed, and the share of routes with reason ``warm``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgspec
import trio

from bench.quality_scenario import running_gateway
from nexus_trio.simulator import SimulatedBackend, SimulatorOptions

MODELS = ("m1", "m2")
CONFIG = """[server]
host = "127.0.0.1"
port = 0

[health_check]
interval_seconds = 0.5
timeout_seconds = 0.5
"""
BACKEND = """
[[backends]]
name = "{name}"
url = "http://127.0.0.1:{port}"
type = "{kind}"
models = ["m1", "m2"]
"""


@dataclass
class Run:
    """One gateway's traffic: client-side TTFTs (s), route reasons, simulator loads."""

    kind: str
    ttfts: list[float] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    loads: int = 0

    def percentile(self, share: float) -> float:
        ordered = sorted(self.ttfts)
        return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]

    def warm_share(self) -> float:
        return self.reasons.count("warm") / max(len(self.reasons), 1)


def _has_content(data: str) -> bool:
    choices = msgspec.json.decode(data).get("choices") or [{}]
    return bool(choices[0].get("delta", {}).get("content"))


async def stream_once(client: httpx.AsyncClient, url: str, model: str, run: Run) -> None:
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    started = trio.current_time()
    async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        first: float | None = None
        async for line in response.aiter_lines():
            if first is None and line.startswith("data: {") and _has_content(line[6:]):
                first = trio.current_time() - started
        run.reasons.append(response.headers.get("x-nexus-route-reason", ""))
    run.ttfts.append(first if first is not None else trio.current_time() - started)


async def one_run(kind: str, args: argparse.Namespace, seed: int) -> Run:
    """Fresh simulators, a gateway of ``kind`` in front of them, the mixed traffic."""
    run = Run(kind)
    options = {
        "models": MODELS,
        "ttft_ms": args.ttft_ms,
        "tokens_per_second": 0.0,
        "completion_tokens": 5,
        "load_ms": args.load_ms,
        "max_loaded": 1,
    }
    async with trio.open_nursery() as nursery:
        backends = []
        for name in ("A", "B"):
            backend = SimulatedBackend(SimulatorOptions(name=name, **options))  # type: ignore[arg-type]
            await nursery.start(backend.run)
            backends.append(backend)
        text = CONFIG + "".join(
            BACKEND.format(name=b.options.name, port=b.port, kind=kind) for b in backends
        )
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "nexus.toml"
            config.write_text(text)
            log: list[str] = []
            async with (
                running_gateway(config, log) as port,
                httpx.AsyncClient(timeout=60) as client,
            ):
                url = f"http://127.0.0.1:{port}"
                await trio.sleep(1.0)  # the first residency poll
                rng = random.Random(seed)
                picks = [rng.choice(MODELS) for _ in range(args.requests)]

                async def client_loop(mine: list[str]) -> None:
                    for model in mine:
                        await stream_once(client, url, model, run)

                async with trio.open_nursery() as clients:
                    for index in range(args.clients):
                        clients.start_soon(client_loop, picks[index :: args.clients])
        run.loads = sum(b.memory.loads for b in backends)
        nursery.cancel_scope.cancel()
    return run


def line(run: Run) -> str:
    return (
        f"{run.kind:>7}: TTFT p50 {run.percentile(0.5) * 1000:7.1f} ms  "
        f"p95 {run.percentile(0.95) * 1000:7.1f} ms  loads {run.loads:4d}  "
        f"warm routes {run.warm_share():5.1%}"
    )


async def main(args: argparse.Namespace) -> None:
    print(
        f"residency bench: 2 backends x 2 models, one held at a time, load {args.load_ms:g} ms, "
        f"first token {args.ttft_ms:g} ms, {args.clients} clients, {args.requests} streams per run"
    )
    results: dict[str, list[Run]] = {"ollama": [], "generic": []}
    for index in range(args.rounds):
        order = ("ollama", "generic") if index % 2 == 0 else ("generic", "ollama")
        for kind in order:
            run = await one_run(kind, args, seed=index)
            results[kind].append(run)
            label = line(run).replace("ollama", "aware").replace("generic", "blind")
            print(f"round {index + 1} {label}")
    print("medians over the rounds:")
    for kind, label in (("ollama", "aware"), ("generic", "blind")):
        runs = results[kind]
        p50 = statistics.median(r.percentile(0.5) for r in runs) * 1000
        p95 = statistics.median(r.percentile(0.95) for r in runs) * 1000
        loads = statistics.median(r.loads for r in runs)
        print(f"  {label}: TTFT p50 {p50:.1f} ms, p95 {p95:.1f} ms, loads {loads:g}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--load-ms", type=float, default=400.0)
    parser.add_argument("--ttft-ms", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    trio.run(main, parser.parse_args())
