"""The store sync in-process against a real ``redis-server`` (docs/spend.md#a-fleet): a store
that loses a ledger — flushed, or killed and restarted empty — gets it back from an idle
gateway, and a black-holed store never stalls the event loop."""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from nexus_trio.config import BudgetConfig
from nexus_trio.fleet import StoreSync
from nexus_trio.fleet.store import TIMEOUT_SECONDS
from nexus_trio.keys import RateLimiter
from nexus_trio.spend import SpendBook, SpendRow, month_of
from nexus_trio.spend.outbox import Outbox
from tests.system.polling import poll
from tests.system.redis_server import RedisServer, redis_server_path

pytestmark = pytest.mark.system

GPT = ("team", "cloud", "gpt")


@pytest.fixture
async def redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(redis_server_path(), tmp_path)
    await server.start()
    yield server
    await server.stop()


def idle_gateway(redis: RedisServer) -> tuple[StoreSync, SpendBook]:
    """A sync whose ledger holds $7 this month and charges nothing more."""
    book = SpendBook(BudgetConfig(), time.time)
    outbox = Outbox()
    outbox.ledger_id = "ledger-a"
    outbox.committed(book.tally.current(), [(GPT, SpendRow(7.0, 1, 0.0))])
    outbox.ledger_closed.set()  # no ledger service here
    sync = StoreSync(
        redis.url, interval=0.05, book=book, limiter=RateLimiter(), keys=list, outbox=outbox
    )
    return sync, book


async def test_an_idle_gateway_pushes_again_what_the_store_lost(redis: RedisServer) -> None:
    sync, book = idle_gateway(redis)
    month = month_of(time.time())

    async def holds_it() -> bool:
        return (await redis.month_total(month)).usd == 7.0

    async with trio.open_nursery() as nursery:
        await nursery.start(sync.run)
        assert await holds_it()

        def flush() -> None:
            client = redis.client()
            client.flushall()
            client.close()

        await trio.to_thread.run_sync(flush)  # no error seen: the missing version says it
        with trio.fail_after(2):
            await poll(holds_it)
        await redis.kill()
        with trio.fail_after(2):
            await poll(lambda: book.shared_store_up is False)
        await redis.start()  # empty
        with trio.fail_after(2):
            await poll(holds_it)
        assert book.shared_store_up
        nursery.cancel_scope.cancel()


async def test_a_black_holed_store_never_stalls_the_event_loop(redis: RedisServer) -> None:
    sync, book = idle_gateway(redis)
    lags: list[float] = []

    async def watch_the_loop(stop: trio.Event) -> None:
        while not stop.is_set():
            before = trio.current_time()
            await trio.sleep(0.005)
            lags.append(trio.current_time() - before - 0.005)

    async with trio.open_nursery() as nursery:
        await nursery.start(sync.run)
        stop = trio.Event()
        nursery.start_soon(watch_the_loop, stop)
        assert redis.process is not None
        redis.process.send_signal(signal.SIGSTOP)  # accepts nothing, answers nothing
        stopped = trio.current_time()
        with trio.fail_after(3 * TIMEOUT_SECONDS + 1):
            await poll(lambda: book.shared_store_up is False)
        noticed = trio.current_time() - stopped
        redis.process.send_signal(signal.SIGCONT)
        with trio.fail_after(3 * TIMEOUT_SECONDS + 1):
            await poll(lambda: book.shared_store_up is True)
        stop.set()
        nursery.cancel_scope.cancel()
    assert noticed <= 3 * TIMEOUT_SECONDS + 0.3
    # The exchanges that waited on the dead store ran in worker threads.
    assert max(lags) < 0.05, max(lags)
