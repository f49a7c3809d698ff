"""The quality reconciliation loop: one synchronous recompute per tick (docs/quality.md#store).

A drift-free periodic service: each tick is due ``metrics_interval_seconds`` after the previous one
was due, so tick ``k`` runs at ``start + k * metrics_interval_seconds``. The store tells the loop
when a reload reconfigures it (:meth:`QualityStore.on_configure`); the tick being waited for is
then moved to one new interval after the last, or to that moment when it has already passed
(docs/quality.md#settings): a shorter interval applies from the next tick instead of after the old
one, and never as a burst of ticks to catch up. Each tick is one call to
:meth:`QualityStore.recompute` over the agents that ``agents()`` names, its duration handed to
``observe_duration`` (``nexus_quality_recompute_duration_seconds``). A tick that raises is logged
and the loop goes on; routing keeps the last snapshot. The loop does no I/O: it is given the store,
a reader of the configured agents and where to report, never the gateway's services.
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
        #: Set when the store is reconfigured while :meth:`run` waits for a tick.
        self._reconfigured = trio.Event()

    def tick(self) -> None:
        """One recompute of every configured agent (synchronous)."""
        started = time.perf_counter()
        self.store.recompute(trio.current_time(), self.agents())
        self.observe_duration(time.perf_counter() - started)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Recompute now, report started, then once per interval until cancelled."""
        self.store.on_configure(lambda: self._reconfigured.set())
        due = trio.current_time()
        self._logged_tick()
        task_status.started()
        while True:
            due = await self._wait_for_tick_after(due)
            self._logged_tick()

    def _logged_tick(self) -> None:
        try:
            self.tick()
        except Exception:
            log.exception("quality recompute failed; keeping the last metrics")

    async def _wait_for_tick_after(self, due: float) -> float:
        """Sleep until the tick after the one ``due`` then; returns when that one is due."""
        next_due = due + self.store.config.metrics_interval_seconds
        while True:
            self._reconfigured = trio.Event()
            with trio.move_on_at(next_due):
                await self._reconfigured.wait()
            if not self._reconfigured.is_set():
                return next_due
            interval = self.store.config.metrics_interval_seconds
            next_due = max(due + interval, trio.current_time())
