"""Spend: what requests cost (docs/spend.md#spend-and-budgets).

This package owns the prices (:mod:`~nexus_trio.spend.pricing`). It never decides where a
request goes; the request path asks it what an answer cost.
"""

from nexus_trio.spend.pricing import Price, PriceList, estimated_tokens

__all__ = ["Price", "PriceList", "estimated_tokens"]
