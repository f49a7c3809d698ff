"""Created keys' pure parts (docs/keys.md#created-keys): the index by digest, rotation and
expiry, the fleet's merge rule, validation of the admin API's bodies, the bounded key label."""

from __future__ import annotations

import hashlib

import msgspec
import pytest

from nexus_trio import errors
from nexus_trio.key_store.requests import NewKey, changes, decode, key_view, new_secret
from nexus_trio.key_store.shared import SharedKeys
from nexus_trio.key_store.store import merge
from nexus_trio.keys import CreatedKey, CreatedKeys
from nexus_trio.metrics.instruments import OTHER_KEY, KeyLabels


def record(name: str, secret: str = "s", **fields: object) -> CreatedKey:
    digest = hashlib.sha256(secret.encode()).hexdigest()
    base = {"created_at": 1.0, "updated_at": 1.0, **fields}
    return CreatedKey(name=name, sha256=digest, **base)  # type: ignore[arg-type]


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def test_lookup_by_digest_rotation_grace_and_expiry() -> None:
    index = CreatedKeys()
    index.put(record("a", "old", requests_per_minute=5))
    key = index.lookup(digest("old"), 10.0)
    assert key is not None
    assert key.config is not None
    assert (key.name, key.config.requests_per_minute) == ("a", 5)
    assert index.last_used("a") == 10.0
    rotated = msgspec.structs.replace(
        record("a", "new"), previous_sha256=hashlib.sha256(b"old").hexdigest(), previous_until=20.0
    )
    index.put(rotated)
    assert index.lookup(digest("old"), 19.0) is not None
    assert index.lookup(digest("old"), 20.0) is None
    assert index.lookup(digest("new"), 30.0) is not None
    index.put(msgspec.structs.replace(rotated, expires_at=40.0))
    with pytest.raises(errors.KeyExpired):
        index.lookup(digest("new"), 40.0)
    index.put(msgspec.structs.replace(rotated, revoked_at=41.0))
    assert index.lookup(digest("new"), 30.0) is None
    assert index  # a revoked key keeps inbound authentication on
    assert index.configs() == []


def test_merge_takes_newer_versions_keeps_revocations_and_writes_back_what_is_missing() -> None:
    index = CreatedKeys()
    index.put(record("only-here"))
    index.put(record("revoked-here", revoked_at=5.0))
    index.put(record("older-here"))
    remote = [
        record("revoked-here", revision=9),
        msgspec.structs.replace(record("older-here"), revision=2, updated_at=3.0),
        record("new-there"),
    ]
    take, back = merge(index, remote)
    assert sorted(r.name for r in take) == ["new-there", "older-here"]
    assert sorted(r.name for r in back) == ["only-here", "revoked-here"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"name": "a", "unknown": 1}',
        b'{"name": ""}',
        b'{"name": "a\\n"}',  # `$` would match before the final newline
        b'{"name": "a", "models": [""]}',
        b'{"name": "a", "monthly_budget_usd": -1}',
        b"[1]",
        b"not json",
    ],
)
def test_invalid_bodies_are_invalid_value(body: bytes) -> None:
    with pytest.raises(errors.InvalidValue):
        decode(body, NewKey)


def test_expires_at_needs_a_time_zone_and_the_future() -> None:
    naive = decode(b'{"name": "a", "expires_at": "2030-01-01T00:00:00"}', NewKey)
    with pytest.raises(errors.InvalidValue, match="time zone"):
        changes(naive, 0.0)
    past = decode(b'{"name": "a", "expires_at": "2001-01-01T00:00:00Z"}', NewKey)
    with pytest.raises(errors.InvalidValue, match="future"):
        changes(past, 2e9)
    assert changes(past, 0.0)["expires_at"] == 978307200.0


@pytest.mark.parametrize("when", ["9999-12-31T00:00:00Z", "9999-12-31T23:59:59-23:59"])
def test_expires_at_is_a_time_the_key_can_be_shown_with(when: str) -> None:
    """Past 9999 (in UTC) the key could be stored but not shown: every GET of the admin API
    would fail."""
    late = decode(b'{"name": "a", "expires_at": "%s"}' % when.encode(), NewKey)
    with pytest.raises(errors.InvalidValue, match="before 9999"):
        changes(late, 0.0)
    last = decode(b'{"name": "a", "expires_at": "9999-12-30T23:59:59Z"}', NewKey)
    assert key_view(record("a", expires_at=changes(last, 0.0)["expires_at"]), 0.0)["expires_at"]


def test_a_secret_is_recognisable_and_never_shown_again() -> None:
    secret, hex_digest = new_secret()
    assert secret.startswith("nxs-")
    assert len(secret) == 47
    assert hashlib.sha256(secret.encode()).hexdigest() == hex_digest
    view = str(key_view(record("a", secret), 2.0))
    assert secret not in view
    assert hex_digest not in view


def test_the_key_label_is_bounded() -> None:
    labels = KeyLabels(limit=2)
    assert [labels(n) for n in ("a", "b", "c", "a", "d")] == ["a", "b", OTHER_KEY, "a", OTHER_KEY]


class _FakeRedis:
    """The two reads :meth:`SharedKeys.read` makes, of a hash a peer wrote."""

    def __init__(self, records: dict[bytes, bytes]) -> None:
        self.records = records

    def get(self, name: str) -> bytes:
        return b"7"

    def hgetall(self, name: str) -> dict[bytes, bytes]:
        return self.records


def test_records_a_peer_forged_in_the_shared_store_are_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A record that is not a valid key record is left out with a warning: taking it in used
    to raise in the sync service (a digest that is not hex, a reserved name), stopping every
    gateway of the fleet, or to fail every GET of the admin API (a time past year 9999)."""
    good = msgspec.json.encode(record("good"))
    forged = {
        b"not-hex": msgspec.json.encode(record("x")).replace(b'"sha256":"', b'"sha256":"zz'),
        b"short": msgspec.json.encode(msgspec.structs.replace(record("y"), sha256="ab")),
        b"default": msgspec.json.encode(record("default-x")).replace(b"default-x", b"default"),
        b"late": msgspec.json.encode(record("late", expires_at=1e15)),
        b"newline": msgspec.json.encode(record("nl")).replace(b'"nl"', b'"nl\\n"'),
        b"not-json": b"{",
    }
    shared = SharedKeys("redis://127.0.0.1:1/0")
    shared._client = _FakeRedis({b"good": good, **forged})  # type: ignore[assignment]
    version, remote = shared.read(None)
    assert version == b"7"
    assert remote is not None
    index = CreatedKeys()
    take, _ = merge(index, remote)
    for taken in take:
        index.put(taken)
    assert [r.name for r in index.records()] == ["good"]
    warned = [r.getMessage() for r in caplog.records if "not a key record" in r.getMessage()]
    assert len(warned) == len(forged)
