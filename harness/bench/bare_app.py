"""The baseline: a bare Flask app returning a product-sized JSON document, nothing else.

The benchmark serves it with the same gunicorn settings as the product service, so the ratio between
the two is what the service's own work costs (validation, Postgres, Redis, metrics, tracing, logs).
"""

from __future__ import annotations

from flask import Flask

PRODUCT = {
    "id": "0b7e5f0e-6f8f-4d55-9d57-4b1b5d4b8f52",
    "name": "Bench product 00042",
    "price": "19.99",
    "description": "A product as the seed writes it, so the document has the same size.",
    "created_at": "2026-01-01T00:00:00+00:00",
    "updated_at": "2026-01-01T00:00:00+00:00",
}


def create_app() -> Flask:
    app = Flask(__name__)

    @app.get("/bare")
    def bare():
        return PRODUCT

    return app


app = create_app()
