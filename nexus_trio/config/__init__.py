"""The configuration of nexus-trio: typed, frozen, strict (docs/configuration.md#configuration).

What it owns: the schema (:mod:`~nexus_trio.config.schema`, with the backend entries in
:mod:`~nexus_trio.config.backends`, the spend and key tables in :mod:`~nexus_trio.config.spend`,
``[responses]`` in :mod:`~nexus_trio.config.responses`, ``[admin]`` in
:mod:`~nexus_trio.config.admin`, ``[tracing]`` in :mod:`~nexus_trio.config.tracing` and the
constrained value types in
:mod:`~nexus_trio.config.values`), decoding TOML into it with one-line errors
(:mod:`~nexus_trio.config.decoding`), the URL rules (:mod:`~nexus_trio.config.urls`), and the
layers of defaults, file, environment and command line (:mod:`~nexus_trio.config.loading`). It
never touches the running gateway: it only turns text into values. Import the public names from
here.
"""

from nexus_trio.config.admin import AdminConfig, admin_address
from nexus_trio.config.backends import (
    ANTHROPIC_URL,
    CLOUD_TYPES,
    MESSAGES_NATIVE_FIELDS,
    PRIVACY_ZONES,
    RESPONSES_NATIVE_FIELDS,
    BackendConfig,
    ModelCapabilities,
)
from nexus_trio.config.decoding import resolve_config_path
from nexus_trio.config.loading import (
    Overrides,
    config_warnings,
    load_config,
    parse_config,
    render_config,
)
from nexus_trio.config.responses import ResponsesConfig
from nexus_trio.config.schema import (
    LOG_LEVELS,
    Config,
    DashboardConfig,
    HealthCheckConfig,
    LoggingConfig,
    MetricsConfig,
    QualityConfig,
    QueueConfig,
    RoutingConfig,
    RoutingPolicy,
    RoutingWeights,
    ServerConfig,
)
from nexus_trio.config.spend import BudgetConfig, KeyConfig, PriceConfig, StateConfig
from nexus_trio.config.tracing import TracingConfig

__all__ = [
    "ANTHROPIC_URL",
    "CLOUD_TYPES",
    "LOG_LEVELS",
    "MESSAGES_NATIVE_FIELDS",
    "PRIVACY_ZONES",
    "RESPONSES_NATIVE_FIELDS",
    "AdminConfig",
    "BackendConfig",
    "BudgetConfig",
    "Config",
    "DashboardConfig",
    "HealthCheckConfig",
    "KeyConfig",
    "LoggingConfig",
    "MetricsConfig",
    "ModelCapabilities",
    "Overrides",
    "PriceConfig",
    "QualityConfig",
    "QueueConfig",
    "ResponsesConfig",
    "RoutingConfig",
    "RoutingPolicy",
    "RoutingWeights",
    "ServerConfig",
    "StateConfig",
    "TracingConfig",
    "admin_address",
    "config_warnings",
    "load_config",
    "parse_config",
    "render_config",
    "resolve_config_path",
]
