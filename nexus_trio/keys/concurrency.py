"""Requests in flight per key, against each key's ``max_concurrent_requests`` (docs/keys.md#keys).

A proxy request takes a slot once its body has been read and gives it back when it is over;
one over the limit is 429 ``rate_limit_exceeded`` (type ``concurrent_requests``) with
``Retry-After: 1``. Synchronous and in memory; counts live per process.
"""

from __future__ import annotations

from nexus_trio.errors import RateLimitExceeded


class KeyConcurrency:
    """How many requests of each key are in flight."""

    def __init__(self) -> None:
        self._in_flight: dict[str, int] = {}

    def take(self, name: str, limit: int) -> None:
        """Count one more request of key ``name``; ``limit`` 0 = unlimited.

        Raises:
            RateLimitExceeded: ``limit`` requests of the key are already in flight.
        """
        count = self._in_flight.get(name, 0)
        if limit and count >= limit:
            raise RateLimitExceeded(
                f"Key '{name}' already has {limit} requests in flight (its "
                "max_concurrent_requests); retry when one has finished.",
                kind="concurrent_requests",
                headers={"Retry-After": "1"},
            )
        self._in_flight[name] = count + 1

    def give_back(self, name: str) -> None:
        """One request of key ``name`` is over."""
        count = self._in_flight.get(name, 0) - 1
        if count > 0:
            self._in_flight[name] = count
        else:
            self._in_flight.pop(name, None)

    def in_flight(self, name: str) -> int:
        """Requests of key ``name`` in flight now."""
        return self._in_flight.get(name, 0)
