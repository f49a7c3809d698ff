"""Configuration: the rules across fields, and cloud backends' keys
(docs/configuration.md#configuration)."""

from __future__ import annotations

import re

import pytest

from nexus_trio.config import parse_config
from nexus_trio.errors import ConfigError
from tests.unit.config_texts import OLLAMA, at, backend_toml, backend_with_keys, config_error

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
    message = config_error(OLLAMA + backend_toml(url=url))
    assert "drop it" in message
    assert hint in message
    assert message.endswith(at("$.backends[1].url"))


@pytest.mark.parametrize(
    "url", ["ftp://gpu.lan", "gpu.lan:8000", "http://", "http://gpu.lan:port", "http://h/?a=1"]
)
def test_invalid_url_is_rejected(url: str) -> None:
    assert config_error(backend_toml(url=url)).endswith(at("$.backends[0].url"))


def test_url_keeps_its_prefix_without_trailing_slash() -> None:
    config = parse_config(backend_toml(url="https://api.groq.com/openai/"))
    assert config.backends[0].url == "https://api.groq.com/openai"


def test_duplicate_backend_names_are_rejected() -> None:
    message = config_error(
        backend_toml("a") + backend_toml("b") + backend_toml("a", url="http://other")
    )
    assert "duplicate backend name 'a'" in message
    assert message.endswith(at("$.backends[2].name"))


def test_forward_authorization_with_backend_key_is_rejected() -> None:
    text = backend_toml(forward_authorization="true", api_key_env='"KEY"')
    assert config_error(text).endswith(at("$.backends[0].forward_authorization"))


def test_forward_authorization_with_inbound_auth_is_rejected() -> None:
    text = '[server]\napi_keys_env = "KEYS"\n' + OLLAMA + backend_toml(forward_authorization="true")
    assert config_error(text).endswith(at("$.backends[1].forward_authorization"))


def test_forward_authorization_alone_is_allowed() -> None:
    assert (
        parse_config(backend_toml(forward_authorization="true")).backends[0].forward_authorization
    )


def test_alias_chain_of_three_hops_is_allowed() -> None:
    config = parse_config('[routing.aliases]\na = "b"\nb = "c"\nc = "d"')
    assert config.routing.aliases == {"a": "b", "b": "c", "c": "d"}


def test_alias_chain_of_four_hops_is_rejected() -> None:
    message = config_error('[routing.aliases]\na = "b"\nb = "c"\nc = "d"\nd = "e"')
    assert "a -> b -> c -> d -> e" in message
    assert message.endswith(at("$.routing.aliases.a"))


@pytest.mark.parametrize(
    ("aliases", "name"), [('x = "y"\na = "b"\nb = "a"', "a"), ('"m:1" = "m:1"', "m:1")]
)
def test_alias_cycle_is_rejected(aliases: str, name: str) -> None:
    message = config_error(f"[routing.aliases]\n{aliases}")
    assert "alias cycle" in message
    assert message.endswith(at(f"$.routing.aliases.{name}"))


@pytest.mark.parametrize("zone", ["open", "OPEN", "Open"])
def test_zone_is_case_insensitive(zone: str) -> None:
    assert parse_config(backend_toml(zone=f'"{zone}"')).backends[0].zone == "open"


def test_unknown_zone_is_rejected() -> None:
    assert config_error(backend_toml(zone='"public"')).endswith(at("$.backends[0].zone"))


def test_privacy_zone_and_location_defaults() -> None:
    local = parse_config(OLLAMA).backends[0]
    cloud = parse_config(backend_toml(url="https://api.openai.com", kind="openai"))
    assert (local.privacy_zone(), local.location()) == ("restricted", "local")
    assert (cloud.backends[0].privacy_zone(), cloud.backends[0].location()) == ("open", "cloud")
    pinned = parse_config(OLLAMA + 'zone = "Open"').backends[0]
    assert (pinned.privacy_zone(), pinned.location()) == ("open", "local")


