"""The created keys in a fleet's shared store: Redis (docs/keys.md#created-keys-in-a-fleet).

Plain blocking code on purpose: every call does network I/O, so the gateway runs it only in a
worker thread, one call at a time. The client is the fleet's
(:func:`~nexus_trio.fleet.store.redis_client`): connecting and each reply are bounded, and it
never retries by itself.

Layout: the hash ``nexus-trio:keys`` holds each key's record (JSON, as in the SQLite file:
settings, the SHA-256 of the secret, the state) by name, and ``nexus-trio:keys:version`` is
incremented in the same transaction as every write. A gateway reads the version each sync and
the hash only when the version changed, so a quiet fleet costs one round trip per sync.

Every failure is one :class:`~nexus_trio.errors.StateError` naming the store's URL without its
password. A record that is not a valid key record (whoever can write the store can write one)
is left out with a WARNING, and never stops the others from being read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import msgspec
import redis

from nexus_trio.config.urls import redacted_url
from nexus_trio.errors import StateError
from nexus_trio.fleet.store import redis_client
from nexus_trio.keys.created import CreatedKey

KEYS_HASH = "nexus-trio:keys"
VERSION_KEY = "nexus-trio:keys:version"
_DECODER = msgspec.json.Decoder(CreatedKey)
_ENCODER = msgspec.json.Encoder()
log = logging.getLogger("nexus_trio.keys")


class SharedKeys:
    """The fleet's created keys in Redis (blocking; see the module docstring)."""

    def __init__(self, url: str) -> None:
        """A client for ``url``; nothing is connected until the first call."""
        self.shown = redacted_url(url)
        self._client = redis_client(url, "nexus-trio-keys")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except redis.RedisError as exc:
            reason = str(exc) or type(exc).__name__
            raise StateError(f"shared store {self.shown}: {reason}") from exc
        except ValueError as exc:  # msgspec.DecodeError too
            raise StateError(f"shared store {self.shown}: unexpected key data: {exc}") from exc

    def write(self, records: Sequence[CreatedKey]) -> None:
        """Store ``records`` (each replacing its name's) and bump the version, atomically.

        Raises:
            StateError: the store cannot be reached or answered unexpectedly.
        """
        with self._errors():
            pipe = self._client.pipeline(transaction=True)
            pipe.hset(KEYS_HASH, mapping={r.name: _ENCODER.encode(r) for r in records})
            pipe.incr(VERSION_KEY)
            pipe.execute()

    def read(self, known: bytes | None) -> tuple[bytes | None, list[CreatedKey] | None]:
        """The version now, and every record if it differs from ``known`` (else None).

        Raises:
            StateError: the store cannot be reached or answered unexpectedly.
        """
        with self._errors():
            version: bytes | None = self._client.get(VERSION_KEY)  # type: ignore[assignment]
            if version == known and known is not None:
                return version, None
            raw: dict[bytes, bytes] = self._client.hgetall(KEYS_HASH)  # type: ignore[assignment]
            return version, self._records(raw)

    def _records(self, raw: Mapping[bytes, bytes]) -> list[CreatedKey]:
        """The valid key records of the hash; each other one is logged and left out."""
        records = []
        for field, value in raw.items():
            try:
                records.append(_DECODER.decode(value))
            except msgspec.DecodeError as exc:
                log.warning(
                    "shared store %s: %r is not a key record, left out: %s",
                    self.shown,
                    field[:64].decode("utf-8", "replace"),
                    str(exc)[:200],
                )
        return records

    def close(self) -> None:
        """Close the client's connections."""
        with self._errors():
            self._client.close()
