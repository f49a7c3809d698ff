"""Loopback ports for tests that must name one before anything listens on it."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A loopback port with nothing listening (bound, then closed), free to listen on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
