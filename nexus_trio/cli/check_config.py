"""``nexus-trio check-config``: the verdict ``serve`` would reach on a configuration file,
without starting anything (docs/cli.md#check-config).

The file is loaded as ``serve`` loads it (:func:`~nexus_trio.config.load_config`: the file,
then the ``NEXUS_*`` environment overrides), and the inbound keys are read from the environment
as ``serve`` reads them (:meth:`~nexus_trio.keys.KeyRing.from_config`), so a ``key_env`` or
``server.api_keys_env`` variable that is unset or holds no key fails here as it fails there,
and so does a malformed ``OTEL_EXPORTER_OTLP_TRACES_HEADERS`` with ``[tracing]`` on.
The environment is the command's own, or with ``--env-file`` the variables of those files
alone: what a systemd unit's ``EnvironmentFile=`` gives ``serve``
(:mod:`~nexus_trio.cli.env_file`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from nexus_trio.cli.env_file import read_env_files
from nexus_trio.config import (
    Config,
    Overrides,
    admin_address,
    config_warnings,
    load_config,
    render_config,
)
from nexus_trio.errors import ConfigError
from nexus_trio.keys import KeyRing
from nexus_trio.tracing.export import collector_headers


def check_config(path: Path, env_files: Sequence[Path]) -> int:
    """Print the effective configuration (keys redacted) and return 0; on stderr, a warning
    for each assignment an env file's reader dropped and each of
    :func:`~nexus_trio.config.config_warnings`.

    Raises:
        ConfigError: the file is missing or invalid, an env file cannot be read, a variable
            that ``serve`` needs holds no key, or the collector's headers variable is
            malformed; the message is one line.
    """
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    env: Mapping[str, str] = os.environ
    if env_files:
        env, ignored = read_env_files(env_files)
        _warn(ignored)
    config = load_config(path, env=env, overrides=Overrides())
    KeyRing.from_config(config, env)
    if config.tracing.enabled:
        collector_headers(env)
    print(render_config(config, env))
    _warn([*config_warnings(config, env), *_admin_port_warnings(config, env)])
    return 0


def _admin_port_warnings(config: Config, env: Mapping[str, str]) -> list[str]:
    """Resolve the admin port as ``serve`` does; an unset ``port_offset_env`` variable is a
    warning here, since the unit (``Environment=NEXUS_INSTANCE=%i``) sets it, not a file.

    Raises:
        ConfigError: the variable is set to a value ``serve`` refuses.
    """
    variable = config.admin.port_offset_env
    if variable is not None and not env.get(variable, "").strip():
        return [
            f"admin.port_offset_env: ${variable} is not set here; serve refuses to start "
            "without it (the template unit sets NEXUS_INSTANCE)"
        ]
    admin_address(config.admin, env)
    return []


def _warn(warnings: Sequence[str]) -> None:
    for warning in warnings:
        print(f"nexus-trio: warning: {warning}", file=sys.stderr)
