"""The created keys: the admin API's operations and the service that keeps them on disk and in
the fleet (docs/keys.md#created-keys).

Theory of operation. The request path reads only the in-memory index
(:class:`~nexus_trio.keys.created.CreatedKeys`), which every generation's keyring consults
after the configured keys. A change — create, update, revoke, rotate — builds the key's next
record, writes it (the shared store first when there is one, then the SQLite file, each in a
worker thread, one change at a time under a lock) and only then puts it in the index, so an
answered change is durable and in force on this gateway. :meth:`KeyStore.run` loads the file
before it reports started. Without ``[state] store`` it then checks every
``sync_interval_seconds`` whether another process sharing the file wrote to it
(``SO_REUSEPORT`` instances; a cheap ``PRAGMA``) and takes in what changed. With one it syncs
every ``sync_interval_seconds`` instead: a key changed on another gateway is taken in (and
written to the file), and a key the store lacks or holds an older version of is written back,
so a store that restarted empty is refilled. While the store cannot be reached, changes are
refused 503 and the keys last known stay in force, revocations included.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec
import trio

from nexus_trio import errors
from nexus_trio.config import StateConfig
from nexus_trio.errors import StateError
from nexus_trio.key_store.database import KeyDatabase
from nexus_trio.key_store.requests import (
    KeySettings,
    NewKey,
    Rotation,
    changes,
    new_secret,
)
from nexus_trio.key_store.shared import SharedKeys
from nexus_trio.keys.created import RESERVED_NAMES, CreatedKey, CreatedKeys

log = logging.getLogger("nexus_trio.keys")


def merge(
    index: CreatedKeys, remote: Sequence[CreatedKey]
) -> tuple[list[CreatedKey], list[CreatedKey]]:
    """What to take from the store's ``remote`` records, and what to write back to it."""
    take: list[CreatedKey] = []
    theirs = {record.name: record for record in remote}
    for record in remote:
        local = index.get(record.name)
        if local is None or record.newer_than(local):
            take.append(record)
    back = [
        local
        for local in index.records()
        if (other := theirs.get(local.name)) is None or local.newer_than(other)
    ]
    return take, back


