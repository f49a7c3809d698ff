"""Logging setup: text or JSON lines on stderr (docs/operations.md#logging).

The access log's records carry an ``access`` attribute (an :class:`AccessRecord`); the
formatters render its fields as ``key=value`` pairs (text) or as keys of the JSON object.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import msgspec

_ENCODER = msgspec.json.Encoder()


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    access = getattr(record, "access", None)
    if access is None:
        return {}
    fields: dict[str, Any] = msgspec.structs.asdict(access)
    return fields


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = _fields(record)
        if fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
        return line


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return _ENCODER.encode(payload).decode()


def configure_logging(level: str, fmt: str) -> None:
    """Send the ``nexus_trio`` loggers (and hypercorn's errors) to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else TextFormatter())
    for name in ("nexus_trio", "hypercorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
