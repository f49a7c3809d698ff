"""Configuration texts for ``nexus-trio serve`` in front of simulated backends."""

from __future__ import annotations

from nexus_trio.simulator import SimulatedBackend

#: The backend named ``simulator`` at one dollar per token: every cost is a whole number of
#: dollars, so sums are exact.
DOLLAR_PER_TOKEN = """
[[pricing]]
backend = "simulator"
input_usd_per_million = 1000000
output_usd_per_million = 1000000
"""


def gateway_config(*backends: SimulatedBackend, server: str = "", extra: str = "") -> str:
    """A config serving each backend's models, health checks off, on a free port."""
    lines = ["[server]", 'host = "127.0.0.1"', "port = 0", server, "", extra, ""]
    lines += ["[health_check]", "enabled = false", ""]
    for backend in backends:
        models = ", ".join(f'"{m}"' for m in backend.options.models)
        lines += [
            "[[backends]]",
            f'name = "{backend.options.name}"',
            f'url = "http://127.0.0.1:{backend.port}"',
            'type = "generic"',
            f"models = [{models}]",
            "",
        ]
    return "\n".join(lines)
