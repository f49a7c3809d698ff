"""The stored responses' SQLite file (docs/responses-api.md#conversations).

Plain blocking code on purpose: every call does file I/O, so the gateway runs it only in a
worker thread, one call at a time (:class:`~nexus_trio.responses_store.store.ResponseStore`
holds the lock). The file is ``responses.sqlite3`` in ``[state] dir``, in WAL mode with
``synchronous = NORMAL``: a committed write survives the process being killed. Each write adds
its responses in one transaction. The number of rows and their bytes are kept in a ``totals``
row by triggers, in the same transactions, so the bounds are checked without a scan and stay
right for every process sharing the file. :meth:`ResponseDatabase.trim` deletes the expired
rows, then the oldest (by insertion order) while a bound is exceeded. Every failure is a
:class:`~nexus_trio.errors.StateError` naming the path.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from nexus_trio.errors.base import state_errors
from nexus_trio.responses_store.record import StoredResponse
from nexus_trio.state_files import open_state_file

FILE_NAME = "responses.sqlite3"
_SCHEMA_VERSION = 1

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS responses (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        key TEXT NOT NULL,
        model TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        size INTEGER NOT NULL,
        messages BLOB NOT NULL,
        response BLOB NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS responses_created_at ON responses (created_at)",
    """CREATE TABLE IF NOT EXISTS totals (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        count INTEGER NOT NULL,
        bytes INTEGER NOT NULL
    )""",
    "INSERT OR IGNORE INTO totals VALUES (1, 0, 0)",
    """CREATE TRIGGER IF NOT EXISTS responses_added AFTER INSERT ON responses BEGIN
        UPDATE totals SET count = count + 1, bytes = bytes + NEW.size;
    END""",
    """CREATE TRIGGER IF NOT EXISTS responses_removed AFTER DELETE ON responses BEGIN
        UPDATE totals SET count = count - 1, bytes = bytes - OLD.size;
    END""",
)
_INSERT = (
    "INSERT INTO responses (id, key, model, created_at, size, messages, response) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
)
_GET = (
    "SELECT model, created_at, messages, response FROM responses "
    "WHERE id = ? AND key = ? AND created_at >= ?"
)


def _errors(path: Path, doing: str) -> AbstractContextManager[None]:
    """Translate sqlite3 and OS errors into one-line :class:`StateError` s."""
    return state_errors("response store", path, doing)


class ResponseDatabase:
    """One open response file (blocking; see the module docstring)."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path

    @classmethod
    def open(cls, directory: Path, *, create: bool = True) -> ResponseDatabase | None:
        """Open the file in ``directory``, creating the directory and the file if needed and
        ``create`` is set; None when it does not exist and ``create`` is not set.

        Raises:
            StateError: the directory or file cannot be used; the message says why.
        """
        path = directory / FILE_NAME
        if not create and not path.exists():
            return None
        db, _ = open_state_file(
            path,
            store="response store",
            synchronous="NORMAL",
            schema_version=_SCHEMA_VERSION,
            prepare=_create_schema,
        )
        return cls(db, path)

    def put(self, records: Sequence[StoredResponse]) -> None:
        """Add ``records`` in one transaction (an id already there is left as it is)."""
        rows = [
            (r.id, r.key, r.model, r.created_at, r.size, r.messages, r.response) for r in records
        ]
        with _errors(self.path, "write it"), _transaction(self._db):
            self._db.executemany(_INSERT, rows)

    def get(self, response_id: str, key: str, *, created_since: float) -> StoredResponse | None:
        """The response with this id created by ``key`` no earlier than ``created_since``."""
        with _errors(self.path, "read it"):
            row = self._db.execute(_GET, (response_id, key, created_since)).fetchone()
        if row is None:
            return None
        model, created_at, messages, response = row
        return StoredResponse(response_id, key, model, created_at, messages, response)

    def delete(self, response_id: str, key: str, *, created_since: float) -> bool:
        """Delete the response with this id created by ``key``; whether there was one created
        no earlier than ``created_since``."""
        with _errors(self.path, "write it"):
            cursor = self._db.execute(
                "DELETE FROM responses WHERE id = ? AND key = ? AND created_at >= ?",
                (response_id, key, created_since),
            )
            return cursor.rowcount > 0

    def totals(self) -> tuple[int, int]:
        """How many responses the file holds, and their bytes."""
        with _errors(self.path, "read it"):
            count, size = self._db.execute("SELECT count, bytes FROM totals").fetchone()
        return count, size

    def trim(self, *, created_before: float, max_count: int, max_bytes: int) -> list[str]:
        """Delete the responses created before ``created_before``, then the oldest while more
        than ``max_count`` or ``max_bytes`` are held, in one transaction. Returns the ids
        deleted."""
        with _errors(self.path, "write it"), _transaction(self._db):
            deleted = self._db.execute(
                "DELETE FROM responses WHERE created_at < ? RETURNING id", (created_before,)
            ).fetchall()
            count, size = self._db.execute("SELECT count, bytes FROM totals").fetchone()
            last = 0
            oldest = self._db.execute("SELECT seq, size FROM responses ORDER BY seq")
            for seq, row_size in oldest:
                if count <= max_count and size <= max_bytes:
                    break
                last, count, size = seq, count - 1, size - row_size
            oldest.close()
            if last:
                deleted += self._db.execute(
                    "DELETE FROM responses WHERE seq <= ? RETURNING id", (last,)
                ).fetchall()
        return [response_id for (response_id,) in deleted]

    def close(self) -> None:
        """Close the file (checkpoints the WAL when this was its last connection)."""
        with _errors(self.path, "close it"):
            self._db.close()


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if db.in_transaction:  # SQLite rolls some failures back itself
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _create_schema(db: sqlite3.Connection) -> None:
    with _transaction(db):
        for statement in _SCHEMA:
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