class KeyStore:
    """The created keys of ``[state] dir``, shared through ``[state] store`` when set."""

    def __init__(
        self,
        state: StateConfig,
        index: CreatedKeys,
        *,
        configured: Callable[[], set[str]],
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """Keys in ``state.dir``, shared through ``state.store`` (synced every
        ``state.sync_interval_seconds``); ``configured``: the names of the keys of the
        configuration file now."""
        self.directory = Path(state.dir)
        self.index = index
        self.configured = configured
        self.interval = state.sync_interval_seconds
        self.wall_clock = wall_clock
        self._shared = None if state.store is None else SharedKeys(state.store)
        #: False from a failed exchange with the shared store until one succeeds (so the first
        #: failure, at start-up included, is logged).
        self.shared_up = True
        self._version: bytes | None = None
        self._db: KeyDatabase | None = None
        self._lock = trio.Lock()
        #: The last :meth:`reread` failed (logged once until one succeeds).
        self._reread_failed = False

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Load the file, sync once with the store, report started; then every ``interval``
        sync with the store, or without one re-read the file if another process wrote to it.

        Raises:
            StateError: the file cannot be opened or read (fatal at start-up).
        """
        db = self._db = await trio.to_thread.run_sync(
            functools.partial(KeyDatabase.open, self.directory, create=False)
        )
        try:
            for record in [] if db is None else await trio.to_thread.run_sync(db.load):
                self.index.put(record)
            shared = self._shared
            if shared is not None:
                await self.sync(shared)
            task_status.started()
            next_tick = trio.current_time()
            while True:
                next_tick = max(next_tick + self.interval, trio.current_time())
                await trio.sleep_until(next_tick)
                await (self.reread() if shared is None else self.sync(shared))
        finally:
            with trio.move_on_after(2.0, shield=True):
                async with self._lock:
                    if self._db is not None:
                        await trio.to_thread.run_sync(self._db.close)
                    self._db = None
                    if self._shared is not None:
                        await trio.to_thread.run_sync(self._shared.close)

    async def reread(self) -> None:
        """Take in what other processes sharing the file wrote to it (the file first made by
        one of them included). A failure is logged; the keys in memory stay in force."""
        async with self._lock:
            try:
                db = self._db
                if db is None:
                    db = self._db = await trio.to_thread.run_sync(
                        functools.partial(KeyDatabase.open, self.directory, create=False)
                    )
                    if db is None:
                        return
                if not await trio.to_thread.run_sync(db.changed):
                    return
                take, _ = merge(self.index, await trio.to_thread.run_sync(db.load))
            except StateError as exc:
                if not self._reread_failed:
                    log.warning("%s; created keys not re-read until it can be", exc)
                self._reread_failed = True
                return
            self._reread_failed = False
            for record in take:
                self.index.put(record)

    async def sync(self, shared: SharedKeys) -> None:
        """Take in what changed in the store; write back what it lacks. Failures are logged
        once on the way down and once on the way back."""
        async with self._lock:
            try:
                version, remote = await trio.to_thread.run_sync(shared.read, self._version)
                if remote is not None:
                    take, back = merge(self.index, remote)
                    if back:
                        await trio.to_thread.run_sync(shared.write, back)
                    for record in take:
                        self.index.put(record)
                    if take:
                        await self._keep(take)
                self._version = version
            except StateError as exc:
                if self.shared_up:
                    log.warning("%s; key changes are refused until it is back", exc)
                self.shared_up = False
                return
            if not self.shared_up:
                log.info("shared store %s: keys back in sync", shared.shown)
            self.shared_up = True

    async def create(self, new: NewKey) -> tuple[CreatedKey, str]:
        """Create the key ``new`` describes; return it and its secret (shown once).

        Raises:
            APIError: the name is taken (409), a setting is invalid (400), the file or the
                shared store cannot be written (503).
        """
        if new.name in RESERVED_NAMES or new.name in self.configured():
            raise errors.Conflict(f"The key name '{new.name}' is taken.", param="name")
        now = self.wall_clock()
        secret, digest = new_secret()
        fields = changes(new, now)
        record = CreatedKey(name=new.name, sha256=digest, created_at=now, updated_at=now, **fields)
        async with self._lock:
            if self.index.get(new.name) is not None:
                raise errors.Conflict(f"The key name '{new.name}' is taken.", param="name")
            await self._commit(record)
        return record, secret

    async def update(self, name: str, settings: KeySettings) -> CreatedKey:
        """Change the settings of key ``name``."""
        now = self.wall_clock()
        fields = changes(settings, now)
        async with self._lock:
            current = self._changeable(name)
            await self._commit(self._next(current, now, **fields))
        return self._changeable(name)

    async def revoke(self, name: str) -> CreatedKey:
        """Revoke key ``name``: refused from the next request on; requests in flight finish."""
        now = self.wall_clock()
        async with self._lock:
            current = self._changeable(name)
            record = self._next(current, now, revoked_at=now)
            await self._commit(record)
        return record

    async def rotate(self, name: str, rotation: Rotation) -> tuple[CreatedKey, str]:
        """Give key ``name`` a new secret; the old one works ``grace_seconds`` more."""
        now = self.wall_clock()
        secret, digest = new_secret()
        async with self._lock:
            current = self._changeable(name)
            grace = rotation.grace_seconds
            record = self._next(
                current,
                now,
                sha256=digest,
                previous_sha256=current.sha256 if grace else None,
                previous_until=now + grace if grace else None,
            )
            await self._commit(record)
        return record, secret

    def _changeable(self, name: str) -> CreatedKey:
        current = self.index.get(name)
        if current is None:
            if name in self.configured():
                raise errors.Conflict(
                    f"The key '{name}' comes from the configuration file and cannot be "
                    "changed here (docs/keys.md#keys)."
                )
            raise errors.NotFound(f"No key named '{name[:64]}'.")  # echoed, bounded
        if current.revoked_at is not None:
            raise errors.Conflict(f"The key '{name}' is revoked; create a new one.")
        return current

    @staticmethod
    def _next(current: CreatedKey, now: float, **fields: object) -> CreatedKey:
        return msgspec.structs.replace(
            current, updated_at=now, revision=current.revision + 1, **fields
        )

    async def _commit(self, record: CreatedKey) -> None:
        """Write ``record`` to the shared store and the file, then put it in force (the
        caller holds the lock)."""
        try:
            if self._shared is not None:
                if not self.shared_up:
                    raise StateError(f"shared store {self._shared.shown}: unreachable")
                await trio.to_thread.run_sync(self._shared.write, [record])
            await self._write([record])
        except StateError as exc:
            log.error("key '%s' not changed: %s", record.name, exc)
            raise errors.ServiceUnavailable(
                "The key store cannot be written now (docs/keys.md#created-keys); try again."
            ) from exc
        self.index.put(record)

    async def _keep(self, records: list[CreatedKey]) -> None:
        """Write what the fleet changed to the file; a failure is logged (they are in force
        anyway, and the store holds them)."""
        try:
            await self._write(records)
        except StateError as exc:
            log.error("keys taken from the shared store not written: %s", exc)

    async def _write(self, records: list[CreatedKey]) -> None:
        """Write ``records`` to the file, creating it with the first (the caller holds the
        lock)."""
        if self._db is None:
            self._db = await trio.to_thread.run_sync(
                functools.partial(KeyDatabase.open, self.directory, create=True)
            )
        assert self._db is not None
        await trio.to_thread.run_sync(self._db.put, records)
