"""The gateway's errors on ``/v1/responses`` in OpenAI's error envelope
(docs/responses-api.md#errors).

The Responses API answers errors exactly as chat completions does: ``{"error": {"message",
"type", "param", "code"}}`` with the HTTP status, which is what the openai SDKs pick their
error classes by. The ``type`` is the one the gateway's own error class with that ``code``
carries (nexus_trio/errors/), else one that follows from the status.
"""

from __future__ import annotations

import msgspec

from nexus_trio import errors

__all__ = ["error_body"]


class _Detail(msgspec.Struct):
    message: str
    type: str
    param: str | None
    code: str | None


class _Envelope(msgspec.Struct):
    error: _Detail


_ENCODER = msgspec.json.Encoder()
_BY_STATUS = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}


def _types_by_code() -> dict[str, str]:
    """Each ``code`` of the exception tree → its class's ``type``."""
    found: dict[str, str] = {}
    pending: list[type[errors.APIError]] = [errors.APIError]
    while pending:
        kind = pending.pop()
        found.setdefault(kind.code, kind.type)
        pending += kind.__subclasses__()
    return found


_TYPES = _types_by_code()


def error_body(status: int, code: str | None, message: str) -> tuple[int, bytes]:
    """The status and JSON body of an error answer on ``/v1/responses``."""
    kind = _TYPES.get(code or "")
    if kind is None:
        fallback = "invalid_request_error" if status < 500 else "api_error"
        kind = _BY_STATUS.get(status, fallback)
    return status, _ENCODER.encode(_Envelope(_Detail(message, kind, None, code)))
