"""Schema migrations with Alembic, run by `python -m product_service migrate` (the Kubernetes Job).

Only this command imports Alembic and SQLAlchemy; the serving processes never do. Running it again
is a no-op, and concurrent runs wait for each other on a Postgres advisory lock (see migrations/env.py).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

MIGRATIONS = "product_service:migrations"


def run_migrations(database_url: str, revision: str = "head") -> None:
    """Upgrade the database at `database_url` to `revision`."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    engine = create_engine(sqlalchemy_url(database_url), poolclass=NullPool)
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    try:
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def sqlalchemy_url(database_url: str) -> str:
    """The same database for SQLAlchemy's psycopg 3 dialect."""
    parts = urlsplit(database_url)
    return urlunsplit(parts._replace(scheme="postgresql+psycopg"))
