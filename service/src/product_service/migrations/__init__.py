"""Alembic migration scripts of the products schema (`versions/`), applied by `product_service.migrate`."""
