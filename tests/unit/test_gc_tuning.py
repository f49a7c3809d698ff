"""The garbage collector of ``serve`` and ``demo``: start-up objects frozen, larger batches."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nexus_trio.cli import commands as cli
from nexus_trio.runtime import gc_tuning as collector

_PROBE = """
import gc, json, weakref
import nexus_trio.cli  # what serve has imported when it tunes
from nexus_trio.runtime.gc_tuning import YOUNG_THRESHOLD, tune_for_serving

class Node:
    pass

def cycle():
    a, b = Node(), Node()
    a.peer, b.peer = b, a
    return weakref.ref(a)

made_before = cycle()  # garbage from before the freeze
frozen = tune_for_serving()
made_after = cycle()
young_before = gc.get_stats()[0]["collections"]
held = [[] for _ in range(3 * YOUNG_THRESHOLD)]  # net allocations, no explicit collection
print(json.dumps({
    "frozen": frozen,
    "threshold": gc.get_threshold(),
    "enabled": gc.isenabled(),
    "garbage_before_freed": made_before() is None,
    "garbage_after_freed": made_after() is None,
    "young_collections": gc.get_stats()[0]["collections"] - young_before,
}))
"""


def test_start_up_objects_are_frozen_and_cycles_are_still_collected() -> None:
    # In a fresh interpreter: freezing is process-wide and would change this test process.
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    probe = json.loads(done.stdout)
    # Importing the gateway makes some 70,000 tracked objects.
    assert probe["frozen"] > 50_000
    assert tuple(probe["threshold"]) == (collector.YOUNG_THRESHOLD, 10, 10)
    assert probe["enabled"]
    # Garbage made before the freeze is collected first, not frozen for the process's life.
    assert probe["garbage_before_freed"]
    # Later cycles are found by the collector on its own, every YOUNG_THRESHOLD net
    # allocations (at CPython's 700 these 30,000 would have made over 40 collections).
    assert probe["garbage_after_freed"]
    assert 1 <= probe["young_collections"] <= 4


def _record_calls(monkeypatch: pytest.MonkeyPatch, calls: list[str]) -> None:
    def tune() -> int:
        calls.append("tune")
        return 1

    monkeypatch.setattr(cli, "tune_for_serving", tune)
    # The command's logging set-up would stay on the nexus_trio loggers for every later test.
    monkeypatch.setattr(cli, "configure_logging", lambda level, fmt: None)


def test_serve_tunes_the_collector_before_the_event_loop_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[str] = []
    _record_calls(monkeypatch, calls)

    def run_daemon(main: object) -> None:
        calls.append("event loop")

    monkeypatch.setattr(cli, "_run_daemon", run_daemon)
    config = tmp_path / "nexus.toml"
    config.write_text("")
    assert cli.main(["serve", "--config", str(config)]) == 0
    assert calls == ["tune", "event loop"]


def test_demo_tunes_the_collector_before_the_event_loop_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    _record_calls(monkeypatch, calls)

    async def run_demo(port: int, state_dir: Path, *, traffic: bool) -> int:
        calls.append("event loop")
        return 0

    monkeypatch.setattr(cli, "run_demo", run_demo)
    assert cli.main(["demo", "--port", "0"]) == 0
    assert calls == ["tune", "event loop"]
