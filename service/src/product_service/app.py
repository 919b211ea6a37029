"""The Flask application: `create_app` wires blueprints to the dependencies it is given;
`open_app` first opens those dependencies (Postgres pool, Redis client) from `Settings`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import redis
from flask import Flask, Response, g, request
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from product_service.api import create_products_blueprint
from product_service.auth import TokenVerifier
from product_service.breaker import CircuitBreaker
from product_service.budget import BudgetedPool
from product_service.cache import (
    BackFills,
    CachedProductRepository,
    CacheRepairs,
    ProductCache,
    open_redis,
)
from product_service.errors import register_error_handlers
from product_service.logs import SPAN_ID_ENVIRON_KEY, TRACE_ID_ENVIRON_KEY
from product_service.metrics import ServiceMetrics
from product_service.ops import create_ops_blueprint
from product_service.repository import ProductRepository, open_pool
from product_service.settings import Settings
from product_service.tracing import SampledFirst

MAX_BODY_BYTES = 1024 * 1024
READY_TIMEOUT_SECONDS = 1.0
# Probes and scrapes are never traced.
UNTRACED_PATHS = ("/health", "/ready", "/metrics")
CACHEABLE_PATHS = ("/openapi.json",)
CACHEABLE = "public, max-age=300"
HSTS_MAX_AGE_SECONDS = 365 * 24 * 3600


def create_app(
    settings: Settings,
    repository: ProductRepository,
    cache: ProductCache,
    metrics: ServiceMetrics,
    products: CachedProductRepository,
) -> Flask:
    app = Flask("product_service")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    tokens = TokenVerifier(settings.jwt_secret, audience=settings.jwt_audience, issuer=settings.jwt_issuer)
    app.register_blueprint(create_products_blueprint(products, tokens))
    readiness = {"postgres": lambda: repository.ping(READY_TIMEOUT_SECONDS), "redis": cache.ping}
    app.register_blueprint(create_ops_blueprint(readiness, metrics, _service_version()))
    register_error_handlers(app)
    _observe_requests(app, metrics)
    _protective_headers(app)
    return app


@dataclass
class OpenResources:
    """What `open_app` opened; `close` releases it when the worker exits."""

    pool: BudgetedPool
    redis: redis.Redis
    breakers: tuple[CircuitBreaker, ...]
    backfills: BackFills
    repairs: CacheRepairs

    def close(self) -> None:
        for breaker in self.breakers:
            breaker.close()
        self.repairs.close()
        self.backfills.close()
        self.pool.close()
        self.redis.close()


def open_app(settings: Settings, tracer_provider: TracerProvider | None = None) -> Flask:
    """The app on fresh connections. Call it in the process that serves (after gunicorn forks).

    With a `tracer_provider` (its id generator a `tracing.RequestTraceIds`), the requests its sampler
    samples are traced with their SQL queries and Redis commands; the others are served by an
    uninstrumented twin of the app on the same connections (`tracing.SampledFirst`).
    """
    configure = None
    if tracer_provider is not None:
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

        def configure(conn: Any) -> None:
            PsycopgInstrumentor.instrument_connection(conn, tracer_provider=tracer_provider)

    metrics = ServiceMetrics(settings.prometheus_multiproc_dir)
    pool = open_pool(
        settings.database_url,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        budget=settings.db_request_budget_seconds,
        configure=configure,
    )
    redis_client = open_redis(settings.redis_url, settings.redis_timeout_seconds)
    repository = ProductRepository(pool, metrics)
    cache = ProductCache(
        redis_client,
        settings.cache_ttl_seconds,
        CircuitBreaker(
            "redis",
            redis_client.ping,
            on_change=metrics.dependency_available,
            verdict_wait=settings.redis_timeout_seconds,
        ),
    )
    # One of each for the app and its untraced twin: their threads, the process's.
    backfills = BackFills(cache, metrics)
    repairs = CacheRepairs(repository, cache, metrics)
    products = CachedProductRepository(repository, cache, metrics, backfills, repairs)
    app = create_app(settings, repository, cache, metrics, products)
    app.extensions["product_service"] = OpenResources(
        pool, redis_client, (repository.breaker, cache.breaker), backfills, repairs
    )
    if tracer_provider is not None:
        from opentelemetry.instrumentation.flask import FlaskInstrumentor
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        untraced = create_app(settings, repository, cache, metrics, products)
        FlaskInstrumentor.instrument_app(
            app, tracer_provider=tracer_provider, excluded_urls=",".join(UNTRACED_PATHS)
        )
        RedisInstrumentor.instrument_client(redis_client, tracer_provider=tracer_provider)
        app.wsgi_app = SampledFirst(  # type: ignore[method-assign]
            app.wsgi_app, untraced.wsgi_app, tracer_provider, excluded_paths=UNTRACED_PATHS
        )
    return app


def close_app(app: Flask) -> None:
    resources = app.extensions.get("product_service")
    if isinstance(resources, OpenResources):
        resources.close()


def _observe_requests(app: Flask, metrics: ServiceMetrics) -> None:
    @app.before_request
    def start_timer() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def record(response: Response) -> Response:
        started = g.get("request_started")
        if started is not None:
            # The rule template (e.g. /api/v1/products/<product_id>), never the raw path.
            route = request.url_rule.rule if request.url_rule is not None else "unmatched"
            metrics.observe_request(
                route, request.method, response.status_code, time.perf_counter() - started
            )
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            request.environ[TRACE_ID_ENVIRON_KEY] = format(span_context.trace_id, "032x")
            request.environ[SPAN_ID_ENVIRON_KEY] = format(span_context.span_id, "016x")
        return response


def _protective_headers(app: Flask) -> None:
    """What every answer says about itself: never sniff its type; products change with every write and
    answer bearers of tokens, so no cache keeps them (the OpenAPI document changes only with a release);
    and, behind TLS, HTTPS only from now on (browsers ignore the header over plain HTTP, RFC 6797
    section 8.1, so a forged X-Forwarded-Proto changes nothing)."""

    @app.after_request
    def protect(response: Response) -> Response:
        response.headers["X-Content-Type-Options"] = "nosniff"
        cacheable = request.path in CACHEABLE_PATHS and response.status_code == 200
        response.headers["Cache-Control"] = CACHEABLE if cacheable else "no-store"
        if request.scheme == "https" or request.headers.get("X-Forwarded-Proto") == "https":
            response.headers["Strict-Transport-Security"] = f"max-age={HSTS_MAX_AGE_SECONDS}"
        return response


def _service_version() -> str:
    try:
        return version("product-service")
    except PackageNotFoundError:
        return "0.0.0"