@pytest.mark.parametrize("level", ["debug", "DEBUG", "Debug"])
def test_log_level_is_case_insensitive(level: str) -> None:
    assert parse_config(f'[logging]\nlevel = "{level}"').logging.level == "debug"


def test_unknown_log_level_is_rejected() -> None:
    assert config_error('[logging]\nlevel = "trace"').endswith(at("$.logging.level"))


def test_weights_summing_to_zero_are_rejected() -> None:
    message = config_error("[routing.weights]\npriority = 0\nload = 0\nlatency = 0")
    assert message.endswith(at("$.routing.weights"))


def test_negative_weight_is_rejected() -> None:
    assert config_error("[routing.weights]\nload = -1").endswith(at("$.routing.weights.load"))


def test_single_nonzero_weight_is_allowed() -> None:
    weights = parse_config("[routing.weights]\npriority = 0\nload = 0\nlatency = 1").routing.weights
    assert weights.latency == 1


@pytest.mark.parametrize("value", ["0", "1.5", "-0.1"])
def test_error_rate_threshold_out_of_range_is_rejected(value: str) -> None:
    message = config_error(f"[quality]\nerror_rate_threshold = {value}")
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
    assert config_error(f"[quality]\n{key} = {value}").endswith(at(f"$.quality.{key}"))


@pytest.mark.parametrize(
    "key",
    [
        "quality.metrics_interval_seconds",
        "quality.probe_interval_seconds",
        "health_check.interval_seconds",
    ],
)
@pytest.mark.parametrize("value", ["inf", "+inf"])
def test_an_infinite_loop_period_is_rejected(key: str, value: str) -> None:
    section, name = key.split(".")
    message = config_error(f"[{section}]\n{name} = {value}")
    assert message == f"Expected a finite number of seconds, got inf {at('$.' + key)}"


def test_ttft_penalty_can_be_disabled() -> None:
    assert (
        parse_config("[quality]\nttft_penalty_threshold_ms = 0").quality.ttft_penalty_threshold_ms
        == 0
    )


# --- cloud backends ------------------------------------------------------------------------


def test_anthropic_backend_defaults() -> None:
    (backend,) = parse_config(backend_with_keys('type = "anthropic"\napi_key_env = "K"')).backends
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
        parse_config(backend_with_keys(keys))


def test_responses_api_is_not_valid_on_an_anthropic_backend() -> None:
    text = (
        '[[backends]]\nname = "c"\ntype = "anthropic"\nurl = "https://api.anthropic.com"\n'
        'api_key_env = "K"\nresponses_api = true\n'
    )
    with pytest.raises(ConfigError, match="responses_api"):
        parse_config(text)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ('type = "ollama"\nnative_tools = ["web_search"]', "native_tools is only valid"),
        ('type = "openai"\nnative_fields = ["service_tier"]', "native_fields is only valid"),
        (
            'type = "openai"\nresponses_api = true\nnative_fields = ["mcp_servers"]',
            "'mcp_servers' is not one of service_tier, background",
        ),
        (
            'type = "anthropic"\napi_key_env = "K"\nnative_fields = ["background"]',
            "'background' is not one of mcp_servers, container",
        ),
    ],
)
def test_native_allow_lists_only_where_requests_pass_untranslated(keys: str, message: str) -> None:
    text = f'[[backends]]\nname = "c"\nurl = "https://api.example.com"\n{keys}\n'
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(text)
    allowed = (
        '[[backends]]\nname = "c"\ntype = "anthropic"\napi_key_env = "K"\n'
        'native_tools = ["web_search_20250305"]\nnative_fields = ["mcp_servers"]\n'
    )
    assert parse_config(allowed).backends[0].native_fields == ["mcp_servers"]


def test_merge_system_messages_is_not_valid_on_an_anthropic_backend() -> None:
    text = (
        '[[backends]]\nname = "c"\ntype = "anthropic"\napi_key_env = "K"\n'
        "merge_system_messages = true\n"
    )
    with pytest.raises(ConfigError, match="merge_system_messages is not valid"):
        parse_config(text)
