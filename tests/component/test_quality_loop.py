"""The quality recompute loop's ticks (docs/quality.md#settings): a drift-free grid, and a
reload that changes ``metrics_interval_seconds`` applying from the next tick."""

from __future__ import annotations

import trio
import trio.testing

from nexus_trio.config import QualityConfig
from nexus_trio.quality import QualityStore
from nexus_trio.quality.loop import QualityLoop


def every(seconds: float) -> QualityConfig:
    return QualityConfig(metrics_interval_seconds=seconds)


class Ticks:
    """A loop over a store recomputing every ``seconds``, and when each of its ticks ran."""

    def __init__(self, seconds: float) -> None:
        self.store = QualityStore(every(seconds))
        self.times: list[float] = []
        self.loop = QualityLoop(self.store, self._agents, observe_duration=lambda _: None)

    def _agents(self) -> list[tuple[str, str]]:
        self.times.append(trio.current_time())
        return []


async def run_with_reloads(ticks: Ticks, reloads: list[tuple[float, float]], end: float) -> None:
    """Run the loop from 0 to ``end`` s, reconfiguring its store to every ``seconds`` at each
    ``at`` of ``reloads``; ``ticks.times`` then count from 0."""
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        await nursery.start(ticks.loop.run)
        for at, seconds in reloads:
            await trio.sleep_until(start + at)
            ticks.store.configure(every(seconds))
        await trio.sleep_until(start + end)
        nursery.cancel_scope.cancel()
    ticks.times = [t - start for t in ticks.times]


async def test_ticks_follow_a_drift_free_grid(autojump_clock: trio.testing.MockClock) -> None:
    ticks = Ticks(2)
    await run_with_reloads(ticks, [], 9)
    assert ticks.times == [0, 2, 4, 6, 8]


async def test_a_shorter_interval_applies_from_the_next_tick(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ticks = Ticks(30)
    # reloaded at 1 s to 2 s: the next tick is 2 s after the last, not 30 s
    await run_with_reloads(ticks, [(1, 2)], 7)
    assert ticks.times == [0, 2, 4, 6]


async def test_a_shorter_interval_already_due_ticks_at_once_without_catching_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # reloaded at 28.5 s to 1 s: one tick then, and the grid goes on from it
    ticks = Ticks(30)
    await run_with_reloads(ticks, [(28.5, 1)], 31)
    assert ticks.times == [0, 28.5, 29.5, 30.5]


async def test_a_longer_interval_or_the_same_one_keeps_the_last_tick_as_its_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ticks = Ticks(2)
    await run_with_reloads(ticks, [(3, 2), (5, 10)], 25)
    assert ticks.times == [0, 2, 4, 14, 24]
