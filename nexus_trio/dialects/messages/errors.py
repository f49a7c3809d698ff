"""Errors in the Anthropic envelope, with Anthropic's statuses (docs/messages-api.md#errors).

``{"type": "error", "error": {"type": T, "message": M}}``: ``T`` follows the status the way
Anthropic's API uses it (400 ``invalid_request_error`` and every other 4xx, 401
``authentication_error``, 403 ``permission_error``, 404 ``not_found_error``, 413
``request_too_large``, 429 ``rate_limit_error``, 504 ``timeout_error``, 529
``overloaded_error``, every other 5xx ``api_error``). The gateway's 503s that mean "no capacity
now, retry soon" become 529 ``overloaded_error``, the status Anthropic's SDKs and Claude Code
retry as overload; its other 503s (``shutting_down``) stay 503 ``api_error``.
"""

from __future__ import annotations

import msgspec

__all__ = ["envelope", "error_body", "error_from_chat"]

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}
#: The gateway's 503 codes answered as 529 ``overloaded_error``.
OVERLOADED_CODES = frozenset({"overloaded", "queue_full", "queue_timeout", "no_available_backend"})


class _Detail(msgspec.Struct):
    type: str
    message: str


class _Envelope(msgspec.Struct, tag="error", tag_field="type"):
    error: _Detail


class _ChatDetail(msgspec.Struct):
    message: str | None = None


class _ChatError(msgspec.Struct):
    """OpenAI's ``{"error": {"message"}}``, a bare ``{"error": "..."}``, or vLLM's top-level
    ``{"object": "error", "message"}``."""

    error: _ChatDetail | str | None = None
    message: str | None = None


_ENCODER = msgspec.json.Encoder()
_CHAT_ERROR = msgspec.json.Decoder(_ChatError)


def envelope(kind: str, message: str) -> bytes:
    """The Anthropic error body of ``error.type`` ``kind``."""
    return _ENCODER.encode(_Envelope(_Detail(kind, message)))


def _kind(status: int) -> str:
    return _TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")


def error_body(status: int, code: str | None, message: str) -> tuple[int, bytes]:
    """The status and Anthropic error body for a gateway error of HTTP ``status`` and OpenAI
    ``code`` (see the module docstring)."""
    if status == 503 and code in OVERLOADED_CODES:
        status = 529
    return status, envelope(_kind(status), message)


def error_from_chat(status: int, body: bytes) -> tuple[int, bytes]:
    """A backend's OpenAI-format error answer in the Anthropic envelope, same status; its
    message is kept, and a body that carries none gets a generic one."""
    try:
        parsed = _CHAT_ERROR.decode(body)
    except (msgspec.DecodeError, RecursionError):
        parsed = _ChatError()
    detail = parsed.error
    message = detail if isinstance(detail, str) else detail.message if detail else None
    message = message or parsed.message or f"The backend answered {status}."
    return status, envelope(_kind(status), message)
