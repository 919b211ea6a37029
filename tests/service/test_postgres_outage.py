"""Postgres going away: readiness fails and writes answer 503 JSON, then everything recovers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from product_service.app import close_app, open_app
from product_service.devservers import DevServers, EmbeddedPostgres
from product_service.migrate import run_migrations
from service_helpers import create_product, settings_for, wait_until


@pytest.fixture
def own_postgres(server_dir: Path) -> Iterator[EmbeddedPostgres]:
    """A Postgres only this test uses, so stopping it leaves the session's server alone."""
    postgres = EmbeddedPostgres(server_dir / "postgres")
    postgres.start()
    run_migrations(postgres.url)
    yield postgres
    postgres.stop()


def test_postgres_down_means_not_ready_and_503_writes_then_recovery(
    servers: DevServers, own_postgres: EmbeddedPostgres, auth: dict[str, str]
) -> None:
    settings = settings_for(
        DevServers(own_postgres.url, servers.redis_url), DB_POOL_MIN_SIZE="2", DB_POOL_TIMEOUT_SECONDS="1"
    )
    app = open_app(settings)
    client = app.test_client()
    try:
        cached = create_product(client, auth)
        client.get(f"/api/v1/products/{cached['id']}")

        own_postgres.stop()

        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.json["error"]["code"] == "not_ready"
        assert ready.json["error"]["details"]["postgres"].startswith("unreachable")
        assert ready.json["error"]["details"]["redis"] == "ok"
        write = client.post("/api/v1/products", json={"name": "Tea", "price": 1}, headers=auth)
        assert write.status_code == 503
        assert write.json["error"] == {
            "code": "service_unavailable",
            "message": "postgres is unavailable, retry later",
            "details": {"dependency": "postgres"},
        }
        assert write.headers["Retry-After"] == "1"
        assert client.get("/api/v1/products").status_code == 503
        assert client.get(f"/api/v1/products/{cached['id']}").status_code == 200  # still in the cache

        own_postgres.start()

        wait_until(lambda: client.get("/ready").status_code == 200, 30, "/ready once Postgres is back")
        created = create_product(client, auth)
        assert client.get(f"/api/v1/products/{created['id']}").json == created
        assert client.get("/api/v1/products").json["total"] == 2
    finally:
        close_app(app)


def test_first_read_after_a_postgres_restart_succeeds_despite_dead_pooled_connections(
    servers: DevServers, own_postgres: EmbeddedPostgres, auth: dict[str, str]
) -> None:
    app = open_app(settings_for(DevServers(own_postgres.url, servers.redis_url), DB_POOL_MIN_SIZE="3"))
    client = app.test_client()
    try:
        create_product(client, auth)
        pool = app.extensions["product_service"].pool
        wait_until(
            lambda: pool.get_stats()["pool_available"] >= 3, 30, "at least three idle pooled connections"
        )

        own_postgres.stop()
        own_postgres.start()  # every pooled connection is now dead, and nothing has noticed yet

        assert client.get("/api/v1/products").status_code == 200
        assert client.get("/ready").status_code == 200
        assert create_product(client, auth)["id"]
    finally:
        close_app(app)
