"""JSON nested just under the decoders' limit — which depends on how deep in the stack each
decode runs — never ends a request with a server error or a broken stream: a client's body is
answered whole or refused with 400 ``invalid_json``, a backend's answer is read or judged a bad
upstream response (docs/proxying.md#request-body)."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import pytest

from tests.component.fake_upstream import ChunkStream, chunk, raw_response, sse, stream_response
from tests.component.in_process import MakeGateway
from tests.component.test_merge_system import CONFIG

#: Depths around the limit (about 950 levels less the stack in use where a decode runs).
DEPTHS = range(850, 1000, 3)


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


async def test_a_responses_stream_echoing_a_deep_field_ends_whole(
    make_gateway: MakeGateway,
) -> None:
    gateway = make_gateway(CONFIG)

    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        events = sse(chunk("hi"), chunk(None, "stop"), "[DONE]")
        return stream_response(ChunkStream(events))

    gateway.upstream.handlers["local.test"] = handler
    answers = set()
    for depth in DEPTHS:
        head = b'{"model":"small","input":"x","stream":true,"metadata":{"k":'
        body = head + nested(depth).encode() + b"}}"
        response = await gateway.post("/v1/responses", body)
        data = await response.get_data()
        ended = response.status_code == 200 and b"event: response.completed" in data
        refused = response.status_code == 400 and b"invalid_json" in data
        assert ended or refused, (depth, response.status_code, data[-200:])
        answers.add(response.status_code)
    assert answers == {200, 400}  # the limit is inside the range


#: Each route's stream ends with this when it ended well.
ENDS = {
    "/v1/chat/completions": b"data: [DONE]",
    "/v1/messages": b"event: message_stop",
    "/v1/responses": b"event: response.completed",
}
BODIES: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {"model": "small", "messages": [{"role": "user", "content": "x"}]},
    "/v1/messages": {
        "model": "small",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "x"}],
    },
    "/v1/responses": {"model": "small", "input": "x"},
}


@pytest.mark.parametrize("path", list(BODIES))
@pytest.mark.parametrize("stream", [False, True])
async def test_a_backends_deep_answer_is_read_or_judged_bad(
    make_gateway: MakeGateway, path: str, stream: bool
) -> None:
    gateway = make_gateway(CONFIG)
    depth = 0

    async def handler(request: httpx.Request, data: bytes) -> httpx.Response:
        if stream:  # a chunk too deep to read adds nothing; the stream goes on
            deep = '{"choices":[{"index":0,"delta":{"content":"hi","x":' + nested(depth) + "}}]}"
            return stream_response(ChunkStream(sse(deep, chunk(None, "stop"), "[DONE]")))
        answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}]}
        deep_answer = msgspec.json.encode(answer)[:-1] + b',"x":' + nested(depth).encode() + b"}"
        return raw_response(200, deep_answer)

    gateway.upstream.handlers["local.test"] = handler
    for depth in DEPTHS:
        response = await gateway.post(path, {**BODIES[path], "stream": stream})
        data = await response.get_data()
        if stream:
            assert response.status_code == 200
            assert ENDS[path] in data, (depth, data[-200:])
        elif response.status_code != 200:
            assert response.status_code == 502, (depth, data[:200])
            assert (
                b"not valid JSON" in data
                or b"bad_upstream_response" in data
                or b"api_error" in data
            )
