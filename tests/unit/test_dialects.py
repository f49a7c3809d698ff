"""The dialect interface (nexus_trio.dialects): one per backend type, chosen once per attempt,
and no provider's name in the API or the health checker."""

from __future__ import annotations

import ast
from pathlib import Path

import httpx
import pytest

from nexus_trio import errors
from nexus_trio.config import BackendConfig, parse_config
from nexus_trio.dialects import dialect_for
from nexus_trio.dialects.anthropic import Anthropic
from nexus_trio.dialects.passthrough import PassThrough
from nexus_trio.registry import Backend, Registry

PACKAGE = Path(__file__).resolve().parents[2] / "nexus_trio"
CHAT = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'
CLIENT = [(b"authorization", b"Bearer client"), (b"x-api-key", b"c"), (b"openai-beta", b"x")]


def keyed_backend(type_: str, key: str | None = "sk-backend") -> Backend:
    """A registered backend of ``type_`` whose key (``api_key_env``) is ``key``."""
    config: BackendConfig = parse_config(
        f'[[backends]]\nname = "b"\nurl = "http://b.test"\ntype = "{type_}"\n'
        + ('api_key_env = "KEY"\n' if key else "")
        + 'models = ["m"]\n'
    ).backends[0]
    (found,) = Registry([config], {"KEY": key} if key else {})
    return found


@pytest.mark.parametrize("type_", ["ollama", "vllm", "llamacpp", "lmstudio", "openai", "generic"])
def test_openai_compatible_types_pass_through(type_: str) -> None:
    dialect = dialect_for(type_)
    assert isinstance(dialect, PassThrough)
    exchange = dialect.exchange(
        keyed_backend(type_),
        "/v1/chat/completions",
        CHAT,
        "m",
        client_headers=CLIENT,
        request_id="r1",
        strip_usage=False,
    )
    assert (exchange.path, exchange.body) == ("/v1/chat/completions", CHAT)
    headers = dict(exchange.headers())
    assert headers[b"authorization"] == b"Bearer sk-backend"
    assert b"x-api-key" not in headers
    assert headers[b"openai-beta"] == b"x"
    upstream = httpx.Headers({"content-type": "application/json", "set-cookie": "s=1"})
    assert exchange.answer(200, b"{}", upstream) == (
        200,
        {"content-type": "application/json"},
        b"{}",
    )
    assert not dialect.reports_stream_usage
    assert dialect.probe_headers(keyed_backend(type_)) == {"authorization": "Bearer sk-backend"}
    assert dialect.probe_headers(keyed_backend(type_, key=None)) == {}


def test_anthropic_translates_with_its_own_headers_only() -> None:
    dialect = dialect_for("anthropic")
    assert isinstance(dialect, Anthropic)
    exchange = dialect.exchange(
        keyed_backend("anthropic"),
        "/v1/chat/completions",
        CHAT,
        "m",
        client_headers=CLIENT,
        request_id="r1",
        strip_usage=False,
    )
    assert exchange.path == "/v1/messages"
    assert sorted(name for name, _ in exchange.headers()) == [
        b"accept-encoding",
        b"anthropic-version",
        b"content-type",
        b"x-api-key",
        b"x-request-id",
    ]
    assert dict(exchange.headers())[b"x-api-key"] == b"sk-backend"
    assert dialect.reports_stream_usage
    assert dialect.output_allowance(keyed_backend("anthropic"), 123) == 4096
    with pytest.raises(errors.InvalidValue, match="serves only"):
        dialect.exchange(
            keyed_backend("anthropic"),
            "/v1/completions",
            CHAT,
            "m",
            client_headers=CLIENT,
            request_id="r1",
            strip_usage=False,
        )


@pytest.mark.parametrize("package", ["api", "health"])
def test_no_provider_is_named_in_the_api_or_the_health_checker(package: str) -> None:
    """A new provider is a new dialect module, not a branch in these packages."""
    for path in (PACKAGE / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert node.value != "anthropic", f"{path.name}:{node.lineno} names a provider"
