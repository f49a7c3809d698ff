"""https backends verify certificates with the system CAs or their own tls_ca_file."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from nexus_trio.config import BackendConfig
from nexus_trio.errors import ConfigError
from nexus_trio.upstream.tls import https_mounts


def test_one_verifying_transport_per_https_origin() -> None:
    backends = [
        BackendConfig(name="cloud", url="https://api.example.test/openai", type="openai"),
        BackendConfig(name="alt", url="https://alt.example.test:8443", type="generic"),
        BackendConfig(name="local", url="http://127.0.0.1:11434", type="ollama"),
    ]
    mounts = https_mounts(backends)
    assert sorted(mounts) == ["https://alt.example.test:8443", "https://api.example.test"]
    assert all(isinstance(t, httpx.AsyncHTTPTransport) for t in mounts.values())


def test_unreadable_ca_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    backend = BackendConfig(
        name="b", url="https://b.example.test", type="generic", tls_ca_file=str(missing)
    )
    with pytest.raises(ConfigError, match=r"\$\.backends\[0\]\.tls_ca_file"):
        https_mounts([backend])


def test_ca_file_without_certificates_is_a_config_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    backend = BackendConfig(
        name="b", url="https://b.example.test", type="generic", tls_ca_file=str(junk)
    )
    with pytest.raises(ConfigError, match="tls_ca_file"):
        https_mounts([backend])
