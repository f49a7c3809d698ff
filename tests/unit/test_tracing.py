"""``[tracing]`` values and the W3C trace context (docs/operations.md#tracing): bad values are
refused naming their key, a malformed ``traceparent`` is no trace context, sampling follows the
client's flag or ``sample_ratio``; the spans' OTLP encoding reads back with
``opentelemetry-proto``; the collector's headers come from the OpenTelemetry variables."""

from __future__ import annotations

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from nexus_trio.config import parse_config
from nexus_trio.errors import ConfigError
from nexus_trio.tracing import Sampler, otlp, parse_traceparent
from nexus_trio.tracing.context import traceparent
from nexus_trio.tracing.export import collector_headers
from nexus_trio.tracing.otlp import AttributeValue
from tests.system.otlp_receiver import attributes, decoded

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


def tracing(text: str) -> str:
    return f"[tracing]\n{text}\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('otlp_endpoint = "ftp://collector"', "must be an http:// or https:// URL with a host"),
        ('otlp_endpoint = "http://"', "must be an http:// or https:// URL with a host"),
        ('otlp_endpoint = "http://u:secret@collector:4318"', "must not hold a password or user"),
        ('otlp_endpoint = "http://secret@collector:4318"', "must not hold a password or user"),
        ('otlp_endpoint = "http://secret@"', "must be an http:// or https:// URL with a host"),
        ('otlp_endpoint = "http://collector:99999"', "has an invalid port"),
        ('otlp_endpoint = "http://collector:4318/?x=1"', "must not have a query"),
        ("sample_ratio = 1.5", "Expected `float` <= 1.0"),
        ("sample_ratio = -0.1", "Expected `float` >= 0.0"),
        ("sample_ratio = nan", "Expected `float` >= 0.0"),
        ('service_name = ""', "service_name must be 1 to 128 printable ASCII"),
        ('service_name = "a\\nb"', "service_name must be 1 to 128 printable ASCII"),
        ("max_queued_requests = 0", "Expected `int` >= 1"),
        ("otlp_endpoints = 'x'", "Unknown key"),
    ],
)
def test_bad_values_are_refused_naming_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(tracing(text))
    assert message in str(info.value)
    assert "$.tracing" in str(info.value)
    assert "secret" not in str(info.value)


def test_off_by_default_and_a_bare_endpoint_gets_the_traces_path() -> None:
    assert not parse_config("").tracing.enabled
    bare = parse_config(tracing('otlp_endpoint = "http://collector:4318/"')).tracing
    assert bare.otlp_endpoint == "http://collector:4318/v1/traces"
    assert bare.enabled
    full = parse_config(tracing('otlp_endpoint = "https://c.example/otlp/v1/traces"')).tracing
    assert full.otlp_endpoint == "https://c.example/otlp/v1/traces"


def header(value: str) -> list[tuple[bytes, bytes]]:
    return [(b"traceparent", value.encode())]


def test_a_valid_traceparent_is_read_with_its_flag() -> None:
    parent = parse_traceparent(header(f"00-{TRACE}-{SPAN}-01"))
    assert parent is not None
    assert (parent.trace_id, parent.span_id, parent.sampled) == (
        int(TRACE, 16),
        int(SPAN, 16),
        True,
    )
    unsampled = parse_traceparent(header(f"00-{TRACE}-{SPAN}-00"))
    assert unsampled is not None
    assert not unsampled.sampled
    # A later version may add fields after the four it shares with 00.
    assert parse_traceparent(header(f"01-{TRACE}-{SPAN}-01-more")) is not None


@pytest.mark.parametrize(
    "value",
    [
        f"00-{TRACE}-{SPAN}-01-extra",
        f"ff-{TRACE}-{SPAN}-01",
        f"00-{'0' * 32}-{SPAN}-01",
        f"00-{TRACE}-{'0' * 16}-01",
        f"00-{TRACE.upper()}-{SPAN}-01",
        f"00-{TRACE[:-1]}-{SPAN}-01",
        f"00_{TRACE}_{SPAN}_01",
        "",
    ],
)
def test_a_malformed_traceparent_is_none(value: str) -> None:
    assert parse_traceparent(header(value)) is None


def test_two_traceparents_are_none() -> None:
    value = f"00-{TRACE}-{SPAN}-01"
    assert parse_traceparent(header(value) + header(value)) is None


