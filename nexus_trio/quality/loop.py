"""The quality reconciliation loop: one synchronous recompute per tick (SPEC §6.2).

A drift-free periodic service: tick ``k`` runs at ``start + k * metrics_interval_seconds``
(the interval is read each tick, so a reload applies from the next one). Each tick is one call
to :meth:`QualityStore.recompute`, timed into ``nexus_quality_recompute_duration_seconds``. A
tick that raises is logged and the loop goes on; routing keeps the last snapshot.
"""

from __future__ import annotations

import logging
import time

import trio

from nexus_trio.services import Services

log = logging.getLogger("nexus_trio.quality")


class QualityLoop:
    """Recomputes agent quality metrics every ``quality.metrics_interval_seconds``."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def tick(self) -> None:
        """One recompute of every configured agent (synchronous)."""
        services = self.services
        started = time.perf_counter()
        services.quality.recompute(trio.current_time(), services.agent_keys())
        services.metrics.quality_recompute.observe(time.perf_counter() - started)

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
            next_tick += self.services.config.quality.metrics_interval_seconds
            await trio.sleep_until(next_tick)
