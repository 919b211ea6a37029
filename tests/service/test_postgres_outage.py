"""Postgres going away: readiness fails and requests answer 503 JSON at once, then everything recovers."""

from __future__ import annotations

import time
import uuid

from product_service.app import close_app, open_app
from product_service.devservers import DevServers, EmbeddedPostgres
from service_helpers import create_product, settings_for, wait_until


def test_postgres_down_means_not_ready_and_fast_503s_then_the_first_request_within_2_s_succeeds(
    servers: DevServers, own_postgres: EmbeddedPostgres, auth: dict[str, str]
) -> None:
    # The production pool timeout: a request must not wait for it while Postgres is down.
    settings = settings_for(
        DevServers(own_postgres.url, servers.redis_url), DB_POOL_MIN_SIZE="2", DB_REQUEST_BUDGET_SECONDS="5"
    )
    app = open_app(settings)
    client = app.test_client()
    try:
        cached = create_product(client, auth)
        client.get(f"/api/v1/products/{cached['id']}")

        own_postgres.stop()

        requests = {
            "uncached get": lambda: client.get(f"/api/v1/products/{uuid.uuid4()}"),
            "list": lambda: client.get("/api/v1/products"),
            "batch get": lambda: client.post("/api/v1/products:batchGet", json={"ids": [str(uuid.uuid4())]}),
            "create": lambda: client.post("/api/v1/products", json={"name": "Tea", "price": 1}, headers=auth),
            "update": lambda: client.patch(
                f"/api/v1/products/{cached['id']}", json={"price": 2}, headers=auth
            ),
        }
        for name, send in [*requests.items(), *requests.items()]:  # the first failures and the next ones
            started = time.monotonic()
            response = send()
            elapsed = time.monotonic() - started
            assert response.status_code == 503, name
            assert response.json["error"] == {
                "code": "service_unavailable",
                "message": "postgres is unavailable, retry later",
                "details": {"dependency": "postgres"},
            }
            assert response.headers["Retry-After"] == "1"
            assert elapsed < 1.0, f"{name} took {elapsed:.2f} s"
        started = time.monotonic()
        ready = client.get("/ready")
        assert time.monotonic() - started < 1.0
        assert ready.status_code == 503
        assert ready.json["error"]["code"] == "not_ready"
        assert ready.json["error"]["details"] == {"postgres": "unavailable", "redis": "ok"}
        assert client.get(f"/api/v1/products/{cached['id']}").status_code == 200  # still in the cache
        metrics = client.get("/metrics").data.decode()
        assert 'product_dependency_up{dependency="postgres"} 0.0' in metrics

        own_postgres.start()

        wait_until(
            lambda: client.get("/api/v1/products").status_code == 200, 2, "a read once Postgres is back"
        )
        created = create_product(client, auth)
        assert client.get(f"/api/v1/products/{created['id']}").json == created
        assert client.get("/api/v1/products").json["total"] == 2
        assert client.get("/ready").status_code == 200
        assert 'product_dependency_up{dependency="postgres"} 1.0' in client.get("/metrics").data.decode()
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
