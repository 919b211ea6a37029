"""The OpenAPI 3.1 document, generated from the app's routes and the pydantic schemas they use.

Each view declares its contract with `@operation(...)`; `build_openapi` walks the Flask URL map, so a
route that exists is documented, and its bodies are the JSON schemas of the very models that validate
and serialize them. Errors every operation can return (500, and 503 for the API) are added here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from product_service.schemas import ErrorResponse

ViewT = TypeVar("ViewT", bound=Callable[..., Any])

_REF_TEMPLATE = "#/components/schemas/{model}"
_PATH_PARAMETER = re.compile(r"<(?:[a-z_]+:)?([a-z_]+)>")
_HTTP_METHODS = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True)
class Operation:
    summary: str
    responses: dict[int, type[BaseModel] | None]  # None: an error (ErrorResponse) or no body (204)
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    secured: bool = False
    created_location: bool = False
    media_type: str = "application/json"


def operation(
    summary: str,
    *,
    responses: dict[int, type[BaseModel] | None],
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    secured: bool = False,
    created_location: bool = False,
    media_type: str = "application/json",
) -> Callable[[ViewT], ViewT]:
    """Declare a view's contract for the OpenAPI document."""

    def attach(view: ViewT) -> ViewT:
        view.openapi_operation = Operation(  # type: ignore[attr-defined]
            summary, responses, body, query, secured, created_location, media_type
        )
        return view

    return attach


def build_openapi(app: Flask, title: str, version: str) -> dict[str, Any]:
    documented = [
        (rule, method, op)
        for rule in app.url_map.iter_rules()
        if (op := getattr(app.view_functions[rule.endpoint], "openapi_operation", None)) is not None
        for method in sorted(rule.methods or ())
        if method.lower() in _HTTP_METHODS
    ]
    models: set[tuple[type[BaseModel], JsonSchemaMode]] = {(ErrorResponse, "serialization")}
    for _, _, op in documented:
        models.update((model, "serialization") for model in op.responses.values() if model is not None)
        if op.body is not None:
            models.add((op.body, "validation"))
    refs, definitions = models_json_schema(
        sorted(models, key=lambda item: (item[0].__name__, item[1])), ref_template=_REF_TEMPLATE
    )

    paths: dict[str, dict[str, Any]] = {}
    for rule, method, op in documented:
        path = _PATH_PARAMETER.sub(r"{\1}", rule.rule)
        paths.setdefault(path, {})[method.lower()] = _operation_object(
            op, rule.endpoint, list(rule.arguments), refs, is_api=path.startswith("/api/")
        )
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }


def _operation_object(
    op: Operation,
    endpoint: str,
    path_arguments: list[str],
    refs: Mapping[tuple[Any, JsonSchemaMode], dict[str, Any]],
    *,
    is_api: bool,
) -> dict[str, Any]:
    error = {"application/json": {"schema": refs[(ErrorResponse, "serialization")]}}
    responses: dict[str, Any] = {}
    for status, model in op.responses.items():
        if model is not None:
            responses[str(status)] = {
                "description": op.summary,
                "content": {op.media_type: {"schema": refs[(model, "serialization")]}},
            }
        elif status == 204:
            responses[str(status)] = {"description": "done, no content"}
        else:
            responses[str(status)] = {"description": _ERROR_DESCRIPTIONS[status], "content": error}
    # gunicorn answers 400, 414 and 431 before any route is chosen (worker.py), and 501 for a body in a
    # transfer coding it does not know.
    error_statuses = [400, 414, 431, 500]
    if is_api:
        error_statuses.append(503)
    if op.body is not None:
        error_statuses += [413, 415, 422, 501]
    if op.secured:
        error_statuses += [401, 403]
    if path_arguments:
        error_statuses.append(400)
    for status in error_statuses:
        responses.setdefault(str(status), {"description": _ERROR_DESCRIPTIONS[status], "content": error})
    if op.created_location:
        responses["201"]["headers"] = {
            "Location": {"description": "URL of the new product", "schema": {"type": "string"}}
        }

    document: dict[str, Any] = {
        "operationId": endpoint.rpartition(".")[2],
        "summary": op.summary,
        "responses": dict(sorted(responses.items())),
    }
    # The only path parameter of the API is a product id.
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
        for name in path_arguments
    ]
    if op.query is not None:
        query_schema = op.query.model_json_schema()
        parameters += [
            {"name": name, "in": "query", "required": False, "schema": schema}
            for name, schema in query_schema["properties"].items()
        ]
    if parameters:
        document["parameters"] = parameters
    if op.body is not None:
        document["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
        }
    if op.secured:
        document["security"] = [{"bearerAuth": []}]
    return document


_ERROR_DESCRIPTIONS = {
    400: "malformed request: invalid HTTP framing (e.g. Content-Length), JSON, id or query parameter",
    401: "missing, invalid or expired bearer token",
    403: "the bearer token lacks the products:write scope",
    404: "no such product",
    413: "request body larger than 1 MiB",
    414: "request line (URL) longer than 4094 bytes",
    415: "request body is not application/json",
    422: "the body does not match the schema; details name each field",
    431: "more than 100 request headers, or one longer than 8190 bytes",
    500: "unexpected server error",
    501: "the request's Transfer-Encoding is not supported",
    503: "a backing service is unavailable (Postgres; Redis for updates and deletes); retry later",
}
