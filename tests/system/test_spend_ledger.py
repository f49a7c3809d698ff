"""The spend ledger across real ``nexus-trio serve`` processes (docs/spend.md#ledger): a restart
keeps the month's totals (and the budget they imply), ``kill -9`` under load loses at most the
last second of spend, and a ledger that cannot be used stops start-up with one line."""

from __future__ import annotations

import datetime as dt
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import trio

from nexus_trio.simulator import SimulatedBackend
from nexus_trio.spend import Ledger, SpendRow
from nexus_trio.spend.ledger import FILE_NAME
from tests.system.configs import DOLLAR_PER_TOKEN, gateway_config
from tests.system.gateway_process import GatewayFactory

CHAT = {"model": "demo", "messages": [{"role": "user", "content": "hello there"}]}
BackendFactory = Callable[..., Awaitable[SimulatedBackend]]


def ledger_config(backend: SimulatedBackend, state: Path, budget: str = "") -> str:
    """One backend, priced; spend recorded in the ledger under ``state``."""
    extra = f'[state]\ndir = "{state}"\n{budget}\n{DOLLAR_PER_TOKEN}'
    return gateway_config(backend, extra=extra)


def this_month(state: Path) -> SpendRow:
    """The whole month's row of the ledger (one key, backend and model here)."""
    ledger = Ledger.open_read_only(state)
    try:
        rows = ledger.month(this_month_name())
    finally:
        ledger.close()
    assert [key for key, _ in rows] in ([], [("default", "simulator", "demo")])
    return rows[0][1] if rows else SpendRow()


async def fast_backend(start_backend: BackendFactory) -> SimulatedBackend:
    return await start_backend(ttft_ms=1.0, tokens_per_second=100000.0, completion_tokens=5)


async def test_restart_keeps_the_months_totals_and_their_budget(
    start_gateway: GatewayFactory, start_backend: BackendFactory, tmp_path: Path
) -> None:
    backend = await fast_backend(start_backend)
    state = tmp_path / "state"
    gateway = await start_gateway(ledger_config(backend, state))
    charged = 0.0
    async with httpx.AsyncClient(timeout=10) as client:
        for _ in range(5):
            response = await client.post(f"{gateway.url}/v1/chat/completions", json=CHAT)
            assert response.status_code == 200
            charged += float(response.headers["x-nexus-cost-usd"])
        assert charged > 0
        gateway.send_signal(signal.SIGTERM)
        with trio.fail_after(10):
            assert await gateway.wait_exit() == 0
        row = this_month(state)
        assert (row.requests, row.usd) == (5, charged)

        budget = f'[budget]\nmonthly_limit_usd = {charged}\nhard_limit_action = "reject"'
        restarted = await start_gateway(ledger_config(backend, state, budget))
        spend = (await client.get(f"{restarted.url}/v1/stats")).json()["spend"]
        assert (spend["total_usd"], spend["requests"], spend["budget"]["state"]) == (
            charged,
            5,
            "hard",
        )
        metrics = (await client.get(f"{restarted.url}/metrics")).text
        assert 'nexus_state_store_up{store="ledger"} 1.0' in metrics
        refused = await client.post(f"{restarted.url}/v1/chat/completions", json=CHAT)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "budget_exceeded"
        assert refused.headers["x-should-retry"] == "false"
        status = await _cli("status", "--url", restarted.url)
        assert f"spend {this_month_name()}: ${charged:,.2f} over 5 requests" in status

    # The ledger can be read beside the running gateway.
    printed = (await _cli("spend", "--state-dir", str(state))).splitlines()
    assert printed[0] == f"spend for {this_month_name()} (UTC)"
    assert printed[2].split() == ["default", "simulator", "demo", "5", f"${charged:,.2f}", "$0.00"]


def this_month_name() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m")


async def _cli(*args: str) -> str:
    """Run a ``nexus-trio`` client command; returns what it printed (it must exit 0)."""
    with trio.fail_after(15):
        result = await trio.run_process(
            [sys.executable, "-m", "nexus_trio", *args], capture_stdout=True, capture_stderr=True
        )
    return str(result.stdout.decode())


async def test_kill_9_under_load_loses_at_most_the_last_second(
    start_gateway: GatewayFactory, start_backend: BackendFactory, tmp_path: Path
) -> None:
    backend = await fast_backend(start_backend)
    state = tmp_path / "state"
    gateway = await start_gateway(ledger_config(backend, state))
    #: trio time each charged answer arrived, and its cost.
    answers: list[tuple[float, float]] = []
    killed = trio.Event()

    async def client_loop(client: httpx.AsyncClient) -> None:
        while not killed.is_set():
            try:
                response = await client.post(f"{gateway.url}/v1/chat/completions", json=CHAT)
            except httpx.HTTPError:
                return  # the gateway is gone
            if response.status_code == 200:
                answers.append((trio.current_time(), float(response.headers["x-nexus-cost-usd"])))

    async with httpx.AsyncClient(timeout=10) as client, trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(client_loop, client)
        await trio.sleep(3.0)  # the load: about three flushes' worth
        gateway.send_signal(signal.SIGKILL)
        killed_at = trio.current_time()
        killed.set()
        with trio.fail_after(10):
            assert await gateway.wait_exit() == -signal.SIGKILL
    row = this_month(state)
    costs = {cost for _, cost in answers}
    assert len(costs) == 1  # every request costs the same
    missing = len(answers) - row.requests
    last_second = sum(1 for at, _ in answers if at > killed_at - 1.5)
    assert row.requests > 0
    assert 0 <= missing <= last_second, (len(answers), row.requests, last_second)
    assert row.usd == row.requests * costs.pop()

    # The restarted gateway recovers the ledger (WAL) and adds to it.
    restarted = await start_gateway(ledger_config(backend, state))
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(f"{restarted.url}/v1/chat/completions", json=CHAT)
        assert response.status_code == 200
    restarted.send_signal(signal.SIGTERM)
    with trio.fail_after(10):
        assert await restarted.wait_exit() == 0
    assert this_month(state).requests == row.requests + 1


async def _serve_expecting_failure(config_text: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "nexus.toml"
    path.write_text(config_text)
    with trio.fail_after(15):
        result = await trio.run_process(
            [sys.executable, "-m", "nexus_trio", "serve", "--config", str(path)],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert result.returncode == 1
    return result.stderr.decode().strip().splitlines()


async def test_corrupt_ledger_exits_1_with_one_line(
    start_backend: BackendFactory, tmp_path: Path
) -> None:
    backend = await fast_backend(start_backend)
    state = tmp_path / "state"
    state.mkdir()
    (state / FILE_NAME).write_bytes(b"\x00garbage, not SQLite" * 200)
    lines = await _serve_expecting_failure(ledger_config(backend, state), tmp_path)
    assert lines[-1].startswith(f"nexus-trio: spend ledger {state / FILE_NAME}: cannot open it: ")
    assert sum("spend ledger" in line for line in lines) == 1
    assert not any("Traceback" in line for line in lines)


async def test_unusable_state_dir_exits_1_with_one_line(
    start_backend: BackendFactory, tmp_path: Path
) -> None:
    backend = await fast_backend(start_backend)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("in the way")
    lines = await _serve_expecting_failure(ledger_config(backend, blocker), tmp_path)
    assert lines[-1] == (
        f"nexus-trio: spend ledger {blocker / FILE_NAME}: cannot create its directory: File exists"
    )
    assert not any("Traceback" in line for line in lines)
