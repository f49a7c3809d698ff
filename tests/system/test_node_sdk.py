"""The official Node ``openai`` SDK through a real gateway process to simulated backends.

A second real client beside the Python SDK (``test_openai_sdk.py``), run by
``tests/system/node_client.py``. Without ``node`` or ``npm`` these tests are skipped, except
under CI (``CI`` set), where that fails.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import trio

from nexus_trio.simulator import EMBEDDING_DIMENSIONS, PARTIAL_EVENTS, FailMode, SimulatedBackend
from tests.system.configs import gateway_config
from tests.system.gateway_process import GatewayFactory
from tests.system.node_client import NodeSDK, chat, run_node
from tests.system.polling import poll
from tests.system.ports import free_port
from tests.system.refusals import (
    LIMITED_KEY,
    assert_answered_then_budget_refused,
    assert_refused_then_answered,
    empty_request_bucket,
    gateway_with_limited_key,
    gateway_with_spent_budget,
)

pytestmark = pytest.mark.system

CHAT = "/v1/chat/completions"
Backends = Callable[..., Awaitable[SimulatedBackend]]


def inference(backend: SimulatedBackend, path: str = CHAT) -> list[dict[str, Any]]:
    """Bodies of the inference requests ``backend`` received on ``path``."""
    return [msgspec.json.decode(r.body) for r in backend.received if r.path == path]


async def test_plain_and_streamed_chat_with_usage(
    start_backend: Backends, start_gateway: GatewayFactory, node_sdk: NodeSDK
) -> None:
    backend = await start_backend(name="sim", models=("demo",), ttft_ms=5, tokens_per_second=0)
    gateway = await start_gateway(gateway_config(backend))
    results = await run_node(
        node_sdk,
        gateway.url,
        chat("plain"),
        chat("streamed", stream=True, stream_options={"include_usage": True}),
    )
    plain, streamed = results["plain"], results["streamed"]

    assert plain["ok"], plain
    assert plain["content"]
    assert plain["finish_reason"] == "stop"
    assert plain["usage"]["completion_tokens"] == backend.options.completion_tokens
    assert plain["headers"]["x-nexus-backend"] == "sim"
    assert plain["headers"]["x-request-id"]

    # the stream ended cleanly (no error raised), its deltas make the same answer, and the
    # usage chunk asked for by stream_options arrived last, with no choices
    assert streamed["ok"], streamed
    assert streamed["content"] == plain["content"]
    assert streamed["finish_reason"] == "stop"
    assert streamed["usage"] == plain["usage"]
    assert streamed["usage_chunk_choices"] == 0
    # role chunk + one per token + finish chunk + usage chunk
    assert streamed["chunks"] == backend.options.completion_tokens + 3
    assert streamed["headers"]["x-request-id"] != plain["headers"]["x-request-id"]

    first, second = inference(backend)
    assert "stream" not in first
    assert second["stream"] is True
    assert second["stream_options"] == {"include_usage": True}


async def test_embeddings_for_a_model_not_named_embed(
    start_backend: Backends, start_gateway: GatewayFactory, node_sdk: NodeSDK
) -> None:
    """``embeddings.create`` for "demo": the backend embeds it, the gateway's config says nothing.

    Once the gateway refused this with 503 because the name lacks "embed"; now only a model
    known not to embed is refused, so the SDK gets the backend's vectors.
    """
    backend = await start_backend(
        name="sim", models=("demo",), embedding_models=("demo",), ttft_ms=5
    )
    config = gateway_config(backend)
    assert "embed" not in "demo"
    assert "embedding_models" not in config
    assert "capabilities" not in config
    gateway = await start_gateway(config)
    inputs = ["alpha", "beta"]
    results = await run_node(
        node_sdk,
        gateway.url,
        {"name": "default", "method": "embeddings", "params": {"model": "demo", "input": inputs}},
        {
            "name": "float",
            "method": "embeddings",
            "params": {"model": "demo", "input": inputs, "encoding_format": "float"},
        },
    )
    default, floats = results["default"], results["float"]

    assert default["ok"], default
    assert default["headers"]["x-nexus-backend"] == "sim"
    assert default["count"] == 2
    assert default["indexes"] == [0, 1]
    assert [len(vector) for vector in default["vectors"]] == [EMBEDDING_DIMENSIONS] * 2
    assert default["vectors"][0] != default["vectors"][1]
    assert default["usage"]["prompt_tokens"] >= 1
    # by default the SDK asks for base64 and decodes it: the same vectors as asked in floats
    assert floats["ok"], floats
    for decoded, plain in zip(default["vectors"], floats["vectors"], strict=True):
        assert decoded == pytest.approx(plain, rel=1e-6)
    sent = inference(backend, "/v1/embeddings")
    assert [body["encoding_format"] for body in sent] == ["base64", "float"]
    assert all(body["model"] == "demo" and body["input"] == inputs for body in sent)


async def test_error_classes(
    start_backend: Backends, start_gateway: GatewayFactory, node_sdk: NodeSDK
) -> None:
    """400, 404, 429 and 503 raise the SDK's class for each status, with the envelope's fields."""
    sim = await start_backend(name="sim", models=("demo",), ttft_ms=5)
    limited = await start_backend(
        name="limited",
        models=("busy",),
        error_rate=1.0,
        fail_mode=FailMode.HTTP_429,
        retry_after_seconds=1,
    )
    # health checks on, one failed probe makes a backend unhealthy: "dead" is down from the
    # first sweep, which the gateway completes before it reports ready
    config = gateway_config(sim, limited).replace(
        "[health_check]\nenabled = false",
        "[health_check]\ninterval_seconds = 60\nfailure_threshold = 1",
    )
    config += f'[[backends]]\nname = "dead"\nurl = "http://127.0.0.1:{free_port()}"\n'
    config += 'type = "generic"\nmodels = ["gone"]\n'
    gateway = await start_gateway(config)
    bad = chat("bad_request")
    del bad["params"]["messages"]
    results = await run_node(
        node_sdk,
        gateway.url,
        bad,
        chat("not_found", "no-such-model"),
        chat("rate_limited", "busy"),
        chat("unavailable", "gone"),
    )
    expected = {
        "bad_request": ("BadRequestError", 400, "invalid_value", "invalid_request_error"),
        "not_found": ("NotFoundError", 404, "model_not_found", "invalid_request_error"),
        "rate_limited": ("RateLimitError", 429, "rate_limit_exceeded", "requests"),
        "unavailable": ("InternalServerError", 503, "no_available_backend", "service_unavailable"),
    }
    for name, (cls, status, code, error_type) in expected.items():
        result = results[name]
        assert not result["ok"], result
        error = result["error"]
        assert (error["class"], error["status"], error["code"], error["type"]) == (
            cls,
            status,
            code,
            error_type,
        ), result
        # the gateway's request id reaches the SDK's error (llama-server alone sends none)
        assert error["request_id"]
        assert error["request_id"] == error["headers"]["x-request-id"]
    assert results["bad_request"]["error"]["param"] == "messages"
    assert results["not_found"]["error"]["param"] == "model"
    assert results["rate_limited"]["error"]["headers"]["retry-after"] == "1"
    assert int(results["unavailable"]["error"]["headers"]["retry-after"]) > 0
    # maxRetries 0: the SDK sent one request, Retry-After made it wait for nothing
    assert len(inference(limited)) == 1
    assert inference(sim) == []


async def test_x_should_retry_false_stops_the_sdk_retrying(
    start_backend: Backends, start_gateway: GatewayFactory, node_sdk: NodeSDK
) -> None:
    """After the gateway's own retries the SDK (default 2 retries) does not retry on top.

    "demo" is served by two failing backends: the gateway tries both and answers 500 with
    ``x-should-retry: false``. "solo" has one failing backend: one attempt, no such header, so
    the SDK retries it — proving these counts would see retries.
    """
    failing = {"error_rate": 1.0, "fail_mode": FailMode.HTTP_500, "ttft_ms": 5}
    first = await start_backend(name="a", models=("demo",), **failing)
    second = await start_backend(name="b", models=("demo",), **failing)
    solo = await start_backend(name="solo", models=("solo",), **failing)
    gateway = await start_gateway(gateway_config(first, second, solo))
    results = await run_node(
        node_sdk,
        gateway.url,
        chat("exhausted", max_retries=None),
        chat("retried", "solo", max_retries=1),
    )
    exhausted, retried = results["exhausted"]["error"], results["retried"]["error"]

    assert (exhausted["class"], exhausted["status"]) == ("InternalServerError", 500)
    assert exhausted["headers"]["x-should-retry"] == "false"
    assert exhausted["headers"]["x-nexus-attempts"] == "2"
    assert (len(inference(first)), len(inference(second))) == (1, 1)
    async with httpx.AsyncClient() as client:

        async def total_is_three() -> bool:
            response = await client.get(f"{gateway.url}/v1/stats")
            total: int = response.json()["requests"]["total"]
            return total == 3

        with trio.fail_after(5):
            await poll(total_is_three)  # one request for "demo", two for "solo"

    assert (retried["class"], retried["status"]) == ("InternalServerError", 500)
    assert "x-should-retry" not in retried["headers"]
    assert len(inference(solo)) == 2
    retry_counts = [
        dict(r.headers).get(b"x-stainless-retry-count") for r in solo.received if r.path == CHAT
    ]
    assert retry_counts == [b"0", b"1"]


async def test_truncated_stream_raises(
    start_backend: Backends, start_gateway: GatewayFactory, node_sdk: NodeSDK
) -> None:
    """A backend reset mid-stream: the SDK raises after the partial content, never ends quietly."""
    backend = await start_backend(
        name="sim",
        models=("demo",),
        ttft_ms=5,
        tokens_per_second=0,
        error_rate=1.0,
        fail_mode=FailMode.RESET_MID,
    )
    gateway = await start_gateway(gateway_config(backend))
    results = await run_node(node_sdk, gateway.url, chat("truncated", stream=True))
    truncated = results["truncated"]

    assert not truncated["ok"], truncated
    # the role chunk and the content the backend sent before its reset reached the caller
    assert truncated["chunks"] == 1 + PARTIAL_EVENTS
    assert truncated["content"]
    assert truncated["finish_reason"] is None
    # then the gateway's error event: a plain APIError (no status: the stream had started)
    error = truncated["error"]
    assert (error["class"], error["status"], error["code"]) == (
        "APIError",
        None,
        "stream_truncated",
    )
    assert "backend connection failed" in error["message"]


async def test_the_sdk_waits_out_a_rate_limit_and_succeeds(
    start_backend: Backends, start_gateway: GatewayFactory, node_sdk: NodeSDK
) -> None:
    """docs/keys.md#rate-limits: over its limit a key gets 429 ``rate_limit_exceeded`` with
    ``Retry-After``; the SDK's own retry waits that long and then gets the answer."""
    # 30 requests a minute: one comes back every 2 s, so the SDK's first request is refused
    # even with node's start (a few hundred ms) between the emptied bucket and it.
    backend, gateway = await gateway_with_limited_key(start_backend, start_gateway, 30)
    async with httpx.AsyncClient(timeout=10) as client:
        with trio.fail_after(10):
            admitted, refused = await empty_request_bucket(client, gateway.url, LIMITED_KEY, "demo")
        results = await run_node(
            node_sdk, gateway.url, chat("limited", max_retries=1), api_key=LIMITED_KEY
        )
        limited = results["limited"]
        assert limited["ok"], limited
        assert limited["content"]

        # refused with Retry-After, waited that long, retried and answered
        first, second = limited["responses"]
        assert (first["status"], second["status"]) == (429, 200)
        retry_after_ms = int(first["retry_after"]) * 1000
        assert 1000 <= retry_after_ms <= 2000  # the bucket was at most 2 s from a request
        # (node's timers may fire a millisecond early, and at_ms is rounded)
        assert second["at_ms"] - first["at_ms"] >= retry_after_ms - 5
        # Retry-After, with 2x as the upper bound only
        assert retry_after_ms <= limited["elapsed_ms"] < 2 * retry_after_ms
        last = [r for r in backend.received if r.path == CHAT][-1]
        assert dict(last.headers)[b"x-stainless-retry-count"] == b"1"

        # the gateway saw the refusal, then the answer
        await assert_refused_then_answered(client, gateway, admitted, refused)


