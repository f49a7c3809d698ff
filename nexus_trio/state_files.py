"""The SQLite files the gateway keeps in ``[state] dir``: the spend ledger, the stored responses
and the created keys (docs/operations.md#security).

What it owns: opening one such file the same way for all three — the directory created for the
gateway's user alone (0700), the file 0600 (SQLite's ``-wal`` and ``-shm`` files take its mode),
write-ahead logging, the file's ``synchronous`` level, and a refusal of a file written by a newer
schema — with every sqlite3 and OS error a one-line :class:`~nexus_trio.errors.StateError`. It
never knows what a file holds: each owner prepares its own schema. Blocking: call it from a
worker thread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from nexus_trio.errors import StateError
from nexus_trio.errors.base import state_errors

T = TypeVar("T")


def open_state_file(
    path: Path,
    *,
    store: str,
    synchronous: str,
    schema_version: int,
    prepare: Callable[[sqlite3.Connection], T],
) -> tuple[sqlite3.Connection, T]:
    """Open (creating it and its directory if needed) the state file at ``path``, then run
    ``prepare`` on it (its checks and schema; what it returns is returned with the connection);
    the connection is closed if either fails.

    Raises:
        StateError: the directory or file cannot be used, or was written by a schema newer than
            ``schema_version``; the message names ``store`` and ``path``.
    """
    with state_errors(store, path, "create its directory"):
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with state_errors(store, path, "open it"):
        path.touch(mode=0o600)
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        with state_errors(store, path, "open it"):
            db.execute("PRAGMA journal_mode = WAL").fetchone()
            db.execute(f"PRAGMA synchronous = {synchronous}")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > schema_version:
                raise sqlite3.DatabaseError(f"written by a newer version (schema {version})")
            prepared = prepare(db)
    except StateError:
        db.close()
        raise
    return db, prepared
