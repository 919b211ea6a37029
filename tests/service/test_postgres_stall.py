"""Postgres stalled, not gone (a failover, a lock storm, a network drop): every process of the server is
stopped with SIGSTOP, so connections stay open and nothing answers. No wait on Postgres may outlive its
request's time budget or its RPC's deadline, and health must keep answering throughout."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, wait

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_helpers import grpc_settings, serving
from product_service.app import close_app, open_app
from product_service.devservers import DevServers, EmbeddedPostgres
from product_service.grpc.generated.product.v1 import product_pb2 as pb
from product_service.grpc.generated.product.v1 import product_pb2_grpc as pb_grpc
from service_helpers import create_product, settings_for, stalled, wait_until
from test_product_cache import metric_total

LIVENESS_LIMIT_SECONDS = 0.5
RECOVERY_LIMIT_SECONDS = 2.0


def test_expiring_deadlines_during_a_stall_never_stop_the_grpc_server_from_answering_health(
    servers: DevServers, own_postgres: EmbeddedPostgres, write_token: str
) -> None:
    with serving(grpc_settings(DevServers(own_postgres.url, servers.redis_url))) as server:
        health = health_pb2_grpc.HealthStub(server.channel)
        server.stub.ListProducts(pb.ListProductsRequest(), timeout=5)  # a warm pool
        seen: Counter[str] = Counter()
        slowest_check = 0.0

        with stalled(own_postgres):
            for _ in range(12):  # 12 waves of 24 Lists, 0.25 s apart: 3 s of stall
                lists = [
                    server.stub.ListProducts.future(pb.ListProductsRequest(), timeout=0.05) for _ in range(24)
                ]
                started = time.monotonic()
                health.Check(health_pb2.HealthCheckRequest(service=""), timeout=LIVENESS_LIMIT_SECONDS)
                slowest_check = max(slowest_check, time.monotonic() - started)
                seen.update(call.code().name for call in lists)
                time.sleep(0.25)
            resumed = time.monotonic()

        wait_until(
            lambda: _lists(server.stub, seen), RECOVERY_LIMIT_SECONDS, "ListProducts once Postgres resumes"
        )
        recovered_in = time.monotonic() - resumed
        # Past its deadline (or the breaker open, or the server at its cap), never OK.
        assert set(seen) <= {"DEADLINE_EXCEEDED", "UNAVAILABLE", "RESOURCE_EXHAUSTED"}, seen
        assert seen["DEADLINE_EXCEEDED"] > 0
        # The server counts them as their clients saw them (those that expired before it received them
        # it never sees), and may record the last ones a little later.
        wait_until(
            lambda: sum(handled(server.metrics(), code) for code in seen) >= 0.95 * seen.total(),
            5,
            f"the failed ListProducts counted: {dict(seen)} seen, counted "
            f"{ {code: handled(server.metrics(), code) for code in seen} }",
        )
        for code, count in seen.items():
            assert handled(server.metrics(), code) <= count, code
        assert handled(server.metrics(), "OK") == 2  # the warm-up and the one that saw the recovery

    print(
        f"slowest liveness Check during the stall: {slowest_check * 1000:.0f} ms; "
        f"serving again {recovered_in:.2f} s after Postgres resumed; the Lists saw {dict(seen)}"
    )


def handled(metrics: str, code: str) -> float:
    return metric_total(metrics, "grpc_server_handled_total", grpc_method="ListProducts", grpc_code=code)


def _lists(stub: pb_grpc.ProductServiceStub, failures: Counter[str]) -> bool:
    try:
        stub.ListProducts(pb.ListProductsRequest(), timeout=1)
        return True
    except grpc.RpcError as error:
        failures[error.code().name] += 1
        return False


def test_rest_requests_waiting_on_a_stalled_postgres_answer_503_within_their_budget(
    servers: DevServers, own_postgres: EmbeddedPostgres, auth: dict[str, str]
) -> None:
    budget = 1.0
    settings = settings_for(
        DevServers(own_postgres.url, servers.redis_url), DB_REQUEST_BUDGET_SECONDS=str(budget)
    )
    app = open_app(settings)
    client = app.test_client()
    try:
        product = create_product(client, auth)

        def timed(path: str) -> tuple[int, str | None, float]:
            started = time.monotonic()
            response = client.get(path)
            return response.status_code, response.headers.get("Retry-After"), time.monotonic() - started

        with ThreadPoolExecutor(8) as requests:
            with stalled(own_postgres):
                # More requests than pooled connections: some hold a connection, the others wait for one.
                sent = [requests.submit(timed, "/api/v1/products") for _ in range(8)]
                wait(sent, timeout=budget + 1)  # bounded even when a request hangs: the stall ends here
            answers = [request.result() for request in sent]

        for status, retry_after, took in answers:
            assert (status, retry_after) == (503, "1")
            assert took < budget + 0.5, f"a request waited {took:.2f} s on a stalled Postgres"
        wait_until(
            lambda: client.get(f"/api/v1/products/{product['id']}").status_code == 200,
            RECOVERY_LIMIT_SECONDS,
            "a read once Postgres resumes",
        )
    finally:
        close_app(app)
    print("REST under a stall: " + ", ".join(f"{took:.2f} s" for _, _, took in answers))
