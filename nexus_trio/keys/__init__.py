"""Inbound keys: who a request is, and how much it may ask (docs/keys.md#keys).

:mod:`~nexus_trio.keys.keyring` resolves the presented bearer key to a named
:class:`~nexus_trio.keys.keyring.ClientKey` (``[[keys]]`` entries, and the unnamed keys of
``server.api_keys_env``, all named ``default``); :mod:`~nexus_trio.keys.limits` keeps each named
key's request and token buckets, :mod:`~nexus_trio.keys.concurrency` its requests in flight.
All are synchronous and in memory. Where a key's models,
privacy and budget apply is the request path's and the routing package's business.
"""

from nexus_trio.keys.concurrency import KeyConcurrency
from nexus_trio.keys.keyring import DEFAULT_KEY, ClientKey, KeyRing
from nexus_trio.keys.limits import RateLimiter

__all__ = ["DEFAULT_KEY", "ClientKey", "KeyConcurrency", "KeyRing", "RateLimiter"]
