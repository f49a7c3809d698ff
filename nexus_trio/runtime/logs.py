"""Logging setup: text or JSON lines on stderr (docs/operations.md#logging).

The access log's records carry an ``access`` attribute (an :class:`AccessRecord`); the
formatters render its fields as ``key=value`` pairs (text) or as keys of the JSON object.

A record is one line whatever it carries: a client can put a newline in a model name, a path
or a header that ends up in a message. The text format escapes control characters in the
message and in every field (:func:`escape`), and quotes a field whose value holds a space, an
``=`` or a quote (:func:`field_value`), so a value cannot forge more fields; a traceback
follows on continuation lines, each escaped and indented, so no data ever starts a line. In
JSON the encoder escapes the controls below U+0020; DEL, the C1 controls and the Unicode
separators, which it leaves raw (some tools break lines on them), are escaped as ``\\uNNNN``
afterwards.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any

import msgspec

_ENCODER = msgspec.json.Encoder()

#: C0 controls, DEL, C1 controls, and the Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_CONTINUATION = "\n    "


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _json_escaped(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def escape(text: str) -> str:
    """``text`` with control characters escaped: ``\\n``, ``\\r``, ``\\t``, else ``\\xNN``
    (``\\u2028``, ``\\u2029`` for the Unicode separators). Printable text is returned as is."""
    if text.isprintable():
        return text
    return _CONTROL.sub(_escaped, text)


_NEEDS_QUOTES = re.compile(r'[\s="\\]')


def field_value(text: str) -> str:
    """A text field as logfmt writes it: escaped, and quoted when it is empty or holds a space,
    ``=``, ``"`` or ``\\`` — so a value can never read as more ``key=value`` pairs."""
    text = escape(text)
    if text and not _NEEDS_QUOTES.search(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    access = getattr(record, "access", None)
    if access is None:
        return {}
    fields: dict[str, Any] = msgspec.structs.asdict(access)
    return fields


class TextFormatter(logging.Formatter):
    """``<time> <LEVEL> <logger>: <message> key=value ...``, one line per record (escaped)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.message = escape(record.getMessage())
        record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        fields = _fields(record)
        if fields:
            line += " " + " ".join(
                f"{k}={field_value(v) if type(v) is str else v}"
                for k, v in fields.items()
                if v is not None
            )
        if record.exc_info:
            line += self._continuation(self.formatException(record.exc_info))
        if record.stack_info:
            line += self._continuation(self.formatStack(record.stack_info))
        return line

    @staticmethod
    def _continuation(block: str) -> str:
        return "".join(_CONTINUATION + escape(part) for part in block.split("\n"))


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
        line = _ENCODER.encode(payload).decode()
        if line.isascii() and "\x7f" not in line:
            return line
        # What is left to match can only be inside a JSON string: \uNNNN is the same text.
        return _CONTROL.sub(_json_escaped, line)


def configure_logging(level: str, fmt: str) -> None:
    """Send the ``nexus_trio`` loggers (and hypercorn's errors) to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else TextFormatter())
    for name in ("nexus_trio", "hypercorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
