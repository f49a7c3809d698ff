"""The garbage collector of ``serve`` and ``demo``: start-up objects frozen, larger batches."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nexus_trio import cli, collector

_PROBE = """
import gc, json
import nexus_trio.cli  # what serve has imported when it tunes
from nexus_trio.collector import tune_for_serving
frozen = tune_for_serving()

class Node:
    pass

a, b = Node(), Node()
a.peer, b.peer = b, a
del a, b
print(json.dumps({
    "frozen": frozen,
    "threshold": gc.get_threshold(),
    "cycle_collected": gc.collect() >= 2,
}))
"""


def test_start_up_objects_are_frozen_and_cycles_are_still_collected() -> None:
    # In a fresh interpreter: freezing is process-wide and would change this test process.
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    probe = json.loads(done.stdout)
    # Importing the gateway makes a hundred thousand tracked objects or more.
    assert probe["frozen"] > 50_000
    assert tuple(probe["threshold"]) == (
        collector.YOUNG_THRESHOLD,
        collector.MIDDLE_THRESHOLD,
        collector.OLD_THRESHOLD,
    )
    assert probe["cycle_collected"]


def _record_calls(monkeypatch: pytest.MonkeyPatch, calls: list[str]) -> None:
    def tune() -> int:
        calls.append("tune")
        return 1

    monkeypatch.setattr(cli, "tune_for_serving", tune)


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

    async def run_demo(port: int, *, traffic: bool) -> int:
        calls.append("event loop")
        return 0

    monkeypatch.setattr(cli, "run_demo", run_demo)
    assert cli.main(["demo", "--port", "0"]) == 0
    assert calls == ["tune", "event loop"]
