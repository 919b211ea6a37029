"""Schema migrations: Alembic, run by its own command, safe to repeat, never imported by the server."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
from product_service.devservers import DevServers, EmbeddedPostgres
from product_service.migrate import run_migrations
from service_helpers import JWT_SECRET


@pytest.fixture
def blank_postgres(server_dir: Path) -> Iterator[EmbeddedPostgres]:
    with EmbeddedPostgres(server_dir / "postgres") as postgres:
        yield postgres


def migrate(database_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "product_service", "migrate"],
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=120,
    )


def columns(database_url: str) -> dict[str, Any]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT column_name, data_type, numeric_precision, numeric_scale FROM information_schema.columns"
            " WHERE table_name = 'products'"
        ).fetchall()
    return {name: rest for name, *rest in rows}


def test_migrate_creates_the_schema_concurrent_runs_serialize_and_a_rerun_changes_nothing(
    blank_postgres: EmbeddedPostgres,
) -> None:
    # Two Jobs at once (e.g. a retried rollout): one waits on the advisory lock, then finds nothing to do.
    with ThreadPoolExecutor(max_workers=2) as pool:
        concurrent = list(pool.map(migrate, [blank_postgres.url] * 2))
    schema = columns(blank_postgres.url)
    rerun = migrate(blank_postgres.url)

    assert [result.returncode for result in concurrent] == [0, 0], [result.stderr for result in concurrent]
    assert rerun.returncode == 0, rerun.stderr
    assert "migrations applied" in rerun.stdout
    assert schema["price"] == ["numeric", 12, 2]
    assert set(schema) == {"id", "name", "price", "description", "version", "created_at", "updated_at"}
    assert columns(blank_postgres.url) == schema
    with psycopg.connect(blank_postgres.url) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0003",)]


def test_the_product_count_starts_from_existing_rows_and_follows_every_write(
    blank_postgres: EmbeddedPostgres,
) -> None:
    def counts(conn: psycopg.Connection[Any]) -> tuple[int, int]:
        kept = conn.execute("SELECT total FROM product_count").fetchone()
        counted = conn.execute("SELECT count(*) FROM products").fetchone()
        assert kept is not None and counted is not None
        return kept[0], counted[0]

    def insert(rows: int) -> None:
        with psycopg.connect(blank_postgres.url, autocommit=True) as conn:
            for _ in range(rows):
                conn.execute("INSERT INTO products (name, price) VALUES ('Tea', 1)")

    run_migrations(blank_postgres.url, "0001")
    insert(3)
    run_migrations(blank_postgres.url)
    with psycopg.connect(blank_postgres.url, autocommit=True) as conn:
        assert counts(conn) == (3, 3)
        conn.execute("INSERT INTO products (name, price) SELECT 'Tea', 1 FROM generate_series(1, 5)")
        assert counts(conn) == (8, 8)
        conn.execute("DELETE FROM products WHERE id IN (SELECT id FROM products LIMIT 2)")
        assert counts(conn) == (6, 6)
        with conn.transaction(force_rollback=True):
            conn.execute("DELETE FROM products")
        assert counts(conn) == (6, 6)
        # Concurrent writers queue on the count's row; none is lost.
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(insert, [25] * 4))
        assert counts(conn) == (106, 106)
        conn.execute("TRUNCATE products")
        assert counts(conn) == (0, 0)


def test_the_serving_process_never_imports_alembic_or_sqlalchemy(servers: DevServers) -> None:
    probe = (
        "import sys, product_service.wsgi\n"
        "print(sorted(m for m in ('alembic', 'sqlalchemy') if m in sys.modules))\n"
    )
    env = {
        **os.environ,
        "DATABASE_URL": servers.database_url,
        "REDIS_URL": servers.redis_url,
        "JWT_SECRET": JWT_SECRET,
    }

    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
