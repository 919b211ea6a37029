"""Note the cache entries a write could not mark, in the write's own transaction.

An update or delete marks its product's cache entry pending before it commits (cache.py). When Redis
does not answer, the write now commits anyway and leaves a row here instead: Redis may still hold the
old entry, and whichever process next reaches Redis marks it pending, then deletes the row. A row per
product, with the newest version a write left, so the table never holds more rows than products.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE cache_repairs (
            product_id uuid PRIMARY KEY,
            version bigint NOT NULL,
            noted_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE cache_repairs")
