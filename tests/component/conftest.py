"""Fixtures of the component tier: an in-process gateway (:mod:`tests.component.in_process`)."""

from __future__ import annotations

import functools

import pytest
import trio

from tests.component.in_process import Gateway, MakeGateway, build_gateway


@pytest.fixture
def make_gateway(nursery: trio.Nursery) -> MakeGateway:
    """Build in-process gateways whose background tasks run until the test ends."""
    return functools.partial(build_gateway, nursery)


@pytest.fixture
async def gateway(make_gateway: MakeGateway) -> Gateway:
    return make_gateway()
