"""Resolving a bearer key to a named client key (docs/keys.md#keys).

Keys are looked up by their SHA-256 digest: a ``[[keys]]`` entry gives its key through
``key_env`` (hashed when the ring is built) or as ``key_sha256``; the comma-separated keys of
``server.api_keys_env`` are named ``default``. The digest of the presented key is one dict
lookup, and comparing digests leaks nothing useful about a key through timing. No key, and no
digest, is ever logged or rendered.
"""

from __future__ import annotations

import fnmatch
import hashlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nexus_trio.config import Config, KeyConfig
from nexus_trio.errors import ConfigError

if TYPE_CHECKING:
    from nexus_trio.keys.created import CreatedKeys

#: The name of every key of ``server.api_keys_env``, and of requests when auth is off.
DEFAULT_KEY = "default"


@dataclass(frozen=True, slots=True)
class ClientKey:
    """Who sent a request: a key name, and its ``[[keys]]`` entry (None for ``default``)."""

    name: str
    config: KeyConfig | None = None

    def allows_model(self, model: str) -> bool:
        """Whether the key's ``models`` allow-list (names or globs) lets it ask ``model``."""
        if self.config is None or not self.config.models:
            return True
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in self.config.models)

    @property
    def limited(self) -> bool:
        """Whether the key has a requests or tokens per minute limit."""
        config = self.config
        return config is not None and bool(config.requests_per_minute or config.tokens_per_minute)

    @property
    def admin(self) -> bool:
        """``admin = true``, or a key of ``server.api_keys_env`` (docs/keys.md#roles)."""
        return self.config is None or self.config.admin

    @property
    def restricted(self) -> bool:
        """A ``privacy = "restricted"`` key: only backends in the restricted zone serve it."""
        return self.config is not None and self.config.privacy == "restricted"


ANONYMOUS = ClientKey(DEFAULT_KEY)


def _digest(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


class KeyRing:
    """The inbound keys of one configuration, and the keys created at run time; empty =
    inbound auth off."""

    def __init__(self, keys: Mapping[bytes, ClientKey], created: CreatedKeys | None = None) -> None:
        """Keys by the SHA-256 digest of the key; ``created``: the keys created at run time
        (shared by every generation, docs/keys.md#created-keys)."""
        self._by_digest = dict(keys)
        self._created = created

    def __bool__(self) -> bool:
        return bool(self._by_digest) or bool(self._created)

    def configs(self) -> list[KeyConfig]:
        """The entries of every named key: the configured ones, then the created ones in force."""
        configured = [key.config for key in self._by_digest.values() if key.config is not None]
        return configured + ([] if self._created is None else self._created.configs())

    @classmethod
    def from_config(
        cls, config: Config, env: Mapping[str, str], created: CreatedKeys | None = None
    ) -> KeyRing:
        """Read every inbound key (docs/configuration.md#inbound-authentication).

        Raises:
            ConfigError: a variable named by ``api_keys_env`` or ``key_env`` holds no key.
        """
        keys: dict[bytes, ClientKey] = {}
        variable = config.server.api_keys_env
        if variable is not None:
            values = [k.strip() for k in env.get(variable, "").split(",") if k.strip()]
            if not values:
                raise ConfigError(
                    f"$.server.api_keys_env: ${variable} holds no key "
                    "(comma-separated keys expected)"
                )
            for value in values:
                keys[_digest(value.encode())] = ANONYMOUS
        for index, entry in enumerate(config.keys):
            if entry.key_env is not None:
                value = env.get(entry.key_env, "").strip()
                if not value:
                    raise ConfigError(f"$.keys[{index}].key_env: ${entry.key_env} holds no key")
                digest = _digest(value.encode())
            else:
                digest = bytes.fromhex(entry.key_sha256 or "")
            keys[digest] = ClientKey(entry.name, entry)
        return cls(keys, created)

    def authenticate(self, headers: Iterable[tuple[bytes, bytes]]) -> ClientKey | None:
        """The key an ``Authorization: Bearer`` header presents, else the one an ``X-Api-Key``
        header presents (Anthropic's clients), or None (absent, malformed or unknown).

        A request that sends both is judged on ``Authorization`` alone.

        Raises:
            KeyExpired: a created key whose ``expires_at`` has passed.
        """
        api_key: bytes | None = None
        for name, value in headers:
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                token = token.strip()
                if scheme.lower() != b"bearer" or not token:
                    return None
                return self._lookup(_digest(token))
            if name == b"x-api-key" and api_key is None:
                api_key = value.strip()
        if not api_key:
            return None
        return self._lookup(_digest(api_key))

    def _lookup(self, digest: bytes) -> ClientKey | None:
        key = self._by_digest.get(digest)
        if key is None and self._created:
            return self._created.lookup(digest, time.time())
        return key
