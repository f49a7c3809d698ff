"""``merge_system_messages``: a backend whose chat template takes one system message, first, gets
Claude Code's translated request with its later system message merged
(docs/proxying.md#request-body)."""

from __future__ import annotations

import httpx
import msgspec
import pytest

from tests.component.fake_upstream import raw_response
from tests.component.in_process import MakeGateway

CONFIG = """
[health_check]
enabled = false
[[backends]]
name = "local"
url = "http://local.test"
type = "llamacpp"
models = ["small"]
"""
CHAT = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}]}
#: What Claude Code sends: system blocks, then a system message inside ``messages``.
CLAUDE_CODE = {
    "model": "small",
    "max_tokens": 64,
    "system": [{"type": "text", "text": "You are Claude Code."}],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "say hi"}]},
        {"role": "system", "content": "Reminder: be brief."},
    ],
}


@pytest.mark.parametrize("merge", [True, False])
async def test_the_later_system_message_is_merged_where_the_backend_asks(
    make_gateway: MakeGateway, merge: bool
) -> None:
    config = CONFIG + f"merge_system_messages = {str(merge).lower()}\n"
    gateway = make_gateway(config)

    async def handler(request: httpx.Request, body: bytes) -> httpx.Response:
        return raw_response(200, msgspec.json.encode(CHAT))

    gateway.upstream.handlers["local.test"] = handler
    assert (await gateway.post("/v1/messages", CLAUDE_CODE)).status_code == 200
    [(_, body)] = gateway.upstream.requests
    roles = [(m["role"], m["content"]) for m in msgspec.json.decode(body)["messages"]]
    if merge:
        system = "You are Claude Code.\n\nReminder: be brief."
        assert roles == [("system", system), ("user", "say hi")]
    else:
        assert [role for role, _ in roles] == ["system", "user", "system"]
