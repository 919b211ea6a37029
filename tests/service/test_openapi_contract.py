"""/openapi.json describes the API, and the API keeps to it: schemathesis finds no 5xx, no schema breach."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from service_helpers import create_product


def test_openapi_document_lists_every_route_and_its_schemas(client: FlaskClient) -> None:
    document = client.get("/openapi.json").json

    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {
        "/api/v1/products",
        "/api/v1/products/{product_id}",
        "/api/v1/products:batchGet",
        "/health",
        "/ready",
    }
    assert set(document["paths"]["/api/v1/products/{product_id}"]) == {"get", "put", "patch", "delete"}
    create = document["paths"]["/api/v1/products"]["post"]
    assert create["security"] == [{"bearerAuth": []}]
    assert {"201", "401", "403", "413", "415", "422", "503"} <= set(create["responses"])
    schemas = document["components"]["schemas"]
    assert schemas["ProductCreate"]["additionalProperties"] is False
    assert schemas["ProductCreate"]["required"] == ["name", "price"]
    assert schemas["Product"]["properties"]["price"]["type"] == "string"
    assert set(schemas["ErrorResponse"]["properties"]) == {"error"}


@pytest.mark.parametrize(
    ("mode", "on_existing_product"),
    [(GenerationMode.POSITIVE, False), (GenerationMode.NEGATIVE, False), (GenerationMode.POSITIVE, True)],
    ids=["positive", "negative", "positive-existing-product"],
)
def test_api_keeps_to_its_openapi_document(
    app: Flask, write_token: str, auth: dict[str, str], mode: GenerationMode, on_existing_product: bool
) -> None:
    api = schemathesis.openapi.from_wsgi("/openapi.json", app)
    # Random ids only ever find nothing; this run aims the by-id operations at a real product.
    path_parameters = (
        {"product_id": create_product(app.test_client(), auth)["id"]} if on_existing_product else None
    )

    # Bounded and derandomized: the same examples every run, a few seconds in total.
    @given(case=api.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    @settings(
        max_examples=150,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def conforms(case: Any) -> None:
        case.call_and_validate(
            headers={"Authorization": f"Bearer {write_token}"},
            checks=[
                not_a_server_error,
                response_schema_conformance,
                status_code_conformance,
                content_type_conformance,
            ],
        )

    conforms()
