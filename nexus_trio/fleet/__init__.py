"""A fleet: gateways sharing spend and rate-limit windows through Redis (docs/spend.md#a-fleet).

With ``[state] store`` set, :class:`~nexus_trio.fleet.service.StoreSync` — a supervisor service —
exchanges with the store every ``sync_interval_seconds`` in a worker thread: it pushes what this
gateway's ledger owes (:mod:`nexus_trio.spend.outbox`) and what its keys consumed, and takes in
the rest of the fleet's month and consumption. :mod:`~nexus_trio.fleet.protocol` is the layout
in the store (pure), :mod:`~nexus_trio.fleet.rates` the rate-window bookkeeping (pure) and
:mod:`~nexus_trio.fleet.store` the blocking Redis client. The request path never waits on any
of it: it reads and charges memory only.
"""

from nexus_trio.fleet.service import StoreSync

__all__ = ["StoreSync"]
