"""The dashboard in a real browser: headless Chromium against a real ``nexus-trio serve``.

Each test saves a screenshot of the page as it ends (``dashboard-<test>.png`` in the test's
temporary directory; the session summary lists them), while the gateway still runs.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
import trio

from nexus_trio.simulator import SimulatedBackend
from tests.system.browser import Browser, browser_paths
from tests.system.configs import gateway_config
from tests.system.gateway_process import GatewayFactory, GatewayProcess
from tests.system.polling import poll

pytestmark = pytest.mark.system

CHAT = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def browser(
    request: pytest.FixtureRequest, tmp_path: Path, start_gateway: GatewayFactory
) -> AsyncIterator[Browser]:
    """A Chromium window, closed after a last screenshot of the page.

    It depends on ``start_gateway`` so that pytest-trio tears it down (screenshot first)
    before it stops the gateways: independent fixtures are torn down concurrently.
    """
    browser_paths()
    window = await trio.to_thread.run_sync(Browser.start, tmp_path)
    try:
        yield window
    finally:
        with trio.CancelScope(shield=True):
            await window.screenshot(request.node.name)
            await window.close()


@pytest.fixture
async def two_backends(
    start_backend: Callable[..., Awaitable[SimulatedBackend]],
) -> tuple[SimulatedBackend, SimulatedBackend]:
    fast = await start_backend(name="fast", models=("demo",), ttft_ms=10, tokens_per_second=500)
    other = await start_backend(name="other", models=("demo",), ttft_ms=10, tokens_per_second=500)
    return fast, other


async def send_requests(gateway: GatewayProcess, count: int, **headers: str) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        for _ in range(count):
            response = await client.post(
                f"{gateway.url}/v1/chat/completions", json=CHAT, headers=headers
            )
            assert response.status_code == 200


async def test_page_lists_backends_and_requests_with_no_errors_or_foreign_requests(
    start_gateway: GatewayFactory,
    two_backends: tuple[SimulatedBackend, SimulatedBackend],
    browser: Browser,
) -> None:
    gateway = await start_gateway(gateway_config(*two_backends))
    await send_requests(gateway, 3)
    await browser.open(f"{gateway.url}/")
    await browser.wait_text("#backends tr[data-backend='fast']", "healthy", 10)
    await browser.wait_text("#backends tr[data-backend='other']", "healthy", 10)
    await browser.wait_text("#log-count", "3 of 3 shown", 5)
    await send_requests(gateway, 2, **{"x-request-id": "from-the-test"})
    await browser.wait_text("#log tbody", "from-the-test", 3)
    await browser.wait_text("#log-count", "5 of 5 shown", 3)
    assert await browser.console_errors() == []
    urls = await browser.script(
        "return performance.getEntriesByType('resource').map((entry) => entry.name)"
    )
    assert urls
    assert all(url.startswith(f"{gateway.url}/") for url in urls), urls
    # Filtering by status hides the successes.
    await browser.script(
        "const s = document.getElementById('filter-status'); s.value = '5xx';"
        "s.dispatchEvent(new Event('change'))"
    )
    await browser.wait_text("#log-count", "0 of 5 shown", 2)
    # Nothing is priced or budgeted: no spend is kept, and its panel stays hidden.
    assert await browser.script("return document.getElementById('spend').hidden") is True


async def test_failing_backend_shows_excluded_within_three_seconds(
    start_gateway: GatewayFactory,
    two_backends: tuple[SimulatedBackend, SimulatedBackend],
    browser: Browser,
) -> None:
    fast, other = two_backends
    quality = "[quality]\nconsecutive_failures = 3\nprobe_interval_seconds = 300"
    gateway = await start_gateway(gateway_config(fast, other, extra=quality))
    await browser.open(f"{gateway.url}/dashboard")
    await browser.wait_text("#backends tr[data-backend='other']", "healthy", 10)
    other.options.error_rate = 1.0

    async with httpx.AsyncClient(timeout=10) as client:

        async def excluded() -> bool:
            # Each request fails on 'other' (when routed there) and is retried on 'fast'.
            await client.post(f"{gateway.url}/v1/chat/completions", json=CHAT)
            stats = (await client.get(f"{gateway.url}/v1/stats")).json()
            states = {b["name"]: (b["quality"] or {}).get("state") for b in stats["backends"]}
            return states["other"] == "excluded"

        with trio.fail_after(20):
            await poll(excluded)
    await browser.wait_text("#backends tr[data-backend='other']", "excluded", 3)
    await browser.wait_text("#backends tr[data-backend='other']", "consecutive failures", 1)
    await browser.wait_text("#backends tr[data-backend='fast']", "healthy", 1)


async def test_with_inbound_auth_the_page_shows_nothing_until_the_key_is_entered(
    start_gateway: GatewayFactory,
    two_backends: tuple[SimulatedBackend, SimulatedBackend],
    browser: Browser,
) -> None:
    config = gateway_config(*two_backends, server='api_keys_env = "DASHBOARD_TEST_KEYS"')
    gateway = await start_gateway(config, env={"DASHBOARD_TEST_KEYS": "right-key"})
    await send_requests(gateway, 1, authorization="Bearer right-key")
    await browser.open(f"{gateway.url}/")
    await browser.wait_for(
        lambda driver: driver.find_element("id", "key-form").is_displayed(), 10, "the key form"
    )
    page = await browser.script("return document.documentElement.outerHTML")
    assert "fast" not in page
    assert "chat/completions" not in page
    assert not await browser.script("return document.getElementById('main').hidden === false")

    async def enter(key: str) -> None:
        def type_key(driver: object) -> None:
            field = browser.driver.find_element("id", "key-input")
            field.clear()
            field.send_keys(key)
            field.submit()

        await browser.run(type_key, browser.driver)

    await enter("wrong-key")
    await browser.wait_text("#key-message", "refused", 5)
    assert "fast" not in await browser.script("return document.documentElement.outerHTML")
    await enter("right-key")
    await browser.wait_text("#backends tr[data-backend='fast']", "healthy", 10)
    await browser.wait_text("#log-count", "1 of 1 shown", 5)
    stored = await browser.script("return sessionStorage.getItem('nexus-trio.api-key')")
    assert stored == "right-key"


async def test_spend_panel_shows_the_months_spend_by_backend_and_the_budget(
    start_gateway: GatewayFactory,
    two_backends: tuple[SimulatedBackend, SimulatedBackend],
    browser: Browser,
    tmp_path: Path,
) -> None:
    fast, _ = two_backends
    extra = (
        f'[state]\ndir = "{tmp_path / "state"}"\n'
        "[budget]\nmonthly_limit_usd = 1000\n"
        '[[pricing]]\nbackend = "fast"\n'
        "input_usd_per_million = 1000000\noutput_usd_per_million = 1000000\n"
    )
    gateway = await start_gateway(gateway_config(fast, extra=extra))
    await send_requests(gateway, 2)
    await browser.open(f"{gateway.url}/")
    await browser.wait_text("[data-field='Charged requests']", "2", 10)
    await browser.wait_text("#spend-table", "backend", 1)
    await browser.wait_text("#spend-table", "fast", 1)
    await browser.wait_text("[data-field='Budget']", "ok", 1)
    await browser.wait_text("[data-field='Budget']", "left of $1000.00", 1)
    await browser.wait_text("[data-field='Ledger']", "writing", 1)
    async with httpx.AsyncClient(timeout=10) as client:
        spend = (await client.get(f"{gateway.url}/v1/stats")).json()["spend"]
    assert spend["total_usd"] > 0
    shown = f"${spend['by_backend']['fast']:.2f}"
    await browser.wait_text("#spend-table", shown, 1)


async def test_a_tenant_key_sees_its_own_requests_and_spend_an_admin_every_key(
    start_gateway: GatewayFactory,
    two_backends: tuple[SimulatedBackend, SimulatedBackend],
    browser: Browser,
    tmp_path: Path,
) -> None:
    fast, _ = two_backends
    extra = (
        f'[state]\ndir = "{tmp_path / "state"}"\n'
        "[budget]\nmonthly_limit_usd = 1000\n"
        '[[pricing]]\nbackend = "fast"\n'
        "input_usd_per_million = 1000000\noutput_usd_per_million = 1000000\n"
        '[[keys]]\nname = "team-a"\nkey_env = "TEAM_A_KEY"\nmonthly_budget_usd = 100\n'
    )
    config = gateway_config(fast, server='api_keys_env = "ADMIN_KEYS"', extra=extra)
    gateway = await start_gateway(config, env={"ADMIN_KEYS": "admin", "TEAM_A_KEY": "tenant"})
    await send_requests(gateway, 1, authorization="Bearer tenant", **{"x-request-id": "mine"})
    await send_requests(gateway, 1, authorization="Bearer admin", **{"x-request-id": "theirs"})

    async def open_as(key: str) -> None:
        await browser.open(f"{gateway.url}/dashboard/dashboard.css")  # the origin, no script
        await browser.script(f"sessionStorage.setItem('nexus-trio.api-key', '{key}')")
        await browser.open(f"{gateway.url}/")

    await open_as("tenant")
    await browser.wait_text("#log-count", "1 of 1 shown", 10)
    await browser.wait_text("#log tbody", "mine", 1)
    await browser.wait_text("[data-field='Budget']", "amounts shown to admin keys only", 1)
    await browser.wait_text("[data-field='Budget of key team-a']", "left of $100.00", 1)
    assert "theirs" not in await browser.text("#log tbody")
    assert "default" not in await browser.text("#spend-table")
    assert await browser.script("return document.getElementById('log-key-head').hidden")
    await open_as("admin")
    await browser.wait_text("#log-count", "2 of 2 shown", 10)
    await browser.wait_text("#log tbody", "team-a", 1)
    await browser.wait_text("[data-field='Budget']", "left of $1000.00", 1)
    assert not await browser.script("return document.getElementById('log-key-head').hidden")


async def test_sigterm_shows_draining_and_the_open_page_does_not_hold_up_the_drain(
    start_gateway: GatewayFactory,
    two_backends: tuple[SimulatedBackend, SimulatedBackend],
    browser: Browser,
) -> None:
    server = "drain_delay_seconds = 2\ndrain_timeout_seconds = 30"
    gateway = await start_gateway(gateway_config(*two_backends, server=server))
    await browser.open(f"{gateway.url}/")
    await browser.wait_text("[data-field='State']", "ready", 10)
    gateway.send_signal(signal.SIGTERM)
    # During the drain delay the listener stays open and snapshots go on, showing draining.
    await browser.wait_text("[data-field='State']", "draining", 3)
    await browser.wait_text("#alerts", "draining", 1)
    # When the listener closes the stream ends, and the process exits long before 30 s.
    await browser.wait_text("#connection", "draining and closed this view", 5)
    with trio.fail_after(5):
        assert await gateway.wait_exit() == 0
    await browser.wait_text("[data-field='State']", "draining", 1)


async def test_connected_event_stream_ends_at_drain_start(
    start_gateway: GatewayFactory,
    two_backends: tuple[SimulatedBackend, SimulatedBackend],
) -> None:
    """No browser: a raw event-stream client must not stretch the drain to its deadline."""
    gateway = await start_gateway(
        gateway_config(*two_backends, server="drain_timeout_seconds = 30")
    )
    received = b""
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("GET", f"{gateway.url}/v1/dashboard/events") as response,
    ):
        assert response.status_code == 200
        health = (await client.get(f"{gateway.url}/health")).json()
        assert health["in_flight_requests"] == 0
        started: float | None = None
        with trio.fail_after(10):
            async for chunk in response.aiter_raw():
                received += chunk
                if started is None and b"event: snapshot" in received:
                    started = trio.current_time()
                    gateway.send_signal(signal.SIGTERM)
        assert started is not None
        assert trio.current_time() - started < 2
    assert received.endswith(b'event: end\ndata: {"state":"draining"}\n\n')
    with trio.fail_after(5):
        assert await gateway.wait_exit() == 0


async def test_backends_show_residency_and_cold_starts(
    start_gateway: GatewayFactory,
    start_backend: Callable[..., Awaitable[SimulatedBackend]],
    browser: Browser,
) -> None:
    """An Ollama-like backend that loads on first use: the page shows each model's residency
    with its VRAM, and the cold start the first request paid (docs/api.md#dashboard)."""
    box = await start_backend(name="box", models=("demo", "other"), ttft_ms=10, load_ms=50)
    health = "[health_check]\ninterval_seconds = 0.5"
    config = (
        gateway_config(box)
        .replace('"generic"', '"ollama"')
        .replace("[health_check]\nenabled = false", health)
    )
    gateway = await start_gateway(config)
    await browser.open(f"{gateway.url}/")
    row = "#backends tr[data-backend='box']"
    await browser.wait_text(row, "demo (unloaded)", 10)
    await send_requests(gateway, 1)
    await browser.wait_text(row, "demo (loaded, 100 MB)", 5)
    await browser.wait_text(row, "1 cold start(s)", 5)
    await browser.wait_text(row, "other (unloaded)", 5)
    assert await browser.console_errors() == []
