"""``[admin]``: the admin listener, where one process serves its own numbers, dashboard and
operator routes (docs/operations.md#admin-listener). Part of the configuration schema; import it
from ``nexus_trio.config``.

``listen`` is ``HOST:PORT`` (``[ADDRESS]:PORT`` for IPv6). With ``port_offset_env`` the port is
``listen``'s plus the whole number in that environment variable, so each instance of the
template unit (which sets ``NEXUS_INSTANCE`` from ``%i``) gets its own port from one file:
:func:`admin_address` resolves it against the environment ``serve`` runs in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import msgspec

from nexus_trio.config.decoding import InvalidKey
from nexus_trio.config.values import NonEmptyStr
from nexus_trio.errors import ConfigError

_LISTEN = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(?P<port>[0-9]{1,5})")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_OFFSET = re.compile(r"[0-9]{1,5}")
_MAX_PORT = 65535


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPV6]:PORT`` into (host, port); the brackets are dropped.

    Raises:
        ValueError: anything else, or a port above 65535.
    """
    match = _LISTEN.fullmatch(value)
    port = -1 if match is None else int(match["port"])
    if match is None or port > _MAX_PORT:
        raise ValueError(f"expected HOST:PORT (e.g. 127.0.0.1:9100, [::1]:9100), got {value!r}")
    return match["host"].strip("[]"), port


class AdminConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[admin]`` (docs/operations.md#admin-listener); read at start-up (a change needs a
    restart)."""

    #: ``HOST:PORT`` of the admin listener; None = no admin listener.
    listen: NonEmptyStr | None = None
    #: A variable holding a whole number added to ``listen``'s port (``NEXUS_INSTANCE``).
    port_offset_env: NonEmptyStr | None = None
    #: true: ``/metrics``, ``/v1/stats``, the dashboard and ``/admin/`` leave the public port.
    only: bool = False

    def __post_init__(self) -> None:
        if self.listen is not None:
            try:
                parse_listen(self.listen)
            except ValueError as exc:
                raise InvalidKey("listen", str(exc)) from exc
        elif self.only or self.port_offset_env is not None:
            key = "only" if self.only else "port_offset_env"
            raise InvalidKey(key, f"{key} needs listen (the admin listener's HOST:PORT)")
        if self.port_offset_env is not None:
            if not _VARIABLE.fullmatch(self.port_offset_env):
                raise InvalidKey(
                    "port_offset_env",
                    f"expected an environment variable's name, got {self.port_offset_env!r}",
                )
            if self.listen is not None and parse_listen(self.listen)[1] == 0:
                raise InvalidKey(
                    "port_offset_env", "an offset needs a base port in listen, not port 0"
                )


def admin_address(admin: AdminConfig, env: Mapping[str, str]) -> tuple[str, int] | None:
    """The admin listener's (host, port) in ``env``; None without ``listen``.

    Raises:
        ConfigError: ``port_offset_env``'s variable is unset, not a whole number, or takes the
            port above 65535; the message names ``admin.port_offset_env``.
    """
    if admin.listen is None:
        return None
    host, port = parse_listen(admin.listen)
    variable = admin.port_offset_env
    if variable is None:
        return host, port
    raw = env.get(variable, "").strip()
    if not raw:
        raise ConfigError(
            f"admin.port_offset_env: ${variable} is not set (the template unit sets "
            "NEXUS_INSTANCE from its instance name)"
        )
    if not _OFFSET.fullmatch(raw) or port + int(raw) > _MAX_PORT:
        raise ConfigError(
            f"admin.port_offset_env: ${variable} must be a whole number that keeps the port "
            f"{port} + it at most {_MAX_PORT}, got {raw[:20]!r}"
        )
    return host, port + int(raw)
