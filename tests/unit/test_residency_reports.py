"""Decoding what servers report about loaded models (docs/routing.md#residency)."""

from __future__ import annotations

import msgspec
import pytest

from nexus_trio.registry import ModelResidency, Residency
from nexus_trio.residency import reports


def test_a_router_lists_each_models_status() -> None:
    body = msgspec.json.encode(
        {
            "data": [
                {"id": "a", "status": {"value": "loaded", "args": []}},
                {"id": "b", "status": {"value": "loading"}},
                {"id": "c", "status": {"value": "unloaded"}},
                {"id": "d", "status": {"value": "failed"}},
                {"id": "e", "status": {"value": "sleeping?"}},
            ]
        }
    )
    found, router = reports.llamacpp_models(body)
    assert router
    assert {model: known.state for model, known in found.items()} == {
        "a": Residency.LOADED,
        "b": Residency.LOADING,
        "c": Residency.UNLOADED,
        "d": Residency.UNLOADED,
    }


def test_a_one_model_server_has_its_model_loaded() -> None:
    found, router = reports.llamacpp_models(b'{"data": [{"id": "smol", "meta": {"n_ctx": 2048}}]}')
    assert not router
    assert found == {"smol": ModelResidency(Residency.LOADED)}


def test_a_model_list_that_is_not_one_raises() -> None:
    with pytest.raises(msgspec.DecodeError):
        reports.llamacpp_models(b'{"models": []}')


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ('{"model":"a","event":"status_change","data":{"status":"loaded","info":{}}}', "loaded"),
        ('{"model":"a","event":"model_status","data":{"status":"loading"}}', "loading"),
        (
            '{"model":"a","event":"status_change","data":{"status":"unloaded","exit_code":0}}',
            "unloaded",
        ),
        ('{"model":"a","event":"status_change","data":{"progress":{}}}', None),
        ('{"event":"status_change","data":{"status":"loaded"}}', None),
        ("not json", None),
    ],
)
def test_router_events(data: str, expected: str | None) -> None:
    change = reports.llamacpp_event(data)
    if expected is None:
        assert change is None
    else:
        assert change == ("a", ModelResidency(Residency(expected)))


def test_ollama_ps_lists_the_loaded_and_the_rest_is_unloaded() -> None:
    body = msgspec.json.encode(
        {
            "models": [
                {
                    "name": "llama3:8b",
                    "model": "llama3:8b",
                    "size": 6654289920,
                    "size_vram": 5137025024,
                    "expires_at": "2024-06-04T14:38:31.837530123-07:00",
                },
                {"name": "phi3:mini", "expires_at": "garbage"},
            ]
        }
    )
    found = reports.ollama_ps(body, ["llama3:8b", "phi3:mini", "qwen3:4b"])
    assert found == {
        "llama3:8b": ModelResidency(Residency.LOADED, 5137025024, 1717537111.83753),
        "phi3:mini": ModelResidency(Residency.LOADED),
        "qwen3:4b": ModelResidency(Residency.UNLOADED),
    }
    assert reports.ollama_ps(b'{"models": null}', ["a"]) == {
        "a": ModelResidency(Residency.UNLOADED)
    }
