"""Alembic's entry: apply the migrations on the connection `product_service.migrate` opened."""

from alembic import context
from sqlalchemy import text

# Any constant shared by every run of this service's migrations.
_MIGRATION_LOCK_ID = 0x70726F64  # "prod"

connection = context.config.attributes["connection"]
context.configure(connection=connection, transactional_ddl=True)
with context.begin_transaction():
    # Two migration Jobs (or a Job and a developer) must not migrate at once; the second waits, then
    # finds nothing to do. The lock ends with the transaction.
    connection.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": _MIGRATION_LOCK_ID})
    context.run_migrations()
