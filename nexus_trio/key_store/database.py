"""The created keys' SQLite file (docs/keys.md#created-keys).

Plain blocking code on purpose: every call does file I/O, so the gateway runs it only in a
worker thread, one call at a time (:class:`~nexus_trio.key_store.store.KeyStore` holds the
lock). The file is ``keys.sqlite3`` in ``[state] dir``, created with the first key, in WAL
mode with
``synchronous = FULL``: a key the admin API has answered for survives a crash. One row per key
name holds the whole record (its settings, the SHA-256 of its secret, its state) as JSON; a
revoked key's row stays, so a revocation is never undone. :meth:`KeyDatabase.changed` tells
whether another process sharing the file (``SO_REUSEPORT`` instances) wrote to it. Every
failure is a
:class:`~nexus_trio.errors.StateError` naming the path.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import msgspec

from nexus_trio.errors import StateError
from nexus_trio.errors.base import state_errors
from nexus_trio.keys.created import CreatedKey
from nexus_trio.state_files import open_state_file

FILE_NAME = "keys.sqlite3"
_SCHEMA_VERSION = 1
_SCHEMA = "CREATE TABLE IF NOT EXISTS keys (name TEXT PRIMARY KEY, record BLOB NOT NULL)"
_DECODER = msgspec.json.Decoder(CreatedKey)
_ENCODER = msgspec.json.Encoder()


def _errors(path: Path, doing: str) -> AbstractContextManager[None]:
    return state_errors("key store", path, doing)


class KeyDatabase:
    """One open key file (blocking; see the module docstring)."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path
        self._data_version = -1

    @classmethod
    def open(cls, directory: Path, *, create: bool) -> KeyDatabase | None:
        """Open the file in ``directory``, creating the directory and the file if needed and
        ``create`` is set; None when it does not exist and ``create`` is not set.

        Raises:
            StateError: the directory or file cannot be used; the message says why.
        """
        path = directory / FILE_NAME
        with _errors(path, "open it"):
            if not create and not path.exists():
                return None
        db, _ = open_state_file(
            path,
            store="key store",
            synchronous="FULL",
            schema_version=_SCHEMA_VERSION,
            prepare=_create_schema,
        )
        return cls(db, path)

    def load(self) -> list[CreatedKey]:
        """Every stored key.

        Raises:
            StateError: the file cannot be read, or a row is not a key record.
        """
        with _errors(self.path, "read it"):
            rows = self._db.execute("SELECT record FROM keys ORDER BY name").fetchall()
        try:
            return [_DECODER.decode(record) for (record,) in rows]
        except msgspec.DecodeError as exc:
            raise StateError(f"key store {self.path}: cannot read it: {exc}") from exc

    def changed(self) -> bool:
        """Whether another connection (another process) committed since the last call."""
        with _errors(self.path, "read it"):
            version: int = self._db.execute("PRAGMA data_version").fetchone()[0]
        changed, self._data_version = version != self._data_version, version
        return changed

    def put(self, records: Sequence[CreatedKey]) -> None:
        """Write ``records`` (each replacing its name's row) in one transaction."""
        rows = [(r.name, _ENCODER.encode(r)) for r in records]
        with _errors(self.path, "write it"):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO keys (name, record) VALUES (?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET record = excluded.record",
                    rows,
                )
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        """Close the file."""
        with _errors(self.path, "close it"):
            self._db.close()


def _create_schema(db: sqlite3.Connection) -> None:
    db.execute(_SCHEMA)
    db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
