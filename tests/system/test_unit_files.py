"""The systemd unit files pass ``systemd-analyze verify`` (docs/operations.md#systemd)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "systemd"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze absent")
@pytest.mark.parametrize(
    ("source", "name"),
    [("nexus-trio.service", "nexus-trio.service"), ("nexus-trio@.service", "nexus-trio@1.service")],
)
def test_unit_verifies_except_for_the_absent_binary(tmp_path: Path, source: str, name: str) -> None:
    unit = tmp_path / name
    unit.write_text((UNITS / source).read_text())
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    complaints = [line for line in result.stderr.splitlines() if line.strip()]
    assert all("/opt/nexus-trio/venv/bin/nexus-trio" in line for line in complaints), complaints


def test_unit_has_the_required_settings() -> None:
    text = (UNITS / "nexus-trio.service").read_text()
    for setting in (
        "Type=notify",
        "NotifyAccess=main",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "KillSignal=SIGTERM",
        "WatchdogSec=30",
        "Restart=on-failure",
        "EnvironmentFile=-/etc/nexus-trio/env",
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "CapabilityBoundingSet=\n",
        "LimitNOFILE=65536",
    ):
        assert setting in text, setting
    stop = int(text.split("TimeoutStopSec=")[1].split()[0])
    assert stop > 30 + 5  # above the default drain budget plus systemd's extension margin


#: What `systemd-analyze security` flagged and the daemon tolerates (docs/operations.md#hardening).
HARDENING = (
    "UMask=0077",
    "ProtectProc=invisible",
    "ProtectClock=yes",
    "ProtectKernelLogs=yes",
    "ProtectHostname=yes",
    "PrivateMounts=yes",
    "RestrictNamespaces=yes",
    "MemoryDenyWriteExecute=yes",
    "SystemCallFilter=@system-service",
    "SystemCallFilter=~@privileged @resources",
    "SystemCallErrorNumber=EPERM",
)
#: The exposure score both units reach (docs/operations.md#hardening): 4.2 before.
EXPOSURE = 1.2


@pytest.mark.parametrize("source", ["nexus-trio.service", "nexus-trio@.service"])
def test_units_carry_the_hardening(source: str) -> None:
    lines = (UNITS / source).read_text().splitlines()
    assert [setting for setting in HARDENING if setting not in lines] == []


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze absent")
@pytest.mark.parametrize(
    ("source", "name"),
    [("nexus-trio.service", "nexus-trio.service"), ("nexus-trio@.service", "nexus-trio@1.service")],
)
def test_security_exposure_is_as_documented(tmp_path: Path, source: str, name: str) -> None:
    unit = tmp_path / name
    unit.write_text((UNITS / source).read_text())
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    overall = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
    assert overall is not None, result.stdout + result.stderr
    assert float(overall.group(1)) <= EXPOSURE
