"""The command line: exit codes and one-line errors, never a traceback
(docs/cli.md#command-line)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.system.gateway_process import GatewayFactory

pytestmark = pytest.mark.system


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nexus_trio", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )


def test_check_config_prints_effective_config(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text(
        '[[backends]]\nname = "cloud"\nurl = "https://api.example.test"\ntype = "openai"\n'
        'api_key_env = "CLOUD_KEY"\n'
    )
    result = run("check-config", str(path), env={"CLOUD_KEY": "sk-secret-value", "PATH": ""})
    assert result.returncode == 0, result.stderr
    assert '"name": "cloud"' in result.stdout
    assert "sk-secret-value" not in result.stdout
    assert "value redacted" in result.stdout


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[server]\nport = "eighty"\n', "$.server.port"),
        ('[[backends]]\nname = "a"\nurl = "http://h:1/v1"\ntype = "vllm"\n', "$.backends[0].url"),
        ("[server\nport = 1\n", "line 1"),
    ],
)
def test_check_config_reports_first_error(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = run("check-config", str(path))
    assert result.returncode == 1
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


KEYS_CONFIG = """
[server]
host = "127.0.0.1"
port = 0
api_keys_env = "ADMIN_KEYS"
[[keys]]
name = "tenant"
key_env = "TENANT_KEY"
[[backends]]
name = "local"
url = "http://127.0.0.1:9"
type = "generic"
"""


def _env(**variables: str) -> dict[str, str]:
    """This process's environment without ``ADMIN_KEYS``, ``TENANT_KEY`` and the ``NEXUS_*``
    overrides, plus ``variables``."""
    kept = {
        name: value
        for name, value in os.environ.items()
        if name not in ("ADMIN_KEYS", "TENANT_KEY") and not name.startswith("NEXUS_")
    }
    return {**kept, **variables}


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"TENANT_KEY": "t"}, "$.server.api_keys_env: $ADMIN_KEYS holds no key"),
        ({"ADMIN_KEYS": " , ", "TENANT_KEY": "t"}, "$.server.api_keys_env: $ADMIN_KEYS holds no"),
        ({"ADMIN_KEYS": "a"}, "$.keys[0].key_env: $TENANT_KEY holds no key"),
        ({"ADMIN_KEYS": "a", "TENANT_KEY": "t", "NEXUS_PORT": "eighty"}, "NEXUS_PORT"),
    ],
    ids=["api-keys-unset", "api-keys-blank", "key-env-unset", "env-override"],
)
def test_check_config_refuses_what_serve_refuses(
    tmp_path: Path, variables: dict[str, str], expected: str
) -> None:
    path = tmp_path / "keys.toml"
    path.write_text(KEYS_CONFIG)
    checked = run("check-config", str(path), env=_env(**variables))
    served = run("serve", "--config", str(path), env=_env(**variables))
    assert (checked.returncode, served.returncode) == (1, 1)
    verdict = checked.stderr.strip()
    assert verdict.startswith("nexus-trio: configuration error: ")
    assert expected in verdict
    assert served.stderr.strip().splitlines()[-1] == verdict
    assert checked.stdout == ""


def test_check_config_refuses_malformed_collector_headers_as_serve_does(tmp_path: Path) -> None:
    path = tmp_path / "traced.toml"
    path.write_text(
        '[tracing]\notlp_endpoint = "http://127.0.0.1:9"\n'
        '[[backends]]\nname = "local"\nurl = "http://127.0.0.1:9"\ntype = "generic"\n'
    )
    env = _env(OTEL_EXPORTER_OTLP_TRACES_HEADERS="authorization")
    checked = run("check-config", str(path), env=env)
    served = run("serve", "--config", str(path), env=env)
    assert (checked.returncode, served.returncode) == (1, 1)
    verdict = checked.stderr.strip()
    assert "OTEL_EXPORTER_OTLP_TRACES_HEADERS" in verdict
    assert served.stderr.strip().splitlines()[-1] == verdict


def test_check_config_with_env_files_judges_their_variables_alone(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    path.write_text(KEYS_CONFIG)
    admin = tmp_path / "admin.env"
    admin.write_text("# the unit's keys\nADMIN_KEYS = 'a1,a2'\n; TENANT_KEY=commented out\n")
    tenant = tmp_path / "tenant.env"
    tenant.write_text('TENANT_KEY="t # not a comment"\r\nexport OTHER=1\n')
    # the command's own environment has both keys; the unit's files alone decide
    own = _env(ADMIN_KEYS="a", TENANT_KEY="t")
    alone = run("check-config", "--env-file", str(admin), str(path), env=own)
    assert alone.returncode == 1
    assert alone.stderr.strip() == (
        "nexus-trio: configuration error: $.keys[0].key_env: $TENANT_KEY holds no key"
    )
    both = run(
        "check-config", "--env-file", str(admin), "--env-file", str(tenant), str(path), env=own
    )
    assert both.returncode == 0, both.stderr
    assert "key 'tenant': from $TENANT_KEY (set, value redacted)" in both.stdout
    assert both.stderr.strip() == (
        f"nexus-trio: warning: {tenant}: 'export OTHER' is not a variable name; systemd ignores it"
    )
    missing = run("check-config", "--env-file", str(tmp_path / "absent.env"), str(path))
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        f"nexus-trio: configuration error: cannot read env file {tmp_path / 'absent.env'}: "
        "No such file or directory"
    )


CLOUD_BACKEND = """
[health_check]
enabled = false
[[backends]]
name = "cloud"
url = "http://127.0.0.1:9"
type = "openai"
api_key_env = "CLOUD_KEY"
models = ["m"]
"""
NO_BACKENDS_WARNING = (
    "nexus-trio: warning: no backends are configured: every model request is answered 404 "
    "model_not_found"
)
UNSET_KEY_WARNING = (
    "backend 'cloud': $CLOUD_KEY is not set, so its requests and health probes go without a key"
)


@pytest.mark.parametrize(
    ("text", "variables", "warnings"),
    [
        ("[server]\nport = 8080\n", {}, [NO_BACKENDS_WARNING]),
        (CLOUD_BACKEND, {}, [f"nexus-trio: warning: {UNSET_KEY_WARNING}"]),
        (CLOUD_BACKEND, {"CLOUD_KEY": "  "}, [f"nexus-trio: warning: {UNSET_KEY_WARNING}"]),
        (CLOUD_BACKEND, {"CLOUD_KEY": "sk-1"}, []),
    ],
    ids=["no-backends", "key-unset", "key-blank", "key-set"],
)
def test_check_config_warns_of_no_backends_and_of_a_backend_key_unset(
    tmp_path: Path, text: str, variables: dict[str, str], warnings: list[str]
) -> None:
    path = tmp_path / "nexus.toml"
    path.write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "CLOUD_KEY"}
    result = run("check-config", str(path), env={**env, **variables})
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == warnings


async def test_serve_logs_a_backend_key_unset_at_start_up(start_gateway: GatewayFactory) -> None:
    assert "CLOUD_KEY" not in os.environ
    gateway = await start_gateway(f'[server]\nhost = "127.0.0.1"\nport = 0\n{CLOUD_BACKEND}')
    warnings = [line for line in gateway.lines if " WARNING " in line and "$CLOUD_KEY" in line]
    assert [line.split(" WARNING ", 1)[1] for line in warnings] == [
        f"nexus_trio.cli: {UNSET_KEY_WARNING}"
    ]


def test_serve_with_invalid_config_exits_1_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[server]\nprot = 1\n")
    result = run("serve", "--config", str(path))
    assert result.returncode == 1
    assert "$.server.prot" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_with_missing_config_file_exits_1(tmp_path: Path) -> None:
    result = run("serve", "--config", str(tmp_path / "absent.toml"))
    assert result.returncode == 1
    assert "not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_on_a_busy_port_exits_1_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        path = tmp_path / "ok.toml"
        path.write_text(f'[server]\nhost = "127.0.0.1"\nport = {port}\n')
        result = run("serve", "--config", str(path))
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_usage_errors_exit_2() -> None:
    assert run("no-such-command").returncode == 2
    assert run("serve", "--port", "not-a-number").returncode == 2


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("nexus-trio ")


def test_simulate_serves_embedding_models_named_anything(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    simulator = subprocess.Popen(
        [
            *(sys.executable, "-m", "nexus_trio", "simulate", "--port", str(port)),
            *("--model", "chat", "--embedding-model", "vec"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert simulator.stdout is not None
        assert "listening on" in simulator.stdout.readline()
        base = f"http://127.0.0.1:{port}"
        listed = httpx.get(f"{base}/v1/models", timeout=5).json()
        assert sorted(entry["id"] for entry in listed["data"]) == ["chat", "vec"]
        body = {"model": "vec", "input": ["a", "b"]}
        embedded = httpx.post(f"{base}/v1/embeddings", json=body, timeout=5)
        assert embedded.status_code == 200
        assert len(embedded.json()["data"]) == 2
    finally:
        simulator.terminate()
        simulator.communicate(timeout=10)
