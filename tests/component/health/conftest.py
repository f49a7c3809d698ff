"""The health probes and the checker over a fake upstream (``checker_env.Env``)."""

from __future__ import annotations

import pytest

from tests.component.health.checker_env import Env


@pytest.fixture
async def env() -> Env:
    return Env()
