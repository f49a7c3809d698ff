"""Pricing server-side tool uses (docs/spend.md#server-tool-fees): what a backend reports is
read defensively — only non-negative integer counts of priced kinds cost anything."""

from __future__ import annotations

import msgspec
import pytest

from nexus_trio.spend.pricing import Price

PRICE = Price(0.0, 0.0, 0.0, tool_usd={"web_search_requests": 0.01, "web_search_call": 0.02})


@pytest.mark.parametrize(
    ("uses", "usd"),
    [
        (b'{"web_search_requests": 3, "web_fetch_requests": 5}', 0.03),
        (b'{"web_search_call": 2}', 0.04),
        (b'{"web_search_requests": -4, "web_search_call": 1.5}', 0.0),
        (b'{"web_search_requests": true, "web_search_call": "9"}', 0.0),
        (b"null", 0.0),
        (b"[1, 2]", 0.0),
        (b"", 0.0),
    ],
)
def test_tool_fees(uses: bytes, usd: float) -> None:
    assert PRICE.tool_fees(msgspec.Raw(uses)) == pytest.approx(usd)


def test_a_price_without_fees_reads_nothing() -> None:
    assert Price(1.0, 1.0, 1.0).tool_fees(msgspec.Raw(b"not json")) == 0.0
