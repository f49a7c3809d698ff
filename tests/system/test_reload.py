"""Hot reload on SIGHUP over real sockets (docs/configuration.md#reload): a ``nexus-trio serve``
subprocess, its config file rewritten, a real signal, and the effect observed through ``/v1/stats``,
``/metrics`` and the log. Cross-process state is polled under ``trio.fail_after``.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from nexus_trio.simulator import SimulatedBackend
from tests.system.gateway_process import GatewayFactory, GatewayProcess, stats
from tests.system.polling import poll
from tests.system.ports import free_port

pytestmark = pytest.mark.system

PATH = "/v1/chat/completions"
StartBackend = Callable[..., Awaitable[SimulatedBackend]]
#: Quick answers: 5 ms to the first token, no pacing between tokens.
FAST: dict[str, Any] = {"ttft_ms": 5, "tokens_per_second": 0}
INTERVAL = 0.5
#: Health checks on but a minute apart: no probe runs during a test.
PROBED_EVERY_MINUTE = "[health_check]\ninterval_seconds = 60\ntimeout_seconds = 2\n"


def config_text(
    *backends: tuple[str, SimulatedBackend],
    threshold: float = 0.5,
    port: int = 0,
    health: str = "[health_check]\nenabled = false\n",
    quality: str = "",
) -> str:
    """A gateway config: ``[quality]`` with ``metrics_interval_seconds = INTERVAL``."""
    lines = [
        "[server]",
        'host = "127.0.0.1"',
        f"port = {port}",
        "",
        health,
        "[quality]",
        f"error_rate_threshold = {threshold}",
        f"metrics_interval_seconds = {INTERVAL}",
        quality,
        "",
    ]
    for name, backend in backends:
        models = ", ".join(f'"{m}"' for m in backend.options.models)
        lines += [
            "[[backends]]",
            f'name = "{name}"',
            f'url = "http://127.0.0.1:{backend.port}"',
            'type = "generic"',
            f"models = [{models}]",
            "",
        ]
    return "\n".join(lines)


def config_file(tmp_path: Path) -> Path:
    """The file the ``start_gateway`` fixture wrote for the test's first gateway."""
    path = tmp_path / "nexus-0.toml"
    assert path.is_file()
    return path


def chat(model: str = "demo") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}]}


