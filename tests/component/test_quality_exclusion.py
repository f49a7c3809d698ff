"""The quality reconciler in the real request path (docs/quality.md#exclusion,
docs/quality.md#ttft-penalty): consecutive failures and the error rate exclude, probes readmit
or back off, panic when every candidate is excluded, and slow first tokens move streaming.
Time is virtual (``autojump_clock``) and asserted exactly.
"""

from __future__ import annotations

import httpx
import msgspec
import pytest
import trio
import trio.testing

from nexus_trio.quality import AgentState
from tests.component.client import CHAT, PATH, STREAM_CHAT
from tests.component.configs import config_toml, fake_backend
from tests.component.fake_upstream import (
    DONE,
    ROLE_ONLY,
    ChunkStream,
    Handler,
    chunk,
    completion,
    ok,
    script,
    sse,
    status,
    stream_response,
)
from tests.component.in_process import MakeGateway
from tests.component.readings import (
    agent_entry,
    backend_entry,
    gauge,
    hosts,
    metric_samples,
    quality,
    sample,
    stats,
    tick,
)

# --- the quality reconciler in the real request path (docs/quality.md#exclusion)
# ------------------------------

FAST_EJECT = "consecutive_failures = 3\nprobe_interval_seconds = 10\nmin_requests = 100\n"


async def test_consecutive_failures_exclude_at_once_and_a_probe_readmits(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock
) -> None:
    gateway = make_gateway(
        config_toml(fake_backend("a", 10), fake_backend("b", 20), quality=FAST_EJECT)
    )
    gateway.upstream.handlers["a.test"] = script(status(500))
    gateway.upstream.handlers["b.test"] = script(ok)
    for _ in range(3):
        response = await gateway.post(PATH, CHAT)
        assert response.status_code == 200
        assert response.headers["x-nexus-backend"] == "b"
        assert response.headers["x-nexus-route-reason"] == "retry"
    assert hosts(gateway) == ["a", "b"] * 3
    excluded_at = trio.current_time()

    # excluded at once: no recompute needed, the next request goes elsewhere with no error
    assert quality(gateway).state is AgentState.EXCLUDED
    document = await stats(gateway)
    assert agent_entry(document, "a")["state"] == "excluded"  # type: ignore[index]
    assert backend_entry(document, "a")["quality"]["state"] == "excluded"
    samples = await metric_samples(gateway)
    assert gauge(samples, "nexus_agent_state", backend="a", model="m", state="excluded") == 1.0
    gateway.upstream.requests.clear()
    response = await gateway.post(PATH, CHAT)
    assert response.status_code == 200
    assert response.headers["x-nexus-backend"] == "b"
    assert response.headers["x-nexus-attempts"] == "1"
    assert response.headers["x-nexus-route-reason"] == "only_candidate"
    assert hosts(gateway) == ["b"]
    assert (
        sample(
            gateway,
            "nexus_reconciler_exclusions_total",
            reconciler="quality",
            reason="consecutive_failures",
        )
        == 1
    )

    # a heals; nothing reaches it before its probe time
    gateway.upstream.handlers["a.test"] = script(ok)
    await trio.sleep(9.5)
    tick(gateway)
    assert quality(gateway).state is AgentState.EXCLUDED
    assert (await gateway.post(PATH, CHAT)).headers["x-nexus-backend"] == "b"

    # probe_interval_seconds after the exclusion: probing, and one request is routed to it
    await trio.sleep_until(excluded_at + 10)
    tick(gateway)
    assert quality(gateway).state is AgentState.PROBING
    assert agent_entry(await stats(gateway), "a")["state"] == "probing"  # type: ignore[index]
    gateway.upstream.requests.clear()
    probe = await gateway.post(PATH, CHAT)
    assert probe.status_code == 200
    assert probe.headers["x-nexus-backend"] == "a"
    assert probe.headers["x-nexus-route-reason"] == "probe"
    assert hosts(gateway) == ["a"]

    # success readmits it at once (no recompute), failures of the hour forgotten
    metrics = quality(gateway)
    assert metrics.state is AgentState.HEALTHY
    assert metrics.consecutive_failures == 0
    assert agent_entry(await stats(gateway), "a")["state"] == "healthy"  # type: ignore[index]
    tick(gateway)
    assert quality(gateway).state is AgentState.HEALTHY
    assert quality(gateway).error_rate_1h == 0.0
    after = await gateway.post(PATH, CHAT)
    assert after.headers["x-nexus-backend"] == "a"
    assert after.headers["x-nexus-route-reason"] == "best_score"


