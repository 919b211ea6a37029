"""Between protobuf messages and the service's schemas: the same validation as REST, exact money.

Prices travel as `price_decimal` strings and become `Decimal` through the REST `Price` type, so no binary
float ever holds a price on the way in. On the way out the seed's deprecated `double price` is filled too,
for clients built on the seed; it is derived from the exact value and never read.
"""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from product_service.errors import echoed, validation_error
from product_service.grpc.generated.product.v1 import product_pb2 as pb
from product_service.schemas import (
    MAX_OFFSET,
    BatchGetRequest,
    PageQuery,
    Product,
    ProductCreate,
    ProductPatch,
)

# The proto's name for each schema field where they differ: REST's `price` is `price_decimal` here.
_PROTO_FIELD = {"price": "price_decimal", "limit": "page_size", "offset": "page_token"}
# A page token is an offset in ASCII digits, no longer than the largest offset allowed.
_PAGE_TOKEN = re.compile(rf"[0-9]{{1,{len(str(MAX_OFFSET))}}}")
# UpdateProduct's update_mask paths and the schema fields they set.
MASK_FIELDS = {"name": "name", "price_decimal": "price", "description": "description"}


class InvalidArgument(Exception):
    """The request is malformed; `violations` maps each bad field (proto path) to what is wrong."""

    def __init__(self, violations: dict[str, str]) -> None:
        super().__init__(f"invalid fields: {', '.join(violations)}")
        self.violations = violations


def product_message(product: Product) -> pb.Product:
    message = pb.Product(
        id=str(product.id),
        name=product.name,
        price=float(product.price),
        price_decimal=f"{product.price:.2f}",
    )
    if product.description is not None:
        message.description = product.description
    message.created_at.FromDatetime(product.created_at)
    message.updated_at.FromDatetime(product.updated_at)
    return message


def parse_id(text: str, field: str = "id") -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise InvalidArgument({field: f"{echoed(text)} is not a UUID"}) from None


def new_product(request: pb.CreateProductRequest) -> ProductCreate:
    fields: dict[str, Any] = {"name": request.name, "price": request.price_decimal}
    if request.HasField("description"):
        fields["description"] = request.description
    return _validated(ProductCreate, fields)


def product_changes(request: pb.UpdateProductRequest) -> tuple[UUID, dict[str, Any]]:
    """The product id and the column -> value changes the update_mask selects."""
    product_id = parse_id(request.product.id, "product.id")
    paths = list(request.update_mask.paths)
    unknown = {
        f"update_mask.paths[{index}]": f"{echoed(path)} is not one of {', '.join(MASK_FIELDS)}"
        for index, path in enumerate(paths)
        if path not in MASK_FIELDS
    }
    if unknown:
        raise InvalidArgument(unknown)
    if not paths:
        raise InvalidArgument({"update_mask": f"must name at least one of {', '.join(MASK_FIELDS)}"})
    source = request.product
    values = {
        "name": source.name,
        "price_decimal": source.price_decimal,
        "description": source.description if source.HasField("description") else None,
    }
    patch = _validated(ProductPatch, {MASK_FIELDS[path]: values[path] for path in paths}, prefix="product.")
    return product_id, patch.changes()


def page_query(request: pb.ListProductsRequest) -> PageQuery:
    fields: dict[str, Any] = {}
    if request.page_size:
        fields["limit"] = request.page_size
    if request.page_token:
        # ASCII digits only, as this API writes them: str.isdigit() also takes superscripts and
        # Arabic-Indic digits, which int() reads (U+0661 as 1); the length bound keeps int() from parsing
        # thousands of digits.
        if not _PAGE_TOKEN.fullmatch(request.page_token):
            raise InvalidArgument({"page_token": "not a token this API returned"})
        fields["offset"] = int(request.page_token)
    return _validated(PageQuery, fields)


def next_page_token(query: PageQuery, returned: int, total: int) -> str:
    """An opaque token for the page after this one; empty on the last page."""
    following = query.offset + returned
    return str(following) if returned and following < total else ""


def batch_ids(request: pb.BatchGetProductsRequest) -> list[UUID]:
    return _validated(BatchGetRequest, {"ids": list(request.ids)}).ids


def _validated(schema: Any, fields: dict[str, Any], prefix: str = "") -> Any:
    try:
        return schema.model_validate(fields)
    except ValidationError as error:
        details = validation_error(error).details
        assert isinstance(details, list)  # validation_error always lists the fields
        violations: dict[str, str] = {}
        for problem in details:
            head, dot, rest = problem.field.partition(".")
            name, bracket, index = head.partition("[")
            path = prefix + _PROTO_FIELD.get(name, name) + bracket + index + dot + rest
            if problem.field == "body":  # a rule over several fields, e.g. an empty patch
                path = "update_mask" if schema is ProductPatch else "request"
            violations.setdefault(path, problem.message)
        raise InvalidArgument(violations) from None
