"""The month's spend in memory: totals per (key, backend, model), and what the ledger still owes.

The request path charges a :class:`SpendTally` (a few dict updates, never I/O); the ledger
service takes the pending deltas once a second and writes them in a worker thread. Months are
UTC calendar months named ``YYYY-MM``. The tally rolls over on the first charge or read at or
after 00:00 UTC on the 1st (docs/spend.md#budgets): the new month starts from zero, and deltas
still pending for the old month keep their month, so the ledger files them where they belong.
Time comes from an injectable wall clock (seconds since the epoch), so rollover is tested with a
fake one.

Two more sources feed the totals. After each write the ledger service hands back what the
ledger file holds for the month (:meth:`SpendTally.refresh`): the rows become that plus what was
charged since, so instances sharing one file see each other's spend. In a fleet, the store sync
hands over the month's rows of every *other* ledger (:meth:`SpendTally.set_others`); the
``fleet_*`` totals, which budgets read, add them to this ledger's own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass

#: (key name, backend, model): what spend is attributed to.
SpendKey = tuple[str, str, str]


def month_of(wall: float) -> str:
    """The UTC month ``YYYY-MM`` that ``wall`` (seconds since the epoch) falls in."""
    return dt.datetime.fromtimestamp(wall, dt.UTC).strftime("%Y-%m")


def month_bounds(month: str) -> tuple[float, float]:
    """Epoch seconds of 00:00 UTC on the 1st of ``month`` and of the month after."""
    year, number = (int(part) for part in month.split("-"))
    start = dt.datetime(year, number, 1, tzinfo=dt.UTC)
    end = dt.datetime(year + number // 12, number % 12 + 1, 1, tzinfo=dt.UTC)
    return start.timestamp(), end.timestamp()


@dataclass(slots=True)
class SpendRow:
    """USD and requests for one (key, backend, model) in one month."""

    usd: float = 0.0
    requests: int = 0
    #: The part of ``usd`` estimated from characters (docs/spend.md#estimates).
    estimated_usd: float = 0.0

    def add(self, usd: float, requests: int, estimated_usd: float) -> None:
        self.usd += usd
        self.requests += requests
        self.estimated_usd += estimated_usd


class SpendTally:
    """The current month's totals and the deltas not yet in the ledger."""

    def __init__(self, clock: Callable[[], float]) -> None:
        """Start empty in the month ``clock()`` falls in.

        Args:
            clock: Wall-clock seconds since the epoch (``time.time`` in production).
        """
        self.clock = clock
        self.month = ""
        self._month_ends = float("-inf")
        self.rows: dict[SpendKey, SpendRow] = {}
        self.total_usd = 0.0
        #: This month's USD per key name (for keys' own budgets).
        self.by_key: dict[str, float] = {}
        #: Not yet written: (month, key, backend, model) -> delta.
        self.pending: dict[tuple[str, str, str, str], SpendRow] = {}
        #: The current month's rows of the fleet's other ledgers (docs/spend.md#a-fleet).
        self.others: dict[SpendKey, SpendRow] = {}
        self.others_usd = 0.0
        self.others_by_key: dict[str, float] = {}
        self.current()

    def current(self) -> str:
        """The current month, rolling the totals over first if a month boundary has passed."""
        wall = self.clock()
        if wall >= self._month_ends:
            month = month_of(wall)
            if month != self.month:
                self.month = month
                self.rows = {}
                self.total_usd = 0.0
                self.by_key = {}
                self.set_others(month, {})
            self._month_ends = month_bounds(month)[1]
        return self.month

    def restore(self, month: str, rows: Iterable[tuple[SpendKey, SpendRow]]) -> None:
        """Add what the ledger holds for ``month`` to the totals (at start-up, before charges)."""
        if month != self.current():
            return
        for key, row in rows:
            self.rows.setdefault(key, SpendRow()).add(row.usd, row.requests, row.estimated_usd)
            self.total_usd += row.usd
            self.by_key[key[0]] = self.by_key.get(key[0], 0.0) + row.usd

    def refresh(self, month: str, committed: Iterable[tuple[SpendKey, SpendRow]]) -> None:
        """Make ``committed`` (what the ledger holds) plus the pending deltas the month's rows."""
        if month != self.current():
            return
        rows = {key: SpendRow(row.usd, row.requests, row.estimated_usd) for key, row in committed}
        for (pending_month, *key), delta in self.pending.items():
            if pending_month == month:
                spend_key = (key[0], key[1], key[2])
                rows.setdefault(spend_key, SpendRow()).add(
                    delta.usd, delta.requests, delta.estimated_usd
                )
        self.rows = rows
        self.total_usd, self.by_key = _totals(rows)

    def set_others(self, month: str, rows: dict[SpendKey, SpendRow]) -> None:
        """The fleet's other ledgers' rows for ``month`` (ignored unless it is the current one)."""
        if month != self.month:
            return
        self.others = rows
        self.others_usd, self.others_by_key = _totals(rows)

    @property
    def fleet_usd(self) -> float:
        """This month's USD of the fleet: this ledger's and the others' (docs/spend.md#a-fleet)."""
        return self.total_usd + self.others_usd

    def fleet_key_usd(self, name: str) -> float:
        """This month's USD of key ``name`` across the fleet."""
        return self.by_key.get(name, 0.0) + self.others_by_key.get(name, 0.0)

    def charge(self, key: SpendKey, usd: float, *, estimated: bool) -> None:
        """Count one request's cost in this month's totals and in the pending deltas."""
        month = self.current()
        estimated_usd = usd if estimated else 0.0
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = SpendRow()
        row.add(usd, 1, estimated_usd)
        self.total_usd += usd
        self.by_key[key[0]] = self.by_key.get(key[0], 0.0) + usd
        pending_key = (month, *key)
        delta = self.pending.get(pending_key)
        if delta is None:
            delta = self.pending[pending_key] = SpendRow()
        delta.add(usd, 1, estimated_usd)

    def take_pending(self) -> dict[tuple[str, str, str, str], SpendRow]:
        """The deltas to write, and forget them here (give them back with :meth:`give_back`)."""
        pending, self.pending = self.pending, {}
        return pending

    def give_back(self, pending: dict[tuple[str, str, str, str], SpendRow]) -> None:
        """Deltas a failed write did not store: pending again, merged with newer ones."""
        for key, row in pending.items():
            self.pending.setdefault(key, SpendRow()).add(row.usd, row.requests, row.estimated_usd)


def _totals(rows: dict[SpendKey, SpendRow]) -> tuple[float, dict[str, float]]:
    total = 0.0
    by_key: dict[str, float] = {}
    for (key, _, _), row in rows.items():
        total += row.usd
        by_key[key] = by_key.get(key, 0.0) + row.usd
    return total, by_key