async def test_failed_probe_backs_off_and_the_request_is_retried(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock
) -> None:
    gateway = make_gateway(
        config_toml(fake_backend("a", 10), fake_backend("b", 20), quality=FAST_EJECT)
    )
    gateway.upstream.handlers["a.test"] = script(status(500))
    gateway.upstream.handlers["b.test"] = script(ok)
    for _ in range(3):
        await gateway.post(PATH, CHAT)
    excluded_at = trio.current_time()
    await trio.sleep_until(excluded_at + 10)
    gateway.upstream.requests.clear()
    probe = await gateway.post(PATH, CHAT)
    # the probe failed; the request was retried on b: the client sees no error
    assert probe.status_code == 200
    assert probe.headers["x-nexus-backend"] == "b"
    assert probe.headers["x-nexus-attempts"] == "2"
    assert hosts(gateway) == ["a", "b"]
    assert quality(gateway).state is AgentState.EXCLUDED
    probe_failed_at = trio.current_time()
    # the next probe only after twice the interval
    await trio.sleep_until(probe_failed_at + 19.5)
    tick(gateway)
    assert quality(gateway).state is AgentState.EXCLUDED
    gateway.upstream.requests.clear()
    await gateway.post(PATH, CHAT)
    assert hosts(gateway) == ["b"]
    await trio.sleep_until(probe_failed_at + 20)
    gateway.upstream.handlers["a.test"] = script(ok)
    gateway.upstream.requests.clear()
    probe = await gateway.post(PATH, CHAT)
    assert probe.headers["x-nexus-route-reason"] == "probe"
    assert probe.headers["x-nexus-backend"] == "a"
    assert quality(gateway).state is AgentState.HEALTHY


async def test_error_rate_excludes_only_with_the_minimum_sample(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock
) -> None:
    gateway = make_gateway(
        config_toml(
            fake_backend("a", 10),
            fake_backend("b", 20),
            quality="min_requests = 4\nconsecutive_failures = 100\nerror_rate_threshold = 0.5\n",
            head="[routing]\nmax_retries = 0\n",
        )
    )
    # alternate failure/success: 50% is the boundary and passes
    gateway.upstream.handlers["a.test"] = script(status(500), ok, status(500), ok, status(500))
    gateway.upstream.handlers["b.test"] = script(ok)
    for _ in range(3):
        await gateway.post(PATH, CHAT)
    tick(gateway)
    # 2 failures of 3 (67%) but below min_requests: neutral
    assert quality(gateway).error_rate_1h == pytest.approx(2 / 3)
    assert quality(gateway).state is AgentState.HEALTHY
    await gateway.post(PATH, CHAT)
    tick(gateway)
    # 2 of 4: at the threshold, not above it
    assert quality(gateway).error_rate_1h == 0.5
    assert quality(gateway).state is AgentState.HEALTHY
    response = await gateway.post(PATH, CHAT)
    assert response.headers["x-nexus-backend"] == "a"
    assert response.status_code == 500
    # 3 of 5 (60%) > 50% with the minimum sample: excluded, but only at the recompute
    assert quality(gateway).state is AgentState.HEALTHY
    tick(gateway)
    assert quality(gateway).state is AgentState.EXCLUDED
    response = await gateway.post(PATH, CHAT)
    assert response.headers["x-nexus-backend"] == "b"
    assert (
        sample(
            gateway,
            "nexus_reconciler_exclusions_total",
            reconciler="quality",
            reason="high_error_rate",
        )
        == 1
    )


