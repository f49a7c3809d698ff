"""Configuration: defaults, strict decoding, cross-field rules, discovery, overrides
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
    Overrides,
    PriceConfig,
    RoutingPolicy,
    StateConfig,
    load_config,
    parse_config,
    render_config,
    resolve_config_path,
)
from nexus_trio.errors import ConfigError

EXAMPLE = Path(__file__).parents[2] / "etc" / "nexus.toml"

OLLAMA = """
[[backends]]
name = "local"
url = "http://127.0.0.1:11434"
type = "ollama"
"""


def backend(
    name: str = "gpu", url: str = "http://gpu.lan:8000", kind: str = "vllm", **extra: str
) -> str:
    lines = [f'name = "{name}"', f'url = "{url}"', f'type = "{kind}"']
    lines += [f"{key} = {value}" for key, value in extra.items()]
    return "\n[[backends]]\n" + "\n".join(lines) + "\n"


def error_of(text: str | bytes) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    message = str(info.value)
    assert "\n" not in message
    return message


def at(path: str) -> str:
    return f"- at `{path}`"


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
        (OLLAMA + backend(zonee='"open"'), "$.backends[1].zonee"),
        (
            OLLAMA + '[backends.capabilities."m"]\nvisoin = true',
            "$.backends[0].capabilities[...].visoin",
        ),
    ],
)
def test_unknown_key_names_its_path(text: str, path: str) -> None:
    assert error_of(text) == f"Unknown key {at(path)}"


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
        (OLLAMA + backend(tier="0"), "$.backends[1].tier"),
        (OLLAMA + backend(kind="tgi"), "$.backends[1].type"),
        ("backends = 1", "$.backends"),
    ],
)
def test_wrong_type_or_range_names_its_path(text: str, path: str) -> None:
    assert error_of(text).endswith(at(path))


def test_missing_required_backend_key_names_it() -> None:
    message = error_of('[[backends]]\nname = "a"\nurl = "http://a"')
    assert "`type`" in message
    assert message.endswith(at("$.backends[0]"))


def test_toml_syntax_error_names_line_and_column() -> None:
    message = error_of("[server]\nport = = 8000\n")
    assert message.startswith("TOML syntax error")
    assert "line 2, column 8" in message


def test_toml_error_at_end_of_document_names_line_and_column() -> None:
    assert "line 2, column 10" in error_of('[server]\nhost = "x')


def test_invalid_utf8_is_a_config_error() -> None:
    assert "UTF-8" in error_of(b"# \xff\n")


def test_deeply_nested_toml_is_a_config_error() -> None:
    assert "nested too deeply" in error_of("a = " + "[" * 5000 + "]" * 5000)


@pytest.mark.parametrize("value", ["0", "1001", '"4"'])
def test_dashboards_per_key_out_of_range_is_rejected(value: str) -> None:
    message = error_of(f"[dashboard]\nmax_connections_per_key = {value}")
    assert message.startswith("Expected `int`")
    assert message.endswith(at("$.dashboard.max_connections_per_key"))
    assert parse_config("").dashboard.max_connections_per_key == 4


# --- cross-field rules ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("http://gpu.lan:8000/v1", "'http://gpu.lan:8000'"),
        ("http://gpu.lan:8000/v1/", "'http://gpu.lan:8000'"),
        ("https://api.groq.com/openai/v1", "'https://api.groq.com/openai'"),
    ],
)
def test_url_ending_in_v1_is_rejected_with_a_hint(url: str, hint: str) -> None:
    message = error_of(OLLAMA + backend(url=url))
    assert "drop it" in message
    assert hint in message
    assert message.endswith(at("$.backends[1].url"))


@pytest.mark.parametrize(
    "url", ["ftp://gpu.lan", "gpu.lan:8000", "http://", "http://gpu.lan:port", "http://h/?a=1"]
)
def test_invalid_url_is_rejected(url: str) -> None:
    assert error_of(backend(url=url)).endswith(at("$.backends[0].url"))


def test_url_keeps_its_prefix_without_trailing_slash() -> None:
    config = parse_config(backend(url="https://api.groq.com/openai/"))
    assert config.backends[0].url == "https://api.groq.com/openai"


def test_duplicate_backend_names_are_rejected() -> None:
    message = error_of(backend("a") + backend("b") + backend("a", url="http://other"))
    assert "duplicate backend name 'a'" in message
    assert message.endswith(at("$.backends[2].name"))


def test_forward_authorization_with_backend_key_is_rejected() -> None:
    text = backend(forward_authorization="true", api_key_env='"KEY"')
    assert error_of(text).endswith(at("$.backends[0].forward_authorization"))


def test_forward_authorization_with_inbound_auth_is_rejected() -> None:
    text = '[server]\napi_keys_env = "KEYS"\n' + OLLAMA + backend(forward_authorization="true")
    assert error_of(text).endswith(at("$.backends[1].forward_authorization"))


def test_forward_authorization_alone_is_allowed() -> None:
    assert parse_config(backend(forward_authorization="true")).backends[0].forward_authorization


def test_alias_chain_of_three_hops_is_allowed() -> None:
    config = parse_config('[routing.aliases]\na = "b"\nb = "c"\nc = "d"')
    assert config.routing.aliases == {"a": "b", "b": "c", "c": "d"}


def test_alias_chain_of_four_hops_is_rejected() -> None:
    message = error_of('[routing.aliases]\na = "b"\nb = "c"\nc = "d"\nd = "e"')
    assert "a -> b -> c -> d -> e" in message
    assert message.endswith(at("$.routing.aliases.a"))


@pytest.mark.parametrize(
    ("aliases", "name"), [('x = "y"\na = "b"\nb = "a"', "a"), ('"m:1" = "m:1"', "m:1")]
)
def test_alias_cycle_is_rejected(aliases: str, name: str) -> None:
    message = error_of(f"[routing.aliases]\n{aliases}")
    assert "alias cycle" in message
    assert message.endswith(at(f"$.routing.aliases.{name}"))


@pytest.mark.parametrize("zone", ["open", "OPEN", "Open"])
def test_zone_is_case_insensitive(zone: str) -> None:
    assert parse_config(backend(zone=f'"{zone}"')).backends[0].zone == "open"


def test_unknown_zone_is_rejected() -> None:
    assert error_of(backend(zone='"public"')).endswith(at("$.backends[0].zone"))


def test_privacy_zone_and_location_defaults() -> None:
    local = parse_config(OLLAMA).backends[0]
    cloud = parse_config(backend(url="https://api.openai.com", kind="openai"))
    assert (local.privacy_zone(), local.location()) == ("restricted", "local")
    assert (cloud.backends[0].privacy_zone(), cloud.backends[0].location()) == ("open", "cloud")
    pinned = parse_config(OLLAMA + 'zone = "Open"').backends[0]
    assert (pinned.privacy_zone(), pinned.location()) == ("open", "local")


@pytest.mark.parametrize("level", ["debug", "DEBUG", "Debug"])
def test_log_level_is_case_insensitive(level: str) -> None:
    assert parse_config(f'[logging]\nlevel = "{level}"').logging.level == "debug"


def test_unknown_log_level_is_rejected() -> None:
    assert error_of('[logging]\nlevel = "trace"').endswith(at("$.logging.level"))


def test_weights_summing_to_zero_are_rejected() -> None:
    message = error_of("[routing.weights]\npriority = 0\nload = 0\nlatency = 0")
    assert message.endswith(at("$.routing.weights"))


def test_negative_weight_is_rejected() -> None:
    assert error_of("[routing.weights]\nload = -1").endswith(at("$.routing.weights.load"))


def test_single_nonzero_weight_is_allowed() -> None:
    weights = parse_config("[routing.weights]\npriority = 0\nload = 0\nlatency = 1").routing.weights
    assert weights.latency == 1


@pytest.mark.parametrize("value", ["0", "1.5", "-0.1"])
def test_error_rate_threshold_out_of_range_is_rejected(value: str) -> None:
    message = error_of(f"[quality]\nerror_rate_threshold = {value}")
    assert message.endswith(at("$.quality.error_rate_threshold"))


def test_error_rate_threshold_of_one_is_allowed() -> None:
    assert parse_config("[quality]\nerror_rate_threshold = 1.0").quality.error_rate_threshold == 1


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("ttft_penalty_threshold_ms", "-1"),
        ("metrics_interval_seconds", "0"),
        ("min_requests", "0"),
        ("consecutive_failures", "0"),
        ("probe_interval_seconds", "0"),
    ],
)
def test_quality_out_of_range_is_rejected(key: str, value: str) -> None:
    assert error_of(f"[quality]\n{key} = {value}").endswith(at(f"$.quality.{key}"))


def test_ttft_penalty_can_be_disabled() -> None:
    assert (
        parse_config("[quality]\nttft_penalty_threshold_ms = 0").quality.ttft_penalty_threshold_ms
        == 0
    )


# --- discovery, overrides, precedence ------------------------------------------------------


def test_discovery_prefers_cli_then_env_then_default(tmp_path: Path) -> None:
    default = tmp_path / "default.toml"
    env = {"NEXUS_CONFIG": str(tmp_path / "env.toml")}
    assert resolve_config_path(None, {}, default) is None
    default.write_text("")
    assert resolve_config_path(None, {}, default) == default
    assert resolve_config_path(None, {"NEXUS_CONFIG": ""}, default) == default
    assert resolve_config_path(None, env, default) == tmp_path / "env.toml"
    assert resolve_config_path(str(tmp_path / "cli.toml"), env, default) == tmp_path / "cli.toml"


def test_missing_named_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    assert resolve_config_path(str(missing), {}, tmp_path / "default.toml") == missing
    with pytest.raises(ConfigError, match=r"^config file not found: .*nope\.toml$"):
        load_config(missing, env={}, overrides=Overrides())


def test_unreadable_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path, env={}, overrides=Overrides())


def test_no_file_gives_the_defaults() -> None:
    assert load_config(None, env={}, overrides=Overrides()) == Config()


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nexus.toml"
    path.write_text("[server]\nport = -1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={}, overrides=Overrides())
    assert str(info.value).startswith(f"{path}: ")
    assert str(info.value).endswith(at("$.server.port"))


def test_precedence_cli_over_env_over_file_over_default(tmp_path: Path) -> None:
    path = tmp_path / "nexus.toml"
    path.write_text('[server]\nhost = "10.0.0.1"\nport = 9001\n[logging]\nlevel = "warning"\n')
    env = {"NEXUS_PORT": "9002", "NEXUS_LOG_LEVEL": "ERROR", "NEXUS_LOG_FORMAT": "json"}

    from_file = load_config(path, env={}, overrides=Overrides())
    assert (from_file.server.host, from_file.server.port) == ("10.0.0.1", 9001)
    assert from_file.logging == parse_config('[logging]\nlevel = "warning"').logging

    from_env = load_config(path, env=env, overrides=Overrides())
    assert (from_env.server.host, from_env.server.port) == ("10.0.0.1", 9002)
    assert (from_env.logging.level, from_env.logging.format) == ("error", "json")

    cli = Overrides(host="0.0.0.0", port=9003, log_level="Debug")
    from_cli = load_config(path, env={**env, "NEXUS_HOST": "10.0.0.2"}, overrides=cli)
    assert (from_cli.server.host, from_cli.server.port) == ("0.0.0.0", 9003)
    assert (from_cli.logging.level, from_cli.logging.format) == ("debug", "json")


def test_empty_environment_override_counts_as_unset() -> None:
    assert load_config(None, env={"NEXUS_PORT": ""}, overrides=Overrides()) == Config()


@pytest.mark.parametrize(
    ("env", "overrides", "source"),
    [
        ({"NEXUS_PORT": "http"}, Overrides(), "NEXUS_PORT"),
        ({"NEXUS_PORT": "70000"}, Overrides(), "NEXUS_PORT"),
        ({"NEXUS_LOG_LEVEL": "trace"}, Overrides(), "NEXUS_LOG_LEVEL"),
        ({"NEXUS_LOG_FORMAT": "xml"}, Overrides(), "NEXUS_LOG_FORMAT"),
        ({}, Overrides(port=-1), "--port"),
        ({}, Overrides(log_level="verbose"), "--log-level"),
        ({}, Overrides(host=""), "--host"),
    ],
)
def test_invalid_override_names_its_source(
    env: dict[str, str], overrides: Overrides, source: str
) -> None:
    with pytest.raises(ConfigError, match=f"^{re.escape(source)}: invalid value"):
        load_config(None, env=env, overrides=overrides)


# --- check-config rendering ----------------------------------------------------------------


def test_render_config_never_shows_key_values() -> None:
    config = parse_config(
        '[server]\napi_keys_env = "INBOUND"\n'
        + backend("gpu-a", api_key_env='"GROQ_KEY"')
        + backend("gpu-b", url="http://b", api_key_env='"OTHER_KEY"')
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


# --- cloud backends ------------------------------------------------------------------------


def _backend(keys: str) -> str:
    return f'[[backends]]\nname = "c"\n{keys}\n'


def test_anthropic_backend_defaults() -> None:
    (backend,) = parse_config(_backend('type = "anthropic"\napi_key_env = "K"')).backends
    assert backend.url == "https://api.anthropic.com"
    assert (backend.location(), backend.privacy_zone()) == ("cloud", "open")
    assert backend.anthropic_version is None  # the dialect sends 2023-06-01
    assert backend.timeout_seconds is None


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ('type = "anthropic"', "$.backends[0].api_key_env"),
        ('type = "vllm"', "url is required for type 'vllm'"),
        (
            'type = "openai"\nurl = "https://x.test"\nanthropic_version = "2023-06-01"',
            "anthropic_version is only valid on type 'anthropic'",
        ),
        (
            'type = "vllm"\nurl = "http://h"\ndefault_max_tokens = 10',
            "default_max_tokens is only valid on type 'anthropic'",
        ),
        ('type = "anthropic"\napi_key_env = "K"\ndefault_max_tokens = 0', "default_max_tokens"),
        ('type = "vllm"\nurl = "http://h"\ntimeout_seconds = 0', "timeout_seconds"),
        ('type = "anthropic"\napi_key_env = "K"\nurl = "https://api.anthropic.com/v1"', "/v1"),
    ],
)
def test_cloud_backend_keys_are_checked(keys: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(_backend(keys))
