"""Where the configuration comes from and how it is shown (docs/configuration.md#sources).

Layers, lowest first; each later layer wins:

1. **Defaults** — the field defaults of the schema's Structs; ``etc/nexus.toml`` shows every one.
2. **File** — TOML decoded by msgspec straight into :class:`~nexus_trio.config.schema.Config`;
   the first error is reported with its key path (``$.backends[1].url``).
3. **Environment** — ``NEXUS_HOST``, ``NEXUS_PORT``, ``NEXUS_LOG_LEVEL``, ``NEXUS_LOG_FORMAT``.
4. **Command line** — :class:`Overrides` (``--host``, ``--port``, ``--log-level``).

Overrides are applied with ``msgspec.structs.replace`` after converting the value to the
field's annotated type, so they pass the same constraints and ``__post_init__`` checks as the
file. Every failure is a :class:`~nexus_trio.errors.ConfigError` with a one-line message.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import msgspec
import msgspec.json
import msgspec.structs

from nexus_trio.config.decoding import decode_toml, read_config_file, replace_field
from nexus_trio.config.schema import Config
from nexus_trio.config.urls import redacted_url
from nexus_trio.errors import ConfigError


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
        are never included, nor the password of ``[state] store``.
    """
    document = msgspec.to_builtins(config)
    if config.state.store is not None:
        document["state"]["store"] = redacted_url(config.state.store)
    rendered = msgspec.json.format(msgspec.json.encode(document), indent=2).decode()
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


def config_warnings(config: Config, env: Mapping[str, str]) -> list[str]:
    """What would start but not as meant (docs/cli.md#check-config), one line each: no backend
    at all, a backend whose ``api_key_env`` variable is unset or blank.

    ``check-config`` prints them and ``serve`` logs them at start-up, both with ``env``.
    """
    warnings = []
    if not config.backends:
        warnings.append(
            "no backends are configured: every model request is answered 404 model_not_found"
        )
    for backend in config.backends:
        variable = backend.api_key_env
        if variable is not None and not env.get(variable, "").strip():
            warnings.append(
                f"backend {backend.name!r}: ${variable} is not set, so its requests and health "
                "probes go without a key"
            )
    return warnings


def _key_source(variable: str, env: Mapping[str, str]) -> str:
    state = "set, value redacted" if env.get(variable, "").strip() else "NOT SET"
    return f"${variable} ({state})"
