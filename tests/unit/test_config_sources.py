"""Configuration: where it comes from, the file, the environment and the command line, and
which wins (docs/configuration.md#configuration)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nexus_trio.config import Config, Overrides, load_config, parse_config, resolve_config_path
from nexus_trio.errors import ConfigError
from tests.unit.config_texts import at

# --- discovery, overrides, precedence ------------------------------------------------------


def test_discovery_prefers_cli_then_env_then_default(tmp_path: Path) -> None:
    default = tmp_path / "default.toml"
    env = {"NEXUS_CONFIG": str(tmp_path / "env.toml")}
    assert resolve_config_path(None, {}, default) is None
    default.write_text("")
    assert resolve_config_path(None, {}, default) == default
    assert resolve_config_path(None, {"NEXUS_CONFIG": ""}, default) == default
    assert resolve_config_path(None, env, default) == tmp_path / "env.toml"
    assert resolve_config_path(str(tmp_path / "cli.toml"), env, default) == tmp_path / "cli.toml"


def test_missing_named_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    assert resolve_config_path(str(missing), {}, tmp_path / "default.toml") == missing
    with pytest.raises(ConfigError, match=r"^config file not found: .*nope\.toml$"):
        load_config(missing, env={}, overrides=Overrides())


def test_unreadable_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path, env={}, overrides=Overrides())


def test_no_file_gives_the_defaults() -> None:
    assert load_config(None, env={}, overrides=Overrides()) == Config()


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nexus.toml"
    path.write_text("[server]\nport = -1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={}, overrides=Overrides())
    assert str(info.value).startswith(f"{path}: ")
    assert str(info.value).endswith(at("$.server.port"))


def test_precedence_cli_over_env_over_file_over_default(tmp_path: Path) -> None:
    path = tmp_path / "nexus.toml"
    path.write_text('[server]\nhost = "10.0.0.1"\nport = 9001\n[logging]\nlevel = "warning"\n')
    env = {"NEXUS_PORT": "9002", "NEXUS_LOG_LEVEL": "ERROR", "NEXUS_LOG_FORMAT": "json"}

    from_file = load_config(path, env={}, overrides=Overrides())
    assert (from_file.server.host, from_file.server.port) == ("10.0.0.1", 9001)
    assert from_file.logging == parse_config('[logging]\nlevel = "warning"').logging

    from_env = load_config(path, env=env, overrides=Overrides())
    assert (from_env.server.host, from_env.server.port) == ("10.0.0.1", 9002)
    assert (from_env.logging.level, from_env.logging.format) == ("error", "json")

    cli = Overrides(host="0.0.0.0", port=9003, log_level="Debug")
    from_cli = load_config(path, env={**env, "NEXUS_HOST": "10.0.0.2"}, overrides=cli)
    assert (from_cli.server.host, from_cli.server.port) == ("0.0.0.0", 9003)
    assert (from_cli.logging.level, from_cli.logging.format) == ("debug", "json")


def test_empty_environment_override_counts_as_unset() -> None:
    assert load_config(None, env={"NEXUS_PORT": ""}, overrides=Overrides()) == Config()


@pytest.mark.parametrize(
    ("env", "overrides", "source"),
    [
        ({"NEXUS_PORT": "http"}, Overrides(), "NEXUS_PORT"),
        ({"NEXUS_PORT": "70000"}, Overrides(), "NEXUS_PORT"),
        ({"NEXUS_LOG_LEVEL": "trace"}, Overrides(), "NEXUS_LOG_LEVEL"),
        ({"NEXUS_LOG_FORMAT": "xml"}, Overrides(), "NEXUS_LOG_FORMAT"),
        ({}, Overrides(port=-1), "--port"),
        ({}, Overrides(log_level="verbose"), "--log-level"),
        ({}, Overrides(host=""), "--host"),
    ],
)
def test_invalid_override_names_its_source(
    env: dict[str, str], overrides: Overrides, source: str
) -> None:
    with pytest.raises(ConfigError, match=f"^{re.escape(source)}: invalid value"):
        load_config(None, env=env, overrides=overrides)
