"""The simulated backend's answer to a chat request offering tools: a call to the first tool
until the conversation holds a tool result, then text, so an agent that runs the call (Claude
Code, Codex CLI through the gateway) gets its answer on the next turn and ends."""

from __future__ import annotations

import json
from typing import Any

from nexus_trio.simulator.completion import Completion, token
from nexus_trio.simulator.payloads import InferenceRequest, parse_inference

TOOLS = [
    {"type": "function", "function": {"name": "Agent", "parameters": {}}},
    {"type": "function", "function": {"name": "Bash", "parameters": {}}},
]
ASK = {"role": "user", "content": "say hi"}
CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "Agent", "arguments": "{}"}}
    ],
}
RESULT = {"role": "tool", "tool_call_id": "call_1", "content": "error: description is missing"}
# what a translated Claude Code turn looks like: the tool result, then the user's reminder text
REMINDER = {"role": "user", "content": "<system-reminder>...</system-reminder>"}


def request(*messages: dict[str, Any], **extra: Any) -> InferenceRequest:
    body = {"model": "demo", "messages": list(messages), "tools": TOOLS, **extra}
    parsed = parse_inference(
        json.dumps(body).encode(), embedding=False, models=("demo",), embedding_models=()
    )
    assert isinstance(parsed, InferenceRequest), parsed
    return parsed


def answer(parsed: InferenceRequest) -> Completion:
    return Completion(parsed, chat=True, ident="chatcmpl-1", created=1, completion_tokens=3)


def whole(parsed: InferenceRequest) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(answer(parsed).body())
    return body


def streamed(parsed: InferenceRequest) -> list[dict[str, Any]]:
    completion = answer(parsed)
    events = [completion.start_event()]
    events += [completion.content_event(i) for i in range(completion.event_count)]
    events.append(completion.end_events())
    data = b"".join(events).decode().split("\n\n")
    return [json.loads(e[len("data: ") :]) for e in data if e and e != "data: [DONE]"]


def test_a_request_offering_tools_gets_a_call_to_the_first_one() -> None:
    parsed = request(ASK)
    assert parsed.tool == "Agent"
    (choice,) = whole(parsed)["choices"]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["function"] == {"name": "Agent", "arguments": "{}"}
    # an assistant turn that called a tool, with no result yet, still gets the call
    assert request(ASK, CALL).tool == "Agent"


def test_after_a_tool_result_the_answer_is_text() -> None:
    expected = "".join(token(i) for i in range(3))
    for messages in ((ASK, CALL, RESULT), (ASK, CALL, RESULT, REMINDER)):
        parsed = request(*messages)
        assert parsed.tool is None
        (choice,) = whole(parsed)["choices"]
        assert choice["finish_reason"] == "stop"
        assert choice["message"] == {"role": "assistant", "content": expected}

        chunks = streamed(parsed)
        deltas = [chunk["choices"][0]["delta"] for chunk in chunks]
        assert all("tool_calls" not in delta for delta in deltas)
        assert "".join(delta.get("content", "") for delta in deltas) == expected
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_without_tools_the_answer_is_text() -> None:
    body = json.dumps({"model": "demo", "messages": [ASK, CALL, RESULT]}).encode()
    parsed = parse_inference(body, embedding=False, models=("demo",), embedding_models=())
    assert isinstance(parsed, InferenceRequest)
    assert parsed.tool is None
    assert whole(parsed)["choices"][0]["finish_reason"] == "stop"
