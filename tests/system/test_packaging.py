"""The wheel installs with pipx and runs (README, "Install"): ``--version``, ``check-config``,
``serve`` answering a request and its dashboard files, from the installed package alone."""

from __future__ import annotations

import os
import signal
import subprocess
import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
import trio

from nexus_trio.simulator import SimulatedBackend
from tests.system.configs import gateway_config
from tests.system.gateway_process import GatewayFactory
from tests.system.wheel import REPO, build_wheel, pipx_install, wheelhouse

pytestmark = pytest.mark.system

#: The installed program must not import the clone's package.
ISOLATED = {"PYTHONPATH": ""}


def _run(*command: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in ``cwd`` (not the clone, which ``python -c`` would import from)."""
    return subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        env={**os.environ, **ISOLATED},
        cwd=cwd,
        check=False,
    )


async def test_the_wheel_installs_with_pipx_and_serves(
    start_backend: Callable[..., Awaitable[SimulatedBackend]],
    start_gateway: GatewayFactory,
    tmp_path: Path,
) -> None:
    wheels = await trio.to_thread.run_sync(wheelhouse)
    wheel = await trio.to_thread.run_sync(build_wheel, wheels, tmp_path)
    program = await trio.to_thread.run_sync(pipx_install, wheel, wheels, tmp_path)
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert _run(program, "--version", cwd=tmp_path).stdout.strip() == f"nexus-trio {version}"
    python = next((tmp_path / "pipx" / "venvs" / "nexus-trio" / "bin").glob("python"))
    where = _run(python, "-c", "import nexus_trio; print(nexus_trio.__file__)", cwd=tmp_path)
    assert where.stdout.startswith(str(tmp_path / "pipx")), where

    backend = await start_backend(name="sim", models=("demo",), ttft_ms=1, tokens_per_second=0)
    config = tmp_path / "nexus.toml"
    config.write_text(gateway_config(backend, extra=f'[state]\ndir = "{tmp_path / "state"}"\n'))
    checked = _run(program, "check-config", config, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert '"backends"' in checked.stdout

    gateway = await start_gateway(config.read_text(), env=ISOLATED, program=(str(program),))
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        chat = await client.post(
            "/v1/chat/completions",
            json={"model": "demo", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert chat.status_code == 200
        assert chat.json()["choices"][0]["message"]["content"]
        page = await client.get("/dashboard/dashboard.js")  # package data shipped in the wheel
        assert page.status_code == 200
    gateway.send_signal(signal.SIGTERM)
    with trio.fail_after(10):
        assert await gateway.wait_exit() == 0
