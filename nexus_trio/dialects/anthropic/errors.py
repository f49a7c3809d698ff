"""An Anthropic error → the OpenAI error envelope, with the status an OpenAI client expects.

Anthropic answers ``{"type": "error", "error": {"type": ..., "message": ...}}``. Its
``error.type`` picks the envelope's ``type`` and ``code``; the status is Anthropic's, except
529 ``overloaded_error``, which OpenAI clients know as 503. Anthropic's message text reaches
the client; nothing else of the upstream's does (the key never is in an error body). The
retry loop judges the translated status as it judges any backend's: 429 and 5xx are retried
elsewhere and count against the backend.
"""

from __future__ import annotations

import msgspec

__all__ = ["translate_error", "translate_error_event"]

#: Anthropic ``error.type`` → OpenAI (``type``, ``code``).
_KINDS = {
    "invalid_request_error": ("invalid_request_error", "invalid_request"),
    "authentication_error": ("authentication_error", "invalid_api_key"),
    "permission_error": ("permission_error", "permission_denied"),
    "not_found_error": ("invalid_request_error", "not_found"),
    "request_too_large": ("invalid_request_error", "request_too_large"),
    "rate_limit_error": ("rate_limit_error", "rate_limit_exceeded"),
    "api_error": ("api_error", "upstream_error"),
    "overloaded_error": ("service_unavailable", "overloaded"),
}
#: Statuses an OpenAI client knows better by another number.
_STATUS = {529: 503}
#: The status of an ``error`` event in a stream, which has none of its own.
_EVENT_STATUS = {
    "overloaded_error": 503,
    "rate_limit_error": 429,
    "api_error": 500,
    "invalid_request_error": 400,
}


class _Detail(msgspec.Struct):
    type: str = "api_error"
    message: str = ""


class _Error(msgspec.Struct):
    error: _Detail


class _Envelope(msgspec.Struct):
    message: str
    type: str
    code: str
    param: None = None


class _OpenAIError(msgspec.Struct):
    error: _Envelope


_DECODER = msgspec.json.Decoder(_Error)
_ENCODER = msgspec.json.Encoder()


def translate_error(status: int, body: bytes) -> tuple[int, bytes]:
    """The client's status and OpenAI error body for an Anthropic error answer.

    A body that is not Anthropic's error shape (a proxy's HTML page) gets a generic message.
    """
    try:
        detail = _DECODER.decode(body).error
    except (msgspec.DecodeError, RecursionError):
        detail = _Detail(message=f"The Anthropic backend answered {status}.")
    return _STATUS.get(status, status), _encode(detail)


def translate_error_event(data: str) -> tuple[int, bytes] | None:
    """Status and OpenAI error body for a stream's ``error`` event; None if ``data`` is not one."""
    try:
        detail = _DECODER.decode(data).error
    except (msgspec.DecodeError, RecursionError):
        return None
    return _EVENT_STATUS.get(detail.type, 502), _encode(detail)


def _encode(detail: _Detail) -> bytes:
    kind, code = _KINDS.get(detail.type, ("api_error", "upstream_error"))
    message = detail.message or f"Anthropic error: {detail.type}."
    return _ENCODER.encode(_OpenAIError(_Envelope(message, kind, code)))
