"""Keys created at run time through the admin API (docs/keys.md#created-keys).

It owns the created keys' life: what the admin API accepts and shows
(:mod:`~nexus_trio.key_store.requests`, pure; secrets are made there and only their SHA-256 is
kept), the SQLite file ``keys.sqlite3`` in ``[state] dir``
(:mod:`~nexus_trio.key_store.database`), the fleet's copy in Redis
(:mod:`~nexus_trio.key_store.shared`), both blocking and run in worker threads only, and
:class:`~nexus_trio.key_store.store.KeyStore`, the operations and the service that loads and
syncs them. It never touches the request path: requests read the in-memory index of
:mod:`nexus_trio.keys.created`, which this package fills.
"""

from nexus_trio.key_store.requests import KeySettings, NewKey, Rotation
from nexus_trio.key_store.store import KeyStore

__all__ = ["KeySettings", "KeyStore", "NewKey", "Rotation"]
