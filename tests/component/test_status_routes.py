"""Status routes and drain answers (docs/api.md#models, docs/api.md#health,
docs/operations.md#systemd)."""

from __future__ import annotations

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from nexus_trio.registry import Capabilities, HealthState
from tests.component.client import CHAT
from tests.component.in_process import Gateway


async def test_health_counts_and_status(gateway: Gateway) -> None:
    client = gateway.app.test_client()
    response = await client.get("/health")
    body = msgspec.json.decode(await response.get_data())
    assert response.status_code == 200
    assert body["status"] == "healthy"
    assert body["backends"] == {"total": 2, "healthy": 2, "unhealthy": 0, "unknown": 0}
    assert body["in_flight_requests"] == 0

    gateway.wiring.registry.get("a").health = HealthState.UNHEALTHY  # type: ignore[union-attr]
    degraded = await client.get("/health")
    assert degraded.status_code == 200
    assert msgspec.json.decode(await degraded.get_data())["status"] == "degraded"

    gateway.wiring.registry.get("b").health = HealthState.UNKNOWN  # type: ignore[union-attr]
    unhealthy = await client.get("/health")
    assert unhealthy.status_code == 503
    assert msgspec.json.decode(await unhealthy.get_data())["status"] == "unhealthy"


async def test_draining_turns_health_and_live_503(gateway: Gateway) -> None:
    client = gateway.app.test_client()
    assert (await client.get("/health/live")).status_code == 200
    gateway.wiring.drain.request()
    live = await client.get("/health/live")
    assert live.status_code == 503
    health = await client.get("/health")
    assert health.status_code == 503
    assert msgspec.json.decode(await health.get_data())["status"] == "draining"


async def test_request_after_listener_closed_gets_shutting_down(gateway: Gateway) -> None:
    gateway.wiring.drain.close_listener(drain_timeout=30.0)
    response = await gateway.post("/v1/chat/completions", CHAT)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.headers["connection"] == "close"
    error = msgspec.json.decode(await response.get_data())["error"]
    assert error["code"] == "shutting_down"
    assert gateway.upstream.requests == []


async def test_models_lists_healthy_backends_deduplicated(gateway: Gateway) -> None:
    gateway.wiring.registry.get("b").health = HealthState.UNHEALTHY  # type: ignore[union-attr]
    client = gateway.app.test_client()
    body = msgspec.json.decode(await (await client.get("/v1/models")).get_data())
    assert body["object"] == "list"
    assert [(m["id"], m["owned_by"], m["backends"]) for m in body["data"]] == [("m", "a", ["a"])]


async def test_metrics_content_type_and_bounded_labels(gateway: Gateway) -> None:
    client = gateway.app.test_client()
    for index in range(20):
        await gateway.post(
            "/v1/chat/completions", {"model": f"unknown-{index}", "messages": [{"content": "x"}]}
        )
    response = await client.get("/metrics")
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    text = (await response.get_data()).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = [s for s in families["nexus_requests"].samples if s.name == "nexus_requests_total"]
    assert [(s.labels["model"], s.labels["code"], s.value) for s in samples] == [
        ("none", "4xx", 20.0)
    ]
    assert "unknown-3" not in text


async def test_models_lists_aliases_of_served_models(make_gateway) -> None:  # type: ignore[no-untyped-def]
    gateway: Gateway = make_gateway(
        '[routing.aliases]\n"gpt-4" = "smart"\n"smart" = "m"\n"dangling" = "nowhere"\n'
        "[health_check]\nenabled = false\n"
        '[[backends]]\nname = "a"\nurl = "http://a.test"\ntype = "generic"\nmodels = ["m"]\n'
    )
    client = gateway.app.test_client()
    body = msgspec.json.decode(await (await client.get("/v1/models")).get_data())
    by_id = {entry["id"]: entry for entry in body["data"]}
    assert sorted(by_id) == ["gpt-4", "m", "smart"]
    assert by_id["gpt-4"]["owned_by"] == "nexus-trio"
    assert by_id["gpt-4"]["alias_of"] == "smart"
    assert by_id["smart"]["alias_of"] == "m"
    assert "alias_of" not in by_id["m"]


async def test_models_show_only_what_is_known_of_capabilities(make_gateway) -> None:  # type: ignore[no-untyped-def]
    backends = "".join(
        f'[[backends]]\nname = "{name}"\nurl = "http://{name}.test"\ntype = "generic"\n'
        f'models = ["m", "llava:7b", "plain"]\n{extra}\n'
        for name, extra in (
            ("a", "[backends.capabilities.m]\ntools = true\nvision = false\ncontext_length = 4096"),
            ("b", "[backends.capabilities.m]\nvision = false\ncontext_length = 8192"),
        )
    )
    gateway: Gateway = make_gateway(
        '[routing.aliases]\n"fast" = "m"\n[health_check]\nenabled = false\n' + backends
    )
    gateway.wiring.registry.get("b").detected_capabilities["plain"] = Capabilities(  # type: ignore[union-attr]
        embeddings=False
    )
    client = gateway.app.test_client()
    body = msgspec.json.decode(await (await client.get("/v1/models")).get_data())
    by_id = {entry["id"]: entry["capabilities"] for entry in body["data"]}
    assert by_id == {
        # one backend known to have tools is enough; both known to lack vision; largest context
        "m": {"tools": True, "vision": False, "context_length": 8192},
        "fast": {"tools": True, "vision": False, "context_length": 8192},
        # the name's guess
        "llava:7b": {"vision": True},
        # known no on one backend only, unknown on the other: nothing known for the model
        "plain": {},
    }
