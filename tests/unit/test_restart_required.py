"""Which reloaded settings need a restart (docs/configuration.md#reload)."""

from __future__ import annotations

from nexus_trio.config import parse_config
from nexus_trio.runtime.supervisor import restart_required

BASE = """
[server]
port = 8000
[[backends]]
name = "cloud"
url = "https://api.example.test"
type = "openai"
"""


def test_nothing_changed_needs_no_restart() -> None:
    assert restart_required(parse_config(BASE), parse_config(BASE)) == []


def test_listener_health_mode_and_ca_file_need_a_restart() -> None:
    changed = BASE.replace("port = 8000", 'port = 9000\nhost = "0.0.0.0"')
    changed += '\ntls_ca_file = "/etc/ssl/private-ca.pem"\n[health_check]\nenabled = false\n'
    changed += '[logging]\nformat = "json"\n'
    assert restart_required(parse_config(BASE), parse_config(changed)) == [
        "server.host",
        "server.port",
        "logging.format",
        "health_check.enabled",
        "backends.cloud.tls_ca_file",
    ]


def test_the_client_connection_timeouts_need_a_restart() -> None:
    changed = BASE.replace(
        "port = 8000",
        "port = 8000\nkeep_alive_timeout_seconds = 9\nclient_stall_timeout_seconds = 30",
    )
    assert restart_required(parse_config(BASE), parse_config(changed)) == [
        "server.keep_alive_timeout_seconds",
        "server.client_stall_timeout_seconds",
    ]


def test_thresholds_and_backends_apply_live() -> None:
    changed = BASE + "[quality]\nerror_rate_threshold = 0.2\n"
    changed += '[[backends]]\nname = "new"\nurl = "http://127.0.0.1:1"\ntype = "vllm"\n'
    assert restart_required(parse_config(BASE), parse_config(changed)) == []


def test_dashboard_settings_need_a_restart() -> None:
    changed = BASE + "[dashboard]\nenabled = false\nrequest_log_size = 50\n"
    assert restart_required(parse_config(BASE), parse_config(changed)) == [
        "dashboard.enabled",
        "dashboard.request_log_size",
    ]


def test_the_shared_store_needs_a_restart_and_its_password_is_not_named() -> None:
    fleet = BASE + '[state]\nstore = "redis://:first-secret@10.0.0.5:6379/0"\n'
    moved = fleet.replace("first-secret@10.0.0.5", "second-secret@10.0.0.6")
    faster = fleet + "sync_interval_seconds = 0.1\n"
    assert restart_required(parse_config(BASE), parse_config(fleet)) == ["state.store"]
    assert restart_required(parse_config(fleet), parse_config(moved)) == ["state.store"]
    assert restart_required(parse_config(fleet), parse_config(faster)) == [
        "state.sync_interval_seconds"
    ]


def test_tracing_needs_a_restart_but_for_its_sample_ratio() -> None:
    traced = BASE + '[tracing]\notlp_endpoint = "http://127.0.0.1:4318"\n'
    sampled = traced + "sample_ratio = 0.25\n"
    renamed = traced + 'service_name = "edge"\nmax_queued_requests = 10\n'
    assert restart_required(parse_config(BASE), parse_config(traced)) == ["tracing.otlp_endpoint"]
    assert restart_required(parse_config(traced), parse_config(sampled)) == []
    assert restart_required(parse_config(traced), parse_config(renamed)) == [
        "tracing.service_name",
        "tracing.max_queued_requests",
    ]