def test_the_header_sent_names_the_span() -> None:
    assert traceparent(int(TRACE, 16), int(SPAN, 16)) == f"00-{TRACE}-{SPAN}-01".encode()


def test_sampling_follows_the_client_else_the_ratio() -> None:
    never, always = Sampler(lambda: 0.0), Sampler(lambda: 1.0)
    sampled, unsampled = header(f"00-{TRACE}-{SPAN}-01"), header(f"00-{TRACE}-{SPAN}-00")
    continued = never.begin(sampled)
    assert continued is not None
    assert (continued.trace_id, continued.parent_span_id) == (int(TRACE, 16), int(SPAN, 16))
    assert always.begin(unsampled) is None
    assert never.begin([]) is None
    root = always.begin(header("garbage"))
    assert root is not None
    assert root.parent_span_id is None
    half = Sampler(lambda: 0.5)
    traced = sum(half.begin([]) is not None for _ in range(4000))
    assert 1700 < traced < 2300


def test_the_encoding_is_what_opentelemetry_proto_decodes() -> None:
    values: list[tuple[str, AttributeValue]] = [
        ("s", "naïve ✓"),
        ("long", "x" * 300),
        ("t", True),
        ("f", False),
        ("one", 1),
        ("big", 2**40 + 3),
        ("zero", 0),
        ("cost", 0.000125),
    ]
    encoded = otlp.span(
        trace_id=int(TRACE, 16),
        span_id=int(SPAN, 16),
        parent_span_id=7,
        remote_parent=True,
        name="chat m" * 30,
        kind=otlp.CLIENT,
        start_ns=1_700_000_000_123_456_789,
        end_ns=1_700_000_001_000_000_000,
        attributes=[otlp.attribute(key, value) for key, value in values]
        + [otlp.repeated_attribute("t1", True), otlp.repeated_attribute("t1", 1)],
        error="backend_timeout",
    )
    body = otlp.export_request(otlp.export_prefix("svc", "nexus_trio"), [encoded, encoded])
    [(service, span), (_, again)] = decoded(body)
    assert service == "svc"
    assert span == again
    assert (span.trace_id.hex(), span.span_id.hex()) == (TRACE, SPAN)
    assert span.parent_span_id == (7).to_bytes(8, "big")
    assert span.flags == 0x301
    assert (span.name, span.kind) == ("chat m" * 30, Span.SPAN_KIND_CLIENT)
    assert (span.start_time_unix_nano, span.end_time_unix_nano) == (
        1_700_000_000_123_456_789,
        1_700_000_001_000_000_000,
    )
    assert attributes(span) == {**dict(values), "t1": 1}
    assert [a.value.WhichOneof("value") for a in span.attributes][-2:] == [
        "bool_value",
        "int_value",
    ]
    assert (span.status.code, span.status.message) == (
        Status.STATUS_CODE_ERROR,
        "backend_timeout",
    )


def test_a_root_span_without_error_has_no_parent_and_no_status() -> None:
    encoded = otlp.span(
        trace_id=1,
        span_id=2,
        parent_span_id=None,
        remote_parent=False,
        name="",
        kind=otlp.SERVER,
        start_ns=0,
        end_ns=1,
        attributes=[],
        error=None,
    )
    [(_, span)] = decoded(otlp.export_request(otlp.export_prefix("svc", "s"), [encoded]))
    assert (span.parent_span_id, span.flags, span.kind) == (b"", 0x101, Span.SPAN_KIND_SERVER)
    assert span.status.code == Status.STATUS_CODE_UNSET


def test_the_collector_headers_come_from_the_otel_variables() -> None:
    assert collector_headers({}) == {}
    assert collector_headers(
        {"OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Basic%20abc, x-tenant = t1"}
    ) == {"authorization": "Basic abc", "x-tenant": "t1"}
    both = {
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "a=1",
        "OTEL_EXPORTER_OTLP_HEADERS": "b=2",
    }
    assert collector_headers(both) == {"a": "1"}


@pytest.mark.parametrize("value", ["no-equals", "bad key=1", "a=line%0Abreak", "=x"])
def test_malformed_collector_headers_are_refused_without_their_value(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        collector_headers({"OTEL_EXPORTER_OTLP_TRACES_HEADERS": value})
    assert "$OTEL_EXPORTER_OTLP_TRACES_HEADERS" in str(info.value)
    assert value not in str(info.value)
