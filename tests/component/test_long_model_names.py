"""A requested model name is echoed and logged cut to 256 characters
(docs/proxying.md#request-body): a 500 KB one is not sent back whole, nor written to the logs
or the dashboard."""

from __future__ import annotations

import logging
from collections.abc import Callable

import msgspec
import pytest
import trio

from nexus_trio.api.refusals import queue_timeout
from nexus_trio.runtime.logs import TextFormatter
from tests.component.client import CHAT
from tests.component.in_process import Gateway

LONG = "x" * 500_000
SHOWN = "x" * 256
BACKEND = """
[health_check]
enabled = false
[[backends]]
name = "a"
url = "http://a.test"
type = "generic"
models = ["m"]
"""
KEYED = (
    BACKEND
    + """
[[keys]]
name = "team"
key_env = "TEAM_KEY"
models = ["m"]
"""
)


async def short_error(response: object) -> dict[str, str]:
    """The ``error`` object of a response whose body stays under 2 KiB."""
    data = await response.get_data()  # type: ignore[attr-defined]
    assert len(data) < 2048
    error: dict[str, str] = msgspec.json.decode(data)["error"]
    return error


async def test_an_unknown_long_model_is_echoed_logged_and_listed_cut(
    make_gateway: Callable[..., Gateway], caplog: pytest.LogCaptureFixture
) -> None:
    gateway = make_gateway("[dashboard]\nenabled = true\n" + BACKEND)
    caplog.set_level(logging.INFO, logger="nexus_trio.access")
    response = await gateway.post("/v1/chat/completions", {**CHAT, "model": LONG})
    assert response.status_code == 404
    error = await short_error(response)
    assert error["code"] == "model_not_found"
    assert f"'{SHOWN}'" in error["message"]
    (record,) = [r for r in caplog.records if r.name == "nexus_trio.access"]
    assert record.access.requested_model == SHOWN  # type: ignore[attr-defined]
    assert len(TextFormatter().format(record)) < 2048
    request_log = gateway.wiring.request_log
    assert request_log is not None
    (entry,) = request_log.entries_after(0)
    assert entry.requested_model == SHOWN


async def test_a_long_model_outside_a_keys_allow_list_is_echoed_cut(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(KEYED, env={"TEAM_KEY": "team"})
    response = await gateway.post(
        "/v1/chat/completions", {**CHAT, "model": LONG}, authorization="Bearer team"
    )
    assert response.status_code == 403
    error = await short_error(response)
    assert error["code"] == "model_not_allowed"
    assert f"'{SHOWN}'" in error["message"]


async def test_queue_timeout_names_the_model_cut() -> None:
    error = queue_timeout(LONG, trio.current_time())
    assert f"'{SHOWN}'" in error.message
    assert len(error.message) < 512
