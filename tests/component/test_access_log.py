"""One access-log line per finished proxy request, no contents or keys
(docs/operations.md#logging)."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable

import httpx
import msgspec
import pytest
import trio
import trio.testing

from nexus_trio.runtime.logs import JSONFormatter, TextFormatter
from tests.component.client import CHAT
from tests.component.configs import KEYED_OPENAI
from tests.component.fake_upstream import ChunkStream, chunk, completion, sse, stream_response
from tests.component.in_process import Gateway

SECRET_CONTENT = "my secret prompt text"


@pytest.fixture
async def logged(make_gateway: Callable[..., Gateway]) -> Gateway:
    return make_gateway(KEYED_OPENAI, env={"A_KEY": "sk-backend-secret"})


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "nexus_trio.access"]


async def test_one_line_per_request_with_the_fields(
    logged: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        return completion()

    logged.upstream.handlers["a.test"] = handler
    caplog.set_level(logging.INFO, logger="nexus_trio.access")
    body = {"model": "m", "messages": [{"role": "user", "content": SECRET_CONTENT}]}
    await logged.post("/v1/chat/completions", body, **{"x-request-id": "log-1"})
    await logged.post("/v1/chat/completions", b"{bad", **{"x-request-id": "log-2"})
    records = access_records(caplog)
    assert len(records) == 2
    ok = records[0].access  # type: ignore[attr-defined]
    assert (ok.request_id, ok.method, ok.path, ok.status, ok.stream) == (
        "log-1",
        "POST",
        "/v1/chat/completions",
        200,
        False,
    )
    assert (ok.requested_model, ok.served_model, ok.backend, ok.attempts) == ("m", "m", "a", 1)
    assert (ok.prompt_tokens, ok.completion_tokens, ok.route_reason) == (3, 2, "only_candidate")
    assert ok.latency_ms >= 0
    bad = records[1].access  # type: ignore[attr-defined]
    assert (bad.status, bad.error_code, bad.backend) == (400, "invalid_json", None)
    for record in records:
        for formatter in (TextFormatter(), JSONFormatter()):
            line = formatter.format(record)
            assert SECRET_CONTENT not in line
            assert "sk-backend-secret" not in line


async def test_stream_logged_when_it_ends_with_ttft(
    logged: Gateway, caplog: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    events = [*sse(chunk(""), chunk("hello")), 0.25, *sse(chunk(None, "stop")), b"data: [DONE]\n\n"]

    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        return stream_response(ChunkStream(events))

    logged.upstream.handlers["a.test"] = handler
    caplog.set_level(logging.INFO, logger="nexus_trio.access")
    response = await logged.post("/v1/chat/completions", {**CHAT, "stream": True})
    await response.get_data()
    (record,) = access_records(caplog)
    access = record.access  # type: ignore[attr-defined]
    assert access.stream is True
    assert access.status == 200
    assert access.ttft_ms == 0.0  # the first content arrived with the first chunk
    assert access.latency_ms == 250.0  # written when the stream ended, not when it began


def test_json_format_is_one_object_per_line(caplog: pytest.LogCaptureFixture) -> None:
    from nexus_trio.api.request_sinks import AccessRecord

    record = logging.LogRecord("nexus_trio.access", logging.INFO, __file__, 1, "request", (), None)
    record.access = AccessRecord(  # type: ignore[attr-defined]
        request_id="r",
        method="POST",
        path="/v1/completions",
        client="127.0.0.1",
        requested_model="m",
        served_model="m",
        backend="a",
        attempts=1,
        status=200,
        stream=False,
        ttft_ms=None,
        latency_ms=1.5,
        prompt_tokens=1,
        cost_usd=0.0,
        cost_estimated=False,
        completion_tokens=2,
        route_reason="best_score",
        error_code=None,
    )
    line = JSONFormatter().format(record)
    assert "\n" not in line
    payload = msgspec.json.decode(line)
    assert payload["level"] == "info"
    assert payload["request_id"] == "r"
    assert payload["latency_ms"] == 1.5
    assert "request_id=r" in TextFormatter().format(record)


FORGED = (
    "m\n2099-01-01 00:00:00,000 INFO nexus_trio.access: request status=200\r\x1b[2J\x7f\x85\u2028"
)


async def test_a_value_cannot_forge_fields_in_the_text_log(
    logged: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    """Spaces and ``=`` in a model name stay inside its quoted value (logfmt)."""
    caplog.set_level(logging.INFO, logger="nexus_trio.access")
    forged = 'nope served_model=m-expensive backend=sim status=200 x="y'
    await logged.post("/v1/chat/completions", {**CHAT, "model": forged})
    (record,) = access_records(caplog)
    text = TextFormatter().format(record)
    assert 'requested_model="nope served_model=m-expensive backend=sim status=200 x=\\"y" ' in text
    unquoted = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)  # what a logfmt reader takes as fields
    assert "status=404" in unquoted
    assert "status=200" not in unquoted
    assert "backend=sim" not in unquoted


async def test_control_characters_cannot_forge_a_log_line(
    logged: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    """A newline (or any control) in a model name stays inside its record, in both formats."""
    caplog.set_level(logging.INFO, logger="nexus_trio.access")
    await logged.post("/v1/chat/completions", {**CHAT, "model": FORGED})
    (record,) = access_records(caplog)
    assert record.access.requested_model == FORGED  # type: ignore[attr-defined]
    text = TextFormatter().format(record)
    assert text.splitlines() == [text]
    assert (
        'requested_model="m\\\\n2099-01-01 00:00:00,000 INFO nexus_trio.access: request '
        'status=200\\\\r\\\\x1b[2J\\\\x7f\\\\x85\\\\u2028" '
    ) in text
    line = JSONFormatter().format(record)
    assert line.splitlines() == [line]
    assert line.isprintable()
    assert msgspec.json.decode(line)["requested_model"] == FORGED


def test_a_traceback_in_text_is_indented_and_escaped() -> None:
    """A traceback's lines follow the record indented: an exception message cannot start one."""
    try:
        raise ValueError("bad\n2099-01-01 00:00:00,000 ERROR nexus_trio: forged\x85tail")
    except ValueError:
        record = logging.LogRecord(
            "nexus_trio.api", logging.ERROR, __file__, 1, "failed: %s", ("x\ny",), sys.exc_info()
        )
    first, *rest = TextFormatter().format(record).split("\n")
    assert first.endswith("nexus_trio.api: failed: x\\ny")
    assert rest
    assert all(line.startswith("    ") for line in rest)
    assert "    ValueError: bad" in rest
    assert "    2099-01-01 00:00:00,000 ERROR nexus_trio: forged\\x85tail" in rest


def test_json_escapes_del_in_an_ascii_line() -> None:
    record = logging.LogRecord("nexus_trio", logging.INFO, __file__, 1, "a\x7fb", (), None)
    line = JSONFormatter().format(record)
    assert '"msg":"a\\u007fb"' in line
    assert line.isprintable()
