"""product.v1.ProductService through a real grpcio client, on real Postgres and Valkey: every RPC's
answers and status codes, write auth, field masks, exact money."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2
from grpc_helpers import GrpcServer, bearer, field_violations, grpc_settings, serving
from product_service.auth import mint_token
from product_service.devservers import DevServers
from product_service.grpc.generated.product.v1 import product_pb2 as pb
from product_service.grpc.generated.product.v1 import product_pb2_grpc as pb_grpc
from service_helpers import JWT_SECRET


@pytest.fixture(scope="module")
def grpc_server(servers: DevServers) -> Iterator[GrpcServer]:
    with serving(grpc_settings(servers)) as server:
        yield server


@pytest.fixture
def stub(grpc_server: GrpcServer) -> pb_grpc.ProductServiceStub:
    return grpc_server.stub


def create(stub: pb_grpc.ProductServiceStub, write_token: str, **fields: object) -> pb.Product:
    request = pb.CreateProductRequest(**{"name": "Tea", "price_decimal": "3.50", **fields})
    return stub.CreateProduct(request, metadata=bearer(write_token), timeout=5)


def rpc_error(call: Any, *args: Any, **kwargs: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call(*args, timeout=5, **kwargs)
    return raised.value


def test_create_then_get_returns_the_product_with_an_exact_price(stub, write_token) -> None:
    created = create(stub, write_token, name="Green tea", price_decimal="0.1", description="loose leaf")

    fetched = stub.GetProduct(pb.GetProductRequest(id=created.id), timeout=5)

    assert uuid.UUID(fetched.id)
    assert fetched == created
    assert (fetched.name, fetched.price_decimal, fetched.description) == ("Green tea", "0.10", "loose leaf")
    assert fetched.created_at.ToDatetime() == fetched.updated_at.ToDatetime()


def test_the_seed_double_price_is_filled_from_the_exact_one(stub, write_token) -> None:
    created = create(stub, write_token, price_decimal="9999999999.99")

    assert created.price_decimal == "9999999999.99"
    assert Decimal(created.price_decimal) != Decimal(created.price)  # a double cannot hold it exactly
    assert created.price == float("9999999999.99")


def test_a_product_without_description_has_none(stub, write_token) -> None:
    created = create(stub, write_token)

    assert not stub.GetProduct(pb.GetProductRequest(id=created.id), timeout=5).HasField("description")


def test_get_of_an_unknown_id_is_not_found(stub) -> None:
    error = rpc_error(stub.GetProduct, pb.GetProductRequest(id=str(uuid.uuid4())))

    assert error.code() is grpc.StatusCode.NOT_FOUND


def test_get_of_a_malformed_id_is_invalid_argument_naming_the_field(stub) -> None:
    error = rpc_error(stub.GetProduct, pb.GetProductRequest(id="not-a-uuid"))

    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == {"id": "'not-a-uuid' is not a UUID"}


def test_a_huge_malformed_id_is_invalid_argument_quoting_only_its_start(stub) -> None:
    # The whole id echoed in the BadRequest trailer (up to the message cap, 64 KiB) would make a default
    # client see RESOURCE_EXHAUSTED.
    error = rpc_error(stub.GetProduct, pb.GetProductRequest(id="x" * 60_000))

    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == {"id": f"'{'x' * 64}'... (60000 characters) is not a UUID"}


def test_the_largest_valid_product_fits_the_message_cap(stub, write_token) -> None:
    # Four bytes a character: the longest name and description the API accepts.
    cup = "\N{TEACUP WITHOUT HANDLE}"
    product = create(stub, write_token, name=cup * 200, description=cup * 2000)

    assert product.ByteSize() > 8 * 1024
    assert stub.GetProduct(pb.GetProductRequest(id=product.id), timeout=5) == product


def test_a_request_larger_than_the_api_needs_is_refused_before_it_is_parsed(stub) -> None:
    error = rpc_error(stub.GetProduct, pb.GetProductRequest(id="x" * (64 * 1024 + 1)))

    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in (error.details() or "")


@pytest.mark.usefixtures("empty_catalog")
def test_list_pages_through_every_product_in_creation_order(stub, write_token) -> None:
    names = [create(stub, write_token, name=f"p{i}").name for i in range(5)]

    seen, token, pages = [], "", 0
    while True:
        page = stub.ListProducts(pb.ListProductsRequest(page_size=2, page_token=token), timeout=5)
        seen += [product.name for product in page.products]
        pages += 1
        assert page.total_size == 5
        token = page.next_page_token
        if not token:
            break

    assert seen == names
    assert pages == 3


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"page_size": 101}, "page_size"),
        ({"page_size": -1}, "page_size"),
        ({"page_token": "x"}, "page_token"),
        # Digits to str.isdigit() and int(), not to this API: a superscript, an Arabic-Indic one, and
        # more digits than any offset has.
        ({"page_token": "\u00b2"}, "page_token"),
        ({"page_token": "\u0661"}, "page_token"),
        ({"page_token": "9" * 4301}, "page_token"),
        ({"page_token": "1\n"}, "page_token"),
    ],
)
def test_list_rejects_a_bad_page_size_or_token(stub, request_fields, field) -> None:
    error = rpc_error(stub.ListProducts, pb.ListProductsRequest(**request_fields))

    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert list(field_violations(error)) == [field]


def test_writes_without_a_token_are_unauthenticated(stub) -> None:
    for call, request in [
        (stub.CreateProduct, pb.CreateProductRequest(name="Tea", price_decimal="1")),
        (stub.UpdateProduct, pb.UpdateProductRequest()),
        (stub.DeleteProduct, pb.DeleteProductRequest(id=str(uuid.uuid4()))),
    ]:
        error = rpc_error(call, request)
        assert error.code() is grpc.StatusCode.UNAUTHENTICATED
        assert "Bearer" in (error.details() or "")


def test_an_expired_or_forged_token_is_unauthenticated(stub) -> None:
    request = pb.CreateProductRequest(name="Tea", price_decimal="1")
    for token in [mint_token(JWT_SECRET, "tests", -60), mint_token("another-secret-" * 3, "tests", 60)]:
        error = rpc_error(stub.CreateProduct, request, metadata=bearer(token))
        assert error.code() is grpc.StatusCode.UNAUTHENTICATED


def test_a_token_without_the_write_scope_is_permission_denied(stub) -> None:
    reader = mint_token(JWT_SECRET, "tests", 60, scope="products:read")

    error = rpc_error(
        stub.CreateProduct, pb.CreateProductRequest(name="Tea", price_decimal="1"), metadata=bearer(reader)
    )

    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "products:write" in (error.details() or "")


@pytest.mark.parametrize(
    ("fields", "violations"),
    [
        ({"name": "", "price_decimal": "1"}, ["name"]),
        ({"name": "Tea", "price_decimal": "3.999"}, ["price_decimal"]),
        ({"name": "Tea", "price_decimal": ""}, ["price_decimal"]),
        ({"name": "Tea", "price_decimal": "-1"}, ["price_decimal"]),
        ({"name": "", "price_decimal": "1e3"}, ["name", "price_decimal"]),
    ],
)
def test_create_rejects_invalid_fields_with_bad_request_details(
    stub, write_token, fields, violations
) -> None:
    error = rpc_error(stub.CreateProduct, pb.CreateProductRequest(**fields), metadata=bearer(write_token))

    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert sorted(field_violations(error)) == violations


def test_update_changes_only_the_fields_in_the_mask(stub, write_token) -> None:
    created = create(stub, write_token, name="Tea", price_decimal="3.50", description="black")
    changes = pb.Product(id=created.id, name="ignored", price_decimal="4.25")

    updated = stub.UpdateProduct(
        pb.UpdateProductRequest(
            product=changes, update_mask=field_mask_pb2.FieldMask(paths=["price_decimal"])
        ),
        metadata=bearer(write_token),
        timeout=5,
    )

    assert (updated.name, updated.price_decimal, updated.description) == ("Tea", "4.25", "black")
    assert updated.updated_at.ToDatetime() > created.updated_at.ToDatetime()
    assert stub.GetProduct(pb.GetProductRequest(id=created.id), timeout=5) == updated


def test_update_of_description_in_the_mask_but_absent_removes_it(stub, write_token) -> None:
    created = create(stub, write_token, description="to be removed")

    updated = stub.UpdateProduct(
        pb.UpdateProductRequest(
            product=pb.Product(id=created.id), update_mask=field_mask_pb2.FieldMask(paths=["description"])
        ),
        metadata=bearer(write_token),
        timeout=5,
    )

    assert not updated.HasField("description")
    assert updated.name == created.name


@pytest.mark.parametrize(
    ("paths", "product", "violations"),
    [
        (["price"], {}, {"update_mask.paths[0]"}),
        (["name", "id"], {}, {"update_mask.paths[1]"}),
        ([], {}, {"update_mask"}),
        (["name"], {"name": ""}, {"product.name"}),
        (["price_decimal"], {"price_decimal": "1.234"}, {"product.price_decimal"}),
    ],
)
def test_update_rejects_a_bad_mask_or_value(stub, write_token, paths, product, violations) -> None:
    created = create(stub, write_token)
    request = pb.UpdateProductRequest(
        product=pb.Product(id=created.id, **product), update_mask=field_mask_pb2.FieldMask(paths=paths)
    )

    error = rpc_error(stub.UpdateProduct, request, metadata=bearer(write_token))

    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == violations


def test_update_of_an_unknown_product_is_not_found(stub, write_token) -> None:
    request = pb.UpdateProductRequest(
        product=pb.Product(id=str(uuid.uuid4()), name="x"),
        update_mask=field_mask_pb2.FieldMask(paths=["name"]),
    )

    assert (
        rpc_error(stub.UpdateProduct, request, metadata=bearer(write_token)).code()
        is grpc.StatusCode.NOT_FOUND
    )


def test_delete_removes_the_product_and_a_second_delete_is_not_found(stub, write_token) -> None:
    created = create(stub, write_token)
    stub.GetProduct(pb.GetProductRequest(id=created.id), timeout=5)  # cached

    stub.DeleteProduct(pb.DeleteProductRequest(id=created.id), metadata=bearer(write_token), timeout=5)

    assert rpc_error(stub.GetProduct, pb.GetProductRequest(id=created.id)).code() is grpc.StatusCode.NOT_FOUND
    again = rpc_error(
        stub.DeleteProduct, pb.DeleteProductRequest(id=created.id), metadata=bearer(write_token)
    )
    assert again.code() is grpc.StatusCode.NOT_FOUND


def test_batch_get_returns_found_products_in_request_order_and_the_missing_ids(stub, write_token) -> None:
    first, second = create(stub, write_token, name="first"), create(stub, write_token, name="second")
    missing = str(uuid.uuid4())

    result = stub.BatchGetProducts(
        pb.BatchGetProductsRequest(ids=[second.id, missing, first.id, second.id]), timeout=5
    )

    assert [product.name for product in result.products] == ["second", "first"]
    assert list(result.missing_ids) == [missing]


@pytest.mark.parametrize(
    ("ids", "field"),
    [([], "ids"), ([str(uuid.uuid4()) for _ in range(101)], "ids"), ([str(uuid.uuid4()), "nope"], "ids[1]")],
)
def test_batch_get_rejects_no_ids_too_many_or_a_malformed_one(stub, ids, field) -> None:
    error = rpc_error(stub.BatchGetProducts, pb.BatchGetProductsRequest(ids=ids))

    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert list(field_violations(error)) == [field]


def test_calls_without_a_deadline_are_served(stub, write_token) -> None:
    created = create(stub, write_token)

    assert stub.GetProduct(pb.GetProductRequest(id=created.id)) == created
    assert stub.ListProducts(pb.ListProductsRequest(page_size=1)).total_size >= 1
