"""The open-files budget: raised to the hard limit, and a warning when it is too small."""

from __future__ import annotations

import logging
import resource

import pytest

from nexus_trio.runtime import open_files as descriptors


def test_requests_need_two_descriptors_each_plus_a_baseline() -> None:
    assert descriptors.needed(8192) == descriptors.BASELINE + 2 * 8192
    assert descriptors.needed(0) is None


@pytest.mark.parametrize(
    ("max_in_flight", "limit", "warned"),
    [(8192, 65536, False), (8192, 1024, True), (100, 1024, False), (0, 1024, True)],
)
def test_a_limit_that_cannot_hold_the_requests_is_warned_about(
    caplog: pytest.LogCaptureFixture, max_in_flight: int, limit: int, warned: bool
) -> None:
    with caplog.at_level(logging.WARNING, logger="nexus_trio.descriptors"):
        assert descriptors.warn_if_short(max_in_flight, limit) is warned
    assert bool(caplog.records) is warned
    if warned:
        assert str(limit) in caplog.records[0].getMessage()


def test_the_soft_limit_is_raised_to_the_hard_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(soft, 256)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    try:
        assert descriptors.raise_soft_limit() == hard
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
