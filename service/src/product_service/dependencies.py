"""What both servers, REST and gRPC, open from `Settings`: the Postgres pool and the Redis client, the
cached repository on them, and the threads a process runs for its cache. Open them in the process that
serves (after gunicorn forks); `close` releases everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis
from opentelemetry.sdk.trace import TracerProvider

from product_service.breaker import CircuitBreaker
from product_service.budget import BudgetedPool
from product_service.cache import BackFills, CachedProductRepository, CacheRepairs, ProductCache, open_redis
from product_service.metrics import ServiceMetrics
from product_service.repository import ProductRepository, open_pool
from product_service.settings import Settings


@dataclass
class Dependencies:
    pool: BudgetedPool
    redis: redis.Redis
    repository: ProductRepository
    cache: ProductCache
    backfills: BackFills
    repairs: CacheRepairs
    products: CachedProductRepository

    def close(self) -> None:
        for breaker in (self.repository.breaker, self.cache.breaker):
            breaker.close()
        self.repairs.close()
        self.backfills.close()
        self.pool.close()
        self.redis.close()


def open_dependencies(
    settings: Settings, metrics: ServiceMetrics, tracer_provider: TracerProvider | None = None
) -> Dependencies:
    """With a `tracer_provider`, every SQL query and Redis command is traced (when its request is)."""
    configure = None
    if tracer_provider is not None:
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

        def configure(conn: Any) -> None:
            PsycopgInstrumentor.instrument_connection(conn, tracer_provider=tracer_provider)

    pool = open_pool(
        settings.database_url,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        budget=settings.db_request_budget_seconds,
        configure=configure,
    )
    redis_client = open_redis(settings.redis_url, settings.redis_timeout_seconds)
    if tracer_provider is not None:
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        RedisInstrumentor.instrument_client(redis_client, tracer_provider=tracer_provider)
    repository = ProductRepository(pool, metrics)
    cache = ProductCache(
        redis_client,
        settings.cache_ttl_seconds,
        CircuitBreaker(
            "redis",
            redis_client.ping,
            on_change=metrics.dependency_available,
            # The probe's PING times out like any call; twice that leaves its thread room to be scheduled.
            verdict_wait=2 * settings.redis_timeout_seconds,
        ),
    )
    backfills = BackFills(cache, metrics)
    repairs = CacheRepairs(repository, cache, metrics)
    products = CachedProductRepository(repository, cache, metrics, backfills, repairs)
    return Dependencies(pool, redis_client, repository, cache, backfills, repairs, products)
