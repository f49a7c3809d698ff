"""What this gateway's ledger owes the fleet's shared store (docs/spend.md#a-fleet).

Theory of operation. The shared store keeps, for every ledger, that ledger's cumulative month
totals under the ledger's id; the fleet's total is the sum over ledgers. Writing a cumulative
total is idempotent: a push whose reply was lost is pushed again with the same (or a newer)
value, and nothing is counted twice. So what is owed is not a list of deltas but, per month,
the rows the ledger file held after its last write, until the store has acknowledged exactly
those rows.

The ledger service calls :meth:`Outbox.committed` after every write (and at start-up, for the
current and the previous month); the store sync takes :meth:`Outbox.owed`, pushes it and calls
:meth:`Outbox.acknowledge` with what it pushed. After any failed exchange, and when the store
turns out to have lost this ledger's data (a restart without persistence), the sync calls
:meth:`Outbox.forget_acknowledged`, so the next exchange pushes every month held again. Only
what the ledger has committed is pushed: the store never holds more than the ledger, and a
``kill -9`` loses the same last interval in both. Plain synchronous code, driven by the two
services from the event loop.
"""

from __future__ import annotations

import trio

from nexus_trio.spend.tally import SpendKey, SpendRow

#: A month's rows as the ledger holds them.
Rows = dict[SpendKey, SpendRow]


class Outbox:
    """The ledger's committed month rows and which of them the shared store has."""

    def __init__(self) -> None:
        #: The ledger's id (set by the ledger service when it has opened the file).
        self.ledger_id = ""
        self._committed: dict[str, Rows] = {}
        self._acknowledged: dict[str, Rows] = {}
        #: Set by the ledger service after its last write, when it stops.
        self.ledger_closed = trio.Event()

    def committed(self, month: str, rows: list[tuple[SpendKey, SpendRow]]) -> None:
        """What the ledger holds for ``month`` after a write (or at start-up)."""
        if rows:
            self._committed[month] = dict(rows)

    def holds(self, month: str) -> bool:
        """Whether the ledger holds spend in ``month``."""
        return month in self._committed

    def owed(self) -> dict[str, Rows]:
        """The months whose committed rows the store has not acknowledged."""
        return {
            month: rows
            for month, rows in self._committed.items()
            if self._acknowledged.get(month) != rows
        }

    def acknowledge(self, pushed: dict[str, Rows], current_month: str) -> None:
        """The store holds ``pushed``; forget months before ``current_month`` that it holds."""
        self._acknowledged.update(pushed)
        for month in list(self._committed):
            if month < current_month and self._acknowledged.get(month) == self._committed[month]:
                del self._committed[month]
                del self._acknowledged[month]

    def forget_acknowledged(self) -> None:
        """The store may have lost what it acknowledged: owe every held month again."""
        self._acknowledged.clear()
