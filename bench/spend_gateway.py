"""The second gateway of ``bench/run.py --spend``: keys, limits, prices, budgets, ledger.

The same two backends as the plain gateway, with, on top:

- two named keys (``[[keys]]``, given as ``key_sha256``), each with request and token limits
  far above what the load can reach (``requests_per_minute`` 100 million, ``tokens_per_minute``
  10 billion), so every request goes through the buckets and none is refused, and a monthly
  budget of its own;
- ``[[pricing]]`` on both backends, so every answer is priced: the non-streaming one from its
  ``usage``; for streams the gateway adds ``stream_options.include_usage`` to the forwarded
  body, and the stream backend answers from ``/stream-usage`` (the same 20 events plus the
  usage chunk a real server sends when asked, which the gateway prices and does not relay);
- a global ``[budget]`` far above what the run spends (state ``ok`` throughout);
- the SQLite ledger (``[state] dir`` in the benchmark's temporary directory), written once a
  second in a worker thread.

The load sends the two keys alternately, request by request (``bench/wrk.lua`` ``BENCH_KEYS``),
to both gateways: the plain one has no inbound authentication and ignores them, so both get the
same bytes. :func:`check_answers` refuses to measure a spend gateway that does not price,
authenticate or stream as expected; :func:`summary` says, after the loads, what it charged and
kept, so the report shows the features were really on.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import sqlite3
import sys
from pathlib import Path

import payloads

#: The two bearer keys the load alternates between.
KEYS = ("bench-key-a-0123456789", "bench-key-b-0123456789")
KEY_NAMES = ("bench-a", "bench-b")
#: Limits far above any rate the load reaches: checked on every request, never hit.
REQUESTS_PER_MINUTE = 100_000_000
TOKENS_PER_MINUTE = 10_000_000_000
LEDGER = "spend.sqlite3"

#: What the spend gateway adds to the plain gateway's configuration (``{state}``: the ledger's
#: directory); ``bench/hot_path.py --spend-ab`` adds the same to its own.
ADDITIONS = """
[state]
dir = "{state}"

[budget]
monthly_limit_usd = 1000000000
hard_limit_action = "reject"

[[pricing]]
backend = "bench-plain"
input_usd_per_million = 2.5
output_usd_per_million = 10.0

[[pricing]]
backend = "bench-stream"
input_usd_per_million = 2.5
output_usd_per_million = 10.0
"""

KEY_ENTRY = """
[[keys]]
name = "{name}"
key_sha256 = "{digest}"
requests_per_minute = {rpm}
tokens_per_minute = {tpm}
monthly_budget_usd = 1000000000
"""


def additions(state: Path | str, store: str | None = None, *, created: bool = False) -> str:
    """The ``[state]``, ``[budget]``, ``[[pricing]]`` and ``[[keys]]`` of the spend gateway;
    with ``store`` (a ``redis://`` URL) its spend and rate windows are shared through it; with
    ``created`` no ``[[keys]]``: the keys are created ones in ``state`` (``bench/created_keys.py``).
    """
    keys = (
        ""
        if created
        else "".join(
            KEY_ENTRY.format(
                name=name,
                digest=hashlib.sha256(key.encode()).hexdigest(),
                rpm=REQUESTS_PER_MINUTE,
                tpm=TOKENS_PER_MINUTE,
            )
            for name, key in zip(KEY_NAMES, KEYS, strict=True)
        )
    )
    text = ADDITIONS.format(state=state) + keys
    if store is not None:
        text = text.replace(f'dir = "{state}"\n', f'dir = "{state}"\nstore = "{store}"\n', 1)
    return text


def config(
    plain_config: str, state: Path, store: str | None = None, *, created: bool = False
) -> str:
    """The spend gateway's configuration: the plain gateway's ``plain_config``, its stream
    backend moved to ``/stream-usage``, and :func:`additions`."""
    stream_url = '/stream"\n'
    if plain_config.count(stream_url) != 1:
        raise ValueError("the plain gateway's stream backend URL was not found")
    return plain_config.replace(stream_url, '/stream-usage"\n') + additions(
        state, store, created=created
    )


def _request(
    port: int, method: str, path: str, body: bytes | None = None, key: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def check_answers(port: int, chat_path: str) -> None:
    """Exit unless the spend gateway authenticates, prices and streams as it should."""
    plain = payloads.chat_request(payloads.PLAIN_MODEL, streaming=False)
    streaming = payloads.chat_request(payloads.STREAM_MODEL, streaming=True)
    status, _, body = _request(port, "POST", chat_path, plain)
    if status != 401:
        sys.exit(f"spend gateway answered {status} without a key, not 401: {body[:200]!r}")
    expected = json.loads(payloads.chat_completion())
    for key in KEYS:
        status, headers, body = _request(port, "POST", chat_path, plain, key)
        if status != 200 or json.loads(body) != expected:
            sys.exit(f"spend gateway answered {status} {body[:300]!r}, not the chat completion")
        if float(headers.get("x-nexus-cost-usd", "0")) <= 0:
            sys.exit(f"spend gateway did not price the completion: {headers}")
        if "x-ratelimit-remaining-requests" not in headers:
            sys.exit(f"spend gateway sent no x-ratelimit-* headers: {headers}")
        status, _, body = _request(port, "POST", chat_path, streaming, key)
        if (
            status != 200
            or body.count(b'"content":"token') != payloads.STREAM_EVENTS
            or b'"usage"' in body  # asked by the gateway, not by the client: not relayed
            or not body.endswith(b"data: [DONE]\n\n")
        ):
            sys.exit(f"spend gateway answered {status} {body[:300]!r}..., not the stream")


def summary(port: int, state: Path) -> str:
    """What the spend gateway charged and kept over the whole invocation, for the report."""
    _, _, body = _request(port, "GET", "/v1/stats", key=KEYS[0])
    spend = json.loads(body)["spend"]
    _, _, metrics = _request(port, "GET", "/metrics")
    limited = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.decode().splitlines()
        if line.startswith("nexus_rate_limited_total{")
    )
    ledger = sqlite3.connect(f"file:{state / LEDGER}?mode=ro", uri=True)
    try:
        rows = ledger.execute("SELECT key, sum(requests) FROM spend GROUP BY key").fetchall()
    finally:
        ledger.close()
    kept = ", ".join(f"{key} {requests:,} requests" for key, requests in sorted(rows))
    by_key = ", ".join(f"{name} {usd:.4f} USD" for name, usd in sorted(spend["by_key"].items()))
    return (
        f"The spend gateway charged {spend['requests']:,} requests, {spend['total_usd']:.4f} USD "
        f"({spend['estimated_usd']:.4f} estimated) by key: {by_key}; budget state "
        f"{spend['budget']['state']}; the ledger ({LEDGER}, store up: {spend['store_up']}) "
        f"holds {kept or 'nothing'}; requests refused by the rate limits: {limited:.0f}."
    )
