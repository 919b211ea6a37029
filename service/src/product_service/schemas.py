"""The API's request and response shapes: validation, serialization and the OpenAPI schemas.

Money is a `Decimal` end to end: request bodies are parsed with `parse_float=Decimal` (see
`api.read_json_body`), Postgres stores NUMERIC(12, 2), and responses carry the price as a string with
exactly two decimals, so no binary float ever holds a price.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    WithJsonSchema,
    model_validator,
)
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12

MAX_PRICE = Decimal("9999999999.99")  # NUMERIC(12, 2)
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
MAX_OFFSET = 2**31 - 1
MAX_BATCH_IDS = 100

_PRICE_TEXT = re.compile(r"(0|[1-9][0-9]{0,9})(\.[0-9]{1,2})?")
_PRICE_TEXT_SCHEMA = r"^(0|[1-9][0-9]{0,9})(\.[0-9]{1,2})?$"


def _price_from_json(value: Any) -> Any:
    # bool is an int subclass and float means the caller bypassed the Decimal-preserving parser.
    if isinstance(value, bool | float):
        raise ValueError('price must be a JSON number or a decimal string such as "19.99"')
    if isinstance(value, str):
        if not _PRICE_TEXT.fullmatch(value):
            raise ValueError('price must be a decimal string such as "19.99" (at most 2 decimals)')
        return Decimal(value)
    # As written, like the string form: pydantic's decimal_places ignores the exponent of a zero and
    # trailing zeros, so 0e-16384 would reach Postgres, which cannot store it in NUMERIC(12, 2).
    if isinstance(value, Decimal) and value.is_finite() and int(value.as_tuple().exponent) < -2:
        raise ValueError("price must have at most 2 decimals")
    return value


Price = Annotated[
    Decimal,
    BeforeValidator(_price_from_json),
    Field(ge=0, le=MAX_PRICE, max_digits=12, decimal_places=2),
    WithJsonSchema(
        {
            "description": "Amount >= 0 with at most 2 decimals, as a JSON number or a decimal string.",
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": float(MAX_PRICE), "multipleOf": 0.01},
                {"type": "string", "pattern": _PRICE_TEXT_SCHEMA},
            ],
        },
        mode="validation",
    ),
    PlainSerializer(lambda price: f"{price:.2f}", return_type=str, when_used="json"),
    WithJsonSchema(
        {"type": "string", "pattern": r"^[0-9]+\.[0-9]{2}$", "examples": ["19.99"]},
        mode="serialization",
    ),
]
# Postgres text cannot hold NUL characters.
_NO_NUL = r"^[^\x00]*$"
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=_NO_NUL, strict=True)]
Description = Annotated[str, Field(max_length=2000, pattern=_NO_NUL, strict=True)]


class _Request(BaseModel):
    # Unknown fields are a client bug worth reporting, not something to drop silently.
    model_config = ConfigDict(extra="forbid")


class ProductCreate(_Request):
    """Body of POST /products and of PUT /products/{id} (a full replacement)."""

    name: Name
    price: Price
    description: Description | None = None


def _patch_json_schema(schema: dict[str, Any]) -> None:
    # The validator below rejects an empty patch and a null name or price; say so in the schema too.
    schema["minProperties"] = 1
    for field in ("name", "price"):
        prop = schema["properties"][field]
        schema["properties"][field] = {**prop["anyOf"][0], "title": prop.get("title", field)}


class ProductPatch(_Request):
    """Body of PATCH /products/{id}: only the fields present change."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_patch_json_schema)

    name: Name | None = None
    price: Price | None = None
    description: Description | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> ProductPatch:
        if not self.model_fields_set:
            raise ValueError("at least one of name, price, description is required")
        for field in ("name", "price"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        return {field: getattr(self, field) for field in self.model_fields_set}


class BatchGetRequest(_Request):
    """Body of POST /products:batchGet."""

    ids: Annotated[list[UUID], Field(min_length=1, max_length=MAX_BATCH_IDS)]


class PageQuery(BaseModel):
    """Query string of GET /products."""

    limit: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE
    offset: Annotated[int, Field(ge=0, le=MAX_OFFSET)] = 0


class Product(BaseModel):
    """A product as the API returns it."""

    id: UUID
    name: str
    price: Price
    description: str | None
    created_at: datetime
    updated_at: datetime


class ProductRow(TypedDict):
    """A product's columns as read from Postgres, `Product`'s fields in `Product`'s order.

    `PRODUCT_JSON` dumps a row to the very bytes `Product.model_dump_json` gives, without building a model:
    a model per row was two thirds of a page's serialization (docs/performance.md). Other keys of the row
    are left out."""

    id: UUID
    name: str
    price: Price
    description: str | None
    created_at: datetime
    updated_at: datetime


PRODUCT_JSON = TypeAdapter(ProductRow)


class ProductPage(BaseModel):
    items: list[Product]
    total: int
    limit: int
    offset: int


class BatchGetResponse(BaseModel):
    products: list[Product]
    missing: list[UUID]


class FieldError(BaseModel):
    field: str
    message: str
    type: str


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: list[FieldError] | dict[str, Any] | None = None


class ErrorResponse(BaseModel):
    """The one shape of every error response."""

    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready"]
    checks: dict[str, str]
