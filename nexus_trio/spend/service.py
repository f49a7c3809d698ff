"""The ledger service: loads the month at start-up, writes spend once a second and at the end
(docs/spend.md#ledger).

Theory of operation. :meth:`LedgerService.run` opens the ledger and reads the current month's
rows into the book's tally in a worker thread, then reports started: the front end starts after
it, so no request is charged before the month's totals are known. Each tick (drift-free, every
``interval`` seconds) takes the tally's pending deltas, adds them to the ledger and reads the
month back, in one worker thread call; the event loop never waits on SQLite. The tally's rows
become what was read plus what was charged meanwhile (so instances sharing the file see each
other's spend), and in a fleet the outbox learns what the ledger now holds
(:mod:`nexus_trio.spend.outbox`). A write that fails is logged, the deltas are
given back to the tally (retried on the next tick) and ``store_up`` goes false until a write
succeeds. When the supervisor cancels the service — after the front end has drained — one last
flush runs under a shielded, bounded scope, and the database is closed. A ``kill -9`` therefore
loses at most the deltas of the last ``interval``. Then the outbox's ``ledger_closed`` is set:
the store sync pushes what that last write committed.
"""

from __future__ import annotations

import logging
from pathlib import Path

import trio

from nexus_trio.errors import StateError
from nexus_trio.spend.book import SpendBook
from nexus_trio.spend.ledger import Ledger
from nexus_trio.spend.outbox import Outbox
from nexus_trio.spend.tally import month_bounds, month_of

log = logging.getLogger("nexus_trio.spend")

#: How long the last flush and the close may take once the service is cancelled.
FINAL_FLUSH_SECONDS = 5.0


class LedgerService:
    """Keeps ``book``'s spend in the SQLite ledger in ``directory``."""

    def __init__(
        self,
        book: SpendBook,
        directory: Path,
        *,
        interval: float = 1.0,
        outbox: Outbox | None = None,
    ) -> None:
        """A service for ``book``; nothing is opened until :meth:`run`.

        Args:
            outbox: In a fleet, told what the ledger holds after each write.
        """
        self.book = book
        self.directory = directory
        self.interval = interval
        self.outbox = outbox
        self._ledger: Ledger | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Open and load the ledger, report started, flush every ``interval`` until cancelled.

        Raises:
            StateError: the ledger cannot be opened or read (before ``started``).
        """
        ledger = self._ledger = await trio.to_thread.run_sync(Ledger.open, self.directory)
        try:
            month = self.book.tally.current()
            previous = month_of(month_bounds(month)[0] - 1)
            held = await trio.to_thread.run_sync(ledger.add_and_read, {}, (previous, month))
            self.book.tally.restore(month, held[month])
            if self.outbox is not None:
                self.outbox.ledger_id = ledger.id
                for each, rows in held.items():
                    self.outbox.committed(each, rows)
            self.book.store_up = True
            log.info(
                "spend ledger %s: %s so far %.6f USD", ledger.path, month, self.book.tally.total_usd
            )
            task_status.started()
            next_tick = trio.current_time()
            while True:
                next_tick += self.interval
                await trio.sleep_until(next_tick)
                await self.flush()
        finally:
            with trio.move_on_after(FINAL_FLUSH_SECONDS, shield=True):
                await self.flush()
                await trio.to_thread.run_sync(ledger.close)
            self.book.store_up = False
            if self.outbox is not None:
                self.outbox.ledger_closed.set()

    async def flush(self) -> None:
        """Write the pending deltas and read the month back in a worker thread; on failure keep
        the deltas for the next try."""
        ledger = self._ledger
        tally = self.book.tally
        if ledger is None:
            return
        pending = tally.take_pending()
        try:
            held = await trio.to_thread.run_sync(ledger.add_and_read, pending, (tally.current(),))
        except StateError as exc:
            tally.give_back(pending)
            if self.book.store_up:
                log.error("%s; keeping the spend in memory and retrying", exc)
            self.book.store_up = False
            return
        for month, rows in held.items():
            tally.refresh(month, rows)
            if self.outbox is not None:
                self.outbox.committed(month, rows)
        if not self.book.store_up:
            log.info("spend ledger %s: writing again", ledger.path)
        self.book.store_up = True
