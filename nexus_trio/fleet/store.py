"""The shared store of a fleet: Redis, through the ``redis`` package's synchronous client.

Plain blocking code on purpose: every call here does network I/O, so the gateway runs it only in
a worker thread (``trio.to_thread.run_sync``), one call at a time, from the store sync service.
Nothing on the request path ever calls it. A dead or black-holed server cannot hold a worker
thread for long: connecting and each reply are bounded by :data:`TIMEOUT_SECONDS` and the
client never retries by itself (the next sync is the retry), so one exchange — at most two
round trips — gives up within ``3 * TIMEOUT_SECONDS``.

One exchange (:meth:`RedisStore.exchange`):

1. One ``MULTI``/``EXEC`` transaction writes what is owed — each owed month's cumulative rows
   (HSET) and a new version token for the ledger, this process's rate-window counts (HSET,
   EXPIRE) — and reads the month's version tokens and the requested rate windows.
2. Only when other ledgers' tokens changed, one pipeline reads those ledgers' hashes. The rows
   of every other ledger are cached with their token, so a quiet fleet costs one round trip.

Every failure — refused, timed out, authentication, an unexpected reply — is one
:class:`~nexus_trio.errors.StateError` naming the store's URL without its password.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from nexus_trio.config.urls import redacted_url
from nexus_trio.errors import StateError
from nexus_trio.fleet.protocol import (
    RATE_TTL_SECONDS,
    Pull,
    Push,
    RateCounts,
    Rows,
    add_rows,
    decode_rows,
    encode_rate_field,
    encode_rows,
    others_rate_counts,
    rate_key,
    spend_key,
    versions_key,
)

#: Seconds to connect, and to wait for each reply.
TIMEOUT_SECONDS = 0.5


def redis_client(url: str, client_name: str) -> redis.Redis:
    """A client of the fleet's Redis at ``url``: short timeouts, no retries (a gateway goes on
    with what it knows rather than waiting), nothing connected until the first call."""
    return redis.Redis.from_url(
        url,
        socket_timeout=TIMEOUT_SECONDS,
        socket_connect_timeout=TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 0),
        client_name=client_name,
    )


class RedisStore:
    """A Redis server shared by the gateways of a fleet (blocking; see the module docstring)."""

    def __init__(self, url: str) -> None:
        """A client for ``url``; nothing is connected until the first exchange."""
        self.shown = redacted_url(url)
        self._client = redis_client(url, "nexus-trio")
        self._month = ""
        #: Other ledgers of ``_month``: id -> (version token, rows).
        self._cache: dict[str, tuple[bytes, Rows]] = {}

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except redis.RedisError as exc:
            reason = str(exc) or type(exc).__name__
            raise StateError(f"shared store {self.shown}: {reason}") from exc
        except ValueError as exc:  # msgspec.DecodeError too
            raise StateError(f"shared store {self.shown}: unexpected data: {exc}") from exc

    def exchange(self, push: Push) -> Pull:
        """Write what ``push`` owes and read the fleet's month and rate windows.

        Raises:
            StateError: the store cannot be reached or answered unexpectedly.
        """
        with self._errors():
            pipe = self._client.pipeline(transaction=True)
            for month, rows in push.spend.items():
                pipe.hset(spend_key(month, push.ledger_id), mapping=encode_rows(rows))  # type: ignore[arg-type]
                pipe.hset(versions_key(month), push.ledger_id, push.token)
            windows: dict[int, dict[bytes, int]] = {}
            for (window, key, kind), count in push.rates.items():
                windows.setdefault(window, {})[encode_rate_field(push.process_id, key, kind)] = (
                    count
                )
            for window, counts in windows.items():
                pipe.hset(rate_key(window), mapping=counts)  # type: ignore[arg-type]
                pipe.expire(rate_key(window), RATE_TTL_SECONDS)
            writes = len(pipe)
            if push.ledger_id:
                pipe.hgetall(versions_key(push.month))
            for window in push.windows:
                pipe.hgetall(rate_key(window))
            replies = pipe.execute()[writes:]
            versions: dict[bytes, bytes] = replies.pop(0) if push.ledger_id else {}
            rates: RateCounts = {}
            for window, raw in zip(push.windows, replies, strict=True):
                rates.update(others_rate_counts(window, raw, push.process_id))
            if not push.ledger_id:
                return Pull(push.month, None, 0, own_present=False, rates=rates)
            others = self._others(push.month, push.ledger_id, versions)
            own_present = push.ledger_id.encode() in versions
            return Pull(push.month, others, len(versions), own_present=own_present, rates=rates)

    def _others(self, month: str, ledger_id: str, versions: dict[bytes, bytes]) -> Rows:
        """The summed rows of every other ledger, fetching only those whose token changed."""
        if month != self._month:
            self._month, self._cache = month, {}
        current = {raw_id.decode(): token for raw_id, token in versions.items()}
        current.pop(ledger_id, None)
        changed = [
            other for other, token in current.items() if self._cache.get(other, (b"",))[0] != token
        ]
        if changed:
            pipe = self._client.pipeline(transaction=False)
            for other in changed:
                pipe.hgetall(spend_key(month, other))
            for other, raw in zip(changed, pipe.execute(), strict=True):
                self._cache[other] = (current[other], decode_rows(raw))
        for gone in self._cache.keys() - current.keys():
            del self._cache[gone]
        others: Rows = {}
        for _, rows in self._cache.values():
            add_rows(others, rows)
        return others

    def close(self) -> None:
        """Close the client's connections."""
        with self._errors():
            self._client.close()
