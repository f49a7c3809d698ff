"""A fake Anthropic Messages API server, written from Anthropic's published API reference.

It checks what it receives the way the real API does (the key as ``x-api-key`` or, as the
SDK sends it, ``Authorization: Bearer``; an ``anthropic-version``; the request schema, in
``tests/anthropic_request_rules.py``) and answers with the
documented shapes: messages, stream events (``message_start`` … ``message_stop``, ``ping``,
``error``), errors (``{"type": "error", "error": {...}}`` with a ``request-id`` header, 429
with ``retry-after``) and the model list. The official ``anthropic`` SDK is run against it
(``tests/system/test_fake_anthropic.py``) so the fake cannot drift from the protocol.

The model asked for picks the behaviour: one of :attr:`FakeAnthropic.models` answers
(a tool call when tools are offered, the tool's result echoed once it is sent, the number of
images seen otherwise); ``fail-<status>`` answers that error; ``truncate`` breaks its stream
off; ``stream-error`` sends an ``error`` event mid-stream; ``slow`` streams until the client
leaves (then :attr:`FakeAnthropic.disconnected` is set).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from tests.anthropic_request_rules import problems

KEY = "sk-ant-test-key"
#: Anthropic's error type for each status (its API reference, "Errors").
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def _text_of(content: str | list[dict[str, Any]]) -> str:
    if isinstance(content, str):
        return content
    return "".join(block["text"] for block in content if block["type"] == "text")


def sse(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


class FakeAnthropic:
    """The fake server; :meth:`run` binds it to a free port on 127.0.0.1."""

    def __init__(self, *, models: tuple[str, ...] = ("claude-sonnet-4",), fail: int = 0) -> None:
        self.models = models
        #: Answer every message request with this error status (0 = behave).
        self.fail = fail
        self.port = 0
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.model_listings = 0
        self.disconnected = trio.Event()
        self._ids = itertools.count(1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; ``started()`` once bound."""
        config = HypercornConfig()
        config.bind = ["127.0.0.1:0"]
        config.accesslog = None
        config.errorlog = None
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(serve, self, config)
            self.port = int(bound[0].rsplit(":", 1)[1])
            task_status.started()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].removeprefix("lifespan.")
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request_id = f"req_fake{next(self._ids):04d}"
        if KEY not in (headers.get("x-api-key"), headers.get("authorization", "")[7:]):
            await self._error(send, request_id, 401, "invalid x-api-key")
            return
        if "anthropic-version" not in headers:
            await self._error(send, request_id, 400, "anthropic-version: header is required")
            return
        if scope["method"] == "GET" and scope["path"] == "/v1/models":
            self.model_listings += 1
            await self._json(send, request_id, 200, self._model_list())
            return
        if scope["method"] != "POST" or scope["path"] != "/v1/messages":
            await self._error(send, request_id, 404, "Not found")
            return
        self.headers.append(headers)
        try:
            request = json.loads(body)
        except ValueError:
            await self._error(send, request_id, 400, "body: invalid JSON")
            return
        self.received.append(request)
        await self._messages(request, request_id, receive, send)

    async def _messages(
        self, request: dict[str, Any], request_id: str, receive: Any, send: Any
    ) -> None:
        model = request.get("model", "")
        status = self.fail or (int(model[5:]) if model.startswith("fail-") else 0)
        if status:
            await self._error(send, request_id, status, f"Fake {ERROR_TYPES[status]}.")
            return
        problem = problems(request)
        if problem is not None:
            await self._error(send, request_id, 400, problem)
            return
        if model not in (*self.models, "truncate", "stream-error", "slow"):
            await self._error(send, request_id, 404, f"model: {model}")
            return
        message = self._answer(request, request_id)
        if not request.get("stream"):
            await self._json(send, request_id, 200, message)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"request-id", request_id.encode()),
                ],
            }
        )
        if model == "slow":
            await self._stream_until_gone(message, receive, send)
            return
        for event in stream_events(message, model):
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _stream_until_gone(self, message: dict[str, Any], receive: Any, send: Any) -> None:
        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            self.disconnected.set()
            nursery.cancel_scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            events = stream_events(message, "slow")
            for event in events[:3]:
                await send({"type": "http.response.body", "body": event, "more_body": True})
            delta = {"type": "text_delta", "text": " more"}
            while True:
                await trio.sleep(0.02)
                event = sse({"type": "content_block_delta", "index": 0, "delta": delta})
                await send({"type": "http.response.body", "body": event, "more_body": True})

    def _answer(self, request: dict[str, Any], request_id: str) -> dict[str, Any]:
        """The message the fake answers with (see the module docstring)."""
        last = request["messages"][-1]["content"]
        last = [{"type": "text", "text": last}] if isinstance(last, str) else last
        results = [b for b in last if b["type"] == "tool_result"]
        images = [
            b["source"]["type"]
            for turn in request["messages"]
            if isinstance(turn["content"], list)
            for b in turn["content"]
            if b["type"] == "image"
        ]
        content: list[dict[str, Any]]
        stop = "end_turn"
        if results:
            said = "".join(_text_of(r.get("content", "")) for r in results)
            content = [{"type": "text", "text": f"The tool said: {said}"}]
        elif request.get("tools") and request.get("tool_choice", {}).get("type") != "none":
            tool = request["tools"][0]["name"]
            content = [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": f"toolu_{request_id}", "name": tool,
                 "input": {"city": "Paris"}},
            ]  # fmt: skip
            stop = "tool_use"
        elif images:
            content = [{"type": "text", "text": f"I see {len(images)} images: {','.join(images)}"}]
        else:
            content = [{"type": "text", "text": "Hello from the fake Claude."}]
        return {
            "id": f"msg_{request_id}",
            "type": "message",
            "role": "assistant",
            "model": request["model"],
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {
                "input_tokens": 12,
                "output_tokens": 7,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 3,
            },
        }

    def _model_list(self) -> dict[str, Any]:
        data = [
            {"type": "model", "id": m, "display_name": m, "created_at": "2025-05-14T00:00:00Z"}
            for m in self.models
        ]
        return {
            "data": data,
            "has_more": False,
            "first_id": self.models[0],
            "last_id": self.models[-1],
        }

    async def _json(
        self,
        send: Any,
        request_id: str,
        status: int,
        body: Any,
        extra: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        data = json.dumps(body).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"request-id", request_id.encode()),
            *extra,
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data, "more_body": False})

    async def _error(self, send: Any, request_id: str, status: int, message: str) -> None:
        body = {
            "type": "error",
            "error": {"type": ERROR_TYPES[status], "message": message},
            "request_id": request_id,
        }
        extra = ((b"retry-after", b"7"),) if status == 429 else ()
        await self._json(send, request_id, status, body, extra)


