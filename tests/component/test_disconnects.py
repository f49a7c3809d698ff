"""The disconnect watcher: requests that end within the grace period cost no watcher; longer
ones are cancelled when their client leaves, at most the grace period late (virtual time)."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from nexus_trio.asgi.disconnects import GRACE_SECONDS, DisconnectWatcher


class Client:
    """An ASGI ``receive`` that returns ``http.disconnect`` once ``gone`` is set."""

    def __init__(self) -> None:
        self.gone = trio.Event()
        self.calls = 0

    async def receive(self) -> dict[str, Any]:
        self.calls += 1
        await self.gone.wait()
        return {"type": "http.disconnect"}


async def _started(nursery: trio.Nursery) -> DisconnectWatcher:
    watcher = DisconnectWatcher()
    await nursery.start(watcher.run)
    return watcher


async def test_request_ending_within_the_grace_period_is_never_watched(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    watcher = await _started(nursery)
    client = Client()
    with trio.CancelScope() as request:
        watch = watcher.watch(client.receive, request)  # type: ignore[arg-type]
        await trio.sleep(GRACE_SECONDS / 2)
        watch.finish()
    await trio.sleep(GRACE_SECONDS * 10)
    assert client.calls == 0
    assert watcher.pending == 0
    assert not request.cancelled_caught


async def test_disconnect_after_the_grace_period_cancels_at_once(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    watcher = await _started(nursery)
    client = Client()
    with trio.CancelScope() as request:
        watcher.watch(client.receive, request)  # type: ignore[arg-type]
        await trio.sleep(5)
        gone_at = trio.current_time()
        client.gone.set()
        await trio.sleep_forever()
    assert request.cancelled_caught
    assert trio.current_time() == gone_at
    assert client.calls == 1


async def test_disconnect_within_the_grace_period_is_noticed_when_it_ends(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    watcher = await _started(nursery)
    client = Client()
    client.gone.set()
    registered = trio.current_time()
    with trio.CancelScope() as request:
        watcher.watch(client.receive, request)  # type: ignore[arg-type]
        await trio.sleep_forever()
    assert request.cancelled_caught
    assert trio.current_time() - registered == GRACE_SECONDS


async def test_expedited_request_is_watched_at_once(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    watcher = await _started(nursery)
    client = Client()
    client.gone.set()
    registered = trio.current_time()
    with trio.CancelScope() as request:
        watcher.watch(client.receive, request).expedite()  # type: ignore[arg-type]
        await trio.sleep_forever()
    assert request.cancelled_caught
    assert trio.current_time() == registered


async def test_finish_cancels_a_running_watcher(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    watcher = await _started(nursery)
    client = Client()
    tasks_before = trio.lowlevel.current_statistics().tasks_living
    with trio.CancelScope() as request:
        watch = watcher.watch(client.receive, request)  # type: ignore[arg-type]
        await trio.sleep(1)
        assert client.calls == 1  # watched: blocked in receive()
        assert trio.lowlevel.current_statistics().tasks_living == tasks_before + 1
        watch.finish()
    await trio.testing.wait_all_tasks_blocked()
    assert trio.lowlevel.current_statistics().tasks_living == tasks_before
    assert not request.cancelled_caught
