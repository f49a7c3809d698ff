"""The client APIs of ``bench/run.py --client-apis``: translated streams against chat streams.

The gateway answers ``POST /v1/messages`` (Anthropic's Messages API) and ``POST /v1/responses``
(OpenAI's Responses API) by translating the request to chat completions and the answer back
(docs/api.md#client-apis). Each run loads the run's own gateway, at 16 connections, with a
streaming chat-completions body, a streaming Messages body and a streaming Responses body for
the same model (``bench-stream``: the upstream's 20-event stream), in the order chat, messages,
responses, responses, messages, chat, so a drift of the machine over the six loads weighs on
the three alike; each kind's two loads are merged, with the gateway's CPU time over them.

The figures mean something only if the answers really are translated streams: :func:`check`
refuses a gateway whose answer on a route is not 200 with the whole translated stream (its
first event, 20 text deltas, its last event, no error event), and every load's wrk checks every
body's first bytes and last event (``BENCH_EXPECT_*`` of ``bench/wrk.lua``). The upstream's
stream has no usage chunk (the static upstream does not read ``stream_options``); the
translations end the stream without usage figures.
"""

from __future__ import annotations

import http.client
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import payloads

#: Translated streams/s against chat streams/s of the same run (issue 24).
GOAL_RATIO = 0.8


@dataclass(frozen=True)
class Api:
    """One client API's streaming load: where it is sent and what every answer must be."""

    name: str
    path: str
    #: Every answer's first bytes, and text its last event has (wrk checks both on every body).
    start: str
    last: str
    #: Text each of the upstream's content events becomes (counted by :func:`check`).
    delta: bytes
    #: Text no whole answer may contain (an error event).
    error: bytes
    #: The streaming request body, for model ``bench-stream``.
    body: bytes


APIS = {
    "chat": Api(
        "chat",
        "/v1/chat/completions",
        "data: {",
        "data: [DONE]",
        b'"content":"token',
        b"error",
        payloads.chat_request(payloads.STREAM_MODEL, streaming=True),
    ),
    "messages": Api(
        "messages",
        "/v1/messages",
        "event: message_start\n",
        "event: message_stop\n",
        b'"type":"text_delta","text":"token',
        b"event: error",
        payloads.messages_request(payloads.STREAM_MODEL),
    ),
    "responses": Api(
        "responses",
        "/v1/responses",
        "event: response.created\n",
        "event: response.completed\n",
        b'"type":"response.output_text.delta"',
        b"event: response.failed",
        payloads.responses_request(payloads.STREAM_MODEL),
    ),
}
#: The order of one run's six loads: each kind twice, symmetric.
ORDER = ["chat", "messages", "responses", "responses", "messages", "chat"]


def key(name: str) -> str:
    """The run's result key of one kind's merged loads."""
    return f"gateway stream {name} api"


def check(port: int) -> None:
    """Fail unless the gateway on ``port`` answers each API's streaming body with the whole
    stream in that API: status 200, the first event, 20 content events, the last event, no
    error event."""
    for api in APIS.values():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request(
                "POST", api.path, api.body, headers={"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            status, body = response.status, response.read()
        finally:
            connection.close()
        whole = (
            status == 200
            and body.startswith(api.start.encode())
            and body.count(api.delta) == payloads.STREAM_EVENTS
            and api.last.encode() in body
            and api.error not in body
        )
        if not whole:
            sys.exit(
                f"{api.path} answered {status} {body[:300]!r}...{body[-200:]!r}, "
                f"not the whole 20-event stream in its API"
            )


class _Load(Protocol):
    """What this module reads of a load (``run.Load``)."""

    @property
    def rate(self) -> float: ...
    @property
    def p50_ms(self) -> float: ...
    @property
    def p99_ms(self) -> float: ...
    @property
    def cpu_us(self) -> float: ...
    @property
    def requests(self) -> int: ...
    @property
    def non_2xx(self) -> int: ...
    @property
    def unexpected(self) -> int: ...


def derived(run: Mapping[str, _Load]) -> dict[str, float]:
    """One run's ratios against the chat stream (empty when the run has no such loads)."""
    if key("chat") not in run:
        return {}
    chat = run[key("chat")]
    ratios = {}
    for name in ("messages", "responses"):
        load = run[key(name)]
        ratios[f"{name} / chat streams/s, c=16"] = load.rate / chat.rate
        ratios[f"{name} / chat CPU per stream, c=16"] = load.cpu_us / chat.cpu_us
        ratios[f"{name} added CPU per stream, c=16 (µs)"] = load.cpu_us - chat.cpu_us
    return ratios


def table(runs: Sequence[Mapping[str, _Load]]) -> str:
    """The medians of each kind: streams/s, p50, p99, CPU per stream; with the answers
    counted, non-2xx and unexpected bodies summed over the runs."""

    def med(name: str, attribute: str) -> float:
        return float(statistics.median(getattr(run[key(name)], attribute) for run in runs))

    lines = [
        "| 20-event stream, c=16 | route | streams/s | p50 ms | p99 ms | CPU µs per stream "
        "| streams | non-2xx | unexpected bodies |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, api in APIS.items():
        total = sum(run[key(name)].requests for run in runs)
        non_2xx = sum(run[key(name)].non_2xx for run in runs)
        unexpected = sum(run[key(name)].unexpected for run in runs)
        cells = [f"{med(name, 'rate'):,.0f}", f"{med(name, 'p50_ms'):.2f}"]
        cells += [f"{med(name, 'p99_ms'):.2f}", f"{med(name, 'cpu_us'):,.0f}"]
        cells += [f"{total:,}", str(non_2xx), str(unexpected)]
        lines.append(f"| {name} | `{api.path}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)
