"""One JSON error shape for every failure: `{"error": {"code", "message", "details"}}`.

Views raise `ApiError`; Werkzeug's HTTP errors (404, 405, 413, ...), an unavailable database and
unexpected exceptions are turned into the same shape here, so a client parses errors one way.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from product_service.schemas import ErrorDetail, ErrorResponse, FieldError

log = logging.getLogger(__name__)
# The most of a client's own text an error message or detail repeats: enough to recognise it, never
# enough to turn an error into a large reply (a 1 MB id echoed in gRPC trailers exceeds a client's limit).
ECHO_LIMIT = 64


def echoed(text: str) -> str:
    """A client's text as an error quotes it: its repr, cut to ECHO_LIMIT characters with a mark."""
    if len(text) <= ECHO_LIMIT:
        return repr(text)
    return f"{text[:ECHO_LIMIT]!r}... ({len(text)} characters)"


class ApiError(Exception):
    """An error a view reports to the client as-is."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[FieldError] | dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


class ServiceUnavailable(Exception):
    """A backing service the request needs (Postgres) cannot be reached; the client may retry."""

    def __init__(self, dependency: str) -> None:
        super().__init__(f"{dependency} is unavailable")
        self.dependency = dependency


# A body of 1 MiB can hold 80,000 unknown keys: reporting each would answer with megabytes.
MAX_REPORTED_FIELD_ERRORS = 20


def validation_error(error: ValidationError, status: int = 422, code: str = "validation_failed") -> ApiError:
    """An `ApiError` naming the fields that failed, e.g. `price` or `ids[3]`: the first
    `MAX_REPORTED_FIELD_ERRORS`, and how many more there were."""
    problems = error.errors(include_url=False, include_input=False)
    fields = [
        FieldError(field=_field_path(problem["loc"]), message=problem["msg"], type=problem["type"])
        for problem in problems[:MAX_REPORTED_FIELD_ERRORS]
    ]
    message = "invalid fields: " + ", ".join(dict.fromkeys(field.field for field in fields))
    if len(problems) > len(fields):
        message += f" and {len(problems) - len(fields)} more errors"
    return ApiError(status, code, message, details=fields)


def error_body(code: str, message: str, details: list[FieldError] | dict[str, Any] | None = None) -> bytes:
    """The JSON of the one error shape, for the app and for gunicorn's own error answers (worker.py)."""
    return (
        ErrorResponse(error=ErrorDetail(code=code, message=message, details=details))
        .model_dump_json()
        .encode()
    )


def error_response(
    status: int,
    code: str,
    message: str,
    details: list[FieldError] | dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    response = Response(error_body(code, message, details), status=status, mimetype="application/json")
    response.headers.update(headers or {})
    return response


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(ServiceUnavailable, _service_unavailable)
    app.register_error_handler(Exception, _unexpected_error)


def _api_error(error: ApiError) -> Response:
    return error_response(error.status, error.code, error.message, error.details, error.headers)


def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    code = (error.name or "error").lower().replace(" ", "_")
    # Keep the headers Werkzeug computed, e.g. `Allow` on 405.
    headers = {name: value for name, value in error.get_headers() if name.lower() not in ("content-type",)}
    return error_response(status, code, error.description or error.name, headers=headers)


def _service_unavailable(error: ServiceUnavailable) -> Response:
    log.warning("request failed: %s unavailable", error.dependency)
    return error_response(
        503,
        "service_unavailable",
        f"{error.dependency} is unavailable, retry later",
        details={"dependency": error.dependency},
        headers={"Retry-After": "1"},
    )


def _unexpected_error(error: Exception) -> Response:
    log.exception("unhandled error")
    return error_response(500, "internal_error", "the server failed to handle the request")


def _field_path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        # A key of the client's own (an unknown field) is part of the path: cut like any echo.
        name = str(part) if len(str(part)) <= ECHO_LIMIT else f"{str(part)[:ECHO_LIMIT]}..."
        path += f"[{part}]" if isinstance(part, int) else (f".{name}" if path else name)
    return path or "body"
