"""Create the products table.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NUMERIC(12, 2): money is exact; `version` orders the row's updates for the cache (see cache.py).
    op.execute(
        """
        CREATE TABLE products (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            name varchar(200) NOT NULL CHECK (char_length(name) >= 1),
            price numeric(12, 2) NOT NULL CHECK (price >= 0),
            description varchar(2000),
            version bigint NOT NULL DEFAULT 1,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    # Pages are read in creation order.
    op.execute("CREATE INDEX products_created_at_id ON products (created_at, id)")


def downgrade() -> None:
    op.execute("DROP TABLE products")
