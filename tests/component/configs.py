"""Configuration texts for in-process gateways."""

from __future__ import annotations

import json
from collections.abc import Iterable

BASE_CONFIG = """
[health_check]
enabled = false
[[backends]]
name = "a"
url = "http://a.test"
type = "generic"
priority = 10
models = ["m"]
[backends.capabilities.m]
tools = true
[[backends]]
name = "b"
url = "http://b.test"
type = "vllm"
priority = 20
models = ["m"]
[backends.capabilities.m]
tools = true
"""

#: Health checks off: every backend is taken as healthy.
NO_HEALTH = "[health_check]\nenabled = false\n"
#: Health checks on, every 10 s: a backend is ``unknown`` until probed.
PROBED_EVERY_10S = "[health_check]\ninterval_seconds = 10\n"
#: One OpenAI-type backend ``a`` serving ``m``, its key in ``A_KEY``; health checks off.
KEYED_OPENAI = """
[health_check]
enabled = false
[[backends]]
name = "a"
url = "http://a.test"
type = "openai"
api_key_env = "A_KEY"
models = ["m"]
"""


def fake_backend(
    name: str, priority: int = 50, models: Iterable[str] = ("m",), extra: str = ""
) -> str:
    """One ``[[backends]]`` entry at ``http://<name>.test``, the host the fake upstream serves
    for it; ``extra`` goes inside the entry."""
    return (
        f'[[backends]]\nname = "{name}"\nurl = "http://{name}.test"\ntype = "generic"\n'
        f"priority = {priority}\nmodels = {json.dumps(list(models))}\n{extra}\n"
    )


def config_toml(*backends: str, head: str = "", health: str = NO_HEALTH, quality: str = "") -> str:
    """A config text: global tables (``head``) first, ``[health_check]``, the ``[quality]`` keys
    (if any), then the backends."""
    tables = [head, health, *([f"[quality]\n{quality}"] if quality else []), *backends]
    return "\n".join(tables)
