"""Property tests: bad input of any shape gets one of our errors, never a crash
(docs/api.md#http-api, docs/configuration.md#configuration)."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus_trio import errors
from nexus_trio.api.analysis import requirements_of
from nexus_trio.api.bodies import RouteKind, decode_view, rewritten
from nexus_trio.config import Config, parse_config

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
#: Objects that look like requests: the known keys with values of any type, plus extras.
REQUEST_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "model": JSON_VALUES | st.text(min_size=1, max_size=10),
        "stream": JSON_VALUES,
        "messages": JSON_VALUES
        | st.lists(
            st.fixed_dictionaries(
                {}, optional={"role": st.text(max_size=5), "content": JSON_VALUES}
            ),
            max_size=3,
        ),
        "prompt": JSON_VALUES,
        "input": JSON_VALUES,
        "tools": JSON_VALUES,
        "response_format": JSON_VALUES,
    },
).flatmap(
    lambda known: st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=3).map(
        lambda extra: {**extra, **known}
    )
)

FUZZ = settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)


def _decode_or_api_error(kind: RouteKind, body: bytes) -> None:
    rejected: errors.APIError | None = None
    try:
        view = decode_view(kind, body)
    except (errors.InvalidJSON, errors.InvalidValue, errors.DuplicateKey) as exc:
        rejected = exc
    if rejected is not None:
        assert rejected.status == 400
        assert rejected.message
        return
    # a body that passed validation can be routed and re-encoded losslessly
    requirements_of(view)
    decoded = msgspec.json.decode(rewritten(body, model="other", include_usage=False))
    original = msgspec.json.decode(body)
    assert decoded == {**original, "model": "other"}


@FUZZ
@given(kind=st.sampled_from(list(RouteKind)), body=st.binary(max_size=200))
def test_view_decoder_never_crashes_on_bytes(kind: RouteKind, body: bytes) -> None:
    _decode_or_api_error(kind, body)


@FUZZ
@given(kind=st.sampled_from(list(RouteKind)), payload=REQUEST_LIKE)
def test_view_decoder_never_crashes_on_request_like_json(
    kind: RouteKind, payload: dict[str, Any]
) -> None:
    _decode_or_api_error(kind, msgspec.json.encode(payload))


_PATH_OR_POSITION = re.compile(r"\$[.\[]|\$`|line \d+|config")


def _assert_one_line_with_location(error: errors.ConfigError) -> None:
    message = str(error)
    assert "\n" not in message
    assert _PATH_OR_POSITION.search(message), message


def _parse_or_config_error(text: str) -> None:
    rejected: errors.ConfigError | None = None
    try:
        parse_config(text)
    except errors.ConfigError as exc:
        rejected = exc
    if rejected is not None:
        _assert_one_line_with_location(rejected)


@FUZZ
@given(text=st.text(max_size=200))
def test_config_loader_never_crashes_on_text(text: str) -> None:
    _parse_or_config_error(text)


TOML_VALUES = st.one_of(
    st.integers(-(2**40), 2**40).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.booleans().map(lambda b: str(b).lower()),
    st.text(alphabet=st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=12).map(
        lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    ),
    st.just("[]"),
    st.just('["a", 1]'),
)
SECTIONS = st.sampled_from(
    ["server", "health_check", "routing", "routing.weights", "quality", "queue", "logging"]
)
KEYS = st.sampled_from(
    [
        "port",
        "host",
        "reuse_port",
        "connect_timeout_seconds",
        "drain_timeout_seconds",
        "max_request_body_bytes",
        "interval_seconds",
        "failure_threshold",
        "strategy",
        "max_retries",
        "priority",
        "load",
        "latency",
        "error_rate_threshold",
        "min_requests",
        "probe_interval_seconds",
        "max_size",
        "level",
        "format",
        "enabled",
        "unknown_key",
    ]
)


@FUZZ
@given(
    entries=st.lists(st.tuples(SECTIONS, KEYS, TOML_VALUES), max_size=6),
    backend=st.dictionaries(
        st.sampled_from(["name", "url", "type", "priority", "tier", "zone", "models", "x"]),
        TOML_VALUES,
        max_size=5,
    ),
)
def test_config_loader_gives_a_key_path_for_every_invalid_config(
    entries: list[tuple[str, str, str]], backend: dict[str, str]
) -> None:
    sections: dict[str, dict[str, str]] = {}
    for section, key, value in entries:
        sections.setdefault(section, {})[key] = value
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {value}" for key, value in values.items()]
    if backend:
        lines.append("[[backends]]")
        lines += [f"{key} = {value}" for key, value in backend.items()]
    text = "\n".join(lines) + "\n"
    rejected: errors.ConfigError | None = None
    try:
        config = parse_config(text)
    except errors.ConfigError as exc:
        rejected = exc
    if rejected is not None:
        _assert_one_line_with_location(rejected)
    else:
        assert isinstance(config, Config)
