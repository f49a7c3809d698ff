"""``[[pricing]]``, ``[budget]``, ``[[keys]]`` and ``[state]``: what requests cost, who may
spend and where spend is kept (docs/spend.md, docs/keys.md). Part of the configuration schema;
import it from ``nexus_trio.config``.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
import msgspec.structs

from nexus_trio.config.decoding import InvalidKey
from nexus_trio.config.urls import check_store_url
from nexus_trio.config.values import AtLeastOne, NonEmptyStr, NonNegativeFloat, NonNegativeInt


class PriceConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One ``[[pricing]]`` entry (docs/spend.md#pricing): USD per million tokens.

    Without ``model`` it is the backend-wide default; an entry naming the served model wins.
    ``cached_input_usd_per_million`` defaults to the input price.
    """

    backend: NonEmptyStr
    model: NonEmptyStr | None = None
    input_usd_per_million: NonNegativeFloat
    output_usd_per_million: NonNegativeFloat
    cached_input_usd_per_million: NonNegativeFloat | None = None
    #: USD per use of a server-side tool, by the kind the backend reports
    #: (docs/spend.md#server-tool-fees): ``web_search_requests``, ``web_search_call``…
    server_tool_usd: dict[NonEmptyStr, NonNegativeFloat] = msgspec.field(default_factory=dict)


class BudgetConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[budget]``: the global monthly budget (docs/spend.md#budgets); 0 USD = no budget."""

    monthly_limit_usd: NonNegativeFloat = 0.0
    soft_limit_percent: Annotated[float, msgspec.Meta(gt=0, le=100)] = 80.0
    hard_limit_action: Literal["local_only", "reject"] = "local_only"
    #: The output a request without ``max_tokens`` reserves (docs/spend.md#reservations).
    default_reserved_output_tokens: AtLeastOne = 4096
    #: The most output one request reserves, whatever it asks (docs/spend.md#reservations).
    max_reserved_output_tokens: AtLeastOne = 131072

    def __post_init__(self) -> None:
        if self.default_reserved_output_tokens > self.max_reserved_output_tokens:
            raise InvalidKey(
                "default_reserved_output_tokens",
                f"default_reserved_output_tokens ({self.default_reserved_output_tokens}) must "
                f"not exceed max_reserved_output_tokens ({self.max_reserved_output_tokens})",
            )


class KeyConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One ``[[keys]]`` entry: a named inbound key with its limits (docs/keys.md#keys).

    The key itself is never in the file: ``key_env`` names the variable holding it, or
    ``key_sha256`` is its SHA-256 in hex. Exactly one of the two.
    """

    name: NonEmptyStr
    key_env: NonEmptyStr | None = None
    key_sha256: Annotated[str, msgspec.Meta(pattern="^[0-9a-fA-F]{64}$")] | None = None
    #: Model names or shell globs this key may request; empty = every model.
    models: list[NonEmptyStr] = msgspec.field(default_factory=list)
    #: ``restricted``: only backends in the restricted zone; ``open``: any backend.
    privacy: Literal["restricted", "open"] = "open"
    #: 0 = unlimited.
    requests_per_minute: NonNegativeInt = 0
    tokens_per_minute: NonNegativeInt = 0
    #: 0 = no budget of its own (the global budget still applies).
    monthly_budget_usd: NonNegativeFloat = 0.0
    #: Requests of this key in flight at once; 0 = unlimited (docs/keys.md#keys).
    max_concurrent_requests: NonNegativeInt = 0
    #: An admin key sees every tenant's requests and spend (docs/keys.md#roles).
    admin: bool = False

    def __post_init__(self) -> None:
        if (self.key_env is None) == (self.key_sha256 is None):
            raise InvalidKey("key_env", "set exactly one of key_env and key_sha256")
        if self.name == "default":
            raise InvalidKey("name", "'default' is reserved for keys from server.api_keys_env")
        if self.key_sha256 is not None:
            msgspec.structs.force_setattr(self, "key_sha256", self.key_sha256.lower())


class StateConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[state]``: where the spend ledger lives (docs/spend.md#ledger), and the store a fleet of
    gateways shares its spend and rate-limit windows through (docs/spend.md#a-fleet).

    ``store`` may hold a password: render it with ``redacted_url``, never as it is.
    """

    dir: NonEmptyStr = "/var/lib/nexus-trio"
    #: ``redis://[user:password@]host[:port][/db]`` (or ``rediss://``); None = this gateway alone.
    store: NonEmptyStr | None = None
    #: With ``store``: how often the ledger is written and the store synced.
    sync_interval_seconds: Annotated[float, msgspec.Meta(ge=0.05, le=60)] = 0.25

    def __post_init__(self) -> None:
        if self.store is not None:
            try:
                check_store_url(self.store)
            except ValueError as exc:
                raise InvalidKey("store", f"store {exc}") from exc
