"""The client's address from the peer and trusted proxies (docs/operations.md#client-address)."""

from __future__ import annotations

import pytest

from nexus_trio.asgi.client_address import MAX_HOPS, TrustedProxies
from nexus_trio.config import parse_config
from nexus_trio.errors import ConfigError

PROXIES = TrustedProxies(["127.0.0.1", "10.0.0.0/8", "fd00::/8"])


def xff(*values: str) -> list[tuple[bytes, bytes]]:
    return [(b"x-forwarded-for", value.encode()) for value in values]


@pytest.mark.parametrize(
    ("peer", "headers", "client"),
    [
        ("192.0.2.7", xff("198.51.100.1"), "192.0.2.7"),  # an untrusted peer: its header is not
        ("127.0.0.1", [], "127.0.0.1"),  # trusted, but no header
        ("127.0.0.1", xff("198.51.100.1"), "198.51.100.1"),
        ("127.0.0.1", xff("6.6.6.6, 198.51.100.1, 10.1.2.3"), "198.51.100.1"),
        ("127.0.0.1", xff("6.6.6.6", "198.51.100.1,10.1.2.3"), "198.51.100.1"),  # two headers
        ("127.0.0.1", xff("10.0.0.2, 10.0.0.3"), "10.0.0.2"),  # every hop trusted: the left-most
        ("::ffff:127.0.0.1", xff("2001:db8::1"), "2001:db8::1"),  # a mapped IPv4 peer
        ("fd00::5", xff(" 198.51.100.9 "), "198.51.100.9"),
        ("127.0.0.1", xff("198.51.100.1, evil"), "127.0.0.1"),  # malformed: the peer
        ("127.0.0.1", xff("198.51.100.1,"), "127.0.0.1"),
        ("127.0.0.1", xff("198.51.100.1:443"), "127.0.0.1"),
        ("127.0.0.1", xff('fe80::1%a key=root x="'), "127.0.0.1"),  # a zone: any text
        ("127.0.0.1", xff(",".join(["10.0.0.1"] * (MAX_HOPS + 1))), "127.0.0.1"),  # too many
        ("127.0.0.1", xff("1.1.1.1" + " " * 5000), "127.0.0.1"),  # too long
        (None, xff("198.51.100.1"), "-"),
    ],
)
def test_the_client_is_the_rightmost_untrusted_hop_behind_a_trusted_peer(
    peer: str | None, headers: list[tuple[bytes, bytes]], client: str
) -> None:
    assert PROXIES.client(peer, headers) == client


def test_without_trusted_proxies_the_client_is_the_peer() -> None:
    assert TrustedProxies([]).client("127.0.0.1", xff("198.51.100.1")) == "127.0.0.1"


def test_trusted_proxies_are_validated() -> None:
    config = parse_config('[server]\ntrusted_proxies = ["127.0.0.1", "10.0.0.0/8", "::1"]')
    assert config.server.trusted_proxies == ["127.0.0.1", "10.0.0.0/8", "::1"]
    for bad in ("10.0.0.1/8", "localhost", "10.0.0.0/33"):
        with pytest.raises(ConfigError, match=r"\$\.server\.trusted_proxies\[1\]"):
            parse_config(f'[server]\ntrusted_proxies = ["127.0.0.1", "{bad}"]')
