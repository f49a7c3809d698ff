"""What the admin API accepts for a created key, and how a key is shown (docs/keys.md#admin-api).

Bodies are decoded strictly: an unknown field, a wrong type or a value out of bounds is one
:class:`~nexus_trio.errors.InvalidValue` naming the field. Secrets are made here: ``nxs-``
and 43 URL-safe characters from :mod:`secrets` (256 bits), of which only the SHA-256 is kept.
A key is shown by :func:`key_view`, which never includes its secret or its digest. Pure.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

import msgspec

from nexus_trio import errors
from nexus_trio.keys.created import LATEST_TIME, CreatedKey, KeyName

#: Every secret starts so, to be recognisable in a leak scanner or a paste.
SECRET_PREFIX = "nxs-"
Count = Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)]
Usd = Annotated[float, msgspec.Meta(ge=0, le=1_000_000_000)]
Model = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Models = Annotated[list[Model], msgspec.Meta(max_length=64)]
Metadata = Annotated[
    dict[
        Annotated[str, msgspec.Meta(min_length=1, max_length=64)],
        Annotated[str, msgspec.Meta(max_length=256)],
    ],
    msgspec.Meta(max_length=16),
]
Grace = Annotated[int, msgspec.Meta(ge=0, le=7 * 86400)]
T = TypeVar("T")


class KeySettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``PATCH /admin/keys/{name}``: the settings to change (absent = unchanged)."""

    models: Models | msgspec.UnsetType = msgspec.UNSET
    privacy: Literal["open", "restricted"] | msgspec.UnsetType = msgspec.UNSET
    requests_per_minute: Count | msgspec.UnsetType = msgspec.UNSET
    tokens_per_minute: Count | msgspec.UnsetType = msgspec.UNSET
    max_concurrent_requests: Count | msgspec.UnsetType = msgspec.UNSET
    monthly_budget_usd: Usd | msgspec.UnsetType = msgspec.UNSET
    #: RFC 3339 with a time zone; null = never.
    expires_at: datetime | msgspec.UnsetType | None = msgspec.UNSET
    admin: bool | msgspec.UnsetType = msgspec.UNSET
    metadata: Metadata | msgspec.UnsetType = msgspec.UNSET


class NewKey(KeySettings, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``POST /admin/keys``: a name and the settings (absent = the defaults of ``[[keys]]``)."""

    name: KeyName


class Rotation(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``POST /admin/keys/{name}/rotate``: how long the old secret keeps working."""

    grace_seconds: Grace = 0


def decode(body: bytes | str, kind: type[T]) -> T:
    """``body`` as a ``kind``; an empty body is ``{}``.

    Raises:
        InvalidValue: not JSON, an unknown field, a wrong type or a value out of bounds.
    """
    try:
        return msgspec.json.decode(body or b"{}", type=kind, strict=True)
    except msgspec.ValidationError as exc:
        raise errors.InvalidValue(f"Invalid key settings: {exc}.", param=_param(exc)) from exc
    except msgspec.DecodeError as exc:
        raise errors.InvalidValue(f"The body is not a JSON object: {exc}.") from exc


def _param(exc: msgspec.ValidationError) -> str | None:
    match = re.search(r"\$\.(\w+)", str(exc)) or re.search(r"field `(\w+)`", str(exc))
    return None if match is None else match.group(1)


def new_secret() -> tuple[str, str]:
    """A fresh secret, and its SHA-256 in hex."""
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    return secret, hashlib.sha256(secret.encode()).hexdigest()


def _timestamp(value: datetime | None, now: float) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise errors.InvalidValue("expires_at needs a time zone (e.g. 'Z').", param="expires_at")
    stamp = value.timestamp()
    if stamp <= now:
        raise errors.InvalidValue("expires_at must be in the future.", param="expires_at")
    if stamp >= LATEST_TIME:
        raise errors.InvalidValue(
            "expires_at must be before 9999-12-31T00:00:00Z (null: never).", param="expires_at"
        )
    return stamp


def changes(settings: KeySettings, now: float) -> dict[str, Any]:
    """The record fields ``settings`` sets, in the record's units."""
    out = {
        field: getattr(settings, field)
        for field in settings.__struct_fields__
        if field != "name" and getattr(settings, field) is not msgspec.UNSET
    }
    if "expires_at" in out:
        out["expires_at"] = _timestamp(out["expires_at"], now)
    return out


def iso_time(stamp: float | None) -> str | None:
    """Unix seconds as RFC 3339 UTC (``...Z``), None as None."""
    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp, UTC).isoformat().replace("+00:00", "Z")


def key_state(key: CreatedKey, now: float) -> str:
    """``active``, ``expired`` or ``revoked``."""
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and now >= key.expires_at:
        return "expired"
    return "active"


def key_view(key: CreatedKey, now: float) -> dict[str, Any]:
    """A created key as the admin API shows it: settings and state, no secret, no digest."""
    return {
        "name": key.name,
        "source": "api",
        "state": key_state(key, now),
        "models": key.models,
        "privacy": key.privacy,
        "requests_per_minute": key.requests_per_minute,
        "tokens_per_minute": key.tokens_per_minute,
        "max_concurrent_requests": key.max_concurrent_requests,
        "monthly_budget_usd": key.monthly_budget_usd,
        "expires_at": iso_time(key.expires_at),
        "admin": key.admin,
        "metadata": key.metadata,
        "created_at": iso_time(key.created_at),
        "updated_at": iso_time(key.updated_at),
        "revoked_at": iso_time(key.revoked_at),
        "previous_secret_until": iso_time(key.previous_until),
    }
