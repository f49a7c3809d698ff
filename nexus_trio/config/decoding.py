"""How configuration text becomes validated values, independent of the schema.

:mod:`nexus_trio.config.schema` defines the schema (the Structs) and
:mod:`nexus_trio.config.loading` the public entry points; this module holds the schema-agnostic
machinery they use, so it imports neither:

- :func:`decode_toml` turns TOML text into any Struct type and translates every msgspec or
  tomllib failure into one :class:`~nexus_trio.errors.ConfigError` with a one-line message
  naming the key path (``$.backends[1].url``) or the line and column of a syntax error.
- :class:`InvalidKey` lets a ``__post_init__`` name the key it rejects; msgspec only knows the
  path of the Struct being built, so :func:`decode_toml` appends the key to it.
- :func:`check_alias_chains` rejects alias chains that are too long or circular (the URL rules
  are in :mod:`nexus_trio.config.urls`).
- :func:`resolve_config_path`, :func:`read_config_file` and :func:`replace_field` implement
  discovery (docs/configuration.md#sources), reading and the environment/CLI override layers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

import msgspec
import msgspec.structs
import msgspec.toml

from nexus_trio.errors import ConfigError

T = TypeVar("T")
S = TypeVar("S", bound=msgspec.Struct)

DEFAULT_CONFIG_PATH = Path("/etc/nexus-trio/nexus.toml")
MAX_ALIAS_HOPS = 3

_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `(?P<key>[^`]*)`")
_AT_PATH = " - at `"


class InvalidKey(ValueError):
    """Raised by a ``__post_init__`` to reject the value of one key of the Struct.

    Args:
        key: The key path relative to the Struct being validated (``"url"``,
            ``"backends[1].name"``, ``"aliases.fast"``); :func:`decode_toml` appends it to the
            path msgspec reports for the Struct.
        message: What is wrong and, where possible, how to fix it.
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def decode_toml(text: str | bytes, type_: type[T]) -> T:
    """Decode TOML text into ``type_``, validating every constraint and ``__post_init__``.

    Args:
        text: The TOML document; bytes must be UTF-8.
        type_: The type to decode into, normally a frozen Struct.

    Returns:
        The decoded value.

    Raises:
        ConfigError: The first problem found: invalid UTF-8, a TOML syntax error (with line and
            column) or a validation error (with the key path).
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config is not valid UTF-8 (byte offset {exc.start})") from exc
    try:
        return msgspec.toml.decode(text, type=type_)
    except msgspec.ValidationError as exc:
        raise ConfigError(_validation_message(exc)) from exc
    except msgspec.DecodeError as exc:
        raise ConfigError(f"TOML syntax error: {_with_end_position(str(exc), text)}") from exc
    except RecursionError as exc:
        raise ConfigError("TOML syntax error: the document is nested too deeply") from exc


def _validation_message(exc: msgspec.ValidationError) -> str:
    """Make msgspec's message name the offending key itself, not only its parent."""
    text = str(exc)
    key = exc.__cause__.key if isinstance(exc.__cause__, InvalidKey) else None
    unknown = _UNKNOWN_FIELD.match(text)
    if key is None and unknown is None:
        return text
    message, sep, path = text.partition(_AT_PATH)
    path = path.removesuffix("`") if sep else "$"
    if unknown is not None:
        return f"Unknown key - at `{path}.{unknown['key']}`"
    return f"{message} - at `{path}.{key}`"


def _with_end_position(message: str, text: str) -> str:
    """tomllib reports some errors "at end of document"; add that line and column."""
    line = text.count("\n") + 1
    column = len(text) - (text.rfind("\n") + 1) + 1
    return message.replace(
        "(at end of document)", f"(at end of document, line {line}, column {column})"
    )


def resolve_config_path(
    cli_path: str | None,
    env: Mapping[str, str],
    default_path: Path = DEFAULT_CONFIG_PATH,
) -> Path | None:
    """Find the config file (docs/configuration.md#sources): ``--config``, then ``NEXUS_CONFIG``,
    then the default.

    Args:
        cli_path: The ``--config`` argument, if given.
        env: The process environment; an empty ``NEXUS_CONFIG`` counts as unset.
        default_path: Used only if it exists.

    Returns:
        The path to load, or ``None`` for the built-in defaults. A path named by ``--config``
        or ``NEXUS_CONFIG`` is returned even if it does not exist: loading it is then an error.
    """
    if cli_path is not None:
        return Path(cli_path)
    if env_path := env.get("NEXUS_CONFIG"):
        return Path(env_path)
    if default_path.exists():
        return default_path
    return None


def read_config_file(path: Path) -> bytes:
    """Read a config file (blocking; config files are small).

    Raises:
        ConfigError: The file does not exist or cannot be read.
    """
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc


def replace_field(struct: S, field: str, value: object, source: str) -> S:
    """Return ``struct`` with ``field`` set from an override, validated like the file is.

    The value is converted to the field's annotated type with msgspec's lax rules (so the
    string ``"8080"`` from the environment becomes an int) and its constraints are checked;
    the Struct's ``__post_init__`` then runs on the new instance.

    Args:
        struct: The Struct to copy.
        field: The field to replace.
        value: The raw override value.
        source: Where the value came from (``"NEXUS_PORT"``, ``"--port"``), for the message.

    Raises:
        ConfigError: The value is invalid; the message names ``source``.
    """
    hint = get_type_hints(type(struct), include_extras=True)[field]
    changes: dict[str, Any] = {}
    try:
        changes[field] = msgspec.convert(value, hint, strict=False)
        return msgspec.structs.replace(struct, **changes)
    except (ValueError, TypeError) as exc:  # msgspec.ValidationError is a ValueError
        raise ConfigError(f"{source}: invalid value {value!r}: {exc}") from exc


def check_alias_chains(aliases: Mapping[str, str]) -> None:
    """Reject alias chains longer than :data:`MAX_ALIAS_HOPS` and cycles
    (docs/routing.md#request-analysis).

    Raises:
        InvalidKey: Names ``aliases.<name>`` of the first alias whose chain is invalid.
    """
    for name in aliases:
        chain = [name]
        while chain[-1] in aliases:
            target = aliases[chain[-1]]
            if target in chain:
                shown = " -> ".join([*chain, target])
                raise InvalidKey(f"aliases.{name}", f"alias cycle: {shown}")
            chain.append(target)
            if len(chain) - 1 > MAX_ALIAS_HOPS:
                shown = " -> ".join(chain)
                raise InvalidKey(
                    f"aliases.{name}",
                    f"alias chain {shown} is longer than {MAX_ALIAS_HOPS} hops",
                )
