"""Keep the number of products in a one-row table, for the `total` of every page.

`SELECT count(*) FROM products` reads every row (Postgres keeps no row count), so each page cost as
much again as the page itself: about 1 ms of Postgres CPU at 10,000 products, growing with the table
(docs/performance.md). Statement-level triggers keep `product_count.total` exact instead, in the same
transaction as the rows they count. The price: concurrent creates and deletes queue on that one row
until each commits, which a product catalogue's write rate does not feel.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE product_count (
            only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
            total bigint NOT NULL CHECK (total >= 0)
        )
        """
    )
    op.execute(
        """
        CREATE FUNCTION count_products() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                UPDATE product_count SET total = total + (SELECT count(*) FROM changed);
            ELSIF TG_OP = 'DELETE' THEN
                UPDATE product_count SET total = total - (SELECT count(*) FROM changed);
            ELSE  -- TRUNCATE
                UPDATE product_count SET total = 0;
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    # One trigger per event: a transition table belongs to a single INSERT or DELETE trigger.
    op.execute(
        "CREATE TRIGGER products_counted_on_insert AFTER INSERT ON products"
        " REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION count_products()"
    )
    op.execute(
        "CREATE TRIGGER products_counted_on_delete AFTER DELETE ON products"
        " REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION count_products()"
    )
    op.execute(
        "CREATE TRIGGER products_counted_on_truncate AFTER TRUNCATE ON products"
        " FOR EACH STATEMENT EXECUTE FUNCTION count_products()"
    )
    # In the migration's transaction, after CREATE TRIGGER: its lock keeps writers out until the commit,
    # so no row is missed or counted twice.
    op.execute("INSERT INTO product_count (total) SELECT count(*) FROM products")


def downgrade() -> None:
    for event in ("insert", "delete", "truncate"):
        op.execute(f"DROP TRIGGER products_counted_on_{event} ON products")
    op.execute("DROP FUNCTION count_products()")
    op.execute("DROP TABLE product_count")
