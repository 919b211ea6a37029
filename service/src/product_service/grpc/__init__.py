"""The product API over gRPC (`product.v1.ProductService`, proto/product/v1/product.proto).

A process of its own (`python -m product_service grpc`) beside gunicorn's REST workers, on the same
`CachedProductRepository`, cache rules and write tokens. The protobuf modules under `generated/` are
made by `make generate` (service/generate_grpc.py) and are not committed.
"""
