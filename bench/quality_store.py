"""Micro-benchmark: the quality store's hot path and periodic recompute (docs/quality.md#store).

Run with ``python bench/quality_store.py``. It fills a :class:`QualityStore` with a day of
traffic for 1,000 agents (every bucket of both windows in use), then times:

- ``record_outcome`` — one outcome for a rotating agent, mixed outcomes, streaming with a TTFT,
  the clock advancing so buckets get reused (goal < 5 µs);
- ``recompute`` — a new snapshot of all 1,000 agents, 30 s after the previous one, as the
  periodic loop does (goal < 20 ms);
- ``get`` — the routing read, for reference.

Each is the median over several timed runs.
"""

from __future__ import annotations

import statistics
import time
import timeit

from nexus_trio.config import QualityConfig
from nexus_trio.quality import Outcome, QualityStore

AGENTS = 1000
#: Outcomes in the repeating traffic mix: mostly successes, some of every other kind.
MIX = (Outcome.SUCCESS,) * 7 + (Outcome.FAILURE, Outcome.CLIENT_ERROR, Outcome.CANCELLED)
KEYS = [(f"gpu-{index:04d}", "llama3.1:8b") for index in range(AGENTS)]


def filled_store() -> tuple[QualityStore, float]:
    """A store with 24 h of traffic for every agent, and the time it ends at."""
    store = QualityStore(QualityConfig(consecutive_failures=1000, min_requests=1000))
    now, wall = 0.0, time.time()
    for step in range(24 * 60):  # one outcome per agent per minute for a day
        outcome = MIX[step % len(MIX)]
        for index, key in enumerate(KEYS):
            ttft = 80.0 + (index * 37 + step * 11) % 4000
            store.record_outcome(key, outcome, now=now, wall=wall, ttft_ms=ttft, streaming=True)
        now += 60.0
    store.recompute(now, KEYS)
    return store, now


def time_record(store: QualityStore, start: float) -> tuple[float, float]:
    """Median µs per ``record_outcome`` over 20 runs of 10,000 calls, and the time after."""
    calls = 10_000
    now, done = start, 0
    wall = time.time()

    def run() -> None:
        nonlocal now, done
        record = store.record_outcome
        for i in range(calls):
            record(
                KEYS[(done + i) % AGENTS],
                MIX[(done + i) % len(MIX)],
                now=now + i * 0.01,
                wall=wall,
                ttft_ms=150.0 + i % 900,
                streaming=True,
            )
        now, done = now + calls * 0.01, done + calls

    runs = timeit.repeat(run, number=1, repeat=20)
    return statistics.median(runs) / calls * 1e6, now


def time_recompute(store: QualityStore, start: float) -> float:
    """Median ms per ``recompute`` of every agent, 30 s apart, over 30 runs."""
    now = start

    def run() -> None:
        nonlocal now
        now += 30.0
        store.recompute(now, KEYS)

    runs = timeit.repeat(run, number=1, repeat=30)
    return statistics.median(runs) * 1e3


def time_get(store: QualityStore) -> float:
    """Median µs per ``get``."""
    key = KEYS[AGENTS // 2]
    runs = timeit.repeat(lambda: store.get(key), number=100_000, repeat=20)
    return statistics.median(runs) / 100_000 * 1e6


def main() -> None:
    store, now = filled_store()
    record_us, now = time_record(store, now)
    rows = [
        ("record_outcome", record_us, "µs", 5.0),
        (f"recompute ({AGENTS} agents)", time_recompute(store, now), "ms", 20.0),
        ("get", time_get(store), "µs", None),
    ]
    print(f"{'operation':<28}{'median':>10}  goal")
    for name, value, unit, goal in rows:
        verdict = "" if goal is None else f"< {goal:g} {unit}: {'ok' if value < goal else 'MISSED'}"
        print(f"{name:<28}{value:>7.2f} {unit}  {verdict}")


if __name__ == "__main__":
    main()
