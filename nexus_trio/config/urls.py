"""The URL rules of the configuration: a backend's base URL, the fleet store's URL, and how a URL
is shown without its password. Pure functions; a rule's ``ValueError`` becomes a
:class:`~nexus_trio.errors.ConfigError` naming the key (via
:class:`~nexus_trio.config.decoding.InvalidKey`).
"""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit


def check_base_url(url: str) -> str:
    """Validate a backend base URL (docs/routing.md#backend-types) and return it without trailing
    slashes.

    Raises:
        ValueError: Not ``http``/``https``, no host, a bad port, a query or fragment, or a
            path ending in ``/v1``.
    """
    _split(url, ("http", "https"), "an http:// or https://", shown=url)
    base = url.rstrip("/")
    if base.endswith("/v1"):
        raise ValueError(
            f"must not end in /v1 (the gateway appends /v1/... itself): "
            f"drop it, use {base.removesuffix('/v1')!r}"
        )
    return base


def redacted_url(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***`` (for logs, errors and renders)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


def check_store_url(url: str) -> None:
    """Validate ``[state] store`` (docs/spend.md#a-fleet): ``redis://`` or ``rediss://``, a host,
    an optional port and database number, nothing else.

    Raises:
        ValueError: What is wrong; the message shows the URL without its password.
    """
    shown = redacted_url(url)
    parts = _split(url, ("redis", "rediss"), "a redis:// or rediss://", shown=shown)
    database = parts.path.strip("/")
    if database and not (database.isascii() and database.isdigit()):
        raise ValueError(f"must have a database number as its path (/0): {shown!r}")


def _split(url: str, schemes: tuple[str, str], expected: str, *, shown: str) -> SplitResult:
    """``url`` split, if it has one of ``schemes``, a host, a valid port and no query or
    fragment; messages show ``shown`` (the URL without its password).

    Raises:
        ValueError: what is wrong.
    """
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"must be {expected} URL with a host, got {shown!r}")
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError as exc:
        raise ValueError(f"has an invalid port: {shown!r}") from exc
    if parts.query or parts.fragment:
        raise ValueError(f"must not have a query or fragment: {shown!r}")
    return parts
