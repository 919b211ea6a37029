"""Who the client is: the connection's peer, or what a trusted proxy says in X-Forwarded-For.

The proxies are gunicorn's `forwarded_allow_ips` (environment `FORWARDED_ALLOW_IPS`, default
`127.0.0.1,::1`): addresses and networks, or `*` for any peer. The gRPC server reads the same variable
the same way, so one setting decides for both processes. A proxy appends the address it received the
request from to X-Forwarded-For, so the client is the last entry of the header, the one the trusted
proxy wrote; entries before it were written by whoever sent the request and prove nothing. (Traefik,
which trusts no forwarded header, drops the client's own X-Forwarded-For and sends just that address.)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

DEFAULT_FORWARDED_ALLOW_IPS = "127.0.0.1,::1"  # gunicorn's default


class TrustedProxies:
    """The peers whose X-Forwarded-For names the client."""

    def __init__(self, allowed: Iterable[str]) -> None:
        entries = [entry.strip() for entry in allowed if entry.strip()]
        self._anyone = "*" in entries
        # strict=False: 10.0.0.1/8 means 10.0.0.0/8, as gunicorn reads it.
        self._networks = [ipaddress.ip_network(entry, strict=False) for entry in entries if entry != "*"]

    @classmethod
    def parse(cls, text: str) -> TrustedProxies:
        """`FORWARDED_ALLOW_IPS`: comma-separated addresses or networks, or `*`; ValueError otherwise."""
        return cls(text.split(","))

    def trusts(self, peer: str | None) -> bool:
        """A peer without an IP address (a Unix socket) is trusted, as gunicorn trusts it."""
        address = _address(peer)
        if address is None:
            return not peer
        return self._anyone or any(address in network for network in self._networks)

    def client(self, peer: str | None, forwarded_for: str | None) -> str | None:
        """The client's address: the last X-Forwarded-For entry when `peer` is trusted and that entry
        is an address, else the peer's own address."""
        if forwarded_for and self.trusts(peer):
            last = forwarded_for.rsplit(",", 1)[-1].strip()
            if _address(last) is not None:
                return last
        return peer or None


@lru_cache(maxsize=8)
def trusted_proxies(allowed: tuple[str, ...]) -> TrustedProxies:
    """TrustedProxies for gunicorn's (already validated) `forwarded_allow_ips`, built once per value."""
    return TrustedProxies(allowed)


def grpc_peer_address(peer: str) -> str | None:
    """The address in grpcio's `ServicerContext.peer()` (`ipv4:10.0.0.7:41234`, `ipv6:[::1]:41234`),
    None for a Unix socket."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]")
    return None


def _address(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
