"""Fixtures for the product service's tests: real Postgres and Valkey, started once per session.

Set DATABASE_URL and REDIS_URL to test against external servers instead; the tests empty the
products table and the Redis database they point at, so point them at disposable ones.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from product_service.app import close_app, open_app
from product_service.auth import mint_token
from product_service.devservers import DevServers, EmbeddedPostgres, embedded_servers
from product_service.migrate import run_migrations
from product_service.settings import Settings
from product_service.tracing import RequestTraceIds
from service_helpers import JWT_SECRET, backfilled, settings_for


@pytest.fixture(scope="session")
def servers() -> Iterator[DevServers]:
    database_url, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    if database_url and redis_url:
        run_migrations(database_url)
        yield DevServers(database_url=database_url, redis_url=redis_url)
        return
    with embedded_servers() as started:
        yield started


@pytest.fixture
def server_dir() -> Iterator[Path]:
    """A scratch directory for a server's data, outside pytest's temporary directories: any pytest
    run resets those to mode 0700, which locks out Postgres's unprivileged user when tests run as root.
    """
    directory = Path(tempfile.mkdtemp(prefix="product-service-test-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def own_postgres(server_dir: Path) -> Iterator[EmbeddedPostgres]:
    """A migrated Postgres only this test uses, so stopping it (a fault) leaves the session's alone."""
    postgres = EmbeddedPostgres(server_dir / "postgres")
    postgres.start()
    run_migrations(postgres.url)
    yield postgres
    postgres.stop()


@pytest.fixture(scope="session")
def settings(servers: DevServers) -> Settings:
    return settings_for(servers)


@pytest.fixture(scope="session")
def app(settings: Settings) -> Iterator[Flask]:
    application = open_app(settings)
    yield application
    close_app(application)


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    yield app.test_client()
    backfilled(app)  # no back-fill of this test's reads lands in the next test's cache


@pytest.fixture
def traced(settings: Settings) -> Iterator[tuple[Flask, InMemorySpanExporter]]:
    """An app of its own whose spans land in memory, for tests that read the traces."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(id_generator=RequestTraceIds())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = open_app(settings, tracer_provider=provider)
    yield app, exporter
    close_app(app)
    provider.shutdown()


@pytest.fixture(scope="session")
def write_token() -> str:
    return mint_token(JWT_SECRET, "tests", 3600)


@pytest.fixture
def auth(write_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {write_token}"}


@pytest.fixture
def db(servers: DevServers) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(servers.database_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def redis_client(servers: DevServers) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(servers.redis_url)
    yield client
    client.close()


@pytest.fixture
def empty_catalog(db: psycopg.Connection[Any], redis_client: redis.Redis) -> None:
    """No products in Postgres and nothing cached, for tests that count."""
    db.execute("TRUNCATE products")
    redis_client.flushdb()
