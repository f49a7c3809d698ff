"""A one-minute soak: mixed traffic, a flapping backend, no leaked fds or in-flight requests."""

from __future__ import annotations

import pytest

from bench.soak import run_soak

pytestmark = pytest.mark.system


async def test_one_minute_soak_leaks_nothing() -> None:
    report = await run_soak(seconds=60, report_every=10, flap_period=20, concurrency=6)
    assert len(report.rows) == 6
    warm = report.rows[0]
    # pooled upstream connections come and go with the flapping backend: a leak is growth
    # from one flap cycle (the first 20 s) to the next ones, not the count moving within one
    first_cycle = max(row.open_fds for row in report.rows[:2])
    assert all(row.open_fds <= first_cycle + 4 for row in report.rows[2:]), report.rows
    assert report.fds_after <= first_cycle + 4, (report.fds_after, report.rows)
    assert report.in_flight_after == 0
    # the stopped backend is retried around; only streams it had already begun are cut
    assert set(report.statuses) <= {"2xx", "truncated"}, report.statuses
    assert report.statuses["2xx"] > 1000
    assert report.rows[-1].rss_mb - warm.rss_mb < 10, report.rows
