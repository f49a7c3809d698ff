"""Configuration: defaults, the example file, strict decoding and its key paths, rendering
(docs/configuration.md#configuration)."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from nexus_trio.config import (
    BackendConfig,
    BudgetConfig,
    Config,
    KeyConfig,
    ModelCapabilities,
    PriceConfig,
    RoutingPolicy,
    StateConfig,
    parse_config,
    render_config,
)
from tests.unit.config_texts import OLLAMA, at, backend_toml, config_error

EXAMPLE = Path(__file__).parents[2] / "etc" / "nexus.toml"


# --- defaults and the example file ---------------------------------------------------------


def test_defaults_match_spec() -> None:
    config = Config()
    server = config.server
    assert (server.host, server.port, server.reuse_port) == ("127.0.0.1", 8000, False)
    assert server.connect_timeout_seconds == 5
    assert server.attempt_timeout_seconds == 120
    assert server.request_timeout_seconds == 300
    assert server.first_token_timeout_seconds == 60
    assert server.stream_idle_timeout_seconds == 60
    assert server.max_stream_seconds == 0
    assert server.drain_timeout_seconds == 30
    assert server.drain_delay_seconds == 0
    assert server.keep_alive_timeout_seconds == 5
    assert server.max_request_body_bytes == 10 * 1024 * 1024
    assert server.max_response_body_bytes == 64 * 1024 * 1024
    assert server.max_in_flight_requests == 8192
    assert server.api_keys_env is None
    health = config.health_check
    assert (health.enabled, health.interval_seconds, health.timeout_seconds) == (True, 30, 5)
    assert (health.failure_threshold, health.recovery_threshold) == (3, 2)
    routing = config.routing
    assert (routing.strategy, routing.max_retries) == ("smart", 2)
    assert (routing.weights.priority, routing.weights.load, routing.weights.latency) == (50, 30, 20)
    assert (routing.aliases, routing.fallbacks, routing.policies) == ({}, {}, [])
    quality = config.quality
    assert quality.error_rate_threshold == 0.5
    assert quality.ttft_penalty_threshold_ms == 3000
    assert quality.metrics_interval_seconds == 30
    assert (quality.min_requests, quality.consecutive_failures) == (10, 5)
    assert quality.probe_interval_seconds == 30
    assert (config.queue.enabled, config.queue.max_size, config.queue.max_wait_seconds) == (
        True,
        100,
        30,
    )
    assert config.backends == []
    assert (config.logging.level, config.logging.format) == ("info", "text")


def test_backend_defaults() -> None:
    b = parse_config(OLLAMA).backends[0]
    assert (b.priority, b.zone, b.tier, b.api_key_env) == (50, None, 1, None)
    assert (b.forward_authorization, b.max_concurrent_requests) == (False, 0)
    assert (b.models, b.embedding_models, b.capabilities, b.tls_ca_file) == ([], [], {}, None)


def test_empty_document_is_the_defaults() -> None:
    assert parse_config("") == Config()
    assert parse_config(b"") == Config()


def test_config_is_frozen() -> None:
    with pytest.raises(AttributeError):
        Config().server.port = 1  # type: ignore[misc]


def test_example_file_parses_to_defaults() -> None:
    assert parse_config(EXAMPLE.read_bytes()) == Config()


def _field_names(struct_type: type[msgspec.Struct]) -> set[str]:
    names = set()
    for field in msgspec.structs.fields(struct_type):
        names.add(field.name)
        factory = field.default_factory
        if isinstance(factory, type) and issubclass(factory, msgspec.Struct):
            names |= _field_names(factory)
    return names


def test_example_file_shows_every_key() -> None:
    text = EXAMPLE.read_text()
    structs: list[type[msgspec.Struct]] = [
        Config,
        BackendConfig,
        ModelCapabilities,
        RoutingPolicy,
        PriceConfig,
        BudgetConfig,
        StateConfig,
        KeyConfig,
    ]
    keys = set().union(*map(_field_names, structs))
    missing = {key for key in keys if not re.search(rf"(?m)^#?\s*\[*([\w.]+\.)?{key}\b", text)}
    assert not missing


def test_example_file_examples_are_valid() -> None:
    uncommented = re.sub(r'(?m)^#(?=[\["a-z])', "", EXAMPLE.read_text())
    config = parse_config(uncommented)
    assert [b.name for b in config.backends] == ["local-ollama", "gpu-a", "groq", "anthropic"]
    assert config.backends[0].capabilities["llava:13b"].vision is True
    assert config.backends[2].location() == "cloud"
    anthropic = config.backends[3]
    assert (anthropic.location(), anthropic.privacy_zone()) == ("cloud", "open")
    assert anthropic.default_max_tokens == 4096
    assert anthropic.timeout_seconds == 60
    assert config.routing.aliases
    assert config.routing.fallbacks
    assert config.routing.policies
    assert config.server.api_keys_env is not None


def test_integer_seconds_are_accepted_as_floats() -> None:
    config = parse_config("[server]\nconnect_timeout_seconds = 2\n[queue]\nmax_wait_seconds = 1")
    assert config.server.connect_timeout_seconds == 2.0
    assert isinstance(config.server.connect_timeout_seconds, float)
    assert config.queue.max_wait_seconds == 1.0


# --- decoding errors name the key path -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("serverr = 1", "$.serverr"),
        ("[server]\nprot = 1", "$.server.prot"),
        (OLLAMA + backend_toml(zonee='"open"'), "$.backends[1].zonee"),
        (
            OLLAMA + '[backends.capabilities."m"]\nvisoin = true',
            "$.backends[0].capabilities[...].visoin",
        ),
    ],
)
def test_unknown_key_names_its_path(text: str, path: str) -> None:
    assert config_error(text) == f"Unknown key {at(path)}"


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ('[server]\nport = "8000"', "$.server.port"),
        ("[server]\nport = 65536", "$.server.port"),
        ("[server]\nconnect_timeout_seconds = 0", "$.server.connect_timeout_seconds"),
        ("[server]\nmax_stream_seconds = -1", "$.server.max_stream_seconds"),
        ("[server]\nmax_request_body_bytes = 0", "$.server.max_request_body_bytes"),
        ("[health_check]\nfailure_threshold = 0", "$.health_check.failure_threshold"),
        ('[routing]\nstrategy = "fastest"', "$.routing.strategy"),
        ("[routing]\nmax_retries = -1", "$.routing.max_retries"),
        ('[[routing.policies]]\nmodel_pattern = ""', "$.routing.policies[0].model_pattern"),
        (
            '[[routing.policies]]\nmodel_pattern = "*"\nmin_tier = 6',
            "$.routing.policies[0].min_tier",
        ),
        ("[queue]\nmax_size = -1", "$.queue.max_size"),
        (
            "[budget]\ndefault_reserved_output_tokens = 0",
            "$.budget.default_reserved_output_tokens",
        ),
        ('[logging]\nformat = "xml"', "$.logging.format"),
        (OLLAMA + backend_toml(tier="0"), "$.backends[1].tier"),
        (OLLAMA + backend_toml(kind="tgi"), "$.backends[1].type"),
        ("backends = 1", "$.backends"),
    ],
)
def test_wrong_type_or_range_names_its_path(text: str, path: str) -> None:
    assert config_error(text).endswith(at(path))


def test_missing_required_backend_key_names_it() -> None:
    message = config_error('[[backends]]\nname = "a"\nurl = "http://a"')
    assert "`type`" in message
    assert message.endswith(at("$.backends[0]"))


def test_toml_syntax_error_names_line_and_column() -> None:
    message = config_error("[server]\nport = = 8000\n")
    assert message.startswith("TOML syntax error")
    assert "line 2, column 8" in message


def test_toml_error_at_end_of_document_names_line_and_column() -> None:
    assert "line 2, column 10" in config_error('[server]\nhost = "x')


def test_invalid_utf8_is_a_config_error() -> None:
    assert "UTF-8" in config_error(b"# \xff\n")


def test_deeply_nested_toml_is_a_config_error() -> None:
    assert "nested too deeply" in config_error("a = " + "[" * 5000 + "]" * 5000)


@pytest.mark.parametrize("value", ["0", "1001", '"4"'])
def test_dashboards_per_key_out_of_range_is_rejected(value: str) -> None:
    message = config_error(f"[dashboard]\nmax_connections_per_key = {value}")
    assert message.startswith("Expected `int`")
    assert message.endswith(at("$.dashboard.max_connections_per_key"))
    assert parse_config("").dashboard.max_connections_per_key == 4


# --- check-config rendering ----------------------------------------------------------------


def test_render_config_never_shows_key_values() -> None:
    config = parse_config(
        '[server]\napi_keys_env = "INBOUND"\n'
        + backend_toml("gpu-a", api_key_env='"GROQ_KEY"')
        + backend_toml("gpu-b", url="http://b", api_key_env='"OTHER_KEY"')
    )
    env = {"GROQ_KEY": "sk-very-secret-1", "INBOUND": "client-secret-2,client-secret-3"}
    output = render_config(config, env)
    for secret in ("sk-very-secret-1", "client-secret-2", "client-secret-3"):
        assert secret not in output
    assert "backend 'gpu-a': key from $GROQ_KEY (set, value redacted)" in output
    assert "backend 'gpu-b': key from $OTHER_KEY (NOT SET)" in output
    assert "server: inbound API keys from $INBOUND (set, value redacted)" in output


def test_render_config_json_is_the_effective_config() -> None:
    config = parse_config(OLLAMA + 'zone = "OPEN"\n[logging]\nlevel = "DEBUG"')
    output = render_config(config, {})
    assert msgspec.json.decode(output, type=Config) == config
    assert '"zone": "open"' in output
