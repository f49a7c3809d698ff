"""The third gateway of ``bench/run.py --spend --created-keys N``: the spend gateway with its
two bench keys created at run time (docs/keys.md#created-keys) among N created keys.

The spend gateway of that mode holds the two keys of ``bench/spend_gateway.py`` as created
keys (``keys.sqlite3`` in its ``[state] dir``, written here before it starts) instead of
``[[keys]]`` entries, with the same limits and budgets; the third gateway holds the same two
plus N - 2 more. Both are otherwise identical, so the ratio of their throughputs is what
authenticating among N created keys costs against among two (one lookup by digest: it should
be nothing). The records are written through the gateway's own
:class:`~nexus_trio.key_store.database.KeyDatabase`, the file it reads at start.

Run alone (``python bench/created_keys.py [--keys N]``) it measures the same in process,
without sockets or load: one ``KeyRing.authenticate`` among 1 and among N created keys.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
import timeit
from pathlib import Path
from typing import Any

import spend_gateway

from nexus_trio.key_store.database import KeyDatabase
from nexus_trio.keys import CreatedKey, CreatedKeys, KeyRing


def prepare(state: Path, total: int) -> None:
    """Write ``total`` created keys into ``state`` (once: a file already there is kept): the
    two bench keys with the spend gateway's limits and budgets, then filler keys."""
    if (state / "keys.sqlite3").exists():
        return
    now = time.time()
    records = [
        CreatedKey(
            name=name,
            sha256=hashlib.sha256(key.encode()).hexdigest(),
            requests_per_minute=spend_gateway.REQUESTS_PER_MINUTE,
            tokens_per_minute=spend_gateway.TOKENS_PER_MINUTE,
            monthly_budget_usd=1_000_000_000,
            created_at=now,
            updated_at=now,
        )
        for name, key in zip(spend_gateway.KEY_NAMES, spend_gateway.KEYS, strict=True)
    ]
    records += [
        CreatedKey(
            name=f"filler-{index:05d}",
            sha256=hashlib.sha256(f"filler-secret-{index}".encode()).hexdigest(),
            requests_per_minute=60,
            monthly_budget_usd=1.0,
            created_at=now,
            updated_at=now,
        )
        for index in range(total - len(records))
    ]
    database = KeyDatabase.open(state, create=True)
    assert database is not None
    try:
        database.put(records)
    finally:
        database.close()


def _keyring(total: int) -> tuple[Any, list[tuple[bytes, bytes]]]:
    """A keyring over ``total`` created keys, and the headers presenting the first."""
    index = CreatedKeys()
    now = time.time()
    for number in range(total):
        digest = hashlib.sha256(f"secret-{number}".encode()).hexdigest()
        index.put(CreatedKey(name=f"k{number}", sha256=digest, created_at=now, updated_at=now))
    ring = KeyRing({}, index)
    return ring, [(b"authorization", b"Bearer secret-0")]


def main() -> None:
    """In process, without sockets: one authentication among 1 and among N created keys,
    interleaved rounds, the median of each."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--keys", type=int, default=10_000, metavar="N")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    rings = {1: _keyring(1), args.keys: _keyring(args.keys)}
    timings: dict[int, list[float]] = {total: [] for total in rings}
    number = 200_000
    for _ in range(args.rounds):
        for total, (ring, headers) in rings.items():
            assert ring.authenticate(headers) is not None
            seconds = timeit.timeit(lambda r=ring, h=headers: r.authenticate(h), number=number)
            timings[total].append(seconds / number * 1e6)
    for total, values in timings.items():
        print(f"{total:>6} created keys: {statistics.median(values):.3f} µs per authentication")
    one, many = (statistics.median(values) for values in timings.values())
    print(f"ratio {args.keys} / 1: {many / one:.3f}")


if __name__ == "__main__":
    main()
