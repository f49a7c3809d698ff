"""The SQLite files of ``[state] dir`` are the gateway's user's alone (docs/operations.md#security):
stored responses hold tenants' conversations, whatever the umask outside systemd."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nexus_trio.key_store.database import KeyDatabase
from nexus_trio.responses_store.database import ResponseDatabase
from nexus_trio.spend.ledger import Ledger

OPENERS: dict[str, Callable[[Path], object]] = {
    "keys": lambda d: KeyDatabase.open(d, create=True),
    "responses": lambda d: ResponseDatabase.open(d),
    "ledger": Ledger.open,
}


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("permissive_umask")
@pytest.mark.parametrize("store", sorted(OPENERS))
def test_state_files_are_private(tmp_path: Path, store: str) -> None:
    directory = tmp_path / "state"
    database = OPENERS[store](directory)
    try:
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        files = sorted(directory.iterdir())
        assert len(files) == 3  # the file, its -wal and -shm
        assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {
            f.name: 0o600 for f in files
        }
    finally:
        database.close()  # type: ignore[attr-defined]
