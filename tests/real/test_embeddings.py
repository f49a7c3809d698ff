"""Embeddings from a real llama-server started with ``--embeddings --pooling mean``."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tests.real.gateway_client import (
    agent_quality,
    get_json,
    metric_value,
    metrics_text,
    sdk_client,
    wait_metric,
)
from tests.real.llama_server import ServerFactory, real_config
from tests.system.gateway_process import GatewayFactory
from tests.system.polling import poll

pytestmark = pytest.mark.real


def _session(url: str) -> dict[str, Any]:
    client = sdk_client(url)
    first = client.embeddings.with_raw_response.create(model="smol", input=["cat", "dog"])
    second = client.embeddings.with_raw_response.create(model="smol", input="a third text")
    chat = client.chat.completions.with_raw_response.create(
        model="smol", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
    )
    client.close()
    return {"first": first, "second": second, "chat": chat}


async def test_embeddings_from_a_server_started_to_embed(
    start_llama: ServerFactory, start_gateway: GatewayFactory
) -> None:
    # Both serve "smol" (no "embed" in it, on no list, declared by neither): the preferred one
    # was not started with --embeddings and answers 501, the other was.
    chat_only = await start_llama("smol", name="chat-only")
    vectors = await start_llama("smol", "--embeddings", "--pooling", "mean", name="vectors")
    config = real_config(
        (chat_only, "priority = 10"),
        (vectors, "priority = 90"),
        # a good probe forgets what a 501 taught: no probe during the test
        health="interval_seconds = 60",
        extra='[routing]\nstrategy = "priority_only"\n[quality]\nmetrics_interval_seconds = 0.2',
    )
    gateway = await start_gateway(config)
    seen = await trio.to_thread.run_sync(_session, gateway.url)
    n_embd = (await vectors.get_json("/v1/models"))["data"][0]["meta"]["n_embd"]

    # the first request learns that chat-only does not embed and is served by vectors
    first = seen["first"]
    assert first.headers["x-nexus-backend"] == "vectors"
    assert first.headers["x-nexus-attempts"] == "2"
    cat, dog = first.parse().data
    assert len(cat.embedding) == len(dog.embedding) == n_embd
    assert cat.embedding != dog.embedding
    # the second goes straight there
    second = seen["second"]
    assert second.headers["x-nexus-backend"] == "vectors"
    assert second.headers["x-nexus-attempts"] == "1"
    assert len(second.parse().data[0].embedding) == n_embd
    # chat on the same model still prefers chat-only: only embeddings were learned
    assert seen["chat"].headers["x-nexus-backend"] == "chat-only"
    assert seen["chat"].parse().choices[0].message.content

    # the 501 was a client error for chat-only, not a failure: its quality stays clean
    with trio.fail_after(5):
        await wait_metric(gateway.url, "nexus_upstream_attempts_total", 2, backend="chat-only")
    text = await metrics_text(gateway.url)
    assert (
        metric_value(
            text, "nexus_upstream_attempts_total", backend="chat-only", outcome="client_error"
        )
        == 1
    )
    assert metric_value(text, "nexus_upstream_attempts_total", outcome="failure") == 0

    async def recomputed() -> bool:
        stats = await get_json(gateway.url, "/v1/stats")
        quality = agent_quality(stats, "chat-only", "smol")
        # the 501 and the chat (client errors count here, not in the error rate)
        return quality is not None and quality["request_count_1h"] == 2

    with trio.fail_after(10):
        await poll(recomputed)
    stats = await get_json(gateway.url, "/v1/stats")
    chat_quality = agent_quality(stats, "chat-only", "smol")
    assert chat_quality["error_rate_1h"] == 0
    assert chat_quality["consecutive_failures"] == 0
    assert chat_quality["state"] == "healthy"
    assert agent_quality(stats, "vectors", "smol")["request_count_1h"] == 2
    assert stats["requests"]["success"] == 3
