"""`product.v1.ProductService`: each RPC on the `CachedProductRepository` REST uses, errors as gRPC codes.

| failure                                   | code                                               |
|-------------------------------------------|----------------------------------------------------|
| malformed request                         | INVALID_ARGUMENT, `google.rpc.BadRequest` details   |
| no such product                           | NOT_FOUND                                          |
| write without a valid token / the scope   | UNAUTHENTICATED / PERMISSION_DENIED                |
| Postgres unreachable                      | UNAVAILABLE (Redis never: reads fall back to SQL)  |
| the client's deadline passed              | DEADLINE_EXCEEDED (and the work stops, deadlines.py)|
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2, empty_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from product_service.auth import TokenVerifier
from product_service.cache import CachedProductRepository
from product_service.errors import ApiError, ServiceUnavailable
from product_service.grpc import messages
from product_service.grpc.generated.product.v1 import product_pb2 as pb
from product_service.grpc.generated.product.v1 import product_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["ProductService"].full_name
_AUTH_CODES = {401: grpc.StatusCode.UNAUTHENTICATED, 403: grpc.StatusCode.PERMISSION_DENIED}

Request = TypeVar("Request")
Response = TypeVar("Response")
Handler = Callable[[Any, Request, grpc.ServicerContext], Response]


def _rpc(handler: Handler[Request, Response]) -> Handler[Request, Response]:
    """Turn the service's exceptions into the status codes of the table above."""

    @wraps(handler)
    def handle(self: Any, request: Request, context: grpc.ServicerContext) -> Response:
        try:
            return handler(self, request, context)
        except messages.InvalidArgument as error:
            context.abort_with_status(_bad_request(error))
        except ApiError as error:
            context.abort(_AUTH_CODES.get(error.status, grpc.StatusCode.INTERNAL), error.message)
        except ServiceUnavailable as error:
            if context.time_remaining() <= 0:
                context.abort(
                    grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed before the work was done"
                )
            log.warning("rpc failed: %s unavailable", error.dependency)
            context.abort(grpc.StatusCode.UNAVAILABLE, f"{error.dependency} is unavailable, retry later")
        raise AssertionError("context.abort always raises")  # pragma: no cover

    return handle


class ProductServicer(pb_grpc.ProductServiceServicer):
    def __init__(self, products: CachedProductRepository, tokens: TokenVerifier) -> None:
        self._products = products
        self._tokens = tokens

    @_rpc
    def GetProduct(self, request: pb.GetProductRequest, context: grpc.ServicerContext) -> pb.Product:
        product = self._products.get(messages.parse_id(request.id))
        if product is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"product {request.id} does not exist")
        return messages.product_message(product)

    @_rpc
    def ListProducts(
        self, request: pb.ListProductsRequest, context: grpc.ServicerContext
    ) -> pb.ListProductsResponse:
        query = messages.page_query(request)
        items, total = self._products.list_page(query.limit, query.offset)
        return pb.ListProductsResponse(
            products=[messages.product_message(product) for product in items],
            next_page_token=messages.next_page_token(query, len(items), total),
            total_size=total,
        )

    @_rpc
    def CreateProduct(self, request: pb.CreateProductRequest, context: grpc.ServicerContext) -> pb.Product:
        self._authorize(context)
        return messages.product_message(self._products.create(messages.new_product(request)))

    @_rpc
    def UpdateProduct(self, request: pb.UpdateProductRequest, context: grpc.ServicerContext) -> pb.Product:
        self._authorize(context)
        product_id, changes = messages.product_changes(request)
        product = self._products.update(product_id, changes)
        if product is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"product {product_id} does not exist")
        return messages.product_message(product)

    @_rpc
    def DeleteProduct(
        self, request: pb.DeleteProductRequest, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        self._authorize(context)
        product_id = messages.parse_id(request.id)
        if not self._products.delete(product_id):
            context.abort(grpc.StatusCode.NOT_FOUND, f"product {product_id} does not exist")
        return empty_pb2.Empty()

    @_rpc
    def BatchGetProducts(
        self, request: pb.BatchGetProductsRequest, context: grpc.ServicerContext
    ) -> pb.BatchGetProductsResponse:
        result = self._products.get_many(messages.batch_ids(request))
        return pb.BatchGetProductsResponse(
            products=[messages.product_message(product) for product in result.products],
            missing_ids=[str(product_id) for product_id in result.missing],
        )

    def _authorize(self, context: grpc.ServicerContext) -> None:
        """The write scope, from the same bearer tokens as REST (`authorization` metadata)."""
        metadata = dict(context.invocation_metadata() or ())
        authorization = metadata.get("authorization")
        self._tokens.require_scope(authorization if isinstance(authorization, str) else None)


def _bad_request(error: messages.InvalidArgument) -> grpc.Status:
    violations = [
        error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
        for field, description in error.violations.items()
    ]
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.BadRequest(field_violations=violations))
    status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=str(error), details=[detail])
    return rpc_status.to_status(status)
