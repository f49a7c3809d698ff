"""The quality reconciliation loop: one synchronous recompute per tick (docs/quality.md#store).

A drift-free periodic service: tick ``k`` runs at ``start + k * metrics_interval_seconds``
(the interval is read from the store's current ``[quality]`` each tick, so a reload applies
from the next one). Each tick is one call to :meth:`QualityStore.recompute` over the agents
that ``agents()`` names, its duration handed to ``observe_duration``
(``nexus_quality_recompute_duration_seconds``). A tick that raises is logged and the loop goes
on; routing keeps the last snapshot. The loop does no I/O: it is given the store, a reader of
the configured agents and where to report, never the gateway's services.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

import trio

from nexus_trio.quality.store import AgentKey, QualityStore

log = logging.getLogger("nexus_trio.quality")


class QualityLoop:
    """Recomputes agent quality metrics every ``quality.metrics_interval_seconds``."""

    def __init__(
        self,
        store: QualityStore,
        agents: Callable[[], Iterable[AgentKey]],
        *,
        observe_duration: Callable[[float], None],
    ) -> None:
        """A loop over ``store``.

        Args:
            store: The quality store to recompute; its ``config`` gives the interval.
            agents: Returns the agents configured now (called once per tick).
            observe_duration: Receives each recompute's duration in seconds.
        """
        self.store = store
        self.agents = agents
        self.observe_duration = observe_duration

    def tick(self) -> None:
        """One recompute of every configured agent (synchronous)."""
        started = time.perf_counter()
        self.store.recompute(trio.current_time(), self.agents())
        self.observe_duration(time.perf_counter() - started)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Recompute now, report started, then once per interval until cancelled."""
        next_tick = trio.current_time()
        first = True
        while True:
            try:
                self.tick()
            except Exception:
                log.exception("quality recompute failed; keeping the last metrics")
            if first:
                task_status.started()
                first = False
            next_tick += self.store.config.metrics_interval_seconds
            await trio.sleep_until(next_tick)