async def test_quality_panic_when_every_candidate_is_excluded(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock
) -> None:
    gateway = make_gateway(
        config_toml(
            fake_backend("a", 10),
            fake_backend("b", 20),
            quality="consecutive_failures = 2\nprobe_interval_seconds = 60\n",
            head="[routing]\nmax_retries = 1\n",
        )
    )
    gateway.upstream.handlers["a.test"] = script(status(500))
    gateway.upstream.handlers["b.test"] = script(status(500))
    for _ in range(2):
        response = await gateway.post(PATH, CHAT)
        assert response.status_code == 500
    assert quality(gateway, "a").state is AgentState.EXCLUDED
    assert quality(gateway, "b").state is AgentState.EXCLUDED
    assert sample(gateway, "nexus_quality_panic_total", model="m") is None

    # both heal; quality would remove every candidate, so it removes none
    gateway.upstream.handlers["a.test"] = script(ok)
    gateway.upstream.handlers["b.test"] = script(ok)
    response = await gateway.post(PATH, CHAT)
    assert response.status_code == 200
    assert response.headers["x-nexus-route-reason"] == "quality_panic"
    assert response.headers["x-nexus-backend"] == "a"
    assert sample(gateway, "nexus_quality_panic_total", model="m") == 1
    # the only candidate, excluded: still served, still panic
    single = make_gateway(config_toml(fake_backend("a"), quality="consecutive_failures = 1\n"))
    single.upstream.handlers["a.test"] = script(status(500), ok)
    assert (await single.post(PATH, CHAT)).status_code == 500
    assert quality(single).state is AgentState.EXCLUDED
    response = await single.post(PATH, CHAT)
    assert response.status_code == 200
    assert response.headers["x-nexus-route-reason"] == "quality_panic"
    assert sample(single, "nexus_quality_panic_total", model="m") == 1


def streams_after(ttft: float) -> Handler:
    """Streams whose first content comes ``ttft`` seconds after the role-only first event;
    non-streaming requests get a completion at once."""

    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        if not msgspec.json.decode(body).get("stream"):
            return completion()
        events = [*sse(ROLE_ONLY), ttft, *sse(chunk("x"), chunk(None, "stop")), DONE]
        return stream_response(ChunkStream(events))

    return handler


async def test_ttft_penalty_moves_streaming_and_probes_the_slow_backend(
    make_gateway: MakeGateway, autojump_clock: trio.testing.MockClock
) -> None:
    """docs/quality.md#ttft-penalty: a preferred backend with a slow average TTFT loses its
    streaming traffic, but gets one streaming request per probe interval (reason ``probe``) to be
    measured again."""
    gateway = make_gateway(
        config_toml(
            fake_backend("a", 10),
            fake_backend("b", 20),
            quality="ttft_penalty_threshold_ms = 150\nprobe_interval_seconds = 10\n",
            head="[routing.weights]\nlatency = 0\n",
        )
    )
    gateway.upstream.handlers["a.test"] = streams_after(0.4)
    gateway.upstream.handlers["b.test"] = streams_after(0.02)

    async def send() -> tuple[str, str]:
        response = await gateway.post(PATH, STREAM_CHAT)
        await response.get_data()
        return response.headers["x-nexus-backend"], response.headers["x-nexus-route-reason"]

    assert await send() == ("a", "best_score")  # no TTFT data yet: priority decides
    tick(gateway)
    assert quality(gateway).avg_ttft_ms == pytest.approx(400.0)
    # penalised: 400 ms >= 2 x 150 ms zeroes the score; a's last stream was just now
    assert await send() == ("b", "best_score")
    await trio.sleep(5)
    assert await send() == ("b", "best_score")
    await trio.sleep(5)
    # probe_interval_seconds without a streaming attempt: the next stream measures a again
    assert await send() == ("a", "probe")
    assert await send() == ("b", "best_score")
    # non-streaming requests are penalised too (docs/quality.md#ttft-penalty) but never probed
    response = await gateway.post(PATH, CHAT)
    assert response.headers["x-nexus-backend"] == "b"
    # a got fast again: its next probe brings the average down and the traffic back
    gateway.upstream.handlers["a.test"] = streams_after(0.01)
    await trio.sleep(10)
    for _ in range(10):
        assert (await send())[0] == "a"
        tick(gateway)
        if quality(gateway).avg_ttft_ms <= 150:  # type: ignore[operator]
            break
        await trio.sleep(10)
    assert await send() == ("a", "best_score")
