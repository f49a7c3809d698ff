"""Spend: what requests cost, the month's counters, the ledger (docs/spend.md#spend-and-budgets).

This package owns the prices (:mod:`~nexus_trio.spend.pricing`), the current month's spend in
memory and the global budget over it (:mod:`~nexus_trio.spend.book`,
:mod:`~nexus_trio.spend.tally`, :mod:`~nexus_trio.spend.budget`), and the SQLite ledger that
keeps it across restarts (:mod:`~nexus_trio.spend.ledger`, written by the supervisor service in
:mod:`~nexus_trio.spend.service`).

It never touches routing decisions: the request path reads the book's in-memory budget state
before routing and hands the routing package a :class:`~nexus_trio.routing.CloudUse`, which its
pure Budget reconciler applies. The request path never waits on SQLite: charges go to memory,
and only the ledger service, in worker threads, reads and writes the database.
"""

from nexus_trio.spend.book import SpendBook, SpendStatistics
from nexus_trio.spend.budget import BudgetLevel, BudgetState, budget_state
from nexus_trio.spend.ledger import Ledger
from nexus_trio.spend.pricing import Price, PriceList, estimated_tokens
from nexus_trio.spend.service import LedgerService
from nexus_trio.spend.tally import SpendRow, SpendTally, month_bounds, month_of

__all__ = [
    "BudgetLevel",
    "BudgetState",
    "Ledger",
    "LedgerService",
    "Price",
    "PriceList",
    "SpendBook",
    "SpendRow",
    "SpendStatistics",
    "SpendTally",
    "budget_state",
    "estimated_tokens",
    "month_bounds",
    "month_of",
]
