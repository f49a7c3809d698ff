"""Running the official Node ``openai`` SDK: ``node/client.mjs`` runs the calls of a scenario
and prints one JSON line per call — what the SDK returned, or the class and fields of the error
it raised. The SDK is installed by ``node/install.sh`` (``npm ci`` from the committed lock)
outside the clone, in ``~/.cache/nexus-trio/node/<lock hash>/``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
import trio

NODE_DIR = Path(__file__).parent / "node"
CLIENT = NODE_DIR / "client.mjs"
INSTALL = NODE_DIR / "install.sh"
NPM_MISSING = 3
"""Exit status of ``install.sh`` when the SDK is not installed and ``npm`` is missing."""

HELLO = [{"role": "user", "content": "hello"}]


@dataclass(frozen=True)
class NodeSDK:
    node: str
    prefix: Path
    """The directory ``npm ci`` installed into (its ``node_modules`` holds ``openai``)."""


def sdk_unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(
            f"{reason}; under CI the Node SDK tests must run (.ci/run installs nodejs, npm)"
        )
    pytest.skip(
        f"{reason}: the Node openai SDK tests need nodejs and npm (apt-get install nodejs npm)"
    )


async def install_sdk() -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(300):
        return await trio.run_process(
            ["bash", str(INSTALL)], capture_stdout=True, capture_stderr=True, check=False
        )


def find_node_sdk() -> NodeSDK:
    """``node`` and the SDK, installed by ``install.sh`` unless the lock's copy is there; skips
    without ``node`` or ``npm`` (fails under CI)."""
    node = shutil.which("node")
    if node is None:
        sdk_unavailable("node not found")
    done = trio.run(install_sdk)
    if done.returncode == NPM_MISSING:
        sdk_unavailable("npm not found and the SDK is not installed yet")
    if done.returncode != 0:
        pytest.fail(f"installing the Node openai SDK failed:\n{done.stderr.decode()}")
    return NodeSDK(node, Path(done.stdout.decode().strip()))


async def run_node(
    sdk: NodeSDK, url: str, *calls: dict[str, Any], api_key: str = "client-key"
) -> dict[str, dict[str, Any]]:
    """Run ``calls`` in one ``node client.mjs`` against the gateway at ``url``; results by name."""
    scenario = {"baseURL": f"{url}/v1", "apiKey": api_key, "prefix": str(sdk.prefix)}
    stdin = json.dumps({**scenario, "calls": list(calls)}).encode()
    with trio.fail_after(60):
        done = await trio.run_process(
            [sdk.node, str(CLIENT)],
            stdin=stdin,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert done.returncode == 0, done.stderr.decode()
    results = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert [result["name"] for result in results] == [call["name"] for call in calls]
    return {result["name"]: result for result in results}


def chat(
    name: str,
    model: str = "demo",
    *,
    stream: bool = False,
    max_retries: int | None = 0,
    **params: Any,
) -> dict[str, Any]:
    """A ``chat.completions.create`` call; ``max_retries=None`` keeps the SDK's default (2)."""
    call: dict[str, Any] = {
        "name": name,
        "method": "chat_stream" if stream else "chat",
        "params": {"model": model, "messages": HELLO, **params},
    }
    if max_retries is not None:
        call["maxRetries"] = max_retries
    return call