async def test_x_should_retry_false_stops_the_sdk_on_a_spent_budget(
    start_backend: Backends, start_gateway: GatewayFactory, node_sdk: NodeSDK, tmp_path: Path
) -> None:
    """docs/spend.md#budgets: with ``hard_limit_action = "reject"`` and the budget spent, the SDK
    (2 retries by default) raises RateLimitError ``budget_exceeded`` after one request.

    The answer's ``Retry-After`` is the time left in the month, and this SDK waits out any
    ``Retry-After``: only ``x-should-retry: false`` keeps it from sleeping until the 1st.
    """
    backend, gateway = await gateway_with_spent_budget(
        start_backend, start_gateway, tmp_path / "state"
    )
    results = await run_node(node_sdk, gateway.url, chat("refused", max_retries=None))
    refused = results["refused"]
    assert not refused["ok"], refused
    error = refused["error"]
    assert (error["class"], error["status"], error["code"], error["type"]) == (
        "RateLimitError",
        429,
        "budget_exceeded",
        "insufficient_quota",
    )
    assert error["headers"]["x-should-retry"] == "false"
    assert int(error["headers"]["retry-after"]) >= 1
    assert [response["status"] for response in refused["responses"]] == [429]
    await assert_answered_then_budget_refused(gateway)
    assert len(inference(backend)) == 1
