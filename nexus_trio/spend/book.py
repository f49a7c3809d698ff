"""The spend book: what the request path charges and what the budget reads (in memory only).

One :class:`SpendBook` lives for the life of the gateway. Its :meth:`~SpendBook.charge` is called
once per finished request with a cost above 0 and its :meth:`~SpendBook.budget` once per proxy
request before routing; both are plain dict and float work on the :class:`SpendTally`, never
I/O. The ledger service (:mod:`nexus_trio.spend.service`) fills the tally from the ledger at
start-up and writes its deltas back once a second; in a fleet, the store sync
(:mod:`nexus_trio.fleet.service`) adds the other gateways' spend, which budgets count too.
What this gateway's requests in flight have reserved (:meth:`~SpendBook.reserve`,
:meth:`~SpendBook.release`, docs/spend.md#reservations) is counted by every budget it reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from nexus_trio.config import BudgetConfig
from nexus_trio.spend.budget import BudgetLevel, BudgetState, budget_state, level_of
from nexus_trio.spend.reservations import Reservation, Reservations
from nexus_trio.spend.tally import SpendRow, SpendTally, month_bounds


@dataclass(frozen=True, slots=True)
class SpendStatistics:
    """The month's spend for ``/v1/stats`` (docs/api.md#stats)."""

    month: str
    total_usd: float
    estimated_usd: float
    requests: int
    by_key: dict[str, float]
    by_backend: dict[str, float]
    by_model: dict[str, float]
    budget: BudgetState
    #: Whether every store that keeps spend is up: the ledger, and the shared store if any.
    store_up: bool
    #: Each store's state (``nexus_state_store_up{store}``): ``ledger``, and ``redis`` in a fleet.
    stores: dict[str, bool]
    #: This gateway's ledger's part of ``total_usd`` (all of it without a shared store).
    own_usd: float
    #: Held by this gateway's requests in flight (docs/spend.md#reservations).
    reserved_usd: float


class SpendBook:
    """The month's spend and the global budget over it."""

    def __init__(self, budget: BudgetConfig, clock: Callable[[], float]) -> None:
        """A book with nothing spent yet.

        Args:
            budget: ``[budget]``; replace :attr:`budget_config` on reload.
            clock: Wall-clock seconds since the epoch (``time.time``; a fake one in tests).
        """
        self.budget_config = budget
        self.tally = SpendTally(clock)
        self.reservations = Reservations()
        #: Set by the ledger service: loaded, and its last write succeeded.
        self.store_up = False
        #: Set by the store sync: its last exchange succeeded; None without a shared store.
        self.shared_store_up: bool | None = None

    def charge(self, key: str, backend: str, model: str, usd: float, *, estimated: bool) -> None:
        """Add one request's cost, attributed to (key, backend, model) in the current month."""
        self.tally.charge((key, backend, model), usd, estimated=estimated)

    def reserve(self, key: str, usd: float) -> Reservation:
        """Hold ``usd`` for a request of key ``key`` in flight, until :meth:`release`."""
        return self.reservations.reserve(key, usd)

    def release(self, reservation: Reservation) -> None:
        """Give a reservation back (once; again is a no-op)."""
        self.reservations.release(reservation)

    def level(self, key: str, key_limit_usd: float) -> BudgetLevel:
        """The highest level of the global budget and of key ``key``'s own budget of
        ``key_limit_usd`` (0 = none): the request path's cheap check, building no state."""
        tally = self.tally
        tally.current()
        reservations = self.reservations
        percent = self.budget_config.soft_limit_percent
        committed = tally.fleet_usd + reservations.total_usd
        level = level_of(committed, self.budget_config.monthly_limit_usd, percent)
        if key_limit_usd > 0 and level is not BudgetLevel.HARD:
            committed = tally.fleet_key_usd(key) + reservations.key_usd(key)
            key_level = level_of(committed, key_limit_usd, percent)
            if key_level is not BudgetLevel.OK:
                level = key_level
        return level

    def budget(self) -> BudgetState:
        """The global budget now; reading it rolls the month over when it has ended."""
        tally = self.tally
        month = tally.current()
        return budget_state(
            month,
            tally.fleet_usd,
            self.budget_config,
            reserved_usd=self.reservations.total_usd,
        )

    def key_budget(self, name: str, limit_usd: float) -> BudgetState:
        """Key ``name``'s own budget of ``limit_usd`` over its spend this month."""
        tally = self.tally
        month = tally.current()
        return budget_state(
            month,
            tally.fleet_key_usd(name),
            self.budget_config,
            limit_usd=limit_usd,
            reserved_usd=self.reservations.key_usd(name),
        )

    def seconds_to_month_end(self) -> float:
        """Seconds until 00:00 UTC on the 1st of the next month."""
        return month_bounds(self.tally.current())[1] - self.tally.clock()

    def statistics(self) -> SpendStatistics:
        """A frozen snapshot of the month's spend and the budget."""
        budget = self.budget()
        by_key: dict[str, float] = {}
        by_backend: dict[str, float] = {}
        by_model: dict[str, float] = {}
        total = SpendRow()
        for rows in (self.tally.rows, self.tally.others):
            for (key, backend, model), row in rows.items():
                by_key[key] = by_key.get(key, 0.0) + row.usd
                by_backend[backend] = by_backend.get(backend, 0.0) + row.usd
                by_model[model] = by_model.get(model, 0.0) + row.usd
                total.add(row.usd, row.requests, row.estimated_usd)
        stores = {"ledger": self.store_up}
        if self.shared_store_up is not None:
            stores["redis"] = self.shared_store_up
        return SpendStatistics(
            month=budget.month,
            total_usd=total.usd,
            estimated_usd=total.estimated_usd,
            requests=total.requests,
            by_key=by_key,
            by_backend=by_backend,
            by_model=by_model,
            budget=budget,
            store_up=all(stores.values()),
            stores=stores,
            own_usd=self.tally.total_usd,
            reserved_usd=self.reservations.total_usd,
        )
