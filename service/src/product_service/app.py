"""The Flask application: `create_app` wires blueprints to the dependencies it is given;
`open_app` first opens those dependencies (Postgres pool, Redis client) from `Settings`.
"""

from __future__ import annotations

import time
from importlib.metadata import PackageNotFoundError, version

from flask import Flask, Response, g, request
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from product_service.api import create_products_blueprint
from product_service.auth import TokenVerifier
from product_service.cache import CachedProductRepository, ProductCache
from product_service.dependencies import Dependencies, open_dependencies
from product_service.errors import register_error_handlers
from product_service.logs import SPAN_ID_ENVIRON_KEY, TRACE_ID_ENVIRON_KEY
from product_service.metrics import ServiceMetrics
from product_service.ops import create_ops_blueprint
from product_service.repository import ProductRepository
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


def open_app(settings: Settings, tracer_provider: TracerProvider | None = None) -> Flask:
    """The app on fresh connections. Call it in the process that serves (after gunicorn forks).

    With a `tracer_provider` (its id generator a `tracing.RequestTraceIds`), the requests its sampler
    samples are traced with their SQL queries and Redis commands; the others are served by an
    uninstrumented twin of the app on the same connections (`tracing.SampledFirst`).
    """
    metrics = ServiceMetrics(settings.prometheus_multiproc_dir)
    # One of each for the app and its untraced twin: their threads, the process's.
    opened = open_dependencies(settings, metrics, tracer_provider)
    app = create_app(settings, opened.repository, opened.cache, metrics, opened.products)
    app.extensions["product_service"] = opened
    if tracer_provider is not None:
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        untraced = create_app(settings, opened.repository, opened.cache, metrics, opened.products)
        FlaskInstrumentor.instrument_app(
            app, tracer_provider=tracer_provider, excluded_urls=",".join(UNTRACED_PATHS)
        )
        app.wsgi_app = SampledFirst(  # type: ignore[method-assign]
            app.wsgi_app, untraced.wsgi_app, tracer_provider, excluded_paths=UNTRACED_PATHS
        )
    return app


def close_app(app: Flask) -> None:
    opened = app.extensions.get("product_service")
    if isinstance(opened, Dependencies):
        opened.close()


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
