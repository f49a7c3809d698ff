"""The answers a forward ends with when no backend could take the request, the reading of an
upstream's ``Retry-After``, and the upstream answers that are not the backend failing (a model
it lacks, embeddings it cannot make, the gateway's own credentials refused)
(docs/proxying.md#when-nothing-can-serve, docs/proxying.md#retries). It builds errors and
touches no state; the one side effect is the redacted WARNING a refusal of the gateway's
credentials logs. A requested model name is echoed cut to 256 characters (:func:`shown_model`).
"""

from __future__ import annotations

import email.utils
import logging
import re
import time
from collections.abc import Sequence

import trio

from nexus_trio import errors
from nexus_trio.registry import Backend
from nexus_trio.routing import Reject

log = logging.getLogger("nexus_trio.api")

#: Longest cooldown a 429's ``Retry-After`` may impose (docs/proxying.md#retries).
MAX_COOLDOWN_SECONDS = 300.0
#: Characters of a requested model name echoed back or logged (docs/proxying.md#request-body).
MAX_SHOWN_MODEL_CHARS = 256


#: What looks like a credential in a backend's error text: a key (``sk-…``, ``sk-ant-…``),
#: a bearer token, or any long run of key characters (request ids go too: better too much).
_KEY_LIKE = re.compile(
    r"(?i)\b(?:bearer|basic)\s+\S+|\b(?:sk|pk|rk|key)[-_][\w\-*.]{4,}|[\w\-+/=]{24,}"
)
#: Characters of a backend's refusal text logged.
MAX_LOGGED_CHARS = 500


def redacted(body: bytes) -> str:
    """A backend's error body as the log shows it: its first 500 characters, everything
    key-like replaced by ``[redacted]`` (docs/proxying.md#retries)."""
    text = body[: MAX_LOGGED_CHARS * 4].decode("utf-8", "replace")[:MAX_LOGGED_CHARS]
    return _KEY_LIKE.sub("[redacted]", text)


def shown_model(model: str) -> str:
    """``model`` as the gateway echoes or logs it: its first 256 characters."""
    return model[:MAX_SHOWN_MODEL_CHARS]


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` value (delta-seconds or HTTP date), capped at 300."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(seconds, MAX_COOLDOWN_SECONDS) if seconds > 0 else None


def model_not_found(model: str, known: Sequence[str]) -> errors.ModelNotFound:
    """404 ``model_not_found``, naming up to 20 of the ``known`` models (sorted)."""
    model = shown_model(model)
    if not known:
        return errors.ModelNotFound(
            f"The model '{model}' does not exist: no backend is configured.", param="model"
        )
    listed = ", ".join(known[:20])
    more = f" (and {len(known) - 20} more)" if len(known) > 20 else ""
    return errors.ModelNotFound(
        f"The model '{model}' does not exist. Known models: {listed}{more}.", param="model"
    )


def queue_timeout(model: str, queued_at: float) -> errors.QueueTimeout:
    """503 ``queue_timeout``: the request waited its whole share for a slot."""
    waited = trio.current_time() - queued_at
    return errors.QueueTimeout(
        f"Every backend serving '{shown_model(model)}' stayed at capacity for {waited:.0f} s.",
        headers={"Retry-After": "1"},
    )


def no_available_backend(reject: Reject) -> errors.NoAvailableBackend:
    """The actionable 503 of docs/proxying.md#when-nothing-can-serve."""
    headers = {"X-Nexus-Rejection-Reasons": ",".join(reject.reason_codes())}
    retry_after = reject.retry_after_seconds()
    if retry_after is None:
        headers["x-should-retry"] = "false"
    else:
        headers["Retry-After"] = str(retry_after)
    return errors.NoAvailableBackend(
        reject.message(),
        headers=headers,
        extra={"rejections": [rejection.as_dict() for rejection in reject.rejections]},
    )


_MODEL_MISSING_WORDS = (b"not found", b"does not exist", b"not exist", b"unknown model")


def says_cannot_embed(path: str, status: int) -> bool:
    """A 501 to an embeddings request: the server was not started to embed (llama.cpp)."""
    return status == 501 and path == "/v1/embeddings"


def says_model_missing(status: int, body: bytes) -> bool:
    """An upstream 404, or a 400 saying the model does not exist (docs/proxying.md#retries)."""
    if status == 404:
        return True
    if status != 400:
        return False
    text = body[:4096].lower()
    return b"model" in text and any(words in text for words in _MODEL_MISSING_WORDS)


def refuse_credentials_error(backend: Backend, status: int, data: bytes) -> None:
    """Raise :class:`errors.BackendCredentialsRefused` for a 401/403 to the gateway's own
    credentials (never shown to a tenant; logged redacted), unless the backend forwards the
    client's ``Authorization``."""
    if status in (401, 403) and not backend.config.forward_authorization:
        log.warning(
            "backend '%s' refused the gateway's credentials (%d): %r",
            backend.name,
            status,
            redacted(data),
        )
        raise errors.BackendCredentialsRefused(backend.name)
