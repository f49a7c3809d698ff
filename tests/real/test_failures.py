"""Faults with real llama-servers: one killed mid-stream and restarted, a client leaving
mid-stream, and a SIGTERM drain with real streams in flight."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import httpx
import msgspec
import openai
import pytest
import trio

from tests.real.gateway_client import (
    agent_quality,
    backend_stats,
    get_json,
    metric_value,
    metrics_text,
    sdk_client,
    wait_metric,
)
from tests.real.llama_server import ServerFactory, real_config
from tests.system.gateway_process import GatewayFactory
from tests.system.polling import poll
from tests.system.raw_connection import RawConnection

pytestmark = pytest.mark.real

#: A stream that runs for seconds: 200 tokens, and the end-of-sequence token is ignored.
LONG_STREAM: dict[str, Any] = {
    "messages": [{"role": "user", "content": "Tell me a long story."}],
    "max_tokens": 200,
    "temperature": 0.8,
    "extra_body": {"ignore_eos": True},
}

#: Health and quality settings small enough for the whole story to take seconds.
FAST_RECOVERY = {
    "health": "\n".join(
        [
            "interval_seconds = 0.3",
            "timeout_seconds = 1",
            "failure_threshold = 1",
            "recovery_threshold = 1",
        ]
    ),
    "extra": "\n".join(
        [
            "[routing]",
            'strategy = "priority_only"',
            "[quality]",
            "metrics_interval_seconds = 0.2",
            "consecutive_failures = 1",
            "probe_interval_seconds = 1",
        ]
    ),
}


def _stream_until_error(url: str, on_first_content: Callable[[], None]) -> dict[str, Any]:
    """Stream LONG_STREAM; call ``on_first_content`` after the first content chunk."""
    client = sdk_client(url)
    raw = client.chat.completions.with_raw_response.create(model="smol", stream=True, **LONG_STREAM)
    pieces: list[str] = []
    error: openai.APIError | None = None
    try:
        for chunk in raw.parse():
            if chunk.choices and chunk.choices[0].delta.content:
                if not pieces:
                    on_first_content()
                pieces.append(chunk.choices[0].delta.content)
    except openai.APIError as exc:
        error = exc
    client.close()
    return {"backend": raw.headers["x-nexus-backend"], "pieces": pieces, "error": error}


def _chat(url: str) -> tuple[str, str]:
    """One tiny request: which backend served it and why."""
    client = sdk_client(url)
    raw = client.chat.completions.with_raw_response.create(
        model="smol", messages=[{"role": "user", "content": "Hi"}], max_tokens=1
    )
    assert raw.parse().choices
    client.close()
    return raw.headers["x-nexus-backend"], raw.headers["x-nexus-route-reason"]


async def test_server_killed_mid_stream_then_restarted_is_readmitted(
    start_llama: ServerFactory, start_gateway: GatewayFactory
) -> None:
    alpha = await start_llama("smol", name="alpha")
    beta = await start_llama("smol", name="beta")
    config = real_config((alpha, "priority = 10"), (beta, "priority = 90"), **FAST_RECOVERY)
    gateway = await start_gateway(config)

    def kill_alpha() -> None:
        trio.from_thread.run(alpha.kill)

    seen = await trio.to_thread.run_sync(_stream_until_error, gateway.url, kill_alpha)
    assert seen["backend"] == "alpha"
    assert seen["pieces"]
    # the gateway ended the stream with its error event, which the SDK raises: not a clean
    # end (silent truncation) and not a dropped connection
    error = seen["error"]
    assert type(error) is openai.APIError, repr(error)
    assert error.code == "stream_truncated"

    with trio.fail_after(5):
        await wait_metric(gateway.url, "nexus_stream_truncated_total", 1, backend="alpha")
    text = await metrics_text(gateway.url)
    assert (
        metric_value(text, "nexus_upstream_attempts_total", backend="alpha", outcome="failure") == 1
    )

    async def alpha_out() -> bool:
        stats = await get_json(gateway.url, "/v1/stats")
        quality = agent_quality(stats, "alpha", "smol")
        return (
            backend_stats(stats, "alpha")["status"] == "unhealthy"
            and quality is not None
            and quality["state"] in ("excluded", "probing")
        )

    with trio.fail_after(10):
        await poll(alpha_out)
    stats = await get_json(gateway.url, "/v1/stats")
    assert stats["requests"]["errors"] == 1
    failed = agent_quality(stats, "alpha", "smol")
    assert failed["consecutive_failures"] == 1
    assert failed["last_failure_time"] is not None
    # meanwhile requests go to beta
    assert (await trio.to_thread.run_sync(_chat, gateway.url))[0] == "beta"

    await alpha.start()  # same port; waits for its /health

    async def alpha_healthy() -> bool:
        stats = await get_json(gateway.url, "/v1/stats")
        return backend_stats(stats, "alpha")["status"] == "healthy"

    with trio.fail_after(10):
        await poll(alpha_healthy)
    # health readmitted it; quality sends it one probe request, whose success readmits it
    served: list[tuple[str, str]] = []

    async def served_by_alpha() -> bool:
        served.append(await trio.to_thread.run_sync(_chat, gateway.url))
        return served[-1][0] == "alpha"

    with trio.fail_after(20):
        await poll(served_by_alpha)
    assert served[-1] == ("alpha", "probe")

    async def alpha_readmitted() -> bool:
        stats = await get_json(gateway.url, "/v1/stats")
        quality = agent_quality(stats, "alpha", "smol")
        return quality["state"] == "healthy" and quality["consecutive_failures"] == 0

    with trio.fail_after(10):
        await poll(alpha_readmitted)
    # and it is preferred again
    assert (await trio.to_thread.run_sync(_chat, gateway.url)) == ("alpha", "priority")


async def _drained_stream(
    http: httpx.AsyncClient,
    url: str,
    prompt: str,
    committed: trio.Semaphore,
    out: list[tuple[bytes, float]],
) -> None:
    """Read one stream whole; release ``committed`` at its first content event."""
    body = {
        "model": "smol",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 64,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    raw = b""
    released = False
    async with http.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        async for chunk in response.aiter_raw():
            raw += chunk
            if not released and b'"content":"' in raw:
                committed.release()
                released = True
    out.append((raw, trio.current_time()))


async def test_sigterm_drains_real_streams(
    start_llama: ServerFactory, start_gateway: GatewayFactory
) -> None:
    llama = await start_llama("smol", slots=3)
    gateway = await start_gateway(real_config(llama))
    prompts = ("Count to fifty.", "Name many animals.", "List some colours.")
    committed = trio.Semaphore(0, max_value=len(prompts))
    bodies: list[tuple[bytes, float]] = []
    async with httpx.AsyncClient(timeout=30) as http, trio.open_nursery() as nursery:
        for prompt in prompts:
            nursery.start_soon(_drained_stream, http, gateway.url, prompt, committed, bodies)
        for _ in prompts:
            with trio.fail_after(15):
                await committed.acquire()
        gateway.send_signal(signal.SIGTERM)
        signalled_at = trio.current_time()
        with trio.fail_after(30):
            status = await gateway.wait_exit()
            await gateway.exited.wait()  # its last log lines read

    assert status == 0
    assert "drain complete" in gateway.log_text()
    assert len(bodies) == len(prompts)
    for raw, ended_at in bodies:
        assert ended_at > signalled_at  # it was still running at SIGTERM
        events = raw.rstrip(b"\n").split(b"\n\n")
        assert events[-1] == b"data: [DONE]"
        assert b"stream_truncated" not in raw
        # it ran to its end: every token asked for, then the server's usage chunk
        usage = msgspec.json.decode(events[-2].removeprefix(b"data: "))["usage"]
        assert usage["completion_tokens"] == 64


async def test_client_disconnect_cancels_the_real_generation(
    start_llama: ServerFactory, start_gateway: GatewayFactory
) -> None:
    llama = await start_llama("smol")
    gateway = await start_gateway(real_config(llama))
    body = {
        "model": "smol",
        "messages": [{"role": "user", "content": "Tell me a long story."}],
        "max_tokens": 400,  # seconds of work, unless the gateway lets the server know
        "ignore_eos": True,
        "stream": True,
    }
    connection = await RawConnection.open(gateway.port)
    await connection.send_request(
        "POST",
        "/v1/chat/completions",
        msgspec.json.encode(body),
        [("content-type", "application/json")],
    )
    received = b""
    with trio.fail_after(10):
        while b'"content":"' not in received:
            event = await connection.next_event()
            received += getattr(event, "data", b"")
    await connection.aclose()  # the client goes away mid-stream

    async def slots_idle() -> bool:
        slots = await llama.get_json("/slots")
        return not any(slot["is_processing"] for slot in slots)

    with trio.fail_after(2):
        await poll(slots_idle)
    # the server stopped the generation because its client (the gateway) went away
    assert "stop: cancel task" in llama.log.read_text()

    async def recorded() -> bool:
        return (await get_json(gateway.url, "/v1/stats"))["requests"]["cancelled"] == 1

    with trio.fail_after(5):
        await poll(recorded)
    text = await metrics_text(gateway.url)
    assert metric_value(text, "nexus_upstream_attempts_total", outcome="cancelled") == 1
    assert metric_value(text, "nexus_upstream_attempts_total", outcome="failure") == 0
