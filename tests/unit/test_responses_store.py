"""The stored responses below the event loop: ``[responses]``, the record and its ids, memory
(recent and unwritten) and the SQLite file — bounds, expiry and keys
(docs/responses-api.md#conversations)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec
import pytest

from nexus_trio.config import ResponsesConfig, parse_config
from nexus_trio.errors import StateError
from nexus_trio.responses_store import StoredResponse, is_response_id, new_response_id
from nexus_trio.responses_store.database import FILE_NAME, ResponseDatabase
from nexus_trio.responses_store.memory import RecentResponses
from tests.unit.config_texts import config_error


def stored(
    number: int, key: str = "team-a", created_at: int = 1_000, size: int = 10
) -> StoredResponse:
    """A record ``resp_<number>…`` of ``size`` bytes: messages ``["xx…"]``, response ``{}``."""
    messages = msgspec.json.encode(["x" * (size - 6)])
    assert len(messages) + 2 == size
    return StoredResponse(
        id=f"resp_{number:032x}",
        key=key,
        model="m",
        created_at=created_at,
        messages=messages,
        response=b"{}",
    )


# --- [responses] ---------------------------------------------------------------------------


def test_the_defaults_store_for_thirty_days_within_bounds() -> None:
    assert parse_config("").responses == ResponsesConfig(
        store=True,
        retention_seconds=30 * 24 * 3600,
        max_stored=100_000,
        max_conversation_bytes=16 * 1024 * 1024,
        max_total_bytes=1024 * 1024 * 1024,
    )


def test_every_key_is_read() -> None:
    text = (
        "[responses]\nstore = false\nretention_seconds = 60\nmax_stored = 5\n"
        "max_conversation_bytes = 100\nmax_total_bytes = 1000\n"
    )
    assert parse_config(text).responses == ResponsesConfig(
        store=False,
        retention_seconds=60,
        max_stored=5,
        max_conversation_bytes=100,
        max_total_bytes=1000,
    )


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ("retention_seconds = 0", "> 0.0 - at `$.responses.retention_seconds`"),
        ("max_stored = 0", ">= 1 - at `$.responses.max_stored`"),
        ("max_total_bytes = 0", ">= 1 - at `$.responses.max_total_bytes`"),
        ("max_conversation_bytes = 0", ">= 1 - at `$.responses.max_conversation_bytes`"),
        (
            "max_conversation_bytes = 268435457",
            "<= 268435456 - at `$.responses.max_conversation_bytes`",
        ),
        (
            "max_conversation_bytes = 2000\nmax_total_bytes = 1000",
            "max_conversation_bytes (2000) must not exceed max_total_bytes (1000) - at "
            "`$.responses.max_conversation_bytes`",
        ),
        ("store = 1", "Expected `bool`, got `int` - at `$.responses.store`"),
        ("keep = true", "Unknown key - at `$.responses.keep`"),
    ],
)
def test_bad_values_name_their_key(keys: str, message: str) -> None:
    assert message in config_error(f"[responses]\n{keys}\n")


# --- the record ----------------------------------------------------------------------------


def test_ids_are_random_and_only_the_gateways_own_are_ids() -> None:
    made = {new_response_id() for _ in range(100)}
    assert len(made) == 100
    assert all(is_response_id(each) for each in made)
    for other in ("resp_1", "resp_" + "A" * 32, "msg_" + "a" * 32, "resp_" + "a" * 33, ""):
        assert not is_response_id(other)


def test_a_records_history_is_a_fresh_copy() -> None:
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    record = StoredResponse("resp_1", "k", "m", 1, msgspec.json.encode(messages), b"{}")
    history = record.history()
    history.append({"role": "user"})
    history[0]["content"] = "changed"
    assert record.history() == messages
    assert record.size == len(msgspec.json.encode(messages)) + 2


# --- memory --------------------------------------------------------------------------------


def test_memory_keeps_the_most_recently_used() -> None:
    memory = RecentResponses(recent_entries=2)
    first, second, third = stored(1), stored(2), stored(3)
    for record in (first, second):
        memory.keep_recent(record)
    assert memory.find(first.id) is first  # now the most recent
    memory.keep_recent(third)
    assert (memory.find(first.id), memory.find(second.id), memory.find(third.id)) == (
        first,
        None,
        third,
    )


def test_memory_is_bounded_in_bytes() -> None:
    memory = RecentResponses(recent_bytes=25)
    records = [stored(n, size=10) for n in range(3)]
    for record in records:
        memory.keep_recent(record)
    assert [memory.find(r.id) is not None for r in records] == [False, True, True]
    memory.keep_recent(stored(9, size=26))  # larger than the cache: not kept
    assert memory.find(stored(9).id) is None


def test_unwritten_responses_are_found_until_written() -> None:
    memory = RecentResponses(recent_entries=1)
    first, second = stored(1), stored(2)
    assert memory.add(first) == memory.add(second) == 0
    assert memory.find(first.id) is first  # out of the recent ones, not yet written
    assert memory.unwritten == 2
    assert memory.take_unwritten() == [first, second]
    assert (memory.unwritten, memory.find(first.id)) == (0, None)


def test_unwritten_responses_given_back_go_first_and_are_bounded() -> None:
    memory = RecentResponses(unwritten_bytes=30)
    old = [stored(1), stored(2)]
    for record in old:
        memory.add(record)
    taken = memory.take_unwritten()
    memory.add(stored(3))
    assert memory.give_back(taken) == 0
    assert memory.take_unwritten() == [*old, stored(3)]
    for number in range(1, 5):
        dropped = memory.add(stored(number))
    assert dropped == 1  # 40 bytes: the oldest went
    assert [r.id for r in memory.take_unwritten()] == [stored(n).id for n in (2, 3, 4)]
    assert memory.add(stored(5, size=50)) == 0  # the newest is always kept
    assert memory.unwritten == 1


def test_memory_forgets_and_expires() -> None:
    memory = RecentResponses()
    records = [stored(n, created_at=1_000 + n) for n in range(3)]
    for record in records:
        memory.add(record)
    memory.forget(records[0].id)
    memory.expire(created_before=1_002)
    assert [memory.find(r.id) for r in records] == [None, None, records[2]]
    assert memory.take_unwritten() == [records[2]]


# --- the file ------------------------------------------------------------------------------


def opened(directory: Path) -> ResponseDatabase:
    db = ResponseDatabase.open(directory)
    assert db is not None
    return db


def test_a_response_is_read_back_by_its_key_only(tmp_path: Path) -> None:
    db = opened(tmp_path / "state")
    record = stored(1, size=30)
    db.put([record])
    assert db.get(record.id, "team-a", created_since=0) == record
    assert db.get(record.id, "team-b", created_since=0) is None
    assert db.get(stored(2).id, "team-a", created_since=0) is None
    assert db.get(record.id, "team-a", created_since=1_001) is None  # expired
    assert not db.delete(record.id, "team-b", created_since=0)
    assert db.delete(record.id, "team-a", created_since=0)
    assert db.get(record.id, "team-a", created_since=0) is None
    assert db.totals() == (0, 0)
    db.close()


def test_the_file_survives_a_reopening(tmp_path: Path) -> None:
    assert ResponseDatabase.open(tmp_path, create=False) is None
    assert not (tmp_path / FILE_NAME).exists()
    db = opened(tmp_path)
    db.put([stored(1), stored(2, size=20)])
    db.put([stored(1, size=99)])  # an id already there is left as it is
    db.close()
    again = ResponseDatabase.open(tmp_path, create=False)
    assert again is not None
    assert again.totals() == (2, 30)
    assert again.get(stored(1).id, "team-a", created_since=0) == stored(1)
    again.close()


def test_trim_forgets_the_expired_then_the_oldest_past_each_bound(tmp_path: Path) -> None:
    db = opened(tmp_path)
    db.put([stored(n, created_at=1_000 + n) for n in range(10)])
    assert db.totals() == (10, 100)
    ids = [stored(n).id for n in range(10)]
    assert db.trim(created_before=1_002, max_count=100, max_bytes=1_000) == ids[:2]
    assert db.trim(created_before=0, max_count=5, max_bytes=1_000) == ids[2:5]
    assert db.trim(created_before=0, max_count=5, max_bytes=35) == ids[5:7]
    assert db.totals() == (3, 30)
    kept = [n for n in range(10) if db.get(stored(n).id, "team-a", created_since=0)]
    assert kept == [7, 8, 9]
    assert db.trim(created_before=0, max_count=3, max_bytes=30) == []
    db.close()


def test_the_oldest_are_the_first_stored(tmp_path: Path) -> None:
    db = opened(tmp_path)
    db.put([stored(1, created_at=2_000)])
    db.put([stored(2, created_at=1_000)])  # created earlier, stored later
    assert db.trim(created_before=0, max_count=1, max_bytes=1_000) == [stored(1).id]
    assert db.get(stored(2).id, "team-a", created_since=0) is not None
    db.close()


def test_a_file_that_is_not_a_store_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_bytes(b"not a database" * 100)
    with pytest.raises(StateError, match=f"response store {tmp_path / FILE_NAME}: cannot open"):
        ResponseDatabase.open(tmp_path)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the directory should be")
    with pytest.raises(StateError, match="cannot create its directory"):
        ResponseDatabase.open(blocked / "state")


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / FILE_NAME) as db:
        db.execute("PRAGMA user_version = 9")
    with pytest.raises(StateError, match="newer version"):
        ResponseDatabase.open(tmp_path)
