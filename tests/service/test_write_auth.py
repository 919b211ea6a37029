"""Writes need an HS256 bearer token with the products:write scope; reads are public."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from flask.testing import FlaskClient
from product_service.app import close_app, open_app
from product_service.auth import mint_token
from product_service.devservers import DevServers
from service_helpers import JWT_SECRET, settings_for

BODY = {"name": "Tea", "price": "1.00"}


def post_with(client: FlaskClient, authorization: str | None) -> tuple[int, dict[str, Any], str | None]:
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = client.post("/api/v1/products", json=BODY, headers=headers)
    return response.status_code, response.json["error"], response.headers.get("WWW-Authenticate")


def test_missing_token_is_401(client: FlaskClient) -> None:
    status, error, challenge = post_with(client, None)

    assert (status, error["code"], challenge) == (401, "missing_token", "Bearer")


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "token abc"])
def test_malformed_authorization_header_is_401(client: FlaskClient, header: str) -> None:
    assert post_with(client, header)[0] == 401


def test_bad_signature_is_401(client: FlaskClient) -> None:
    forged = mint_token("another-secret-that-is-long-enough-for-hs256", "mallory", 600)

    status, error, challenge = post_with(client, f"Bearer {forged}")

    assert (status, error["code"]) == (401, "invalid_token")
    assert challenge == 'Bearer error="invalid_token"'


def test_expired_token_is_401(client: FlaskClient) -> None:
    expired = jwt.encode(
        {"scope": "products:write", "exp": int(time.time()) - 60}, JWT_SECRET, algorithm="HS256"
    )

    status, error, _ = post_with(client, f"Bearer {expired}")

    assert (status, error["code"]) == (401, "token_expired")


def test_token_without_expiry_is_401(client: FlaskClient) -> None:
    eternal = jwt.encode({"scope": "products:write"}, JWT_SECRET, algorithm="HS256")

    assert post_with(client, f"Bearer {eternal}")[1]["code"] == "invalid_token"


def test_unsigned_alg_none_token_is_401(client: FlaskClient) -> None:
    unsigned = jwt.encode({"scope": "products:write", "exp": int(time.time()) + 60}, None, algorithm="none")

    assert post_with(client, f"Bearer {unsigned}")[0] == 401


def test_garbage_token_is_401(client: FlaskClient) -> None:
    assert post_with(client, "Bearer not.a.jwt")[0] == 401


@pytest.mark.parametrize("scope", ["products:read", "products:writer", "", None])
def test_wrong_scope_is_403(client: FlaskClient, scope: str | None) -> None:
    claims = {"exp": int(time.time()) + 60, **({"scope": scope} if scope is not None else {})}
    token = jwt.encode(claims, JWT_SECRET, algorithm="HS256")

    status, error, challenge = post_with(client, f"Bearer {token}")

    assert (status, error["code"]) == (403, "insufficient_scope")
    assert challenge is not None and 'error="insufficient_scope"' in challenge


def test_scope_among_several_is_accepted(client: FlaskClient) -> None:
    token = mint_token(JWT_SECRET, "ci", 60, scope="products:read products:write admin")

    response = client.post("/api/v1/products", json=BODY, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("put", "/api/v1/products/00000000-0000-4000-8000-000000000000"),
        ("patch", "/api/v1/products/00000000-0000-4000-8000-000000000000"),
        ("delete", "/api/v1/products/00000000-0000-4000-8000-000000000000"),
    ],
)
def test_every_write_needs_a_token(client: FlaskClient, method: str, path: str) -> None:
    response = getattr(client, method)(path, json=BODY)

    assert response.status_code == 401


def test_auth_is_checked_before_the_body(client: FlaskClient) -> None:
    response = client.post("/api/v1/products", data="{broken", content_type="application/json")

    assert response.status_code == 401


def test_reads_need_no_token(client: FlaskClient) -> None:
    assert client.get("/api/v1/products").status_code == 200
    assert client.post("/api/v1/products:batchGet", json={"ids": [str(uuid.uuid4())]}).status_code == 200


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": "9999999999"},
        {"exp": True},
        {"exp": int(time.time()) + 60, "nbf": "0"},
        {"exp": int(time.time()) + 60, "iat": [1]},
    ],
)
def test_registered_time_claims_that_are_not_numbers_are_401(
    client: FlaskClient, claims: dict[str, Any]
) -> None:
    token = jwt.encode({"scope": "products:write", **claims}, JWT_SECRET, algorithm="HS256")

    status, error, _ = post_with(client, f"Bearer {token}")

    claim = next(
        name for name, value in claims.items() if isinstance(value, bool) or not isinstance(value, int)
    )
    assert (status, error["code"]) == (401, "invalid_token")
    assert error["message"] == f"the bearer token's {claim} claim must be a number"


def test_a_malformed_token_is_described_without_decoder_internals(client: FlaskClient) -> None:
    status, error, _ = post_with(client, "Bearer \xff\xfe.e30.c2ln")

    assert (status, error["code"]) == (401, "invalid_token")
    assert error["message"] == "the bearer token is not a well-formed JWT"


@pytest.fixture
def audience_client(servers: DevServers) -> Iterator[FlaskClient]:
    app = open_app(settings_for(servers, JWT_AUDIENCE="product-service", JWT_ISSUER="https://issuer.test"))
    yield app.test_client()
    close_app(app)


@pytest.mark.parametrize(
    ("audience", "issuer", "message"),
    [
        (None, "https://issuer.test", "the bearer token lacks the aud claim"),
        ("product-service", None, "the bearer token lacks the iss claim"),
        ("another-service", "https://issuer.test", "the bearer token is not meant for this service (aud)"),
        ("product-service", "https://evil.test", "the bearer token comes from another issuer (iss)"),
    ],
)
def test_with_jwt_audience_and_issuer_set_tokens_must_carry_both(
    audience_client: FlaskClient, audience: str | None, issuer: str | None, message: str
) -> None:
    token = mint_token(JWT_SECRET, "ci", 60, audience=audience, issuer=issuer)

    status, error, _ = post_with(audience_client, f"Bearer {token}")

    assert (status, error["code"], error["message"]) == (401, "invalid_token", message)


def test_with_jwt_audience_and_issuer_set_a_matching_token_writes(audience_client: FlaskClient) -> None:
    token = mint_token(JWT_SECRET, "ci", 60, audience="product-service", issuer="https://issuer.test")

    response = audience_client.post(
        "/api/v1/products", json=BODY, headers={"Authorization": f"Bearer {token}"}
    )

    assert response.status_code == 201
