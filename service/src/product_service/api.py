"""The REST API under /api/v1: products by id, pages, batch get, and the authenticated writes."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from functools import wraps
from typing import Any, TypeVar
from uuid import UUID

from flask import Blueprint, Response, request, url_for
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from product_service.auth import TokenVerifier
from product_service.cache import CachedProductRepository
from product_service.errors import ApiError, echoed, validation_error
from product_service.openapi import operation
from product_service.schemas import (
    BatchGetRequest,
    BatchGetResponse,
    PageQuery,
    Product,
    ProductCreate,
    ProductPage,
    ProductPatch,
)

Model = TypeVar("Model", bound=BaseModel)
View = Callable[..., Response]


def create_products_blueprint(products: CachedProductRepository, tokens: TokenVerifier) -> Blueprint:
    api = Blueprint("products", __name__, url_prefix="/api/v1")

    def requires_write_scope(view: View) -> View:
        @wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Response:
            tokens.require_scope(request.headers.get("Authorization"))
            return view(*args, **kwargs)

        return checked

    @api.get("/products/<product_id>")
    @operation("Get a product", responses={200: Product, 400: None, 404: None})
    def get_product(product_id: str) -> Response:
        product = products.get_json(_parse_id(product_id))
        if product is None:
            raise _not_found(product_id)
        return Response(product, mimetype="application/json")

    @api.get("/products")
    @operation("List products in creation order", query=PageQuery, responses={200: ProductPage, 400: None})
    def list_products() -> Response:
        page = _read_query(PageQuery)
        items, total = products.list_page_json(page.limit, page.offset)
        return Response(page_document(items, total, page), mimetype="application/json")

    @api.post("/products")
    @operation(
        "Create a product",
        body=ProductCreate,
        responses={201: Product},
        secured=True,
        created_location=True,
    )
    @requires_write_scope
    def create_product() -> Response:
        product = products.create(read_json_body(ProductCreate))
        response = json_response(product, status=201)
        response.headers["Location"] = url_for("products.get_product", product_id=str(product.id))
        return response

    @api.put("/products/<product_id>")
    @operation("Replace a product", body=ProductCreate, responses={200: Product, 404: None}, secured=True)
    @requires_write_scope
    def replace_product(product_id: str) -> Response:
        target = _parse_id(product_id)
        replacement = read_json_body(ProductCreate)
        return _updated(products.update(target, replacement.model_dump()), product_id)

    @api.patch("/products/<product_id>")
    @operation(
        "Change some fields of a product",
        body=ProductPatch,
        responses={200: Product, 404: None},
        secured=True,
    )
    @requires_write_scope
    def patch_product(product_id: str) -> Response:
        target = _parse_id(product_id)
        changes = read_json_body(ProductPatch).changes()
        return _updated(products.update(target, changes), product_id)

    @api.delete("/products/<product_id>")
    @operation("Delete a product", responses={204: None, 404: None}, secured=True)
    @requires_write_scope
    def delete_product(product_id: str) -> Response:
        if not products.delete(_parse_id(product_id)):
            raise _not_found(product_id)
        return Response(status=204)

    @api.post("/products:batchGet")
    @operation(
        "Get up to 100 products by id; unknown ids are listed as missing",
        body=BatchGetRequest,
        responses={200: BatchGetResponse},
    )
    def batch_get_products() -> Response:
        result = products.get_many_json(read_json_body(BatchGetRequest).ids)
        return Response(batch_get_document(result.products, result.missing), mimetype="application/json")

    return api


def json_response(model: BaseModel, status: int = 200) -> Response:
    return Response(model.model_dump_json(), status=status, mimetype="application/json")


def batch_get_document(products: list[bytes], missing: list[UUID]) -> bytes:
    """`BatchGetResponse(...).model_dump_json()` byte for byte, from each product's JSON as it is."""
    missing_ids = b",".join(b'"%s"' % str(product_id).encode() for product_id in missing)
    return b'{"products":[' + b",".join(products) + b'],"missing":[' + missing_ids + b"]}"


def page_document(items: list[bytes], total: int, page: PageQuery) -> bytes:
    """`ProductPage(...).model_dump_json()` byte for byte, from each product's JSON document."""
    return b'{"items":[%s],"total":%d,"limit":%d,"offset":%d}' % (
        b",".join(items),
        total,
        page.limit,
        page.offset,
    )


def read_json_body(schema: type[Model]) -> Model:
    """The request body validated against `schema`; JSON numbers become Decimal, never float."""
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "the request body must be application/json")
    document = _parse_json(_read_body())
    try:
        return schema.model_validate(document)
    except ValidationError as error:
        raise validation_error(error) from None


def _read_body() -> bytes:
    """The whole body; 413 past MAX_CONTENT_LENGTH, whether it came with a Content-Length or chunked."""
    limit = request.max_content_length
    body = request.stream.read()  # raises 413 for a Content-Length past the limit
    # Werkzeug stops a body without Content-Length (chunked) at the limit, silently: one byte more on
    # the server's own input stream means the client sent too much.
    too_long = limit is not None and len(body) >= limit and request.content_length is None
    if too_long and request.input_stream.read(1):
        raise RequestEntityTooLarge()
    return body


def _parse_json(raw: bytes) -> Any:
    """The document; 400 with what is wrong with the body, never the parser's own words."""
    try:
        return json.loads(raw, parse_float=Decimal, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        message = (
            f"the request body is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})"
        )
    except UnicodeDecodeError:
        message = "the request body is not valid UTF-8"
    except RecursionError:
        message = "the request body nests arrays or objects too deeply"
    except ValueError:  # an integer longer than Python converts (sys.get_int_max_str_digits()), NaN, Infinity
        message = "the request body holds a number that is too long or not finite"
    raise ApiError(400, "invalid_json", message)


def _read_query(schema: type[Model]) -> Model:
    names = schema.model_fields.keys()
    try:
        return schema.model_validate({name: request.args[name] for name in names if name in request.args})
    except ValidationError as error:
        raise validation_error(error, status=400, code="invalid_query") from None


def _parse_id(product_id: str) -> UUID:
    try:
        return UUID(product_id)
    except ValueError:
        raise ApiError(400, "invalid_id", f"product id {echoed(product_id)} is not a UUID") from None


def _updated(product: Product | None, product_id: str) -> Response:
    if product is None:
        raise _not_found(product_id)
    return json_response(product)


def _not_found(product_id: str) -> ApiError:
    return ApiError(404, "not_found", f"product {product_id} does not exist")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")
