"""The response store with its writer service: memory first, the file in worker threads,
written as responses finish and at the end, read after a restart, keys, expiry, bounds and a
state directory that cannot be written (docs/responses-api.md#conversations)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from nexus_trio.config import ResponsesConfig
from nexus_trio.responses_store import ResponseStore, StoredResponse
from nexus_trio.responses_store.database import FILE_NAME, ResponseDatabase

NOW = 1_800_000_000.0


class Clock:
    now = NOW

    def __call__(self) -> float:
        return self.now


def record(number: int, key: str = "team-a", *, created_at: float = NOW) -> StoredResponse:
    return StoredResponse(
        id=f"resp_{number:032x}",
        key=key,
        model="m",
        created_at=int(created_at),
        messages=b'[{"role":"user","content":"hi"}]',
        response=b'{"id":"x"}',
    )


def store_in(
    directory: Path, clock: Clock | None = None, **settings: int | float | bool
) -> ResponseStore:
    """A store in ``directory`` at ``NOW`` (or ``clock``) with these ``[responses]`` keys."""
    config = ResponsesConfig(**settings)  # type: ignore[arg-type]
    return ResponseStore(directory, lambda: config, wall_clock=clock or Clock())


def on_disk(directory: Path) -> list[str]:
    """The ids the file holds, read with a connection of its own."""
    db = ResponseDatabase.open(directory, create=False)
    if db is None:
        return []
    try:
        return [
            f"resp_{n:032x}"
            for n in range(10)
            if db.get(f"resp_{n:032x}", "team-a", created_since=0) is not None
        ]
    finally:
        db.close()


async def poll(predicate: Callable[[], Awaitable[bool] | bool]) -> None:
    """Check ``predicate`` every 10 ms until it holds (at most 5 s): the writer and the file
    have no event to wait on."""
    with trio.fail_after(5):
        while True:
            result = predicate()
            if result if isinstance(result, bool) else await result:
                return
            await trio.sleep(0.01)


async def wait_on_disk(directory: Path, ids: list[str]) -> None:
    async def written() -> bool:
        return await trio.to_thread.run_sync(on_disk, directory) == ids

    await poll(written)


async def test_a_stored_response_is_found_at_once_and_written_by_the_service(
    tmp_path: Path,
) -> None:
    store = store_in(tmp_path)
    store.remember(record(1))
    assert await store.lookup(record(1).id, "team-a") == record(1)  # from memory
    assert not (tmp_path / FILE_NAME).exists()
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        await wait_on_disk(tmp_path, [record(1).id])
        store.remember(record(2))
        await wait_on_disk(tmp_path, [record(1).id, record(2).id])
        nursery.cancel_scope.cancel()


async def test_what_is_unwritten_at_the_end_is_written_and_read_after_a_restart(
    tmp_path: Path,
) -> None:
    store = store_in(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        nursery.cancel_scope.cancel()
        store.remember(record(1))  # after the cancel: only the final write can keep it
    assert on_disk(tmp_path) == [record(1).id]
    restarted = store_in(tmp_path)
    assert await restarted.lookup(record(1).id, "team-b") is None
    assert await restarted.lookup(record(1).id, "team-a") == record(1)


async def test_only_the_key_that_stored_a_response_finds_or_deletes_it(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    store.remember(record(1))
    store.remember(record(2))
    assert await store.flush()
    store.remember(record(3))  # in memory only
    for number in (1, 3):
        assert await store.lookup(record(number).id, "team-b") is None
        assert not await store.delete(record(number).id, "team-b")
    assert await store.lookup(record(1).id, "team-a") == record(1)
    assert await store.delete(record(1).id, "team-a")
    assert await store.delete(record(3).id, "team-a")
    assert not await store.delete(record(1).id, "team-a")
    assert await store.flush()
    assert on_disk(tmp_path) == [record(2).id]
    assert await store_in(tmp_path).lookup(record(3).id, "team-a") is None
    assert await store.lookup("resp_not-an-id", "team-a") is None
    assert not await store.delete("../spend", "team-a")


async def test_responses_expire_after_the_retention(tmp_path: Path) -> None:
    clock = Clock()
    store = store_in(tmp_path, clock, retention_seconds=60)
    store.remember(record(1, created_at=NOW - 30))
    store.remember(record(2, created_at=NOW))
    assert await store.flush()
    clock.now = NOW + 45
    assert await store.lookup(record(1).id, "team-a") is None
    assert await store.lookup(record(2).id, "team-a") == record(2)
    assert not await store.delete(record(1).id, "team-a")
    assert (
        await store_in(tmp_path, clock, retention_seconds=60).lookup(record(1).id, "team-a") is None
    )
    await store.sweep()
    assert on_disk(tmp_path) == [record(2).id]


async def test_the_oldest_go_first_past_a_bound_in_memory_too(tmp_path: Path) -> None:
    store = store_in(tmp_path, max_stored=2)
    for number in range(3):
        store.remember(record(number))
    assert await store.flush()
    assert on_disk(tmp_path) == [record(1).id, record(2).id]
    assert await store.lookup(record(0).id, "team-a") is None
    size = record(0).size
    bytes_bound = store_in(tmp_path, max_total_bytes=size, max_conversation_bytes=size)
    await bytes_bound.sweep()
    assert on_disk(tmp_path) == [record(2).id]


async def test_a_conversation_over_its_bound_is_not_stored(tmp_path: Path) -> None:
    store = store_in(tmp_path, max_conversation_bytes=record(1).size - 1)
    store.remember(record(1))
    assert await store.lookup(record(1).id, "team-a") is None
    assert await store.flush()
    assert not (tmp_path / FILE_NAME).exists()


async def test_a_directory_that_cannot_be_written_keeps_responses_in_memory(
    tmp_path: Path,
) -> None:
    blocked = tmp_path / "state"
    blocked.write_text("a file where the state directory should be")
    store = store_in(blocked)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        store.remember(record(1))
        await poll(lambda: not store.up)
        assert await store.lookup(record(1).id, "team-a") == record(1)
        blocked.unlink()  # the operator fixes it: the writer's retry writes it
        await poll(lambda: store.up)
        assert on_disk(blocked) == [record(1).id]
        nursery.cancel_scope.cancel()
