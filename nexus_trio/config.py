"""The configuration of nexus-trio: typed, frozen, strict (docs/configuration.md#configuration).

Layers, lowest first; each later layer wins:

1. **Defaults** — the field defaults of the Structs below; ``etc/nexus.toml`` shows every one.
2. **File** — TOML decoded by msgspec straight into :class:`Config`. Unknown keys, wrong types
   and out-of-range values fail in the decoder (constraints live in the types); rules that span
   fields run in ``__post_init__``, which msgspec also runs while decoding. Either way the
   first error is reported with its key path (``$.backends[1].url``).
3. **Environment** — ``NEXUS_HOST``, ``NEXUS_PORT``, ``NEXUS_LOG_LEVEL``, ``NEXUS_LOG_FORMAT``.
4. **Command line** — :class:`Overrides` (``--host``, ``--port``, ``--log-level``).

Overrides are applied with ``msgspec.structs.replace`` after converting the value to the
field's annotated type, so they pass the same constraints and ``__post_init__`` checks as the
file. Every failure is a :class:`~nexus_trio.errors.ConfigError` with a one-line message. The
schema-agnostic machinery (decoding, error translation, discovery) is in
``nexus_trio.config_load``; import everything from here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import msgspec
import msgspec.json
import msgspec.structs

from nexus_trio.config_load import (
    InvalidKey,
    check_alias_chains,
    check_base_url,
    decode_toml,
    read_config_file,
    replace_field,
    resolve_config_path,
)
from nexus_trio.errors import ConfigError

__all__ = [
    "BackendConfig",
    "BudgetConfig",
    "Config",
    "HealthCheckConfig",
    "KeyConfig",
    "LoggingConfig",
    "ModelCapabilities",
    "Overrides",
    "PriceConfig",
    "QualityConfig",
    "QueueConfig",
    "RoutingConfig",
    "RoutingPolicy",
    "RoutingWeights",
    "ServerConfig",
    "StateConfig",
    "load_config",
    "parse_config",
    "render_config",
    "resolve_config_path",
]

NonEmptyStr = Annotated[str, msgspec.Meta(min_length=1)]
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Seconds = Annotated[float, msgspec.Meta(gt=0)]
NonNegativeSeconds = Annotated[float, msgspec.Meta(ge=0)]
AtLeastOne = Annotated[int, msgspec.Meta(ge=1)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0)]
Tier = Annotated[int, msgspec.Meta(ge=1, le=5)]

BackendType = Literal["ollama", "vllm", "llamacpp", "lmstudio", "openai", "anthropic", "generic"]
PRIVACY_ZONES = ("restricted", "open")
LOG_LEVELS = ("debug", "info", "warning", "error")
CLOUD_TYPES = frozenset({"openai", "anthropic"})
#: Types whose API the gateway translates (everything else speaks OpenAI's, passed through).
TRANSLATED_TYPES = frozenset({"anthropic"})
#: The base URL of an ``anthropic`` backend whose ``url`` is omitted.
ANTHROPIC_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
#: ``max_tokens`` sent to Anthropic when the client sends none (Anthropic requires one).
ANTHROPIC_MAX_TOKENS = 4096
#: Keys that only mean something on an ``anthropic`` backend.
_ANTHROPIC_KEYS = ("anthropic_version", "default_max_tokens")


class ServerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[server]``: listener, timeouts, drain and limits (docs/configuration.md#sections)."""

    host: NonEmptyStr = "127.0.0.1"
    port: Port = 8000
    reuse_port: bool = False
    connect_timeout_seconds: Seconds = 5.0
    attempt_timeout_seconds: Seconds = 120.0
    request_timeout_seconds: Seconds = 300.0
    first_token_timeout_seconds: Seconds = 60.0
    stream_idle_timeout_seconds: Seconds = 60.0
    #: 0 = no limit.
    max_stream_seconds: NonNegativeSeconds = 0.0
    drain_timeout_seconds: NonNegativeSeconds = 30.0
    drain_delay_seconds: NonNegativeSeconds = 0.0
    keep_alive_timeout_seconds: Seconds = 5.0
    max_request_body_bytes: AtLeastOne = 10_485_760
    max_response_body_bytes: AtLeastOne = 67_108_864
    #: 0 = unlimited. Each request in flight holds two descriptors; see etc/nexus.toml.
    max_in_flight_requests: NonNegativeInt = 8192
    #: Name of the variable holding comma-separated inbound API keys; None = no auth.
    api_keys_env: NonEmptyStr | None = None


class HealthCheckConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[health_check]`` (docs/routing.md#health-checks)."""

    enabled: bool = True
    interval_seconds: Seconds = 30.0
    timeout_seconds: Seconds = 5.0
    failure_threshold: AtLeastOne = 3
    recovery_threshold: AtLeastOne = 2


class RoutingWeights(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[routing.weights]`` (docs/routing.md#scheduler): each >= 0, finite sum > 0."""

    priority: NonNegativeFloat = 50.0
    load: NonNegativeFloat = 30.0
    latency: NonNegativeFloat = 20.0

    def __post_init__(self) -> None:
        total = self.priority + self.load + self.latency
        if not (total > 0 and math.isfinite(total)):
            raise ValueError(f"the weights must have a finite sum > 0, got {total}")


class RoutingPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One ``[[routing.policies]]`` entry (docs/routing.md#privacy-and-tier); first match wins."""

    model_pattern: NonEmptyStr
    privacy: Literal["restricted", "open"] | None = None
    min_tier: Tier | None = None


class RoutingConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[routing]`` with its weights, aliases, fallbacks and policies (docs/routing.md#routing)."""

    strategy: Literal["smart", "round_robin", "priority_only", "random"] = "smart"
    max_retries: NonNegativeInt = 2
    weights: RoutingWeights = msgspec.field(default_factory=RoutingWeights)
    aliases: dict[NonEmptyStr, NonEmptyStr] = msgspec.field(default_factory=dict)
    fallbacks: dict[NonEmptyStr, list[NonEmptyStr]] = msgspec.field(default_factory=dict)
    policies: list[RoutingPolicy] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        check_alias_chains(self.aliases)


class QualityConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[quality]`` (docs/quality.md#settings)."""

    error_rate_threshold: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.5
    #: 0 disables the TTFT penalty.
    ttft_penalty_threshold_ms: NonNegativeFloat = 3000.0
    metrics_interval_seconds: Seconds = 30.0
    min_requests: AtLeastOne = 10
    consecutive_failures: AtLeastOne = 5
    probe_interval_seconds: Seconds = 30.0


class QueueConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[queue]`` (docs/routing.md#queue-and-overload)."""

    enabled: bool = True
    max_size: NonNegativeInt = 100
    max_wait_seconds: Seconds = 30.0


class DashboardConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[dashboard]``: the live web page at ``/``; read at start-up (a change needs a restart)."""

    enabled: bool = True
    #: Finished proxy requests the dashboard's request log keeps (newest first on the page).
    request_log_size: Annotated[int, msgspec.Meta(ge=1, le=10000)] = 200
    #: Dashboards connected at once; one more is answered 503 ``overloaded``.
    max_connections: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 16


class ModelCapabilities(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[backends.capabilities."model"]`` (docs/routing.md#capabilities); None = not declared."""

    vision: bool | None = None
    tools: bool | None = None
    json_mode: bool | None = None
    embeddings: bool | None = None
    context_length: AtLeastOne | None = None


class BackendConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One ``[[backends]]`` entry (docs/routing.md#backend-types); ``name`` is its identity.

    ``url`` is stored without trailing slashes and ``zone`` in lower case.
    """

    name: NonEmptyStr
    #: Required, except for ``anthropic`` (default ``https://api.anthropic.com``).
    url: str = ""
    type: BackendType
    #: Lower = preferred (docs/routing.md#scheduler).
    priority: int = 50
    #: "restricted" or "open", any case; None = the default of the type (see privacy_zone).
    zone: str | None = None
    tier: Tier = 1
    api_key_env: NonEmptyStr | None = None
    forward_authorization: bool = False
    #: 0 = unlimited.
    max_concurrent_requests: NonNegativeInt = 0
    models: list[NonEmptyStr] = msgspec.field(default_factory=list)
    embedding_models: list[NonEmptyStr] = msgspec.field(default_factory=list)
    capabilities: dict[NonEmptyStr, ModelCapabilities] = msgspec.field(default_factory=dict)
    tls_ca_file: NonEmptyStr | None = None
    #: Replaces ``server.attempt_timeout_seconds`` for this backend; None = the server's.
    timeout_seconds: Seconds | None = None
    #: ``anthropic`` only: the ``anthropic-version`` header (None = 2023-06-01).
    anthropic_version: NonEmptyStr | None = None
    #: ``anthropic`` only: ``max_tokens`` when the client sends none (None = 4096).
    default_max_tokens: AtLeastOne | None = None

    def __post_init__(self) -> None:
        url = self.url
        if not url:
            if self.type != "anthropic":
                raise InvalidKey("url", f"url is required for type {self.type!r}")
            url = ANTHROPIC_URL
        try:
            msgspec.structs.force_setattr(self, "url", check_base_url(url))
        except ValueError as exc:
            raise InvalidKey("url", f"url {exc}") from exc
        self._check_type_keys()
        if self.zone is not None:
            zone = self.zone.lower()
            if zone not in PRIVACY_ZONES:
                raise InvalidKey("zone", f"zone must be 'restricted' or 'open', got {self.zone!r}")
            msgspec.structs.force_setattr(self, "zone", zone)
        if self.forward_authorization and self.api_key_env is not None:
            raise InvalidKey(
                "forward_authorization",
                "forward_authorization = true cannot be combined with api_key_env on the same "
                "backend: choose the client's key or the backend key",
            )

    def _check_type_keys(self) -> None:
        """Anthropic's keys only on ``anthropic``, which needs a key variable."""
        if self.type != "anthropic":
            for key in _ANTHROPIC_KEYS:
                if getattr(self, key) is not None:
                    raise InvalidKey(key, f"{key} is only valid on type 'anthropic'")
            return
        if self.api_key_env is None:
            raise InvalidKey(
                "api_key_env", "type 'anthropic' needs api_key_env (the variable holding its key)"
            )

    def privacy_zone(self) -> str:
        """The effective zone: ``zone``, else ``open`` for cloud types, else ``restricted``."""
        if self.zone is not None:
            return self.zone
        return "open" if self.type in CLOUD_TYPES else "restricted"

    def location(self) -> str:
        """``cloud`` for the ``openai`` and ``anthropic`` types, ``local`` for the others."""
        return "cloud" if self.type in CLOUD_TYPES else "local"


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


class BudgetConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[budget]``: the global monthly budget (docs/spend.md#budgets); 0 USD = no budget."""

    monthly_limit_usd: NonNegativeFloat = 0.0
    soft_limit_percent: Annotated[float, msgspec.Meta(gt=0, le=100)] = 80.0
    hard_limit_action: Literal["local_only", "reject"] = "local_only"


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

    def __post_init__(self) -> None:
        if (self.key_env is None) == (self.key_sha256 is None):
            raise InvalidKey("key_env", "set exactly one of key_env and key_sha256")
        if self.name == "default":
            raise InvalidKey("name", "'default' is reserved for keys from server.api_keys_env")
        if self.key_sha256 is not None:
            msgspec.structs.force_setattr(self, "key_sha256", self.key_sha256.lower())


class StateConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[state]``: where the spend ledger lives (docs/spend.md#ledger)."""

    dir: NonEmptyStr = "/var/lib/nexus-trio"


class LoggingConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[logging]`` (docs/operations.md#logging); ``level`` is case-insensitive, kept lower."""

    level: str = "info"
    format: Literal["text", "json"] = "text"

    def __post_init__(self) -> None:
        level = self.level.lower()
        if level not in LOG_LEVELS:
            raise InvalidKey(
                "level", f"level must be one of {', '.join(LOG_LEVELS)}, got {self.level!r}"
            )
        msgspec.structs.force_setattr(self, "level", level)


class Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The whole configuration; every section is optional."""

    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    health_check: HealthCheckConfig = msgspec.field(default_factory=HealthCheckConfig)
    routing: RoutingConfig = msgspec.field(default_factory=RoutingConfig)
    quality: QualityConfig = msgspec.field(default_factory=QualityConfig)
    queue: QueueConfig = msgspec.field(default_factory=QueueConfig)
    dashboard: DashboardConfig = msgspec.field(default_factory=DashboardConfig)
    backends: list[BackendConfig] = msgspec.field(default_factory=list)
    pricing: list[PriceConfig] = msgspec.field(default_factory=list)
    keys: list[KeyConfig] = msgspec.field(default_factory=list)
    budget: BudgetConfig = msgspec.field(default_factory=BudgetConfig)
    state: StateConfig = msgspec.field(default_factory=StateConfig)
    logging: LoggingConfig = msgspec.field(default_factory=LoggingConfig)

    def __post_init__(self) -> None:
        self._check_backends()
        self._check_pricing()
        self._check_keys()

    @property
    def inbound_auth(self) -> bool:
        """Whether clients must present a key (``server.api_keys_env`` or ``[[keys]]``)."""
        return self.server.api_keys_env is not None or bool(self.keys)

    def _check_keys(self) -> None:
        seen: dict[str, int] = {}
        for index, key in enumerate(self.keys):
            if key.name in seen:
                raise InvalidKey(
                    f"keys[{index}].name",
                    f"duplicate key name {key.name!r} (also $.keys[{seen[key.name]}].name)",
                )
            seen[key.name] = index

    @property
    def keeps_spend(self) -> bool:
        """Whether spend is tracked and kept in the ledger: something is priced or budgeted."""
        return bool(self.pricing) or self.budget.monthly_limit_usd > 0

    def _check_pricing(self) -> None:
        names = {backend.name for backend in self.backends}
        seen: dict[tuple[str, str | None], int] = {}
        for index, price in enumerate(self.pricing):
            if price.backend not in names:
                raise InvalidKey(
                    f"pricing[{index}].backend", f"no backend is named {price.backend!r}"
                )
            key = (price.backend, price.model)
            if key in seen:
                raise InvalidKey(
                    f"pricing[{index}]",
                    f"duplicate price for backend {price.backend!r} model "
                    f"{price.model or '(default)'!r} (also $.pricing[{seen[key]}])",
                )
            seen[key] = index

    def _check_backends(self) -> None:
        first_index: dict[str, int] = {}
        for index, backend in enumerate(self.backends):
            if backend.name in first_index:
                raise InvalidKey(
                    f"backends[{index}].name",
                    f"duplicate backend name {backend.name!r} "
                    f"(also $.backends[{first_index[backend.name]}].name)",
                )
            first_index[backend.name] = index
            if backend.forward_authorization and (
                self.server.api_keys_env is not None or self.keys
            ):
                raise InvalidKey(
                    f"backends[{index}].forward_authorization",
                    "forward_authorization = true cannot be used while inbound auth "
                    "(server.api_keys_env or [[keys]]) is enabled: it would forward the "
                    "gateway's own keys",
                )


class Overrides(msgspec.Struct, frozen=True, kw_only=True):
    """Values given on the command line; None = not given."""

    host: str | None = None
    port: int | None = None
    log_level: str | None = None


#: (variable, section, key) of each environment override (docs/configuration.md#sources).
_ENV_OVERRIDES = (
    ("NEXUS_HOST", "server", "host"),
    ("NEXUS_PORT", "server", "port"),
    ("NEXUS_LOG_LEVEL", "logging", "level"),
    ("NEXUS_LOG_FORMAT", "logging", "format"),
)


def parse_config(text: str | bytes) -> Config:
    """Decode and validate a TOML config document.

    Args:
        text: The TOML text; bytes must be UTF-8.

    Returns:
        The validated config.

    Raises:
        ConfigError: The first error, naming its key path or its line and column.
    """
    return decode_toml(text, Config)


def load_config(path: Path | None, *, env: Mapping[str, str], overrides: Overrides) -> Config:
    """Build the effective config: defaults < file < environment < command line.

    Where each comes from: docs/configuration.md#sources.

    Blocks while reading the file (small). Call it again on reload with the same ``env`` and
    ``overrides`` to re-apply the start-up overrides.

    Args:
        path: The file from :func:`resolve_config_path`; None = built-in defaults.
        env: The process environment; empty override variables count as unset.
        overrides: The command-line values.

    Returns:
        The validated config.

    Raises:
        ConfigError: The file is missing, unreadable or invalid (the message starts with the
            path), or an override is invalid (the message names the variable or flag).
    """
    config = Config()
    if path is not None:
        text = read_config_file(path)
        try:
            config = parse_config(text)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
    layers: list[tuple[str, str, str, object]] = [
        (source, sec, key, env.get(source) or None) for source, sec, key in _ENV_OVERRIDES
    ]
    layers += [
        ("--host", "server", "host", overrides.host),
        ("--port", "server", "port", overrides.port),
        ("--log-level", "logging", "level", overrides.log_level),
    ]
    for source, section_name, key, value in layers:
        if value is not None:
            section = replace_field(getattr(config, section_name), key, value, source)
            config = msgspec.structs.replace(config, **{section_name: section})
    return config


def render_config(config: Config, env: Mapping[str, str]) -> str:
    """The effective config for ``nexus-trio check-config``, with key sources but no keys.

    Args:
        config: The config to show.
        env: The environment, only to say whether each key variable is set.

    Returns:
        Indented JSON, then one line per key variable saying whether it is set; key values
        are never included.
    """
    rendered = msgspec.json.format(msgspec.json.encode(config), indent=2).decode()
    lines = [rendered]
    for backend in config.backends:
        if backend.api_key_env is not None:
            lines.append(
                f"backend {backend.name!r}: key from {_key_source(backend.api_key_env, env)}"
            )
    if config.server.api_keys_env is not None:
        lines.append(
            f"server: inbound API keys from {_key_source(config.server.api_keys_env, env)}"
        )
    for key in config.keys:
        source = "its SHA-256" if key.key_env is None else _key_source(key.key_env, env)
        lines.append(f"key {key.name!r}: from {source}")
    return "\n".join(lines)


def _key_source(variable: str, env: Mapping[str, str]) -> str:
    state = "set, value redacted" if env.get(variable, "").strip() else "NOT SET"
    return f"${variable} ({state})"
