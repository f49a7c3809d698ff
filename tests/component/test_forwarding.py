"""Lossless forwarding, header rules and request ids (docs/api.md#http-api,
docs/proxying.md#request-body, docs/proxying.md#headers, docs/api.md#response-headers)."""

from __future__ import annotations

import httpx
import msgspec

from tests.component.client import CHAT
from tests.component.configs import KEYED_OPENAI
from tests.component.fake_upstream import completion, raw_response
from tests.component.in_process import Gateway

TOOLS_REQUEST = (
    b'{"model":"m","seed":42,"tools":[{"type":"function","function":{"name":"get_weather",'
    b'"parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],'
    b'"tool_choice":"auto","vendor_extra":{"x":[1,2.50,"\\u00e9"]},"messages":['
    b'{"role":"user","content":"weather?"},'
    b'{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",'
    b'"function":{"name":"get_weather","arguments":"{\\"city\\":\\"Paris\\"}"}}]},'
    b'{"role":"tool","tool_call_id":"call_1","content":"sunny"}]}'
)


async def test_body_forwarded_byte_identical(gateway: Gateway) -> None:
    reply = b'{"id":"x","choices":[{"message":{"tool_calls":[{"id":"c"}]}}],"odd":  1.50}'

    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        return raw_response(200, reply)

    gateway.upstream.handlers["a.test"] = handler
    response = await gateway.post("/v1/chat/completions", TOOLS_REQUEST)
    assert response.status_code == 200
    assert gateway.upstream.bodies() == [TOOLS_REQUEST]
    assert await response.get_data() == reply


async def test_headers_to_upstream_are_filtered(make_gateway) -> None:  # type: ignore[no-untyped-def]
    gateway: Gateway = make_gateway(KEYED_OPENAI, env={"A_KEY": "sk-backend"})

    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        return completion()

    gateway.upstream.handlers["a.test"] = handler
    await gateway.post(
        "/v1/chat/completions",
        CHAT,
        authorization="Bearer client-key",
        cookie="session=1",
        **{
            "x-nexus-backend": "evil",
            "proxy-authorization": "x",
            "accept-encoding": "gzip",
            "x-request-id": "req-123",
            "x-api-key": "client-key",
            "api-key": "client-key",
            "openai-organization": "org-client",
            "openai-project": "proj-client",
            "openai-beta": "assistants=v2",
            "x-goog-api-key": "g",
            "x-goog-user-project": "p",
            "helicone-auth": "Bearer h",
            "cf-aig-authorization": "Bearer c",
            "ocp-apim-subscription-key": "s",
            "x-session-token": "t",
            "x-forwarded-for": "10.0.0.1",
            "forwarded": "for=10.0.0.1",
            "x-real-ip": "10.0.0.1",
            "idempotency-key": "idem-1",
            "x-stainless-os": "Linux",
        },
    )
    ((request, _),) = gateway.upstream.requests
    headers = request.headers
    assert headers["authorization"] == "Bearer sk-backend"
    assert "cookie" not in headers
    assert "x-nexus-backend" not in headers
    assert "proxy-authorization" not in headers
    assert headers["accept-encoding"] == "identity"
    assert headers["x-request-id"] == "req-123"
    # Credentials and billing selectors are the gateway's to set: a client cannot pick which
    # organisation or project the backend's key is billed to (docs/proxying.md#headers).
    for name in ("x-api-key", "api-key", "openai-organization", "openai-project"):
        assert name not in headers
    # So are other providers' credentials, and client addresses a client could forge.
    for name in (
        "x-goog-api-key",
        "x-goog-user-project",
        "helicone-auth",
        "cf-aig-authorization",
        "ocp-apim-subscription-key",
        "x-session-token",
        "x-forwarded-for",
        "forwarded",
        "x-real-ip",
    ):
        assert name not in headers
    assert headers["openai-beta"] == "assistants=v2"
    assert headers["idempotency-key"] == "idem-1"
    assert headers["x-stainless-os"] == "Linux"


async def test_client_authorization_not_forwarded_by_default(gateway: Gateway) -> None:
    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        return completion()

    gateway.upstream.handlers["a.test"] = handler
    await gateway.post("/v1/chat/completions", CHAT, authorization="Bearer client-key")
    ((request, _),) = gateway.upstream.requests
    assert "authorization" not in request.headers


async def test_headers_to_client_are_filtered(gateway: Gateway) -> None:
    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        return completion(
            **{
                "set-cookie": "a=b",
                "server": "upstream/1.0",
                "x-ratelimit-remaining-requests": "9",
                "openai-processing-ms": "12",
                "x-request-id": "up-1",
                "x-internal": "secret",
            }
        )

    gateway.upstream.handlers["a.test"] = handler
    response = await gateway.post("/v1/chat/completions", CHAT)
    headers = response.headers
    assert "set-cookie" not in headers
    assert "x-internal" not in headers
    assert headers.get("server") != "upstream/1.0"
    assert headers["x-ratelimit-remaining-requests"] == "9"
    assert headers["openai-processing-ms"] == "12"
    assert headers["x-upstream-request-id"] == "up-1"
    assert headers["x-nexus-backend"] == "a"
    assert headers["x-nexus-backend-type"] == "local"
    assert headers["x-nexus-model"] == "m"
    assert headers["x-nexus-attempts"] == "1"
    assert headers["x-nexus-privacy-zone"] == "restricted"
    assert headers["x-nexus-route-reason"] == "best_score"


async def test_request_id_kept_or_replaced(gateway: Gateway) -> None:
    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        return completion()

    gateway.upstream.handlers["a.test"] = handler
    kept = await gateway.post("/v1/chat/completions", CHAT, **{"x-request-id": "abc-1"})
    assert kept.headers["x-request-id"] == "abc-1"
    for bad in ("x" * 129, "has space", "tab\there"):
        response = await gateway.post("/v1/chat/completions", CHAT, **{"x-request-id": bad})
        assert response.status_code == 200
        fresh = response.headers["x-request-id"]
        assert fresh != bad
        assert len(fresh) == 36
        assert gateway.upstream.requests[-1][0].headers["x-request-id"] == fresh


async def test_error_responses_carry_request_id(gateway: Gateway) -> None:
    response = await gateway.post("/v1/chat/completions", b"nope", **{"x-request-id": "e-1"})
    assert response.status_code == 400
    assert response.headers["x-request-id"] == "e-1"
    body = msgspec.json.decode(await response.get_data())
    assert body["error"]["code"] == "invalid_json"


async def test_backend_cookies_are_never_replayed_on_later_requests(gateway: Gateway) -> None:
    async def sets_a_cookie(request: httpx.Request, body: bytes) -> httpx.Response:
        return completion(**{"set-cookie": "session=client-A-secret; Path=/"})

    gateway.upstream.handlers["a.test"] = sets_a_cookie
    first = await gateway.post("/v1/chat/completions", CHAT)
    assert "set-cookie" not in first.headers
    await gateway.post("/v1/chat/completions", CHAT)
    assert [r.headers.get("cookie") for r, _ in gateway.upstream.requests] == [None, None]
