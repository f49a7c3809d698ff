"""The SQLite ledger: the month's spend per (key, backend, model), kept across restarts
(docs/spend.md#ledger).

Plain blocking code on purpose: every call here does file I/O, so the gateway runs it only in a
worker thread (``trio.to_thread.run_sync``), one call at a time; the ``nexus-trio spend`` command
calls it directly. The database is ``spend.sqlite3`` in ``[state] dir``, in WAL mode with
``synchronous = NORMAL``: a committed write survives the process being killed. Each flush adds
deltas in one transaction (an upsert per row), so a row is never half written, and reads the
months it wrote back: instances sharing the file see each other's spend. The ledger has an id,
made when the file is created; a fleet keeps each ledger's totals under it in the shared store
(docs/spend.md#a-fleet). Every failure —
a directory that cannot be created or written, a file that is not a ledger, a corrupt page —
is a :class:`~nexus_trio.errors.StateError` naming the path.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path

from nexus_trio.errors import StateError
from nexus_trio.errors.base import state_errors
from nexus_trio.spend.tally import SpendKey, SpendRow
from nexus_trio.state_files import open_state_file

FILE_NAME = "spend.sqlite3"
_SCHEMA_VERSION = 2

_CREATE = """
CREATE TABLE IF NOT EXISTS spend (
    month TEXT NOT NULL,
    key TEXT NOT NULL,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    usd REAL NOT NULL,
    requests INTEGER NOT NULL,
    estimated_usd REAL NOT NULL,
    PRIMARY KEY (month, key, backend, model)
) WITHOUT ROWID
"""
#: Schema 2: the ledger's id (a schema 1 file gets one when it is opened for writing).
_CREATE_META = "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)"
_ID = "SELECT value FROM meta WHERE name = 'id'"
_UPSERT = """
INSERT INTO spend (month, key, backend, model, usd, requests, estimated_usd)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (month, key, backend, model) DO UPDATE SET
    usd = usd + excluded.usd,
    requests = requests + excluded.requests,
    estimated_usd = estimated_usd + excluded.estimated_usd
"""
_MONTH = (
    "SELECT key, backend, model, usd, requests, estimated_usd FROM spend WHERE month = ? "
    "ORDER BY key, backend, model"
)


def _errors(path: Path, doing: str) -> AbstractContextManager[None]:
    """Translate sqlite3 and OS errors into one-line :class:`StateError` s."""
    return state_errors("spend ledger", path, doing)


MonthRows = list[tuple[SpendKey, SpendRow]]


class Ledger:
    """One open ledger database (blocking; see the module docstring)."""

    def __init__(self, connection: sqlite3.Connection, path: Path, ledger_id: str = "") -> None:
        self._db = connection
        self.path = path
        #: Made when the file was created; empty when opened read-only.
        self.id = ledger_id

    @classmethod
    def open(cls, directory: Path) -> Ledger:
        """Open (creating if needed) the ledger in ``directory`` for writing, and check it.

        Raises:
            StateError: the directory or file cannot be used; the message says why.
        """
        path = directory / FILE_NAME
        db, ledger_id = open_state_file(
            path,
            store="spend ledger",
            synchronous="NORMAL",
            schema_version=_SCHEMA_VERSION,
            prepare=_check_and_create,
        )
        return cls(db, path, ledger_id)

    @classmethod
    def open_read_only(cls, directory: Path) -> Ledger:
        """Open an existing ledger without writing to it (``nexus-trio spend``).

        Raises:
            StateError: there is no ledger there, or it cannot be read.
        """
        path = directory / FILE_NAME
        if not path.is_file():
            raise StateError(f"spend ledger {path}: no ledger there")
        with _errors(path, "read it"):
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            db.execute("SELECT count(*) FROM spend").fetchone()
        return cls(db, path)

    def month(self, month: str) -> MonthRows:
        """Every row of ``month`` (``YYYY-MM``), ordered by key, backend and model."""
        with _errors(self.path, "read it"):
            return [
                ((key, backend, model), SpendRow(usd, requests, estimated))
                for key, backend, model, usd, requests, estimated in self._db.execute(
                    _MONTH, (month,)
                )
            ]

    def months(self) -> list[str]:
        """The months with spend, newest first."""
        with _errors(self.path, "read it"):
            rows = self._db.execute("SELECT DISTINCT month FROM spend ORDER BY month DESC")
            return [month for (month,) in rows]

    def add(self, deltas: Mapping[tuple[str, str, str, str], SpendRow]) -> None:
        """Add ``deltas`` — (month, key, backend, model) -> row — in one transaction."""
        with _errors(self.path, "write it"):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    _UPSERT,
                    [
                        (*key, row.usd, row.requests, row.estimated_usd)
                        for key, row in deltas.items()
                    ],
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def add_and_read(
        self, deltas: Mapping[tuple[str, str, str, str], SpendRow], months: Iterable[str]
    ) -> dict[str, MonthRows]:
        """Add ``deltas`` (if any), then read back every month of ``months`` and of the deltas.

        What is read back is what the file holds: this process's spend and that of any other
        instance sharing the file.
        """
        if deltas:
            self.add(deltas)
        wanted = sorted({*months, *(month for month, *_ in deltas)})
        return {month: self.month(month) for month in wanted}

    def close(self) -> None:
        """Close the database (checkpoints the WAL when this was its last connection)."""
        with _errors(self.path, "close it"):
            self._db.close()


def _check_and_create(db: sqlite3.Connection) -> str:
    """Check the ledger's integrity, create its tables if needed; its id (made on creation)."""
    (check,) = db.execute("PRAGMA quick_check").fetchone()
    if check != "ok":
        raise sqlite3.DatabaseError(f"integrity check failed: {check}")
    db.execute("BEGIN IMMEDIATE")
    db.execute(_CREATE)
    db.execute(_CREATE_META)
    row = db.execute(_ID).fetchone()
    ledger_id: str = row[0] if row else uuid.uuid4().hex
    if row is None:
        db.execute("INSERT INTO meta VALUES ('id', ?)", (ledger_id,))
    db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
    db.execute("COMMIT")
    return ledger_id
