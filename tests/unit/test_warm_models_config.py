"""``warm_models`` in a backend's configuration (docs/routing.md#model-lifecycle)."""

from __future__ import annotations

import pytest

from nexus_trio.config import parse_config
from nexus_trio.errors import ConfigError

ENTRY = '[[backends]]\nname = "b"\nurl = "http://b:1"\ntype = "{kind}"\nwarm_models = {models}\n'


@pytest.mark.parametrize("kind", ["llamacpp", "ollama"])
def test_llamacpp_and_ollama_take_warm_models(kind: str) -> None:
    config = parse_config(ENTRY.format(kind=kind, models='["m"]'))
    assert config.backends[0].warm_models == ["m"]


@pytest.mark.parametrize("kind", ["vllm", "lmstudio", "generic", "openai"])
def test_other_types_refuse_warm_models_naming_the_key(kind: str) -> None:
    with pytest.raises(ConfigError, match="warm_models"):
        parse_config(ENTRY.format(kind=kind, models='["m"]'))


def test_warm_models_are_bounded() -> None:
    too_many = "[" + ", ".join(f'"m{i}"' for i in range(65)) + "]"
    with pytest.raises(ConfigError, match="warm_models"):
        parse_config(ENTRY.format(kind="ollama", models=too_many))
    with pytest.raises(ConfigError, match="warm_models"):
        parse_config(ENTRY.format(kind="ollama", models='[""]'))
