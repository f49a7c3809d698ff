"""The client's address: the TCP peer, or what trusted proxies say it is
(docs/operations.md#client-address).

A request's client is its TCP peer, unless the peer is one of ``server.trusted_proxies``: then
it is the right-most ``X-Forwarded-For`` hop that is not a trusted proxy (every proxy appends
the address it received the request from, so hops left of the first untrusted one, read from
the right, are whatever that client wrote). When every hop is trusted, the left-most one.
Parsing is bounded: more than :data:`MAX_FORWARDED_BYTES` of the header, more than
:data:`MAX_HOPS` hops, or a hop that is not an IP address (one with an IPv6 zone included),
and the client is the peer. The verdict for a (peer, header) pair is remembered (the last
:data:`REMEMBERED` pairs): behind a proxy the same few pairs come again and again, and parsing
addresses is the costly part.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence

#: The most ``X-Forwarded-For`` bytes read (all such headers together); more: the peer.
MAX_FORWARDED_BYTES = 4096
#: The most hops read; more: the peer.
MAX_HOPS = 32
#: (peer, header) pairs whose client is remembered (at most 4 MB of headers).
REMEMBERED = 1024

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_address(text: str) -> IPAddress | None:
    """``text`` as an IP address (an IPv4-mapped IPv6 address as IPv4); None if it is not one."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    """``server.trusted_proxies`` (addresses or CIDR networks, validated by the config)."""

    __slots__ = ("_decide", "_networks")

    def __init__(self, entries: Sequence[str]) -> None:
        self._networks = tuple(ipaddress.ip_network(entry) for entry in entries)
        self._decide = functools.lru_cache(maxsize=REMEMBERED)(self._client_behind)

    def trusts(self, address: IPAddress) -> bool:
        """Whether ``address`` is one of the trusted proxies."""
        return any(address in network for network in self._networks)

    def client(self, peer: str | None, headers: Iterable[tuple[bytes, bytes]]) -> str:
        """The client's address for a request from ``peer`` (``-`` when the server knows no
        peer) with these headers; see the module docstring."""
        if peer is None:
            return "-"
        if not self._networks:
            return peer
        values = [value for name, value in headers if name == b"x-forwarded-for"]
        if sum(len(value) for value in values) > MAX_FORWARDED_BYTES:
            return peer
        return self._decide(peer, b",".join(values))

    def _client_behind(self, peer: str, forwarded: bytes) -> str:
        """The client of a request from ``peer`` with these ``X-Forwarded-For`` hops."""
        peer_address = parse_address(peer)
        if peer_address is None or not self.trusts(peer_address):
            return peer
        hops = _forwarded_hops(forwarded)
        if not hops:
            return peer
        for hop in reversed(hops):
            if not self.trusts(hop):
                return str(hop)
        return str(hops[0])


def _forwarded_hops(forwarded: bytes) -> list[IPAddress] | None:
    """The hops of ``X-Forwarded-For``, left to right; None when empty, too many or one
    malformed."""
    if not forwarded:
        return None
    parts = forwarded.split(b",")
    if len(parts) > MAX_HOPS:
        return None
    hops = []
    for part in parts:
        # An IPv6 zone (``fe80::1%eth0``) may be any text: no proxy sends one.
        hop = None if b"%" in part else parse_address(part.strip().decode("ascii", "replace"))
        if hop is None:
            return None
        hops.append(hop)
    return hops
