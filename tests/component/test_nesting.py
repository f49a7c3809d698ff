"""JSON nested too deeply for the decoders is a 400, never a server error
(docs/proxying.md#request-body)."""

from __future__ import annotations

import logging

import httpx
import msgspec
import pytest

from nexus_trio import errors
from nexus_trio.api.analysis import requirements_of
from nexus_trio.api.bodies import ChatView, CompletionView, rewritten
from nexus_trio.dialects.anthropic.request import translate_request
from tests.component.fake_upstream import completion
from tests.component.in_process import Gateway

DEEP = 100_000
MESSAGES = b'"messages": [{"role": "user", "content": "x"}]'


def nested(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param("/v1/chat/completions", nested(DEEP), id="whole-body"),
        pytest.param(
            "/v1/chat/completions",
            b'{"model": "m", ' + MESSAGES + b', "extra": ' + nested(DEEP) + b"}",
            id="unknown-field",
        ),
        pytest.param(
            "/v1/chat/completions",
            b'{"model": "m", "model": "m", ' + MESSAGES + b', "x": ' + nested(DEEP) + b"}",
            id="duplicate-key",
        ),
        pytest.param(
            "/v1/completions", b'{"model": "m", "prompt": ' + nested(DEEP) + b"}", id="prompt"
        ),
        pytest.param(
            "/v1/embeddings", b'{"model": "m", "input": ' + nested(DEEP) + b"}", id="input"
        ),
    ],
)
async def test_deep_nesting_is_400_invalid_json_without_a_traceback(
    gateway: Gateway, caplog: pytest.LogCaptureFixture, path: str, body: bytes
) -> None:
    caplog.set_level(logging.INFO)
    response = await gateway.post(path, body)
    assert response.status_code == 400
    error = msgspec.json.decode(await response.get_data())["error"]
    assert error["code"] == "invalid_json"
    assert "nested too deeply" in error["message"]
    assert gateway.upstream.requests == []
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_128_levels_are_accepted_and_forwarded_untouched(gateway: Gateway) -> None:
    async def ok(request: httpx.Request, body: bytes) -> httpx.Response:
        return completion()

    gateway.upstream.handlers["a.test"] = ok
    body = b'{"model": "m", ' + MESSAGES + b', "extra": ' + nested(127) + b"}"
    response = await gateway.post("/v1/chat/completions", body)
    assert response.status_code == 200
    assert gateway.upstream.bodies() == [body]


def test_every_later_decode_of_the_body_refuses_deep_nesting_too() -> None:
    """The body is decoded again after the view (usage, a resolved model, token estimates, an
    Anthropic translation), a little deeper in the stack: each refuses it the same way."""
    body = b'{"model": "m", ' + MESSAGES + b', "x": ' + nested(DEEP) + b"}"
    with pytest.raises(errors.InvalidJSON, match="nested too deeply"):
        rewritten(body, model="other", include_usage=False)
    with pytest.raises(errors.InvalidJSON, match="nested too deeply"):
        translate_request(body, model="claude", default_max_tokens=16)
    deep = msgspec.Raw(nested(DEEP))
    with pytest.raises(errors.InvalidJSON, match="nested too deeply"):
        requirements_of(CompletionView(model="m", prompt=deep))
    assert requirements_of(ChatView(model="m")).estimated_tokens == 0