def stream_events(message: dict[str, Any], model: str) -> list[bytes]:
    """The documented event sequence for ``message`` (cut short for ``truncate``,
    ``stream-error``)."""
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "usage": {**message["usage"], "output_tokens": 1},
    }
    events = [sse({"type": "message_start", "message": start}), sse({"type": "ping"})]
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            events.append(
                sse(
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "text", "text": ""},
                    }
                )
            )
            text = block["text"]
            for piece in (text[: len(text) // 2], text[len(text) // 2 :]):
                delta = {"type": "text_delta", "text": piece}
                events.append(sse({"type": "content_block_delta", "index": index, "delta": delta}))
        else:
            opened = {**block, "input": {}}
            events.append(
                sse({"type": "content_block_start", "index": index, "content_block": opened})
            )
            arguments = json.dumps(block["input"])
            for piece in (arguments[:9], arguments[9:]):
                delta = {"type": "input_json_delta", "partial_json": piece}
                events.append(sse({"type": "content_block_delta", "index": index, "delta": delta}))
        events.append(sse({"type": "content_block_stop", "index": index}))
        if model == "truncate":
            return events
        if model == "stream-error":
            error = {"type": "overloaded_error", "message": "Overloaded"}
            return [*events, sse({"type": "error", "error": error})]
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    events.append(
        sse(
            {
                "type": "message_delta",
                "delta": delta,
                "usage": {"output_tokens": message["usage"]["output_tokens"]},
            }
        )
    )
    events.append(sse({"type": "message_stop"}))
    return events
