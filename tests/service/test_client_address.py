"""Who the client is, in the access log and the RPC log: the peer, or the last X-Forwarded-For entry of a
trusted proxy (FORWARDED_ALLOW_IPS, gunicorn's setting, read the same way by the gRPC server)."""

from __future__ import annotations

import datetime
from types import SimpleNamespace

import pytest
from gunicorn.config import Config
from product_service.grpc.server import GrpcSettings
from product_service.logs import JsonAccessLogger
from product_service.proxies import TrustedProxies, grpc_peer_address
from product_service.settings import SettingsError, load_settings
from service_helpers import JWT_SECRET, logged_json

FORWARDED = "203.0.113.9, 198.51.100.7"


@pytest.mark.parametrize(
    ("allowed", "peer", "forwarded", "client"),
    [
        ("127.0.0.1,::1", "127.0.0.1", FORWARDED, "198.51.100.7"),
        ("10.0.0.0/8", "10.1.2.3", FORWARDED, "198.51.100.7"),
        ("*", "192.0.2.10", FORWARDED, "198.51.100.7"),
        ("fd00::/8", "fd00::1", "2001:db8::7", "2001:db8::7"),
        # Anyone else's header names nobody.
        ("10.0.0.0/8", "192.0.2.10", FORWARDED, "192.0.2.10"),
        # Nothing forwarded, or a last entry that is no address: the peer.
        ("*", "10.1.2.3", None, "10.1.2.3"),
        ("*", "10.1.2.3", "198.51.100.7, unknown", "10.1.2.3"),
        # A Unix socket has no address: trusted, as gunicorn trusts it.
        ("127.0.0.1", "", FORWARDED, "198.51.100.7"),
    ],
)
def test_the_client_is_the_last_forwarded_entry_of_a_trusted_peer_else_the_peer(
    allowed: str, peer: str, forwarded: str | None, client: str
) -> None:
    assert TrustedProxies.parse(allowed).client(peer, forwarded) == client


@pytest.mark.parametrize(
    ("peer", "address"),
    [("ipv4:10.0.0.7:41234", "10.0.0.7"), ("ipv6:[::1]:41234", "::1"), ("unix:/tmp/grpc.sock", None)],
)
def test_grpc_peers_give_their_address(peer: str, address: str | None) -> None:
    assert grpc_peer_address(peer) == address


def test_the_access_log_reads_gunicorns_forwarded_allow_ips() -> None:
    """The real logger class with gunicorn's own configuration object (the server path: test_gunicorn_serving)."""
    config = Config()
    config.set("accesslog", "-")
    config.set("forwarded_allow_ips", "10.0.0.0/8")
    logger = JsonAccessLogger(config)
    response = SimpleNamespace(status_code=200, sent=2)
    took = datetime.timedelta(milliseconds=3)
    with logged_json(logger.access_log) as logged:
        for peer in ("10.1.2.3", "192.0.2.10"):
            environ = {"REMOTE_ADDR": peer, "HTTP_X_FORWARDED_FOR": FORWARDED, "PATH_INFO": "/health"}
            logger.access(response, None, environ, took)

    assert [(line["remote_addr"], line["client_addr"]) for line in logged] == [
        ("10.1.2.3", "198.51.100.7"),
        ("192.0.2.10", "192.0.2.10"),
    ]


def test_a_malformed_forwarded_allow_ips_stops_the_grpc_server_naming_the_variable() -> None:
    environ = {
        "DATABASE_URL": "postgresql://u@localhost/p",
        "REDIS_URL": "redis://localhost:6379/0",
        "JWT_SECRET": JWT_SECRET,
        "FORWARDED_ALLOW_IPS": "10.0.0.0/33",
    }
    with pytest.raises(SettingsError) as caught:
        load_settings(environ, GrpcSettings)
    assert "FORWARDED_ALLOW_IPS: must be IP addresses or networks separated by commas, or *" in str(
        caught.value
    )
