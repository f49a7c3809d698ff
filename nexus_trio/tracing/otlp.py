"""The OTLP/HTTP protobuf encoding of spans, written directly (docs/operations.md#tracing).

The bytes are the ``opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest`` message
(``ResourceSpans`` → ``ScopeSpans`` → ``Span``, with ``KeyValue`` attributes and ``Status``),
in protobuf's wire format: each field a tag (field number and wire type), then a varint, a
fixed 64- or 32-bit value, or a length and that many bytes. Only what the gateway's spans use is
written; what is left out reads as its default. The SDK's encoder builds a message object per
attribute and took more of a request's CPU than the rest of the gateway (bench/README.md's
tracing section has the figures); this one joins bytes. Pure functions; the tests decode its
output with ``opentelemetry-proto``.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable

#: An attribute's value: a string, a boolean, an integer or a float.
AttributeValue = str | bool | int | float

#: ``Span.SpanKind`` and ``Status.StatusCode`` values.
SERVER = 2
CLIENT = 3
_STATUS_ERROR = b"\x18\x02"  # Status.code (3, varint) = STATUS_CODE_ERROR
#: ``Span.flags`` (16, fixed32): the W3C flags (sampled) and whether the parent is remote.
_FLAGS = b"\x85\x01" + struct.pack("<I", 0x101)
_FLAGS_REMOTE_PARENT = b"\x85\x01" + struct.pack("<I", 0x301)
_PACK_U64 = struct.Struct("<Q").pack
_PACK_DOUBLE = struct.Struct("<d").pack
_SMALL = [bytes([n]) for n in range(128)]


def _varint(value: int) -> bytes:
    if value < 128:
        return _SMALL[value]
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: ``tag``, the length, ``payload``."""
    return tag + _varint(len(payload)) + payload


@functools.lru_cache(maxsize=256)
def _key(key: str) -> bytes:
    """``KeyValue.key`` (1) of an attribute name; the gateway uses a few dozen."""
    return _field(b"\x0a", key.encode())


def _any_value(value: AttributeValue) -> bytes:
    """The ``AnyValue`` of ``value``: string (1), bool (2), int64 (3) or double (4)."""
    if isinstance(value, str):
        return _field(b"\x0a", value.encode())
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)
    return b"\x21" + _PACK_DOUBLE(value)


def key_value(key: str, value: AttributeValue) -> bytes:
    """One ``KeyValue`` message."""
    return _key(key) + _field(b"\x12", _any_value(value))


def attribute(key: str, value: AttributeValue) -> bytes:
    """One attribute of a span: its ``Span.attributes`` (9) field."""
    return _field(b"\x4a", key_value(key, value))


#: :func:`attribute` for the attributes whose values repeat (models, backends, routes, status
#: codes): encoded once each. ``typed``: ``True`` and ``1`` are different values here. Bounded:
#: a requested model is cut to 256 characters, so the entries hold about a megabyte at most.
repeated_attribute = functools.lru_cache(maxsize=4096, typed=True)(attribute)


def span(
    *,
    trace_id: int,
    span_id: int,
    parent_span_id: int | None,
    remote_parent: bool,
    name: str,
    kind: int,
    start_ns: int,
    end_ns: int,
    attributes: Iterable[bytes],
    error: str | None,
) -> bytes:
    """One ``Span`` message; ``attributes`` encoded by :func:`attribute`; ``error``: its status
    is ERROR with this message."""
    parts = [
        b"\x0a\x10" + trace_id.to_bytes(16, "big"),  # trace_id (1)
        b"\x12\x08" + span_id.to_bytes(8, "big"),  # span_id (2)
    ]
    if parent_span_id is not None:
        parts.append(b"\x22\x08" + parent_span_id.to_bytes(8, "big"))  # parent_span_id (4)
    parts.append(_field(b"\x2a", name.encode()))  # name (5)
    parts.append(b"\x30" + _SMALL[kind])  # kind (6)
    parts.append(b"\x39" + _PACK_U64(start_ns))  # start_time_unix_nano (7, fixed64)
    parts.append(b"\x41" + _PACK_U64(end_ns))  # end_time_unix_nano (8, fixed64)
    parts += attributes  # (9)
    if error is not None:
        parts.append(_field(b"\x7a", _field(b"\x12", error.encode()) + _STATUS_ERROR))  # (15)
    parts.append(_FLAGS_REMOTE_PARENT if remote_parent else _FLAGS)  # flags (16)
    return b"".join(parts)


def export_prefix(service_name: str, scope_name: str) -> tuple[bytes, bytes]:
    """The ``Resource`` (with ``service.name``) and the ``InstrumentationScope`` of every export,
    encoded once."""
    resource = _field(b"\x0a", key_value("service.name", service_name))  # attributes (1)
    scope = _field(b"\x0a", scope_name.encode())  # name (1)
    return resource, scope


def export_request(prefix: tuple[bytes, bytes], spans: Iterable[bytes]) -> bytes:
    """The ``ExportTraceServiceRequest`` of ``spans`` (each a ``Span`` message)."""
    resource, scope = prefix
    scope_spans = _field(b"\x0a", scope) + b"".join(_field(b"\x12", s) for s in spans)
    resource_spans = _field(b"\x0a", resource) + _field(b"\x12", scope_spans)
    return _field(b"\x0a", resource_spans)
