"""The store sync: shares this gateway's spend and rate-limit consumption with its fleet
(docs/spend.md#a-fleet, docs/keys.md#a-fleet).

Theory of operation. :meth:`StoreSync.run` exchanges with the shared store once before it
reports started (so the first request already sees the fleet's month; a store that is down
only costs its timeout), then every ``interval`` seconds, drift-free, skipping ticks that a
slow exchange overran. One tick is synchronous bookkeeping on the event loop and one
:meth:`~nexus_trio.fleet.store.RedisStore.exchange` in a worker thread: the request path only
ever touches memory.

- **Out**: the months the ledger owes (:class:`~nexus_trio.spend.outbox.Outbox`) and this
  process's rate-window counts.
- **In**: the other ledgers' month rows, handed to the spend tally (budgets and ``/v1/stats``
  count them), and the other processes' rate consumption, taken from the limiter's buckets.
- **Degraded**: a failed exchange logs one warning on the way down (one info line on the way
  back), sets ``shared_store_up`` false (``nexus_state_store_up{store="redis"}`` 0) and keeps
  serving on what it knows: this gateway's live counts plus the fleet's last known ones. The
  outbox then owes every month it holds again, so the first exchange that succeeds writes them
  all — into a store that may have restarted empty. A store that lost this ledger without an
  error in between is noticed by the ledger's missing version, with the same cure.

When cancelled, after the front end has drained, it waits (shielded, bounded) for the ledger's
last write and pushes it, then closes the client.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence

import trio

from nexus_trio.config import KeyConfig
from nexus_trio.errors import StateError
from nexus_trio.fleet.protocol import Push, window_of
from nexus_trio.fleet.rates import RateShare
from nexus_trio.fleet.store import RedisStore
from nexus_trio.keys import RateLimiter
from nexus_trio.spend import SpendBook
from nexus_trio.spend.outbox import Outbox
from nexus_trio.spend.service import FINAL_FLUSH_SECONDS

log = logging.getLogger("nexus_trio.fleet")

#: How long the last push may take once cancelled (after the ledger's last write).
FINAL_SYNC_SECONDS = FINAL_FLUSH_SECONDS + 3.0


class StoreSync:
    """Syncs ``book``'s spend (through ``outbox``) and ``limiter``'s consumption with a store."""

    def __init__(
        self,
        url: str,
        *,
        interval: float,
        book: SpendBook,
        limiter: RateLimiter,
        keys: Callable[[], Sequence[KeyConfig]],
        outbox: Outbox | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """A sync with the store at ``url``; nothing is connected until :meth:`run`.

        Args:
            keys: The ``[[keys]]`` configured now (their limits, as reloaded).
            outbox: What the ledger owes; None when no spend is kept (rate limits only).
        """
        self.url = url
        self.interval = interval
        self.book = book
        self.limiter = limiter
        self.keys = keys
        self.outbox = outbox
        self.wall_clock = wall_clock
        self.process_id = uuid.uuid4().hex[:16]
        self.rates = RateShare()
        self._pushes = 0
        #: ``new`` until the first exchange, then ``up`` or ``down`` (logged on each change).
        self._state = "new"

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Sync once, report started, sync every ``interval`` until cancelled, push the last."""
        store = RedisStore(self.url)
        self.limiter.sharing = True
        self.book.shared_store_up = False
        log.info("shared store %s: this gateway is %s", store.shown, self.process_id)
        try:
            await self.sync(store)
            task_status.started()
            next_tick = trio.current_time()
            while True:
                next_tick = max(next_tick + self.interval, trio.current_time())
                await trio.sleep_until(next_tick)
                await self.sync(store)
        finally:
            with trio.move_on_after(FINAL_SYNC_SECONDS, shield=True):
                if self.outbox is not None:
                    await self.outbox.ledger_closed.wait()
                await self.sync(store)
                await trio.to_thread.run_sync(store.close)

    async def sync(self, store: RedisStore) -> None:
        """One exchange: push what is owed and this process's windows, take in the fleet's."""
        window = window_of(self.wall_clock())
        self.rates.record(self.limiter.take_used(), window)
        outbox = self.outbox
        tally = self.book.tally
        month = tally.current()
        owed = outbox.owed() if outbox is not None else {}
        self._pushes += 1
        push = Push(
            ledger_id=outbox.ledger_id if outbox is not None else "",
            process_id=self.process_id,
            token=f"{self.process_id}:{self._pushes}",
            month=month,
            spend=owed,
            rates=self.rates.counts(window),
            windows=(window - 1, window),
        )
        try:
            pull = await trio.to_thread.run_sync(store.exchange, push)
        except StateError as exc:
            if self._state != "down":
                log.warning("%s; serving on this gateway's own counts until it is back", exc)
            self._state = "down"
            self.book.shared_store_up = False
            if outbox is not None:
                outbox.forget_acknowledged()
            return
        if outbox is not None:
            outbox.acknowledge(owed, month)
            if not pull.own_present and outbox.holds(month):
                log.warning(
                    "shared store %s lost this ledger's %s; pushing it again", store.shown, month
                )
                outbox.forget_acknowledged()
        if pull.others is not None:
            tally.set_others(pull.month, pull.others)
        self._absorb(pull.rates, window, catch_up=self._state != "up")
        if self._state != "up":
            again = "back, " if self._state == "down" else ""
            log.info(
                "shared store %s: %sin sync (%d ledger(s) this month)",
                store.shown,
                again,
                pull.ledgers,
            )
        self._state = "up"
        self.book.shared_store_up = True

    def _absorb(
        self, others: dict[tuple[int, str, str], int], window: int, *, catch_up: bool
    ) -> None:
        news = self.rates.absorb(others, window, catch_up=catch_up)
        if not news:
            return
        keys = {key.name: key for key in self.keys()}
        now = trio.current_time()
        for (name, kind), amount in news.items():
            key = keys.get(name)
            if key is not None:
                self.limiter.absorb(name, key, kind, amount, now, catch_up=catch_up)
