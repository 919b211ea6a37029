"""Hostile request bodies and methods: each answers a 4xx in the JSON error shape, says what was wrong
with the request (never how Python failed) and costs the service bounded memory."""

from __future__ import annotations

import json

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.test import TestResponse

JSON = {"Content-Type": "application/json"}


def post_raw(
    client: FlaskClient, body: bytes | str, auth: dict[str, str], path: str = "/api/v1/products"
) -> TestResponse:
    return client.post(path, data=body, headers={**auth, **JSON})


@pytest.mark.parametrize("path", ["/api/v1/products", "/api/v1/products:batchGet"])
def test_json_nested_1000_levels_deep_is_a_400_not_a_recursion_error(
    client: FlaskClient, auth: dict[str, str], path: str
) -> None:
    response = post_raw(client, "[" * 1000 + "]" * 1000, auth, path)

    assert response.status_code == 400
    assert response.json["error"] == {
        "code": "invalid_json",
        "message": "the request body nests arrays or objects too deeply",
        "details": None,
    }


def test_a_price_with_an_exponent_postgres_cannot_store_is_a_422_naming_price(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    response = post_raw(client, '{"name": "Tea", "price": 0e-16384}', auth)

    assert response.status_code == 422
    assert response.json["error"]["details"] == [
        {
            "field": "price",
            "message": "Value error, price must have at most 2 decimals",
            "type": "value_error",
        }
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"name": "Tea", "price": ' + "9" * 5000 + "}", "a number that is too long or not finite"),
        (b'{"name": "T\xff\xfe", "price": 1}', "the request body is not valid UTF-8"),
        ('{"name": "Tea", "price": 1', "not valid JSON: Expecting ',' delimiter (line 1, column 27)"),
    ],
)
def test_unparseable_bodies_are_described_in_terms_of_the_request(
    client: FlaskClient, auth: dict[str, str], body: str | bytes, message: str
) -> None:
    response = post_raw(client, body, auth)

    assert response.status_code == 400
    error = response.json["error"]
    assert error["code"] == "invalid_json"
    assert message in error["message"]
    for internal in ("sys.set_int_max_str_digits", "codec", "Exceeds the limit", "0xff"):
        assert internal not in error["message"]


def test_a_body_of_80000_unknown_keys_gets_a_small_422_that_counts_the_rest(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    body = json.dumps({"name": "Tea", "price": 1, **{f"k{i}": 0 for i in range(80_000)}})
    assert len(body) < 1024 * 1024

    response = post_raw(client, body, auth)

    assert response.status_code == 422
    assert len(response.data) < 10_000
    error = response.json["error"]
    assert len(error["details"]) == 20
    assert error["details"][0] == {
        "field": "k0",
        "message": "Extra inputs are not permitted",
        "type": "extra_forbidden",
    }
    assert error["message"].endswith("k19 and 79980 more errors")


def test_made_up_http_methods_share_one_metrics_series(client: FlaskClient) -> None:
    for method in ("XQWERTYUIOP", "ASDFGHJKL", "ZXCVBNM"):
        assert client.open("/health", method=method).status_code == 405

    text = client.get("/metrics").data.decode()

    methods = {
        sample.labels["method"]
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "http_server_requests_total"
    }
    assert "other" in methods
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
