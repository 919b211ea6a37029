"""Every endpoint's success and error paths, through the Flask app on real Postgres and Valkey."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
import redis
from flask.testing import FlaskClient
from product_service.app import close_app, open_app
from product_service.schemas import Product, ProductPage
from product_service.settings import Settings
from psycopg.rows import dict_row
from service_helpers import create_product

MISSING_ID = "00000000-0000-4000-8000-000000000000"


def error_of(response: Any) -> dict[str, Any]:
    """The error object, after checking the one error shape every failure shares."""
    assert response.mimetype == "application/json"
    body = response.json
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    return body["error"]  # type: ignore[no-any-return]


def fields_named(error: dict[str, Any]) -> set[str]:
    return {detail["field"] for detail in error["details"]}


def test_create_returns_201_with_location_and_every_field(client: FlaskClient, auth: dict[str, str]) -> None:
    response = client.post(
        "/api/v1/products", json={"name": "Green tea", "price": "4.20", "description": "loose"}, headers=auth
    )

    assert response.status_code == 201
    product = response.json
    assert set(product) == {"id", "name", "price", "description", "created_at", "updated_at"}
    assert uuid.UUID(product["id"])
    assert (product["name"], product["price"], product["description"]) == ("Green tea", "4.20", "loose")
    assert response.headers["Location"] == f"/api/v1/products/{product['id']}"
    assert client.get(response.headers["Location"]).json == product


def test_price_is_stored_as_exact_numeric(
    client: FlaskClient, auth: dict[str, str], db: psycopg.Connection[Any]
) -> None:
    product = create_product(client, auth, price=0.1)

    row = db.execute("SELECT price, price::text FROM products WHERE id = %s", (product["id"],)).fetchone()
    assert row is not None
    assert row[1] == "0.10"
    assert product["price"] == "0.10"


def test_price_with_float_noise_is_rejected_not_rounded(client: FlaskClient, auth: dict[str, str]) -> None:
    # 1.0000000000000001 becomes 1.0 as a binary float; read as a Decimal it has too many decimals.
    response = client.post(
        "/api/v1/products",
        data='{"name": "Tea", "price": 1.0000000000000001}',
        content_type="application/json",
        headers=auth,
    )

    assert response.status_code == 422
    assert "price" in fields_named(error_of(response))


def test_get_unknown_id_is_404_json(client: FlaskClient) -> None:
    response = client.get(f"/api/v1/products/{MISSING_ID}")

    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_get_malformed_id_is_400(client: FlaskClient) -> None:
    response = client.get("/api/v1/products/not-a-uuid")

    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_id"


def test_an_error_repeats_no_more_than_a_short_prefix_of_what_the_client_sent(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    huge = "x" * 100_000
    malformed_id = client.get(f"/api/v1/products/{huge}")
    unknown_field = client.post("/api/v1/products", json={"name": "Tea", "price": "1", huge: 1}, headers=auth)

    assert (malformed_id.status_code, unknown_field.status_code) == (400, 422)
    for response in (malformed_id, unknown_field):
        assert len(response.get_data()) < 1_000, response.get_data()[:200]
    assert (
        error_of(malformed_id)["message"] == f"product id '{'x' * 64}'... (100000 characters) is not a UUID"
    )
    assert error_of(unknown_field)["details"][0]["field"] == "x" * 64 + "..."


def test_validation_names_every_bad_field(client: FlaskClient, auth: dict[str, str]) -> None:
    response = client.post(
        "/api/v1/products",
        json={"name": "", "price": -1, "description": "x" * 2001, "colour": "red"},
        headers=auth,
    )

    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "validation_failed"
    assert fields_named(error) == {"name", "price", "description", "colour"}
    assert "colour" in error["message"]
    messages = {detail["field"]: detail["message"] for detail in error["details"]}
    assert messages["colour"] == "Extra inputs are not permitted"
    assert messages["name"] == "String should have at least 1 character"
    assert messages["price"] == "Input should be greater than or equal to 0"
    assert messages["description"] == "String should have at most 2000 characters"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": 42, "price": "1.00"}, "name"),
        ({"name": "Tea", "price": True}, "price"),
        ({"name": "Tea", "price": "1.234"}, "price"),
        ({"name": "Tea", "price": "12e3"}, "price"),
        ({"name": "Tea", "price": 10_000_000_000}, "price"),
        ({"name": "x" * 201, "price": "1"}, "name"),
        ({"name": "nul\u0000byte", "price": "1"}, "name"),  # Postgres text cannot store NUL
        ({"name": "Tea", "price": "1", "description": "\u0000"}, "description"),
        ({"price": "1.00"}, "name"),
        ({"name": "Tea"}, "price"),
    ],
)
def test_wrong_types_and_bounds_are_422_naming_the_field(
    client: FlaskClient, auth: dict[str, str], body: dict[str, Any], field: str
) -> None:
    response = client.post("/api/v1/products", json=body, headers=auth)

    assert response.status_code == 422
    assert fields_named(error_of(response)) == {field}


def test_boundary_values_are_accepted(client: FlaskClient, auth: dict[str, str]) -> None:
    product = create_product(client, auth, name="x" * 200, price="9999999999.99", description="d" * 2000)

    assert product["price"] == "9999999999.99"
    assert create_product(client, auth, price=0)["price"] == "0.00"


@pytest.mark.usefixtures("empty_catalog")
def test_products_read_back_from_postgres_are_answered_as_their_validated_form(
    client: FlaskClient, auth: dict[str, str], db: psycopg.Connection[Any], redis_client: redis.Redis
) -> None:
    # Rows are neither validated again nor built into models on the way out (repository.StoredProduct,
    # schemas.ProductRow): the answer must be what validating them would give, at the columns' bounds,
    # with characters JSON escapes, and in a page, byte for byte.
    for fields in (
        {"name": "x" * 200, "price": "9999999999.99", "description": "d" * 2000},
        {"price": 0, "description": None},
        {"name": "Thé ☕ 茶", "price": "0.1"},
        {"name": 'tab\t "quote" \\ \x01\x1f\x7f \u2028 </script>', "description": "line\nbreak\r\n"},
    ):
        create_product(client, auth, **fields)
    redis_client.flushdb()
    rows = db.cursor(row_factory=dict_row).execute(
        "SELECT id, name, price, description, created_at, updated_at FROM products ORDER BY created_at, id"
    )
    validated = [Product.model_validate(row) for row in rows]
    documents = [product.model_dump_json().encode() for product in validated]

    fetched = [client.get(f"/api/v1/products/{product.id}").data for product in validated]
    listed = client.get("/api/v1/products?limit=3&offset=1").data

    assert fetched == documents
    page = ProductPage(items=validated[1:4], total=len(validated), limit=3, offset=1)
    assert listed == page.model_dump_json().encode()


def test_malformed_json_is_400(client: FlaskClient, auth: dict[str, str]) -> None:
    response = client.post(
        "/api/v1/products", data="{not json", content_type="application/json", headers=auth
    )

    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_json"


def test_nan_is_not_a_price(client: FlaskClient, auth: dict[str, str]) -> None:
    response = client.post(
        "/api/v1/products",
        data='{"name": "Tea", "price": NaN}',
        content_type="application/json",
        headers=auth,
    )

    assert response.status_code == 400


def test_non_json_body_is_415(client: FlaskClient, auth: dict[str, str]) -> None:
    response = client.post("/api/v1/products", data="name=Tea", content_type="text/plain", headers=auth)

    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"


def test_body_over_one_mebibyte_is_413(client: FlaskClient, auth: dict[str, str]) -> None:
    body = '{"name": "Tea", "price": 1, "description": "' + "x" * (1024 * 1024) + '"}'

    response = client.post("/api/v1/products", data=body, content_type="application/json", headers=auth)

    assert response.status_code == 413
    assert error_of(response)["code"] == "request_entity_too_large"


def test_unknown_route_is_404_json(client: FlaskClient) -> None:
    response = client.get("/api/v1/nothing-here")

    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_wrong_method_is_405_json_with_allow(client: FlaskClient) -> None:
    response = client.delete("/api/v1/products")

    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]


def test_unexpected_failure_is_500_json(settings: Settings) -> None:
    app = open_app(settings)

    @app.get("/boom-for-test")
    def boom() -> None:
        raise RuntimeError("boom")

    try:
        response = app.test_client().get("/boom-for-test")
    finally:
        close_app(app)

    assert response.status_code == 500
    error = error_of(response)
    assert error["code"] == "internal_error"
    assert "boom" not in error["message"]


@pytest.mark.usefixtures("empty_catalog")
def test_list_pages_in_creation_order_with_total(client: FlaskClient, auth: dict[str, str]) -> None:
    created = [create_product(client, auth, name=f"p{i}")["id"] for i in range(5)]

    first = client.get("/api/v1/products?limit=2").json
    last = client.get("/api/v1/products?limit=2&offset=4").json
    beyond = client.get("/api/v1/products?offset=10").json

    assert [item["id"] for item in first["items"]] == created[:2]
    assert (first["total"], first["limit"], first["offset"]) == (5, 2, 0)
    assert [item["id"] for item in last["items"]] == created[4:]
    assert beyond["items"] == []
    assert beyond["total"] == 5


@pytest.mark.usefixtures("empty_catalog")
def test_pages_of_products_created_at_the_same_instant_neither_skip_nor_repeat(
    client: FlaskClient, db: psycopg.Connection[Any]
) -> None:
    # One INSERT gives every row the same created_at: the id alone orders them.
    db.execute("INSERT INTO products (name, price) SELECT 'p' || n, 1 FROM generate_series(1, 7) AS n")
    in_order = [row[0] for row in db.execute("SELECT id::text FROM products ORDER BY created_at, id")]

    pages = [client.get(f"/api/v1/products?limit=3&offset={offset}").json for offset in (0, 3, 6, 9)]

    assert [item["id"] for page in pages for item in page["items"]] == in_order
    assert [page["total"] for page in pages] == [7, 7, 7, 7]


@pytest.mark.usefixtures("empty_catalog")
def test_list_defaults_to_20_and_allows_100(client: FlaskClient, auth: dict[str, str]) -> None:
    for i in range(21):
        create_product(client, auth, name=f"p{i}")

    assert len(client.get("/api/v1/products").json["items"]) == 20
    assert client.get("/api/v1/products?limit=100").json["limit"] == 100


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=abc", "offset=-1", "limit=1.5", "offset=x"])
def test_list_rejects_bad_paging_values_with_400(client: FlaskClient, query: str) -> None:
    response = client.get(f"/api/v1/products?{query}")

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid_query"
    assert fields_named(error) == {query.partition("=")[0]}


def test_put_replaces_every_field(client: FlaskClient, auth: dict[str, str]) -> None:
    product = create_product(client, auth, description="old")

    response = client.put(f"/api/v1/products/{product['id']}", json={"name": "New", "price": 9}, headers=auth)

    assert response.status_code == 200
    replaced = response.json
    assert (replaced["name"], replaced["price"], replaced["description"]) == ("New", "9.00", None)
    assert replaced["created_at"] == product["created_at"]
    assert replaced["updated_at"] > product["updated_at"]


def test_patch_changes_only_given_fields(client: FlaskClient, auth: dict[str, str]) -> None:
    product = create_product(client, auth, description="keep")

    response = client.patch(f"/api/v1/products/{product['id']}", json={"price": "1.25"}, headers=auth)

    assert response.status_code == 200
    assert (response.json["name"], response.json["price"], response.json["description"]) == (
        "Tea",
        "1.25",
        "keep",
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "body"), ({"name": None}, "body"), ({"price": "-1"}, "price"), ({"id": "x"}, "id")],
)
def test_patch_rejects_empty_null_and_unknown_changes(
    client: FlaskClient, auth: dict[str, str], body: dict[str, Any], field: str
) -> None:
    product = create_product(client, auth)

    response = client.patch(f"/api/v1/products/{product['id']}", json=body, headers=auth)

    assert response.status_code == 422
    assert field in fields_named(error_of(response))


def test_update_and_delete_of_unknown_product_are_404(client: FlaskClient, auth: dict[str, str]) -> None:
    put = client.put(f"/api/v1/products/{MISSING_ID}", json={"name": "x", "price": 1}, headers=auth)
    patch = client.patch(f"/api/v1/products/{MISSING_ID}", json={"name": "x"}, headers=auth)
    delete = client.delete(f"/api/v1/products/{MISSING_ID}", headers=auth)

    assert [put.status_code, patch.status_code, delete.status_code] == [404, 404, 404]
    assert error_of(delete)["code"] == "not_found"


def test_writes_with_malformed_id_are_400(client: FlaskClient, auth: dict[str, str]) -> None:
    assert client.delete("/api/v1/products/123", headers=auth).status_code == 400
    assert client.patch("/api/v1/products/123", json={"name": "x"}, headers=auth).status_code == 400


def test_delete_is_204_then_the_product_is_gone(client: FlaskClient, auth: dict[str, str]) -> None:
    product = create_product(client, auth)
    client.get(f"/api/v1/products/{product['id']}")  # cached

    response = client.delete(f"/api/v1/products/{product['id']}", headers=auth)

    assert response.status_code == 204
    assert response.data == b""
    assert client.get(f"/api/v1/products/{product['id']}").status_code == 404
    assert client.delete(f"/api/v1/products/{product['id']}", headers=auth).status_code == 404


def test_batch_get_returns_found_in_request_order_and_missing(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    first, second = create_product(client, auth, name="a"), create_product(client, auth, name="b")

    response = client.post(
        "/api/v1/products:batchGet", json={"ids": [second["id"], MISSING_ID, first["id"], second["id"]]}
    )

    assert response.status_code == 200
    assert [product["id"] for product in response.json["products"]] == [second["id"], first["id"]]
    assert response.json["missing"] == [MISSING_ID]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ids": []}, "ids"),
        ({"ids": [MISSING_ID] * 101}, "ids"),
        ({"ids": [MISSING_ID, "nope"]}, "ids[1]"),
        ({"ids": [MISSING_ID], "limit": 3}, "limit"),
        ({}, "ids"),
    ],
)
def test_batch_get_validates_ids(client: FlaskClient, body: dict[str, Any], field: str) -> None:
    response = client.post("/api/v1/products:batchGet", json=body)

    assert response.status_code == 422
    assert fields_named(error_of(response)) == {field}


def test_health_touches_nothing(client: FlaskClient) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_ready_reports_each_dependency(client: FlaskClient) -> None:
    response = client.get("/ready")

    assert response.status_code == 200
    assert response.json == {"status": "ready", "checks": {"postgres": "ok", "redis": "ok"}}


def test_unicode_names_round_trip(client: FlaskClient, auth: dict[str, str]) -> None:
    product = create_product(client, auth, name="Crème brûlée 🍮", description="日本茶")

    assert client.get(f"/api/v1/products/{product['id']}").json["name"] == "Crème brûlée 🍮"
    assert product["description"] == "日本茶"
