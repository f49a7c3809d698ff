"""The response store: what the request path and the routes call, and its writer service
(docs/responses-api.md#conversations).

Theory of operation. :meth:`ResponseStore.remember` takes a finished response on the event
loop and returns at once: the response goes to memory (:mod:`.memory`), where readers find it
at once, and the writer is woken. The writer (:meth:`ResponseStore.run`, a supervisor service)
writes everything unwritten in one transaction in a worker thread, so responses that finish
while a write runs go together in the next one; it then deletes what expired and the oldest
past the bounds (:meth:`~.database.ResponseDatabase.trim`). :meth:`ResponseStore.lookup`
answers from memory when it can (a follow-up to a recent response) and otherwise reads the
file in a worker thread. Every file access runs in a worker thread under one lock, one at a
time: a delete never races a write. The file is opened when there is one, and created when
the first response is written: a gateway whose clients never store a response never creates
it. A failed write is logged (once, until a write works again), its responses stay in memory
and are retried every :data:`RETRY_SECONDS`; a failed read is the caller's error to report.
Every :data:`SWEEP_SECONDS` expired responses are forgotten, in memory and in the file. When
the supervisor cancels the service, what is unwritten is written under a shielded, bounded
scope and the file is closed: a ``kill -9`` loses only the responses of a write in progress.
"""

from __future__ import annotations

import functools
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import trio

from nexus_trio.config import ResponsesConfig
from nexus_trio.errors import StateError
from nexus_trio.responses_store.database import ResponseDatabase
from nexus_trio.responses_store.memory import RecentResponses
from nexus_trio.responses_store.record import StoredResponse, is_response_id

log = logging.getLogger("nexus_trio.responses")

#: How often expired responses are forgotten.
SWEEP_SECONDS = 60.0
#: How long the writer waits after a failed write before it tries again.
RETRY_SECONDS = 1.0
#: How long the last write and the close may take once the service is cancelled.
FINAL_WRITE_SECONDS = 5.0


def _write(
    db: ResponseDatabase, records: Sequence[StoredResponse], bounds: ResponsesConfig, before: float
) -> list[str]:
    """Blocking: add ``records`` (if any), then trim to ``bounds``; the ids deleted."""
    if records:
        db.put(records)
    return db.trim(
        created_before=before, max_count=bounds.max_stored, max_bytes=bounds.max_total_bytes
    )


