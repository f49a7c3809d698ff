"""Inbound keys: who a request is, and how much it may ask (docs/keys.md#keys).

:mod:`~nexus_trio.keys.keyring` resolves the presented bearer key to a named
:class:`~nexus_trio.keys.keyring.ClientKey` (``[[keys]]`` entries, and the unnamed keys of
``server.api_keys_env``, all named ``default``); :mod:`~nexus_trio.keys.limits` keeps each named
key's request and token buckets, :mod:`~nexus_trio.keys.concurrency` its requests in flight,
:mod:`~nexus_trio.keys.created` the keys created at run time (their records, and the index by
digest the keyring consults). All are synchronous and in memory. Where a key's models, privacy
and budget apply is the request path's and the routing package's business.
"""

from nexus_trio.keys.concurrency import KeyConcurrency
from nexus_trio.keys.created import CreatedKey, CreatedKeys
from nexus_trio.keys.keyring import DEFAULT_KEY, ClientKey, KeyRing
from nexus_trio.keys.limits import RateLimiter

__all__ = [
    "DEFAULT_KEY",
    "ClientKey",
    "CreatedKey",
    "CreatedKeys",
    "KeyConcurrency",
    "KeyRing",
    "RateLimiter",
]
