"""The gateway's live counters: requests in flight and finished, the reload history.

:class:`GatewayState` is written by the request path (in flight at admission, the totals by
:meth:`GatewayState.count`, a sink of every finished request) and by the supervisor (reloads),
and read only through :meth:`GatewayState.statistics`, one frozen
:class:`~nexus_trio.gateway.statistics.GatewayStatistics` that ``/health``, ``/v1/stats``, the
dashboard, the metrics collector and systemd's status line all build their view from.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import trio

from nexus_trio.drain import Drain
from nexus_trio.gateway.counts import ReloadResult, RequestCounts
from nexus_trio.gateway.generation import Generations
from nexus_trio.gateway.record import RequestRecord
from nexus_trio.gateway.statistics import GatewayStatistics, Sources, collect
from nexus_trio.quality import QualityStore
from nexus_trio.registry import Registry
from nexus_trio.spend import SpendBook


class InFlight:
    """Proxy requests admitted and not yet finished (``server.max_in_flight_requests``)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


class GatewayState:
    """The counters of one gateway process, and its statistics."""

    def __init__(
        self,
        generations: Generations,
        registry: Registry,
        quality: QualityStore,
        spend: SpendBook,
        drain: Drain,
        queue_depth: Callable[[], int],
    ) -> None:
        self.in_flight = InFlight()
        #: Every finished proxy request, and each key's own by key name (configured: bounded).
        self.totals = RequestCounts()
        self.totals_by_key: dict[str, RequestCounts] = {}
        self.started_at = trio.current_time()
        self.started_wall = time.time()
        #: A reload changed settings that only a restart applies.
        self.restart_required = False
        #: The last reload's result; None before the first.
        self.last_reload: ReloadResult | None = None
        self._sources = Sources(generations, registry, quality, spend, drain, queue_depth)

    def count(self, record: RequestRecord) -> None:
        """The totals' sink: count a finished request, and in its key's own when it has one."""
        self.totals.count(record)
        key = record.key
        if key is not None:
            own = self.totals_by_key.get(key.name)
            if own is None:
                own = self.totals_by_key[key.name] = RequestCounts()
            own.count(record)

    def reloaded(self, result: ReloadResult) -> None:
        """Remember how a reload went (a restart stays required once one was)."""
        self.last_reload = result
        if result.ok and result.restart_required:
            self.restart_required = True

    def statistics(self) -> GatewayStatistics:
        """One frozen snapshot of the gateway now; changes nothing."""
        return collect(
            self._sources,
            uptime_seconds=trio.current_time() - self.started_at,
            started_wall=self.started_wall,
            in_flight=self.in_flight.count,
            restart_required=self.restart_required,
            last_reload=self.last_reload,
            totals=self.totals.copy(),
            totals_by_key={name: counts.copy() for name, counts in self.totals_by_key.items()},
        )
