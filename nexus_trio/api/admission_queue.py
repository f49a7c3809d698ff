"""The admission queue: requests waiting for a free slot on an at-capacity model
(docs/routing.md#queue-and-overload).

Theory of operation. When every surviving candidate of a request is at its
``max_concurrent_requests``, the request waits here for its resolved model. Waiters are kept in
order of (priority, arrival): ``X-Nexus-Priority: high`` first, FIFO within a priority. When an
attempt on a backend ends, :meth:`AdmissionQueue.slot_freed` wakes the first waiter whose model
that backend serves — no polling. The woken request routes again; if another request took the
slot first it waits again with its original ticket, keeping its place.

The wait itself is bounded by the caller (``min(max_wait_seconds, remaining deadline)``); a
cancelled waiter (client gone, deadline) leaves the queue at once.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass, field

import trio

from nexus_trio import errors
from nexus_trio.registry import Backend


@dataclass(eq=False)
class Ticket:
    """A request's place in the queue; reused when it has to wait again."""

    model: str
    high_priority: bool
    sequence: int
    woken: trio.Event = field(default_factory=trio.Event)

    @property
    def order(self) -> tuple[int, int]:
        return (0 if self.high_priority else 1, self.sequence)


class AdmissionQueue:
    """Bounded priority queue of requests waiting for capacity."""

    def __init__(self) -> None:
        self._waiting: list[Ticket] = []
        self._sequence = itertools.count()

    @property
    def depth(self) -> int:
        """How many requests are waiting now (``nexus_queue_depth``)."""
        return len(self._waiting)

    def ticket(self, model: str, *, high_priority: bool) -> Ticket:
        """A new place in line for ``model`` (not yet waiting)."""
        return Ticket(model, high_priority, next(self._sequence))

    async def wait_for_slot(self, ticket: Ticket, *, max_size: int) -> None:
        """Wait until a slot may have freed for ``ticket.model``.

        Blocks until woken by :meth:`slot_freed`; cancellation removes the ticket at once.

        Raises:
            QueueFull: ``max_size`` requests are already waiting.
        """
        if len(self._waiting) >= max_size:
            raise errors.QueueFull(
                f"The queue for at-capacity backends is full ({max_size} waiting).",
                headers={"Retry-After": "1"},
            )
        ticket.woken = trio.Event()
        keys = [waiting.order for waiting in self._waiting]
        self._waiting.insert(bisect.bisect(keys, ticket.order), ticket)
        woken = False
        try:
            await ticket.woken.wait()
            woken = True
        finally:
            if not woken:
                if ticket in self._waiting:
                    self._waiting.remove(ticket)
                elif ticket.woken.is_set():
                    # Woken and cancelled in the same instant: the slot is not ours to take,
                    # so the wakeup goes to the next waiter instead of being lost.
                    self._wake_first(ticket.model)

    def slot_freed(self, backend: Backend) -> None:
        """An attempt on ``backend`` ended: wake the first waiter it can serve."""
        if self._waiting:
            self._wake_first(backend.models)

    def _wake_first(self, models: str | frozenset[str]) -> None:
        served = {models} if isinstance(models, str) else models
        for ticket in self._waiting:
            if ticket.model in served:
                self._waiting.remove(ticket)
                ticket.woken.set()
                return