def backend_of(document: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((b for b in document["backends"] if b["name"] == name), None)


async def metric(client: httpx.AsyncClient, url: str, name: str, **labels: str) -> float:
    """One sample of ``/metrics`` (0.0 when absent)."""
    text = (await client.get(f"{url}/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


async def reloads(client: httpx.AsyncClient, url: str, result: str) -> float:
    return await metric(client, url, "nexus_config_reloads_total", result=result)


async def recomputes(client: httpx.AsyncClient, url: str) -> float:
    return await metric(client, url, "nexus_quality_recompute_duration_seconds_count")


async def wait_recomputes(client: httpx.AsyncClient, url: str, count: int) -> None:
    """Wait until ``count`` more quality recomputes have run (callers bound it)."""
    target = await recomputes(client, url) + count

    async def done() -> bool:
        return await recomputes(client, url) >= target

    await poll(done)


async def sighup(gateway: GatewayProcess, client: httpx.AsyncClient, result: str) -> None:
    """Send SIGHUP and wait until the gateway counted one more reload with ``result``."""
    before = await reloads(client, gateway.url, result)
    gateway.send_signal(signal.SIGHUP)

    async def counted() -> bool:
        return await reloads(client, gateway.url, result) >= before + 1

    with trio.fail_after(5):
        await poll(counted)


async def test_reload_applies_thresholds_without_restart(
    start_backend: StartBackend,
    start_gateway: GatewayFactory,
    client: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    s1 = await start_backend(name="s1", models=("demo",), **FAST)
    s2 = await start_backend(name="s2", models=("other",), **FAST)
    gateway = await start_gateway(
        config_text(("s1", s1), threshold=0.5, quality="min_requests = 3\nconsecutive_failures = 5")
    )
    url = gateway.url
    # 1 failure in 3: 33% passes a 50% threshold
    for error_rate in (0.0, 0.0, 1.0):
        s1.options.error_rate = error_rate
        await client.post(f"{url}{PATH}", json=chat())
    s1.options.error_rate = 0.0
    with trio.fail_after(5):
        await wait_recomputes(client, url, 2)
    document = await stats(client, url)
    assert document["quality_config"]["error_rate_threshold"] == 0.5
    s1_quality = backend_of(document, "s1")["quality"]  # type: ignore[index]
    assert (s1_quality["error_rate_1h"], s1_quality["state"]) == (0.3333, "healthy")

    config_file(tmp_path).write_text(
        config_text(
            ("s1", s1),
            ("s2", s2),
            threshold=0.25,
            quality="min_requests = 3\nconsecutive_failures = 5\nprobe_interval_seconds = 60",
        )
    )
    reloaded_at = trio.current_time()
    gateway.send_signal(signal.SIGHUP)

    async def new_threshold() -> bool:
        return (await stats(client, url))["quality_config"]["error_rate_threshold"] == 0.25

    with trio.fail_after(5):
        await poll(new_threshold)
    assert trio.current_time() - reloaded_at < INTERVAL + 1.0

    # the new threshold acts at the next recompute: 33% > 25% excludes s1, no restart needed
    async def s1_excluded() -> bool:
        s1_entry = backend_of(await stats(client, url), "s1")
        return s1_entry is not None and s1_entry["quality"]["state"] == "excluded"

    with trio.fail_after(5):
        await poll(s1_excluded)
    assert trio.current_time() - reloaded_at < 2 * INTERVAL + 1.0
    assert (
        await metric(client, url, "nexus_agent_state", backend="s1", model="demo", state="excluded")
        == 1.0
    )
    # the new backend is there and serves, on the same process and port
    document = await stats(client, url)
    assert [b["name"] for b in document["backends"]] == ["s1", "s2"]
    assert document["quality_config"]["probe_interval_seconds"] == 60
    assert document["restart_required"] is False
    response = await client.post(f"{url}{PATH}", json=chat("other"))
    assert response.status_code == 200
    assert response.headers["x-nexus-backend"] == "s2"
    assert await reloads(client, url, "ok") == 1.0
    assert await reloads(client, url, "error") == 0.0
    assert gateway.process.returncode is None
    assert "configuration reloaded (2 backend(s))" in gateway.log_text()


async def test_invalid_reload_keeps_old_config(
    start_backend: StartBackend,
    start_gateway: GatewayFactory,
    client: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    s1 = await start_backend(name="s1", models=("demo",), **FAST)
    s2 = await start_backend(name="s2", models=("other",), **FAST)
    gateway = await start_gateway(config_text(("s1", s1), threshold=0.5))
    url = gateway.url
    path = config_file(tmp_path)
    before = await stats(client, url)

    # a valid-looking file with one value out of range (and a new backend that must not appear)
    path.write_text(config_text(("s1", s1), ("s2", s2), threshold=1.5))
    await sighup(gateway, client, "error")
    assert await reloads(client, url, "ok") == 0.0
    log = gateway.log_text()
    assert "reload failed, keeping the running configuration" in log
    assert "$.quality.error_rate_threshold" in log
    # the old configuration still serves
    response = await client.post(f"{url}{PATH}", json=chat())
    assert response.status_code == 200
    assert response.headers["x-nexus-backend"] == "s1"
    assert (await client.post(f"{url}{PATH}", json=chat("other"))).status_code == 404
    after = await stats(client, url)
    assert after["quality_config"] == before["quality_config"]
    assert [b["name"] for b in after["backends"]] == ["s1"]

    # a TOML syntax error: the line and column are logged, the old config stays too
    path.write_text("[quality\nerror_rate_threshold = 0.3\n")
    await sighup(gateway, client, "error")
    assert await reloads(client, url, "error") == 2.0
    assert "line 1" in gateway.log_text().split("reload failed")[-1]
    assert (await client.post(f"{url}{PATH}", json=chat())).status_code == 200
    assert gateway.process.returncode is None


async def test_restart_only_key_is_reported_not_applied(
    start_backend: StartBackend,
    start_gateway: GatewayFactory,
    client: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    s1 = await start_backend(name="s1", models=("demo",), **FAST)
    gateway = await start_gateway(config_text(("s1", s1)))
    url = gateway.url
    assert (await stats(client, url))["restart_required"] is False
    config_file(tmp_path).write_text(config_text(("s1", s1), threshold=0.3, port=free_port()))
    await sighup(gateway, client, "ok")
    warnings = [line for line in gateway.lines if "restart required for:" in line]
    assert len(warnings) == 1
    assert "WARNING" in warnings[0]
    assert warnings[0].endswith("restart required for: server.port")
    document = await stats(client, url)
    assert document["restart_required"] is True
    # everything else was applied; the listener stays where it was
    assert document["quality_config"]["error_rate_threshold"] == 0.3
    assert (await client.post(f"{url}{PATH}", json=chat())).status_code == 200


async def _history(
    start_backend: StartBackend,
    start_gateway: GatewayFactory,
    client: httpx.AsyncClient,
) -> tuple[GatewayProcess, SimulatedBackend, SimulatedBackend]:
    """A gateway with health checks on (one sweep at start, the next in 60 s) and quality
    history for s1 (3 requests, one failed) and s2 (2 requests)."""
    s1 = await start_backend(name="s1", models=("demo",), **FAST)
    s2 = await start_backend(name="s2", models=("other",), **FAST)
    health = PROBED_EVERY_MINUTE
    gateway = await start_gateway(config_text(("s1", s1), ("s2", s2), health=health))
    url = gateway.url
    for error_rate in (0.0, 1.0, 0.0):
        s1.options.error_rate = error_rate
        await client.post(f"{url}{PATH}", json=chat())
    for _ in range(2):
        assert (await client.post(f"{url}{PATH}", json=chat("other"))).status_code == 200
    with trio.fail_after(5):
        await wait_recomputes(client, url, 2)
    document = await stats(client, url)
    s1_entry, s2_entry = backend_of(document, "s1"), backend_of(document, "s2")
    assert s1_entry is not None
    assert s2_entry is not None
    assert (s1_entry["status"], s1_entry["request_count"]) == ("healthy", 3)
    assert s1_entry["quality"]["request_count_1h"] == 3
    assert s1_entry["quality"]["last_failure_time"] is not None
    assert (s2_entry["status"], s2_entry["request_count"]) == ("healthy", 2)
    assert s2_entry["quality"]["request_count_1h"] == 2
    return gateway, s1, s2


async def test_unchanged_backend_keeps_quality_history_and_health(
    start_backend: StartBackend,
    start_gateway: GatewayFactory,
    client: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    gateway, s1, s2 = await _history(start_backend, start_gateway, client)
    url = gateway.url
    before = backend_of(await stats(client, url), "s1")
    health = PROBED_EVERY_MINUTE
    config_file(tmp_path).write_text(
        config_text(("s1", s1), ("s2", s2), threshold=0.9, health=health)
    )
    await sighup(gateway, client, "ok")
    with trio.fail_after(5):
        await wait_recomputes(client, url, 2)
    after = backend_of(await stats(client, url), "s1")
    assert after is not None
    assert before is not None
    # same name, url and type: health, counters and quality history carried over
    assert after["status"] == "healthy"
    assert after["request_count"] == 3
    assert after["quality"] == before["quality"]
    response = await client.post(f"{url}{PATH}", json=chat())
    assert response.status_code == 200


async def test_backend_whose_url_changed_starts_fresh(
    start_backend: StartBackend,
    start_gateway: GatewayFactory,
    client: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    gateway, s1, _ = await _history(start_backend, start_gateway, client)
    url = gateway.url
    s3 = await start_backend(name="s3", models=("other",), **FAST)
    health = PROBED_EVERY_MINUTE
    # "s2" now points at another server: a new backend under the old name
    config_file(tmp_path).write_text(config_text(("s1", s1), ("s2", s3), health=health))
    await sighup(gateway, client, "ok")
    with trio.fail_after(5):
        await wait_recomputes(client, url, 2)
    document = await stats(client, url)
    s2_entry = backend_of(document, "s2")
    assert s2_entry is not None
    # health and counters start over (the next sweep is a minute away)
    assert s2_entry["status"] == "unknown"
    assert s2_entry["request_count"] == 0
    # ... and so must quality: no history for a backend the gateway has never used
    assert s2_entry["quality"] is None
    unknown = {"state": "unknown", "vram_bytes": None, "expires_at": None}
    assert s2_entry["agents"] == [{"model": "other", "quality": None, "residency": unknown}]