class ResponseStore:
    """The stored responses of one gateway; see the module docstring."""

    def __init__(
        self,
        directory: Path,
        settings: Callable[[], ResponsesConfig],
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """A store in ``directory`` (nothing is opened until needed); ``settings`` is read at
        each use, so a reload applies at once."""
        self.directory = directory
        self._settings = settings
        self._clock = wall_clock
        self._memory = RecentResponses()
        self._db: ResponseDatabase | None = None
        self._lock = trio.Lock()
        self._wake = trio.Event()
        #: False from a failed write until a write works again.
        self.up = True

    def remember(self, record: StoredResponse) -> None:
        """Store ``record``; never blocks. One larger than ``max_conversation_bytes`` is not
        stored (logged)."""
        limit = self._settings().max_conversation_bytes
        if record.size > limit:
            log.warning(
                "response %s not stored: it holds %d bytes, more than [responses] "
                "max_conversation_bytes (%d)",
                record.id,
                record.size,
                limit,
            )
            return
        self._dropped(self._memory.add(record))
        self._wake.set()

    async def lookup(self, response_id: str, key: str) -> StoredResponse | None:
        """The response with this id if ``key`` stored it and it has not expired, else None.
        Reads the file in a worker thread when memory does not hold it.

        Raises:
            StateError: the file cannot be read.
        """
        if not is_response_id(response_id):
            return None
        since = self._clock() - self._settings().retention_seconds
        record = self._memory.find(response_id)
        if record is None:
            async with self._lock:
                record = self._memory.find(response_id)  # a failed write gave it back
                db = None if record is not None else await self._database(create=False)
                if db is not None:
                    read = functools.partial(db.get, response_id, key, created_since=since)
                    record = await trio.to_thread.run_sync(read)
                    if record is not None:
                        self._memory.keep_recent(record)
        if record is None or record.key != key or record.created_at < since:
            return None
        return record

    async def delete(self, response_id: str, key: str) -> bool:
        """Delete the response with this id if ``key`` stored it and it has not expired;
        whether it did. Writes the file in a worker thread.

        Raises:
            StateError: the file cannot be written.
        """
        if not is_response_id(response_id):
            return False
        since = self._clock() - self._settings().retention_seconds
        async with self._lock:
            record = self._memory.find(response_id)
            if record is not None and record.key != key:
                return False
            self._memory.forget(response_id)
            db = await self._database(create=False)
            delete = None if db is None else functools.partial(db.delete, created_since=since)
            on_disk = delete is not None and await trio.to_thread.run_sync(delete, response_id, key)
        return on_disk or (record is not None and record.created_at >= since)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Forget what expired, report started, then write and sweep until cancelled; then
        write what is left and close the file (see the module docstring). File errors are
        logged, never raised."""
        try:
            await self.sweep()
            task_status.started()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write_loop)
                nursery.start_soon(self._sweep_loop)
        finally:
            with trio.move_on_after(FINAL_WRITE_SECONDS, shield=True):
                if not await self.flush():
                    log.error("%d stored response(s) lost: not written", self._memory.unwritten)
                async with self._lock:
                    db, self._db = self._db, None
                    if db is not None:
                        await trio.to_thread.run_sync(self._close, db)

    async def flush(self) -> bool:
        """Write every unwritten response and apply the bounds, in a worker thread; on failure
        keep them for the next try. Returns whether it worked."""
        async with self._lock:
            batch = self._memory.take_unwritten()
            if not batch:
                return True
            settings = self._settings()
            before = self._clock() - settings.retention_seconds
            try:
                db = await self._database(create=True)
                assert db is not None
                trimmed = await trio.to_thread.run_sync(_write, db, batch, settings, before)
            except StateError as exc:
                self._dropped(self._memory.give_back(batch))
                self._failed(exc)
                return False
            except BaseException:  # cancelled: they are written at the end
                self._memory.give_back(batch)
                raise
            self._forget(trimmed)
        if not self.up:
            log.info("response store %s: writing again", self.directory)
        self.up = True
        return True

    async def sweep(self) -> None:
        """Forget the expired responses, in memory and in the file, and apply the bounds."""
        settings = self._settings()
        before = self._clock() - settings.retention_seconds
        self._memory.expire(before)
        async with self._lock:
            try:
                db = await self._database(create=False)
                if db is not None:
                    self._forget(await trio.to_thread.run_sync(_write, db, (), settings, before))
            except StateError as exc:
                self._failed(exc)

    async def _write_loop(self) -> None:
        while True:
            if not self._memory.unwritten:
                await self._wake.wait()
            self._wake = trio.Event()
            if not await self.flush():
                await trio.sleep(RETRY_SECONDS)

    async def _sweep_loop(self) -> None:
        start = trio.current_time()
        for tick in itertools.count(1):
            await trio.sleep_until(start + tick * SWEEP_SECONDS)
            await self.sweep()

    async def _database(self, *, create: bool) -> ResponseDatabase | None:
        """The open file, opened (in a worker thread) when it exists or ``create`` is set;
        the caller holds the lock."""
        if self._db is None:
            opening = functools.partial(ResponseDatabase.open, self.directory, create=create)
            self._db = await trio.to_thread.run_sync(opening)
        return self._db

    def _forget(self, trimmed: list[str]) -> None:
        """Responses the file no longer holds are not served from memory either."""
        for response_id in trimmed:
            self._memory.forget(response_id)

    def _failed(self, exc: StateError) -> None:
        if self.up:
            log.error("%s; keeping new responses in memory and retrying", exc)
        self.up = False

    @staticmethod
    def _dropped(count: int) -> None:
        if count:
            log.error("response store: %d unwritten response(s) dropped to bound memory", count)

    @staticmethod
    def _close(db: ResponseDatabase) -> None:
        try:
            db.close()
        except StateError as exc:
            log.error("%s", exc)
