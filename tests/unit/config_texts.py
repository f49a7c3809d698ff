"""Configuration texts for the configuration tests, and the message a bad one raises."""

from __future__ import annotations

import pytest

from nexus_trio.config import parse_config
from nexus_trio.errors import ConfigError

OLLAMA = """
[[backends]]
name = "local"
url = "http://127.0.0.1:11434"
type = "ollama"
"""


def backend_toml(
    name: str = "gpu", url: str = "http://gpu.lan:8000", kind: str = "vllm", **extra: str
) -> str:
    """One ``[[backends]]`` table; ``extra`` keys carry TOML values (``tier="0"``)."""
    lines = [f'name = "{name}"', f'url = "{url}"', f'type = "{kind}"']
    lines += [f"{key} = {value}" for key, value in extra.items()]
    return "\n[[backends]]\n" + "\n".join(lines) + "\n"


def backend_with_keys(keys: str) -> str:
    """A ``[[backends]]`` table named ``c`` with exactly ``keys`` besides its name."""
    return f'[[backends]]\nname = "c"\n{keys}\n'


def config_error(text: str | bytes) -> str:
    """The message of the :class:`ConfigError` that ``text`` raises (always one line)."""
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    message = str(info.value)
    assert "\n" not in message
    return message


def at(path: str) -> str:
    """How a message names the key path it is about."""
    return f"- at `{path}`"
