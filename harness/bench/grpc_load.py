"""A loopback gRPC load generator: the same closed loop as load.py's Python one, over grpc.aio.

`connections` calls are in flight at any time on one HTTP/2 channel (gRPC multiplexes them; the REST
generator opens a TCP connection per request, as gunicorn's sync workers close each one). Latency runs
from sending the request to receiving its status.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import grpc
from load import HOST, Result, _percentile
from product_service.grpc.generated.product.v1 import product_pb2 as pb
from product_service.grpc.generated.product.v1 import product_pb2_grpc as pb_grpc

CALL_TIMEOUT_SECONDS = 5.0


def drive_get_product(port: int, ids: Sequence[str], *, connections: int, seconds: float) -> Result:
    """GetProduct over `ids` in turn, from `connections` concurrent callers, for `seconds`."""
    return asyncio.run(_drive(port, [pb.GetProductRequest(id=i) for i in ids], connections, seconds))


async def _drive(port: int, requests: list[pb.GetProductRequest], connections: int, seconds: float) -> Result:
    latencies: list[float] = []
    errors = 0
    position = 0
    async with grpc.aio.insecure_channel(f"{HOST}:{port}") as channel:
        stub = pb_grpc.ProductServiceStub(channel)
        await channel.channel_ready()
        start = time.perf_counter()
        deadline = start + seconds

        async def caller() -> None:
            nonlocal errors, position
            while time.perf_counter() < deadline:
                request = requests[position % len(requests)]
                position += 1
                sent = time.perf_counter()
                try:
                    await stub.GetProduct(request, timeout=CALL_TIMEOUT_SECONDS)
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - sent)

        await asyncio.gather(*(caller() for _ in range(connections)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    return Result(
        generator="python grpc.aio",
        requests=len(latencies),
        errors=errors,
        seconds=elapsed,
        p50_ms=_percentile(latencies, 50) * 1e3,
        p99_ms=_percentile(latencies, 99) * 1e3,
    )
