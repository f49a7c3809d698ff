"""Every bad request gets the OpenAI envelope and nothing is sent upstream (docs/api.md#errors,
docs/proxying.md#request-body)."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import pytest

from tests.component.in_process import Gateway


async def _error(response: object) -> dict[str, object]:
    body = msgspec.json.decode(await response.get_data())  # type: ignore[attr-defined]
    error: dict[str, object] = body["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    return error


CASES = [
    (b"", 400, "invalid_json", None),
    (b"not json", 400, "invalid_json", None),
    (b'{"model": "m", "messages": [', 400, "invalid_json", None),
    (b'["model", "m"]', 400, "invalid_value", None),
    (b'{"messages": [{"role": "user", "content": "x"}]}', 400, "invalid_value", "model"),
    (
        b'{"model": 5, "messages": [{"role": "user", "content": "x"}]}',
        400,
        "invalid_value",
        "model",
    ),
    (
        b'{"model": "", "messages": [{"role": "user", "content": "x"}]}',
        400,
        "invalid_value",
        "model",
    ),
    (b'{"model": "m", "messages": "hello"}', 400, "invalid_value", "messages"),
    (b'{"model": "m", "messages": []}', 400, "invalid_value", "messages"),
    (b'{"model": "m", "messages": [5]}', 400, "invalid_value", "messages[0]"),
    (
        b'{"model": "m", "messages": [{"role": "user", "content": 7}]}',
        400,
        "invalid_value",
        "messages[0].content",
    ),
    (
        b'{"model": "m", "messages": [{"role": "user", "content": "a"}, '
        b'{"role": "user", "content": [{"text": "no type"}]}]}',
        400,
        "invalid_value",
        "messages[1].content[0]",
    ),
    (
        b'{"model": "m", "stream": "yes", "messages": [{"content": "x"}]}',
        400,
        "invalid_value",
        "stream",
    ),
    (
        b'{"model": "m", "model": "other", "messages": [{"content": "x"}]}',
        400,
        "duplicate_key",
        "model",
    ),
    (
        b'{"stream": false, "model": "m", "stream": true, "messages": [{"content": "x"}]}',
        400,
        "duplicate_key",
        "stream",
    ),
    (
        b'{"m\\u006fdel": "m", "model": "other", "messages": [{"content": "x"}]}',
        400,
        "duplicate_key",
        "model",
    ),
]


@pytest.mark.parametrize(("body", "status", "code", "param"), CASES)
async def test_invalid_chat_body(
    gateway: Gateway, body: bytes, status: int, code: str, param: str | None
) -> None:
    response = await gateway.post("/v1/chat/completions", body)
    assert response.status_code == status
    error = await _error(response)
    assert error["code"] == code
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert gateway.upstream.requests == []


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/completions", b'{"model": "m"}', "prompt"),
        ("/v1/completions", b'{"model": "m", "prompt": [1, "a"]}', "prompt"),
        ("/v1/completions", b'{"model": "m", "prompt": []}', "prompt"),
        ("/v1/embeddings", b'{"model": "m", "input": ""}', "input"),
        ("/v1/embeddings", b'{"model": "m", "input": 3}', "input"),
    ],
)
async def test_invalid_completion_and_embedding_bodies(
    gateway: Gateway, path: str, body: bytes, param: str
) -> None:
    response = await gateway.post(path, body)
    assert response.status_code == 400
    assert (await _error(response))["param"] == param
    assert gateway.upstream.requests == []


async def test_multipart_is_unsupported(gateway: Gateway) -> None:
    client = gateway.app.test_client()
    response = await client.post(
        "/v1/chat/completions",
        data=b"--x\r\n\r\n--x--",
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    assert response.status_code == 415
    assert (await _error(response))["code"] == "unsupported_media_type"
    assert gateway.upstream.requests == []


async def test_body_over_limit_is_413(make_gateway) -> None:  # type: ignore[no-untyped-def]
    gateway: Gateway = make_gateway(
        "[server]\nmax_request_body_bytes = 100\n[health_check]\nenabled = false\n"
        '[[backends]]\nname = "a"\nurl = "http://a.test"\ntype = "generic"\nmodels = ["m"]\n'
    )
    body = b'{"model": "m", "messages": [{"content": "' + b"x" * 200 + b'"}]}'
    response = await gateway.post("/v1/chat/completions", body)
    assert response.status_code == 413
    assert (await _error(response))["code"] == "request_too_large"
    assert gateway.upstream.requests == []


FORM_BODY = b'{"model": "unknown-model", "messages": [{"content": "x"}]}'


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", None])
async def test_without_keys_a_post_that_is_not_json_is_415(
    gateway: Gateway, content_type: str | None
) -> None:
    """A page on any origin can send a form or plain text without a preflight: with inbound
    keys off, nothing but JSON is served (docs/proxying.md#request-body)."""
    client = gateway.app.test_client()
    headers = {} if content_type is None else {"content-type": content_type}
    response = await client.post("/v1/chat/completions", data=FORM_BODY, headers=headers)
    assert response.status_code == 415
    assert (await _error(response))["code"] == "unsupported_media_type"
    assert gateway.upstream.requests == []


async def test_with_keys_a_form_content_type_is_accepted_when_json(
    make_gateway: Callable[..., Gateway],
) -> None:
    """``curl -d`` sends application/x-www-form-urlencoded; with a key, a JSON body is accepted."""
    gateway = make_gateway(
        '[server]\napi_keys_env = "KEYS"\n[health_check]\nenabled = false\n'
        '[[backends]]\nname = "a"\nurl = "http://a.test"\ntype = "generic"\nmodels = ["m"]\n',
        env={"KEYS": "k1"},
    )
    client = gateway.app.test_client()
    response = await client.post(
        "/v1/chat/completions",
        data=FORM_BODY,
        headers={"content-type": "application/x-www-form-urlencoded", "authorization": "Bearer k1"},
    )
    assert (await _error(response))["code"] == "model_not_found"


async def test_unknown_path_and_wrong_method(gateway: Gateway) -> None:
    client = gateway.app.test_client()
    missing = await client.get("/v1/nothing")
    assert missing.status_code == 404
    assert (await _error(missing))["code"] == "not_found"
    wrong = await client.get("/v1/chat/completions")
    assert wrong.status_code == 405
    assert (await _error(wrong))["code"] == "method_not_allowed"
    assert gateway.upstream.requests == []


async def test_unknown_model_lists_known_models(gateway: Gateway) -> None:
    response = await gateway.post(
        "/v1/chat/completions", {"model": "nope", "messages": [{"content": "x"}]}
    )
    assert response.status_code == 404
    error = await _error(response)
    assert error["code"] == "model_not_found"
    assert "m" in str(error["message"])


async def test_no_backend_configured(make_gateway) -> None:  # type: ignore[no-untyped-def]
    gateway: Gateway = make_gateway("")
    response = await gateway.post(
        "/v1/chat/completions", {"model": "x", "messages": [{"content": "x"}]}
    )
    assert response.status_code == 404
    assert "no backend is configured" in str((await _error(response))["message"])
