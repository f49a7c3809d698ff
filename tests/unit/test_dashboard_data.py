"""The dashboard's data: the request ring buffer (fed settled records), rates, quality history."""

from __future__ import annotations

import msgspec
import pytest

from nexus_trio.api.accounting import request_record
from nexus_trio.asgi.context import RequestContext
from nexus_trio.config import QualityConfig
from nexus_trio.dashboard.request_log import RequestLog, entry_object
from nexus_trio.dashboard.snapshot import RateWindow
from nexus_trio.gateway.record import RequestRecord
from nexus_trio.keys import ClientKey
from nexus_trio.quality import Outcome, QualityStore

S, F, CE = Outcome.SUCCESS, Outcome.FAILURE, Outcome.CLIENT_ERROR
KEY = ("gpu-a", "m")
OTHER_MODEL = ("gpu-a", "n")


def context(request_id: str, **fields: object) -> RequestContext:
    ctx = RequestContext(
        request_id=request_id, method="POST", path="/v1/chat/completions", started=0.0
    )
    for name, value in {"completed": True, "status": 200, **fields}.items():
        setattr(ctx, name, value)
    return ctx


def record(request_id: str, elapsed: float, **fields: object) -> RequestRecord:
    """The settled record of a request built like :func:`context`, ``elapsed`` seconds long."""
    settled = request_record(context(request_id, **fields), unauthenticated=False)
    return msgspec.structs.replace(settled, elapsed_seconds=elapsed)


async def test_ring_keeps_the_newest_entries_with_increasing_sequence_numbers() -> None:
    log = RequestLog(3)
    for index in range(5):
        log.append(record(f"r{index}", 0.25))
    assert len(log) == 3
    assert log.last_seq == 5
    assert [(e.seq, e.request_id) for e in log.entries_after(0)] == [
        (3, "r2"),
        (4, "r3"),
        (5, "r4"),
    ]
    assert [e.request_id for e in log.entries_after(3)] == ["r3", "r4"]
    assert log.entries_after(5) == []


async def test_entry_holds_metadata_only_and_marks_cancelled_requests() -> None:
    log = RequestLog(10)
    log.append(
        record("ok", 0.5, backend="a", served_model="m", requested_model="alias", ttft_ms=12.34)
    )
    log.append(record("gone", 1.0, completed=False, status=200, backend="a", served_model="m"))
    log.append(record("refused", 0.001, status=404, error_code="model_not_found"))
    log.append(record("keyed", 0.1, key=ClientKey("team-a")))
    anonymous = record("anonymous", 0.1, status=401, error_code="authentication_failed")
    log.append(msgspec.structs.replace(anonymous, unauthenticated=True))
    ok, gone, refused, keyed = log.entries_after(0)
    fields = {
        "seq", "time", "request_id", "route", "requested_model", "served_model", "backend",
        "status", "truncated", "error_code", "duration_ms", "ttft_ms", "attempts",
        "route_reason", "stream",
    }  # fmt: skip
    # The key's name is shown to admins only (docs/keys.md#roles).
    assert set(entry_object(ok, with_key=False)) == fields
    assert entry_object(keyed, with_key=True)["key"] == "team-a"
    assert entry_object(ok, with_key=True)["key"] is None
    ok, gone, refused = (entry_object(e, with_key=False) for e in (ok, gone, refused))
    assert (ok["status"], ok["duration_ms"], ok["ttft_ms"]) == (200, 500.0, 12.3)
    assert (ok["requested_model"], ok["served_model"]) == ("alias", "m")
    assert (gone["status"], gone["error_code"]) == (None, "cancelled")
    assert (refused["status"], refused["served_model"], refused["backend"]) == (404, None, None)


def test_rates_over_the_window() -> None:
    window = RateWindow()
    assert window.rates(100.0, 10, 0)["requests_per_second"] is None
    rates = window.rates(102.0, 30, 5)
    assert rates == {"window_seconds": 2.0, "requests_per_second": 10.0, "error_rate": 0.25}
    for second in range(3, 15):
        rates = window.rates(100.0 + second, 30, 5)
    assert rates["requests_per_second"] == 0.0
    assert rates["error_rate"] is None
    assert rates["window_seconds"] == pytest.approx(10.0)


def test_minute_history_sums_a_backends_agents_per_minute() -> None:
    quality = QualityStore(QualityConfig(consecutive_failures=100))
    quality.record_outcome(KEY, S, now=30.0, wall=0.0, ttft_ms=100.0, streaming=True)
    quality.record_outcome(OTHER_MODEL, F, now=40.0, wall=0.0)
    quality.record_outcome(KEY, CE, now=90.0, wall=0.0)
    quality.record_outcome(KEY, S, now=95.0, wall=0.0, ttft_ms=300.0, streaming=True)
    quality.record_outcome(KEY, S, now=96.0, wall=0.0, ttft_ms=500.0, streaming=True)
    history = quality.minute_history([KEY, OTHER_MODEL], now=100.0)
    assert len(history) == 60
    assert history[-2] == (2, 1, 100.0)
    assert history[-1] == (3, 0, 400.0)
    assert all(minute == (0, 0, None) for minute in history[:-2])
    # An hour later the minutes have left the window.
    assert all(m.requests == 0 for m in quality.minute_history([KEY], now=100.0 + 3600))


def test_exclusion_reason_follows_the_state_machine() -> None:
    quality = QualityStore(QualityConfig(consecutive_failures=2, probe_interval_seconds=10))
    assert quality.exclusion_reason(KEY) is None
    for _ in range(2):
        quality.record_outcome(KEY, F, now=1.0, wall=0.0)
    assert quality.exclusion_reason(KEY) == "consecutive_failures"
    quality.record_outcome(KEY, F, now=12.0, wall=0.0)
    assert quality.exclusion_reason(KEY) == "probe_failed"
    quality.record_outcome(KEY, S, now=40.0, wall=0.0)
    assert quality.exclusion_reason(KEY) is None


def test_error_rate_exclusion_is_named() -> None:
    quality = QualityStore(QualityConfig(min_requests=4, consecutive_failures=100))
    for outcome in (S, F, F, F):
        quality.record_outcome(KEY, outcome, now=1.0, wall=0.0)
    quality.recompute(2.0, [KEY])
    assert quality.exclusion_reason(KEY) == "high_error_rate"
