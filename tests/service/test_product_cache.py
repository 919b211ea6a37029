"""Redis cache-aside: call counts of batch get, no stale reads after writes, reads survive Redis."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from product_service.app import close_app, open_app
from product_service.cache import BackFills, CachedProductRepository, CacheRepairs, ProductCache
from product_service.devservers import DevServers, EmbeddedValkey
from product_service.metrics import ServiceMetrics
from product_service.repository import ProductRepository, StoredProduct, open_pool
from product_service.schemas import BatchGetResponse
from product_service.settings import Settings
from prometheus_client.parser import text_string_to_metric_families
from service_helpers import backfilled, create_product, settings_for, wait_until


def metric_total(metrics_text: str, sample_name: str, **labels: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
        if sample.name == sample_name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def spans_of(spans: tuple[ReadableSpan, ...], system: str) -> list[ReadableSpan]:
    return [
        span
        for span in spans
        if (span.attributes or {}).get("db.system") == system
        or (span.attributes or {}).get("db.system.name") == system
    ]


def test_batch_get_is_one_mget_one_query_and_one_pipelined_backfill_after_it(
    traced: tuple[Flask, InMemorySpanExporter], auth: dict[str, str], redis_client: redis.Redis
) -> None:
    app, exporter = traced
    client = app.test_client()
    cached = [create_product(client, auth, name=f"cached {i}")["id"] for i in range(2)]
    uncached = [create_product(client, auth, name=f"uncached {i}")["id"] for i in range(3)]
    for product_id in cached:
        client.get(f"/api/v1/products/{product_id}")
    missing = str(uuid.uuid4())
    backfilled(app)
    exporter.clear()
    redis_client.config_resetstat()

    response = client.post("/api/v1/products:batchGet", json={"ids": [*cached, *uncached, missing]})

    assert response.status_code == 200
    assert len(response.json["products"]) == 5
    assert response.json["missing"] == [missing]
    spans = exporter.get_finished_spans()
    assert len(spans_of(spans, "postgresql")) == 1
    assert len(spans_of(spans, "redis")) == 1  # the MGET: the back-fill is no part of the request
    backfilled(app)
    assert spans_of(exporter.get_finished_spans(), "redis") == spans_of(spans, "redis")
    commands = redis_client.info("commandstats")
    assert commands["cmdstat_mget"]["calls"] == 1
    assert commands["cmdstat_eval"]["calls"] == len(uncached)  # one conditional store per back-filled miss


def test_batch_get_of_cached_products_runs_no_sql(
    traced: tuple[Flask, InMemorySpanExporter], auth: dict[str, str]
) -> None:
    app, exporter = traced
    client = app.test_client()
    ids = [create_product(client, auth, name=f"p{i}")["id"] for i in range(3)]
    client.post("/api/v1/products:batchGet", json={"ids": ids})
    backfilled(app)
    exporter.clear()

    response = client.post("/api/v1/products:batchGet", json={"ids": ids})

    assert [product["id"] for product in response.json["products"]] == ids
    spans = exporter.get_finished_spans()
    assert spans_of(spans, "postgresql") == []
    assert len(spans_of(spans, "redis")) == 1


def test_get_fills_the_cache_with_a_ttl(
    client: FlaskClient, auth: dict[str, str], redis_client: redis.Redis, settings: Settings
) -> None:
    product = create_product(client, auth)

    client.get(f"/api/v1/products/{product['id']}")
    backfilled(client.application)

    ttl_ms = redis_client.pttl(f"product:v1:{product['id']}")
    assert 0 < ttl_ms <= settings.cache_ttl_seconds * 1000


def test_reads_after_update_and_delete_see_the_change(client: FlaskClient, auth: dict[str, str]) -> None:
    product = create_product(client, auth, name="before")
    path = f"/api/v1/products/{product['id']}"
    client.get(path)
    client.post("/api/v1/products:batchGet", json={"ids": [product["id"]]})

    client.patch(path, json={"name": "after"}, headers=auth)

    assert client.get(path).json["name"] == "after"
    assert client.post("/api/v1/products:batchGet", json={"ids": [product["id"]]}).json["products"][0][
        "name"
    ] == ("after")
    client.delete(path, headers=auth)
    assert client.get(path).status_code == 404
    assert client.post("/api/v1/products:batchGet", json={"ids": [product["id"]]}).json["missing"] == [
        product["id"]
    ]


@pytest.fixture
def components(
    settings: Settings,
) -> Iterator[tuple[ProductRepository, ProductCache, CachedProductRepository]]:
    metrics = ServiceMetrics()
    pool = open_pool(settings.database_url, min_size=1, max_size=2, budget=2)
    client = redis.Redis.from_url(settings.redis_url)
    repository = ProductRepository(pool, metrics)
    cache = ProductCache(client, settings.cache_ttl_seconds)
    backfills = BackFills(cache, metrics)
    repairs = CacheRepairs(repository, cache, metrics)
    yield repository, cache, CachedProductRepository(repository, cache, metrics, backfills, repairs)
    repairs.close()
    backfills.close()
    pool.close()
    client.close()


def test_late_backfill_of_a_row_read_before_an_update_is_refused(
    components: tuple[ProductRepository, ProductCache, CachedProductRepository],
    client: FlaskClient,
    auth: dict[str, str],
) -> None:
    repository, cache, products = components
    product_id = uuid.UUID(create_product(client, auth, name="old")["id"])
    read_before_update = repository.get(product_id)  # a reader fetched the row, then stalled
    assert read_before_update is not None

    products.update(product_id, {"name": "new"})
    cache.store(read_before_update)  # the stalled reader back-fills after the writer answered

    served = products.get(product_id)
    assert served is not None and served.name == "new"


def test_late_backfill_of_a_row_read_before_a_delete_is_refused(
    components: tuple[ProductRepository, ProductCache, CachedProductRepository],
    client: FlaskClient,
    auth: dict[str, str],
) -> None:
    repository, cache, products = components
    product_id = uuid.UUID(create_product(client, auth)["id"])
    read_before_delete = repository.get(product_id)
    assert read_before_delete is not None

    products.delete(product_id)
    cache.store(read_before_delete)

    assert products.get(product_id) is None
    assert products.get_many([product_id]).missing == [product_id]


class HeldCache(ProductCache):
    """The real cache on the real Valkey, whose back-fill pipelines wait for `release` (a gate for the
    test's timing, not a stand-in): it shows what a miss does while its back-fill has not landed."""

    def __init__(self, client: redis.Redis, ttl_seconds: int) -> None:
        super().__init__(client, ttl_seconds)
        self.storing = threading.Event()
        self.release = threading.Event()
        self.batches: list[list[uuid.UUID]] = []
        self.fail_next = False

    def store_many(self, products: Iterable[StoredProduct]) -> None:
        batch = list(products)
        self.batches.append([stored.id for stored in batch])
        self.storing.set()
        assert self.release.wait(timeout=10), "the test never released the back-fills"
        if self.fail_next:
            self.fail_next = False
            raise redis.ConnectionError("the back-fill's connection broke")
        super().store_many(batch)


@pytest.fixture
def held(
    settings: Settings, redis_client: redis.Redis
) -> Iterator[tuple[HeldCache, ServiceMetrics, ProductRepository]]:
    metrics = ServiceMetrics()
    pool = open_pool(settings.database_url, min_size=1, max_size=2, budget=2)
    client = redis.Redis.from_url(settings.redis_url)
    cache = HeldCache(client, settings.cache_ttl_seconds)
    yield cache, metrics, ProductRepository(pool, metrics)
    cache.release.set()
    pool.close()
    client.close()


def _created(client: FlaskClient, auth: dict[str, str], count: int) -> list[uuid.UUID]:
    return [uuid.UUID(create_product(client, auth, name=f"held {i}")["id"]) for i in range(count)]


def _read_back(
    repository: ProductRepository, client: FlaskClient, auth: dict[str, str], count: int
) -> list[StoredProduct]:
    """`count` new products as a read from Postgres hands them to the back-fills."""
    stored = [repository.get(product_id) for product_id in _created(client, auth, count)]
    assert None not in stored
    return [product for product in stored if product is not None]


def test_a_miss_answers_before_its_backfill_and_later_misses_share_one_round_trip(
    held: tuple[HeldCache, ServiceMetrics, ProductRepository],
    client: FlaskClient,
    auth: dict[str, str],
    redis_client: redis.Redis,
) -> None:
    cache, metrics, repository = held
    backfills = BackFills(cache, metrics)
    repairs = CacheRepairs(repository, cache, metrics)
    products = CachedProductRepository(repository, cache, metrics, backfills, repairs)
    first, *others = _created(client, auth, 4)
    redis_client.delete(*(f"product:v1:{product_id}" for product_id in (first, *others)))

    assert products.get_json(first) is not None  # answered while its back-fill is held
    assert cache.storing.wait(timeout=5)
    answered = [products.get_json(product_id) for product_id in others]
    cache.release.set()
    backfills.flush()
    backfills.close()
    repairs.close()

    assert None not in answered
    assert cache.batches == [[first], others]  # the three later misses went in one pipeline
    for product_id in (first, *others):
        assert redis_client.pttl(f"product:v1:{product_id}") > 0


def test_backfills_beyond_the_limit_and_failed_ones_are_counted_and_the_thread_goes_on(
    held: tuple[HeldCache, ServiceMetrics, ProductRepository],
    client: FlaskClient,
    auth: dict[str, str],
    redis_client: redis.Redis,
) -> None:
    cache, metrics, repository = held
    backfills = BackFills(cache, metrics, limit=2)
    loaded = _read_back(repository, client, auth, 5)
    cache.fail_next = True

    backfills.submit(loaded[:1])
    assert cache.storing.wait(timeout=5)  # the thread holds the first, which will fail
    backfills.submit(loaded[1:4])  # room for two
    cache.release.set()
    backfills.flush()
    backfills.submit(loaded[4:])
    backfills.close()

    errors = metric_total(metrics.exposition().decode(), "product_cache_errors_total", operation="store")
    assert errors == 2  # one failed pipeline, one submit that did not fit
    assert cache.batches == [[loaded[0].id], [loaded[1].id, loaded[2].id], [loaded[4].id]]
    cached = [redis_client.exists(f"product:v1:{product.id}") for product in loaded]
    assert cached == [0, 1, 1, 0, 1]


def test_closed_backfills_store_what_waits_and_stop_their_thread(
    held: tuple[HeldCache, ServiceMetrics, ProductRepository],
    client: FlaskClient,
    auth: dict[str, str],
    redis_client: redis.Redis,
) -> None:
    cache, metrics, repository = held
    backfills = BackFills(cache, metrics)
    loaded = _read_back(repository, client, auth, 2)
    before = {thread.ident for thread in threading.enumerate()}

    backfills.submit(loaded)
    (thread,) = [thread for thread in threading.enumerate() if thread.ident not in before]
    cache.release.set()
    backfills.close()
    backfills.submit(loaded)  # after close: dropped, counted

    assert not thread.is_alive()
    assert [redis_client.exists(f"product:v1:{product.id}") for product in loaded] == [1, 1]
    assert metric_total(metrics.exposition().decode(), "product_cache_errors_total", operation="store") == 1


def test_concurrent_readers_never_see_a_price_older_than_the_last_answered_update(
    app: Flask, auth: dict[str, str]
) -> None:
    product = create_product(app.test_client(), auth, price="0")
    path = f"/api/v1/products/{product['id']}"
    answered = [0]  # the last price whose update has returned
    stale_reads: list[tuple[int, Decimal]] = []
    done = threading.Event()

    def read_repeatedly() -> None:
        reader = app.test_client()
        while not done.is_set():
            floor = answered[0]
            price = Decimal(reader.get(path).json["price"])
            if price < floor:
                stale_reads.append((floor, price))

    readers = [threading.Thread(target=read_repeatedly) for _ in range(4)]
    for reader in readers:
        reader.start()
    writer = app.test_client()
    try:
        for price in range(1, 61):
            assert writer.patch(path, json={"price": price}, headers=auth).status_code == 200
            answered[0] = price
    finally:
        done.set()
        for reader in readers:
            reader.join()

    assert stale_reads == []


@pytest.fixture
def own_valkey(tmp_path: Path) -> Iterator[EmbeddedValkey]:
    """A Valkey only this test uses, so stopping it leaves the session's server alone."""
    valkey = EmbeddedValkey(tmp_path / "valkey")
    valkey.start()
    yield valkey
    valkey.stop()


def test_reads_and_writes_are_served_from_postgres_while_redis_is_down_and_the_pod_stays_ready(
    servers: DevServers, own_valkey: EmbeddedValkey, auth: dict[str, str]
) -> None:
    app = open_app(settings_for(DevServers(servers.database_url, own_valkey.url)))
    client = app.test_client()
    try:
        product = create_product(client, auth)
        path = f"/api/v1/products/{product['id']}"
        assert client.get(path).status_code == 200  # now cached

        own_valkey.stop()

        assert client.get(path).json == product
        batch = client.post("/api/v1/products:batchGet", json={"ids": [product["id"]]})
        assert batch.status_code == 200 and batch.json["products"] == [product]
        assert client.get("/api/v1/products?limit=1").status_code == 200
        assert create_product(client, auth)["id"]
        assert client.patch(path, json={"price": 9}, headers=auth).json["price"] == "9.00"
        assert client.get(path).json["price"] == "9.00"
        ready = client.get("/ready")
        assert ready.status_code == 200
        assert ready.json == {"status": "ready", "checks": {"postgres": "ok", "redis": "unavailable"}}
        metrics = client.get("/metrics").data.decode()
        assert metric_total(metrics, "product_cache_errors_total", operation="get") >= 1
        assert metric_total(metrics, "product_dependency_up", dependency="redis") == 0

        own_valkey.start()

        wait_until(
            lambda: client.get("/ready").json["checks"]["redis"] == "ok",
            10,
            "Redis reported up once it is back",
        )
        assert client.get(path).json["price"] == "9.00"
        assert client.patch(path, json={"price": 10}, headers=auth).json["price"] == "10.00"
        metrics = client.get("/metrics").data.decode()
        assert metric_total(metrics, "product_dependency_up", dependency="redis") == 1
    finally:
        close_app(app)


def test_a_redis_that_never_answers_costs_reads_one_timeout_then_none(
    servers: DevServers, client: FlaskClient, auth: dict[str, str]
) -> None:
    product = create_product(client, auth)
    with socket.socket() as silent:  # accepts connections, never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        redis_url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        app = open_app(settings_for(DevServers(servers.database_url, redis_url), REDIS_TIMEOUT_SECONDS="0.5"))
        try:
            reader = app.test_client()
            started = time.monotonic()
            first = reader.get(f"/api/v1/products/{product['id']}")
            first_took = time.monotonic() - started
            later_took = []
            for _ in range(10):
                started = time.monotonic()
                assert reader.get(f"/api/v1/products/{product['id']}").json == product
                assert reader.post("/api/v1/products:batchGet", json={"ids": [product["id"]]}).json[
                    "products"
                ] == [product]
                later_took.append(time.monotonic() - started)
            metrics = reader.get("/metrics").data.decode()
        finally:
            close_app(app)

    assert first.json == product
    assert first_took >= 0.5  # the read's own timeout; the PING that opened the breaker took as long
    assert max(later_took) < 0.5  # a GET and a batch get, neither waiting for Redis
    assert metric_total(metrics, "product_cache_errors_total") >= 21  # each skipped call is counted


def test_writes_during_a_redis_stall_succeed_and_every_process_reads_them_within_1_s_of_its_return(
    servers: DevServers, own_valkey: EmbeddedValkey, auth: dict[str, str], db: psycopg.Connection[Any]
) -> None:
    settings = settings_for(DevServers(servers.database_url, own_valkey.url))
    # Two processes' worth: the reader makes no call during the stall, so its breaker never opens and it
    # reads Redis the moment Redis answers, old entries included, until some process repairs them.
    writer_app, reader_app = open_app(settings), open_app(settings)
    writer, reader = writer_app.test_client(), reader_app.test_client()
    try:
        ids = [create_product(writer, auth, name=f"stall {i}", price="1.00")["id"] for i in range(10)]
        assert _served(reader, ids) == {i: "1.00" for i in ids}
        backfilled(reader_app)  # every product cached at version 1
        updated, deleted = ids[:8], ids[8:]
        assert own_valkey.pid is not None

        os.kill(own_valkey.pid, signal.SIGSTOP)
        try:
            during = [
                *(
                    writer.patch(f"/api/v1/products/{i}", json={"price": "2.00"}, headers=auth)
                    for i in updated
                ),
                *(writer.delete(f"/api/v1/products/{i}", headers=auth) for i in deleted),
            ]
        finally:
            os.kill(own_valkey.pid, signal.SIGCONT)
            resumed = time.monotonic()

        assert [response.status_code for response in during] == [200] * 8 + [204] * 2
        expected = {i: "2.00" for i in updated}
        assert _stored(db, ids) == expected
        wait_until(lambda: _served(reader, ids) == expected, 1.0, "the reader to see every write")
        fresh_after = time.monotonic() - resumed
        assert _served(writer, ids) == expected
        wait_until(lambda: _noted_repairs(db) == 0, 5, "the noted repairs to be forgotten")
        metrics = writer.get("/metrics").data.decode()
    finally:
        close_app(writer_app)
        close_app(reader_app)

    assert metric_total(metrics, "product_cache_errors_total", operation="mark") == 10
    print(f"a process that never noticed the stall read every write {fresh_after:.2f} s after Redis resumed")


def test_a_repair_left_by_a_process_that_died_is_made_by_the_next_one_to_start(
    servers: DevServers, client: FlaskClient, auth: dict[str, str], db: psycopg.Connection[Any]
) -> None:
    product = create_product(client, auth, price="1.00")
    assert client.get(f"/api/v1/products/{product['id']}").json["price"] == "1.00"  # cached
    backfilled(client.application)
    # What a write during an outage leaves when its process dies before Redis answers again.
    db.execute("UPDATE products SET price = 2, version = version + 1 WHERE id = %s", (product["id"],))
    db.execute(
        "INSERT INTO cache_repairs (product_id, version) SELECT id, version FROM products WHERE id = %s",
        (product["id"],),
    )
    assert client.get(f"/api/v1/products/{product['id']}").json["price"] == "1.00"  # the stale entry

    started = open_app(settings_for(servers))
    try:
        wait_until(lambda: _noted_repairs(db) == 0, 5, "the new process to repair the entry")
        assert client.get(f"/api/v1/products/{product['id']}").json["price"] == "2.00"
    finally:
        close_app(started)


def _noted_repairs(db: psycopg.Connection[Any]) -> int:
    row = db.execute("SELECT count(*) FROM cache_repairs").fetchone()
    return int(row[0]) if row else 0


def _served(client: FlaskClient, ids: list[str]) -> dict[str, str]:
    """Price by id as GET answers it; batch get must agree."""
    by_get = {}
    for product_id in ids:
        response = client.get(f"/api/v1/products/{product_id}")
        if response.status_code == 200:
            by_get[product_id] = response.json["price"]
        else:
            assert response.status_code == 404
    batch = client.post("/api/v1/products:batchGet", json={"ids": ids}).json
    assert {product["id"]: product["price"] for product in batch["products"]} == by_get
    return by_get


def _stored(db: psycopg.Connection[Any], ids: list[str]) -> dict[str, str]:
    rows = db.execute("SELECT id::text, price::text FROM products WHERE id = ANY(%s::uuid[])", (ids,))
    return dict(rows.fetchall())


def test_an_unreadable_cache_entry_is_a_miss_and_gets_replaced(
    client: FlaskClient, auth: dict[str, str], redis_client: redis.Redis
) -> None:
    product = create_product(client, auth)
    key = f"product:v1:{product['id']}"
    redis_client.set(key, b"garbage from an older release")

    response = client.get(f"/api/v1/products/{product['id']}")
    backfilled(client.application)

    assert response.json == product
    assert redis_client.get(key).startswith(b"1:")


def test_a_cache_hit_answers_the_stored_json_bytes_as_they_are(
    client: FlaskClient, auth: dict[str, str], redis_client: redis.Redis
) -> None:
    product = create_product(client, auth, price="3.50")
    key = f"product:v1:{product['id']}"
    client.get(f"/api/v1/products/{product['id']}")
    backfilled(client.application)
    version, _, stored = redis_client.get(key).partition(b":")
    # A document the model would dump differently ("3.5" becomes "3.50"): only the stored bytes say "3.5".
    as_stored = stored.replace(b'"price":"3.50"', b'"price":"3.5"')
    redis_client.set(key, version + b":" + as_stored)

    response = client.get(f"/api/v1/products/{product['id']}")

    assert response.status_code == 200
    assert response.data == as_stored
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Content-Length"] == str(len(as_stored))


def test_a_cached_get_answers_the_same_bytes_as_the_postgres_read(
    client: FlaskClient, auth: dict[str, str], redis_client: redis.Redis
) -> None:
    product = create_product(client, auth, description=None)
    redis_client.delete(f"product:v1:{product['id']}")

    from_postgres = client.get(f"/api/v1/products/{product['id']}")
    backfilled(client.application)
    from_cache = client.get(f"/api/v1/products/{product['id']}")

    assert redis_client.exists(f"product:v1:{product['id']}")
    assert from_cache.data == from_postgres.data
    assert dict(from_cache.headers) == dict(from_postgres.headers)


def test_batch_get_answers_the_same_bytes_as_its_response_model(
    client: FlaskClient, auth: dict[str, str], redis_client: redis.Redis
) -> None:
    cached = create_product(client, auth, name="cached")["id"]
    uncached = create_product(client, auth, name="uncached", description=None)["id"]
    client.get(f"/api/v1/products/{cached}")
    backfilled(client.application)
    redis_client.delete(f"product:v1:{uncached}")
    missing = str(uuid.uuid4())

    response = client.post("/api/v1/products:batchGet", json={"ids": [uncached, missing, cached]})

    expected = BatchGetResponse.model_validate(response.json).model_dump_json().encode()
    assert response.data == expected
    assert [product["id"] for product in response.json["products"]] == [uncached, cached]
    assert response.json["missing"] == [missing]


def test_a_cache_entry_that_is_not_a_product_document_is_a_miss_and_gets_replaced(
    client: FlaskClient, auth: dict[str, str], redis_client: redis.Redis
) -> None:
    product = create_product(client, auth)
    key = f"product:v1:{product['id']}"
    redis_client.set(key, b"0:not a product document")

    single = client.get(f"/api/v1/products/{product['id']}")
    backfilled(client.application)
    replaced_by_get = redis_client.get(key)
    redis_client.set(key, b"0:not a product document")
    batch = client.post("/api/v1/products:batchGet", json={"ids": [product["id"]]})
    backfilled(client.application)

    assert single.json == product
    assert batch.json["products"] == [product]
    assert replaced_by_get.startswith(b"1:{")
    assert redis_client.get(key).startswith(b"1:{")
