"""The constrained value types shared by the configuration's Structs (``nexus_trio.config``)."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

import msgspec

NonEmptyStr = Annotated[str, msgspec.Meta(min_length=1)]
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Seconds = Annotated[float, msgspec.Meta(gt=0)]
NonNegativeSeconds = Annotated[float, msgspec.Meta(ge=0)]
AtLeastOne = Annotated[int, msgspec.Meta(ge=1)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0)]
Tier = Annotated[int, msgspec.Meta(ge=1, le=5)]
_HOST_PATTERN = re.compile(
    r"\*|(\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\]", re.IGNORECASE
)
_ORIGIN = re.compile(r"\*|https?://[^/?#@\s]+", re.IGNORECASE)


def check_host_pattern(value: str) -> None:
    """``*``, a host name, ``*.`` and a domain, or a bracketed IPv6 address.

    Raises:
        ValueError: anything else (the message says what is expected).
    """
    if not _HOST_PATTERN.fullmatch(value):
        raise ValueError(f"expected '*', a host name or '*.domain', got {value!r}")


def check_origin(value: str) -> None:
    """``*`` or a browser origin ``scheme://host[:port]`` (no path).

    Raises:
        ValueError: anything else.
    """
    if not _ORIGIN.fullmatch(value):
        raise ValueError(f"expected '*' or an origin like 'https://app.example.com', got {value!r}")


def check_network(value: str) -> None:
    """An IP address or a CIDR network (``10.0.0.0/8``, ``::1``) with no host bits set.

    Raises:
        ValueError: anything else.
    """
    try:
        ipaddress.ip_network(value)
    except ValueError as exc:
        raise ValueError(f"expected an IP address or a network like 10.0.0.0/8: {exc}") from exc
