"""Keys created at run time: their record and the in-memory index the request path reads
(docs/keys.md#created-keys).

A :class:`CreatedKey` is what the gateway keeps of a key made through ``/admin/keys``: its
settings, the SHA-256 of its secret (never the secret), and its state. :class:`CreatedKeys`
indexes the records in force by digest, so authentication is one dict lookup whatever the
number of keys, then a constant-time comparison of the digests. Each key's limits are a
:class:`~nexus_trio.config.KeyConfig` like a ``[[keys]]`` entry's, so a created key is
enforced exactly like a configured one. Synchronous and in memory; who writes the records to
disk and to a fleet is :mod:`nexus_trio.key_store`'s business.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import msgspec

from nexus_trio import errors
from nexus_trio.config import KeyConfig
from nexus_trio.keys.keyring import ClientKey

#: Every time of a record is before this (9999-12-31T00:00:00Z): a later one cannot be shown
#: as an RFC 3339 time.
LATEST_TIME = datetime(9999, 12, 31, tzinfo=UTC).timestamp()
#: A key's name: 1 to 64 letters, digits, ``.``, ``_`` or ``-``, starting with a letter or a
#: digit (``\Z``, not ``$``, which also matches before a final newline).
KeyName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")]
#: Names that are not for created keys: ``default`` (docs/keys.md#keys) and the metrics'
#: overflow bucket.
RESERVED_NAMES = frozenset({"default", "other"})
#: A SHA-256 in lower-case hex, as the gateway writes it.
Digest = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}\Z")]
#: Unix seconds a record can hold and show.
Time = Annotated[float, msgspec.Meta(ge=0, lt=LATEST_TIME)]


class CreatedKey(msgspec.Struct, frozen=True, kw_only=True):
    """One created key as stored (SQLite, the fleet's store); replaced whole on each change.

    Decoding one checks its name, digests and times (a record read from the fleet's store may
    have been written by anyone who can write there); building one checks the name only.
    """

    name: KeyName
    #: SHA-256 of the secret, hex.
    sha256: Digest
    models: list[str] = msgspec.field(default_factory=list)
    privacy: str = "open"
    requests_per_minute: int = 0
    tokens_per_minute: int = 0
    max_concurrent_requests: int = 0
    monthly_budget_usd: float = 0.0
    #: Unix seconds after which the key is refused 401 ``key_expired``; None = never.
    expires_at: Time | None = None
    admin: bool = False
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    created_at: Time
    updated_at: Time
    #: Unix seconds the key was revoked at; a revoked key never comes back.
    revoked_at: Time | None = None
    #: After a rotation: the previous secret's digest, accepted until ``previous_until``.
    previous_sha256: Digest | None = None
    previous_until: Time | None = None
    #: Incremented on each change: of two versions of a key, the higher one wins.
    revision: int = 1

    def __post_init__(self) -> None:
        if self.name in RESERVED_NAMES:
            raise ValueError(f"the key name {self.name!r} is reserved")

    def config(self) -> KeyConfig:
        """The key's limits and roles, as a ``[[keys]]`` entry would give them."""
        return KeyConfig(
            name=self.name,
            key_sha256=self.sha256,
            models=self.models,
            privacy="restricted" if self.privacy == "restricted" else "open",
            requests_per_minute=self.requests_per_minute,
            tokens_per_minute=self.tokens_per_minute,
            monthly_budget_usd=self.monthly_budget_usd,
            max_concurrent_requests=self.max_concurrent_requests,
            admin=self.admin,
        )

    def newer_than(self, other: CreatedKey) -> bool:
        """Whether this version replaces ``other``: a revocation always does, then the higher
        revision, then the later change."""
        if (self.revoked_at is None) != (other.revoked_at is None):
            return self.revoked_at is not None
        return (self.revision, self.updated_at) > (other.revision, other.updated_at)


@dataclass(slots=True)
class _Entry:
    """A key in force: who it is, and until when this digest is accepted."""

    key: CreatedKey
    client: ClientKey
    digest: bytes
    #: The digest is accepted until then (a rotated-out secret); None = while the key lives.
    until: float | None
    last_used: list[float]


class CreatedKeys:
    """The created keys by name, and those in force by the digest of their secret."""

    def __init__(self) -> None:
        self._by_name: dict[str, CreatedKey] = {}
        #: The limits of each key not revoked, built once per version of the key.
        self._configs: dict[str, KeyConfig] = {}
        self._by_digest: dict[bytes, _Entry] = {}
        self._last_used: dict[str, list[float]] = {}

    def __bool__(self) -> bool:
        """Whether any key was ever created here (revoked ones too: inbound authentication,
        once on, stays on)."""
        return bool(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def records(self) -> list[CreatedKey]:
        """Every record, revoked ones included, by name."""
        return [self._by_name[name] for name in sorted(self._by_name)]

    def get(self, name: str) -> CreatedKey | None:
        """The record named ``name``, or None."""
        return self._by_name.get(name)

    def configs(self) -> list[KeyConfig]:
        """The limits of every key not revoked (for the fleet's rate sharing and statistics)."""
        return list(self._configs.values())

    def last_used(self, name: str) -> float | None:
        """Unix seconds this process last authenticated the key, or None."""
        used = self._last_used.get(name)
        return used[0] if used and used[0] else None

    def put(self, record: CreatedKey) -> None:
        """Make ``record`` the key's current version. A revoked record is kept, but no digest
        of it is accepted any more."""
        old = self._by_name.get(record.name)
        if old is not None:
            for digest in (old.sha256, old.previous_sha256):
                if digest is not None:
                    self._by_digest.pop(bytes.fromhex(digest), None)
        self._by_name[record.name] = record
        if record.revoked_at is not None:
            self._configs.pop(record.name, None)
            return
        used = self._last_used.setdefault(record.name, [0.0])
        config = self._configs[record.name] = record.config()
        client = ClientKey(record.name, config)
        current = bytes.fromhex(record.sha256)
        self._by_digest[current] = _Entry(record, client, current, None, used)
        if record.previous_sha256 is not None and record.previous_until is not None:
            previous = bytes.fromhex(record.previous_sha256)
            self._by_digest[previous] = _Entry(
                record, client, previous, record.previous_until, used
            )

    def lookup(self, digest: bytes, now: float) -> ClientKey | None:
        """Who presents the secret of SHA-256 ``digest`` at unix time ``now``, or None; marks
        the key used.

        Raises:
            KeyExpired: the key's ``expires_at`` has passed.
        """
        entry = self._by_digest.get(digest)
        if entry is None or not hmac.compare_digest(entry.digest, digest):
            return None
        if entry.until is not None and now >= entry.until:
            return None
        expires = entry.key.expires_at
        if expires is not None and now >= expires:
            raise errors.KeyExpired(
                f"The API key '{entry.key.name}' has expired; ask for a new one.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        entry.last_used[0] = now
        return entry.client
