"""Named inbound keys and their rate limits, without a clock (docs/keys.md#keys,
docs/keys.md#rate-limits)."""

from __future__ import annotations

import hashlib

import pytest

from nexus_trio.config import KeyConfig, parse_config
from nexus_trio.errors import ConfigError, RateLimitExceeded
from nexus_trio.keys import KeyRing, RateLimiter
from nexus_trio.keys.limits import reset_duration

CONFIG = """
[server]
api_keys_env = "OLD_KEYS"
[[keys]]
name = "team-a"
key_env = "TEAM_A_KEY"
models = ["llama3*", "gpt-4o-mini"]
[[keys]]
name = "ci"
key_sha256 = "{digest}"
privacy = "restricted"
admin = true
"""


def bearer(token: str) -> list[tuple[bytes, bytes]]:
    return [(b"host", b"gw"), (b"authorization", f"Bearer {token}".encode())]


@pytest.fixture
def ring() -> KeyRing:
    digest = hashlib.sha256(b"ci-secret").hexdigest().upper()
    config = parse_config(CONFIG.replace("{digest}", digest))
    env = {"OLD_KEYS": "old-1, old-2", "TEAM_A_KEY": "team-secret"}
    return KeyRing.from_config(config, env)


def test_keys_resolve_to_their_names(ring: KeyRing) -> None:
    names = {
        token: (key.name if key else None)
        for token in ("old-1", "old-2", "team-secret", "ci-secret", "nope", "")
        for key in [ring.authenticate(bearer(token))]
    }
    assert names == {
        "old-1": "default",
        "old-2": "default",
        "team-secret": "team-a",
        "ci-secret": "ci",
        "nope": None,
        "": None,
    }
    assert ring.authenticate([(b"authorization", b"Basic team-secret")]) is None
    assert ring.authenticate([]) is None


def test_an_x_api_key_header_presents_a_key_unless_authorization_is_sent(ring: KeyRing) -> None:
    def api_key(token: bytes) -> list[tuple[bytes, bytes]]:
        return [(b"host", b"gw"), (b"x-api-key", token)]

    team = ring.authenticate(api_key(b"team-secret"))
    assert team is not None
    assert team.name == "team-a"
    assert ring.authenticate(api_key(b" ci-secret ")) is not None
    assert ring.authenticate(api_key(b"nope")) is None
    assert ring.authenticate(api_key(b"")) is None
    # Authorization decides alone when both are sent, whatever their order.
    both = [*bearer("nope"), (b"x-api-key", b"team-secret")]
    assert ring.authenticate(both) is None
    assert ring.authenticate(list(reversed(both))) is None


def test_allow_list_and_privacy(ring: KeyRing) -> None:
    team = ring.authenticate(bearer("team-secret"))
    ci = ring.authenticate(bearer("ci-secret"))
    assert team is not None
    assert ci is not None
    assert team.allows_model("llama3:8b")
    assert team.allows_model("gpt-4o-mini")
    assert not team.allows_model("gpt-4o")
    assert ci.allows_model("anything")
    assert ci.restricted
    assert not team.restricted


def test_roles_admin_entries_and_api_keys_env_keys_are_admin(ring: KeyRing) -> None:
    roles = {
        token: key.admin
        for token in ("old-1", "team-secret", "ci-secret")
        for key in [ring.authenticate(bearer(token))]
        if key is not None
    }
    assert roles == {"old-1": True, "team-secret": False, "ci-secret": True}


def test_a_key_variable_without_a_key_is_a_config_error() -> None:
    config = parse_config('[[keys]]\nname = "a"\nkey_env = "A_KEY"\n')
    with pytest.raises(ConfigError, match=r"\$\.keys\[0\]\.key_env: \$A_KEY holds no key"):
        KeyRing.from_config(config, {})


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('name = "a"', "set exactly one of key_env and key_sha256"),
        ('name = "a"\nkey_env = "A"\nkey_sha256 = "' + "0" * 64 + '"', "exactly one"),
        ('name = "default"\nkey_env = "A"', "'default' is reserved"),
        ('name = "a"\nkey_sha256 = "abc"', "keys[0].key_sha256"),
    ],
)
def test_key_entries_are_validated(entry: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_config(f"[[keys]]\n{entry}\n")


def test_duplicate_key_names_are_refused() -> None:
    text = '[[keys]]\nname = "a"\nkey_env = "A"\n[[keys]]\nname = "a"\nkey_env = "B"\n'
    with pytest.raises(ConfigError, match="duplicate key name 'a'"):
        parse_config(text)


def test_requests_burst_to_the_limit_then_go_at_the_rate() -> None:
    key = KeyConfig(name="a", key_env="A", requests_per_minute=2)
    limiter = RateLimiter()
    assert limiter.admit("a", key, 0.0) == {
        "x-ratelimit-limit-requests": "2",
        "x-ratelimit-remaining-requests": "1",
        "x-ratelimit-reset-requests": "30s",
    }
    limiter.admit("a", key, 0.0)
    with pytest.raises(RateLimitExceeded) as refused:
        limiter.admit("a", key, 10.0)
    assert refused.value.kind == "requests"
    assert refused.value.headers["Retry-After"] == "20"  # one request refills in 30 s
    assert refused.value.headers["x-ratelimit-remaining-requests"] == "0"
    assert limiter.admit("a", key, 30.0)["x-ratelimit-remaining-requests"] == "0"


def test_tokens_are_taken_when_a_request_ends_and_block_until_refilled() -> None:
    key = KeyConfig(name="a", key_env="A", tokens_per_minute=600)
    limiter = RateLimiter()
    limiter.admit("a", key, 0.0)
    limiter.charge_tokens("a", key, 900, 0.0)  # one big request: 300 below zero
    with pytest.raises(RateLimitExceeded) as refused:
        limiter.admit("a", key, 10.0)  # +100 tokens: still -200
    assert (refused.value.kind, refused.value.headers["Retry-After"]) == ("tokens", "21")
    headers = limiter.admit("a", key, 31.0)  # +310: 10 left
    assert headers["x-ratelimit-remaining-tokens"] == "10"
    assert "x-ratelimit-limit-requests" not in headers


def test_reset_durations_look_like_openais() -> None:
    assert [reset_duration(s) for s in (0.25, 1.5, 30.0, 360.0)] == ["250ms", "1.5s", "30s", "6m0s"]
