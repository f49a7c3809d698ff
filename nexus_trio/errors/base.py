"""The roots of the exception tree: :class:`NexusError`, the operator-facing errors that stop
the process, and :class:`APIError`, whose subclasses reach clients as the OpenAI error envelope.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar


class NexusError(Exception):
    """Base of every error nexus-trio raises on purpose."""


class ConfigError(NexusError):
    """The configuration is invalid.

    ``str(error)`` is the one-line reason shown to the operator; it names the key path
    (``$.backends[1].url``) or, for TOML syntax errors, the line and column.
    """


class ListenError(NexusError):
    """The gateway could not bind its listening socket (fatal at start-up)."""


class StateError(NexusError):
    """The spend ledger cannot be used (docs/spend.md#ledger): fatal at start-up; or the
    response store's file cannot be (docs/responses-api.md#conversations): logged, retried.

    ``str(error)`` is the one-line reason: the path and what is wrong with it.
    """


@contextmanager
def state_errors(store: str, path: Path, doing: str) -> Iterator[None]:
    """Translate sqlite3 and OS errors inside the block into one-line :class:`StateError` s
    naming ``store`` (e.g. ``spend ledger``), its ``path`` and what it was ``doing``."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StateError(f"{store} {path}: cannot {doing}: {exc}") from exc
    except OSError as exc:
        raise StateError(f"{store} {path}: cannot {doing}: {exc.strerror}") from exc


class APIError(NexusError):
    """An error rendered to the client as the OpenAI error envelope."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "api_error"
    code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers: dict[str, str] = dict(headers or {})
        self.extra: dict[str, Any] = dict(extra or {})

    def envelope(self) -> dict[str, Any]:
        """The JSON body: ``{"error": {"message", "type", "param", "code", ...extra}}``."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
                **self.extra,
            }
        }
