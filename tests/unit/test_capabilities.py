"""Capabilities are known yes, known no or unknown; config > declared by the server > name."""

from __future__ import annotations

import pytest

from nexus_trio.config import ModelCapabilities
from nexus_trio.registry import Capabilities, guess_capabilities
from tests.unit.routing_inputs import backend


@pytest.mark.parametrize(
    "model", ["my-finetune", "gemma-3", "deepseek-v3", "phi-4", "gpt-5", "smollm2", "qwen"]
)
def test_a_name_off_every_list_says_nothing(model: str) -> None:
    assert guess_capabilities(model) == Capabilities()


@pytest.mark.parametrize(
    ("model", "known"),
    [
        ("llava:7b", Capabilities(vision=True)),
        ("qwen2.5-vl:7b", Capabilities(vision=True, tools=True)),
        ("llama3.1:8b", Capabilities(tools=True)),
        ("nomic-embed-text", Capabilities(embeddings=True)),
    ],
)
def test_a_name_on_a_list_may_only_say_yes(model: str, known: Capabilities) -> None:
    assert guess_capabilities(model) == known


def test_what_the_server_declared_beats_the_name() -> None:
    made = backend(models=["llava:7b"])
    assert made.capabilities("llava:7b").vision is True
    made.detected_capabilities["llava:7b"] = Capabilities(vision=False, tools=True)
    assert made.capabilities("llava:7b") == Capabilities(vision=False, tools=True)


def test_the_configuration_beats_what_the_server_declared() -> None:
    override = ModelCapabilities(tools=False, context_length=2048)
    made = backend(capabilities={"m": override})
    made.detected_capabilities["m"] = Capabilities(tools=True, vision=True, context_length=8192)
    assert made.capabilities("m") == Capabilities(vision=True, tools=False, context_length=2048)


def test_embedding_models_are_known_to_embed_unless_overridden() -> None:
    listed = backend(models=[], embedding_models=["e"])
    listed.detected_capabilities["e"] = Capabilities(embeddings=False)
    assert listed.capabilities("e").embeddings is True
    overridden = backend(
        embedding_models=["e"], capabilities={"e": ModelCapabilities(embeddings=False)}
    )
    assert overridden.capabilities("e").embeddings is False


def test_unknown_stays_unknown_without_any_source() -> None:
    assert backend().capabilities("m") == Capabilities()


def test_a_new_declaration_is_seen_at_once() -> None:
    made = backend()
    assert made.capabilities("m").tools is None
    made.detected_capabilities = {"m": Capabilities(tools=True)}
    assert made.capabilities("m").tools is True
    made.detected_capabilities = {}
    assert made.capabilities("m").tools is None
