"""Micro-benchmark: one full routing decision (docs/routing.md#pipeline goal: < 50 µs for 10
backends).

Run with ``python bench/routing_decision.py``. For each fleet size it builds a registry of
healthy backends that all serve the requested model (plus one other), with varied priorities,
load and latency EWMAs, one backend in 429 cooldown and a privacy policy that applies, then
times :meth:`Pipeline.decide` for a streaming chat request through an alias with ``timeit``
and prints the median over many runs.
"""

from __future__ import annotations

import statistics
import timeit

from nexus_trio.config import BackendConfig, HealthCheckConfig, RoutingConfig, RoutingPolicy
from nexus_trio.registry import HealthState, Registry
from nexus_trio.routing import Pipeline, Requirements, RoutingRequest

#: Calls per timed run, and timed runs per fleet size.
CALLS_PER_RUN = 200
RUNS = 200
GOAL_US = {10: 50.0}


def build_pipeline(size: int) -> Pipeline:
    """A standard ``smart`` pipeline over ``size`` healthy, partly loaded backends."""
    configs = [
        BackendConfig(
            name=f"gpu-{index:03d}",
            url=f"http://10.0.0.{index % 250 + 1}:{8000 + index}",
            type="vllm",
            priority=10 * (index % 7),
            max_concurrent_requests=8 if index % 2 else 0,
            models=["llama3.1:8b", "qwen2.5:7b"],
        )
        for index in range(size)
    ]
    registry = Registry(configs, {}, assume_healthy=True)
    for index, backend in enumerate(registry):
        backend.health = HealthState.HEALTHY
        backend.counters.pending = index % 5
        backend.counters.ttft_ewma_ms = 150.0 + 37.0 * (index % 11)
        if index == 1:
            backend.cooldown_until["llama3.1:8b"] = 1e9
    routing = RoutingConfig(
        aliases={"fast": "llama3.1:8b"},
        policies=[RoutingPolicy(model_pattern="llama*", privacy="restricted")],
    )
    return Pipeline.standard(registry, routing, HealthCheckConfig())


def median_decision_us(size: int) -> float:
    """Median microseconds of one decision over :data:`RUNS` runs."""
    pipeline = build_pipeline(size)
    request = RoutingRequest(
        model="fast",
        stream=True,
        requirements=Requirements(estimated_tokens=600, needs_tools=True),
        now=1000.0,
    )
    runs = timeit.repeat(lambda: pipeline.decide(request), number=CALLS_PER_RUN, repeat=RUNS)
    return statistics.median(runs) / CALLS_PER_RUN * 1e6


def main() -> None:
    for size in (10, 100):
        median = median_decision_us(size)
        goal = GOAL_US.get(size)
        verdict = (
            "" if goal is None else f"  (goal < {goal:g} µs: {'ok' if median < goal else 'MISSED'})"
        )
        print(f"{size:4d} backends: median {median:7.1f} µs per decision{verdict}")


if __name__ == "__main__":
    main()
