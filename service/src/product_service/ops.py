"""Operational endpoints: liveness, readiness, Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping

from flask import Blueprint, Response, current_app

from product_service.errors import error_response
from product_service.metrics import CONTENT_TYPE, ServiceMetrics
from product_service.openapi import build_openapi, operation
from product_service.schemas import Health, Readiness

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], None]  # returns when the dependency answers, raises otherwise

# Readiness means "this pod can serve": without Postgres it cannot; without Redis it serves from
# Postgres (and writes on), so a Redis outage must not pull every pod out of service.
REQUIRED_FOR_READINESS = ("postgres",)


def create_ops_blueprint(
    checks: Mapping[str, ReadinessCheck], metrics: ServiceMetrics, version: str
) -> Blueprint:
    ops = Blueprint("ops", __name__)
    openapi_document: list[bytes] = []

    @ops.get("/health")
    @operation("Liveness: the process serves requests; touches nothing external", responses={200: Health})
    def health() -> Response:
        return Response(Health(status="ok").model_dump_json(), mimetype="application/json")

    @ops.get("/ready")
    @operation(
        "Readiness: Postgres answers; the state of Redis is reported but does not make the pod unready",
        responses={200: Readiness, 503: None},
    )
    def ready() -> Response:
        results = {name: _run_check(name, check) for name, check in checks.items()}
        failed = [name for name in REQUIRED_FOR_READINESS if results.get(name) != "ok"]
        if failed:
            return error_response(
                503,
                "not_ready",
                f"{', '.join(failed)} unavailable",
                details=results,
                headers={"Retry-After": "1"},
            )
        return Response(
            Readiness(status="ready", checks=results).model_dump_json(), mimetype="application/json"
        )

    @ops.get("/metrics")
    def prometheus_metrics() -> Response:
        return Response(metrics.exposition(), content_type=CONTENT_TYPE)

    @ops.get("/openapi.json")
    def openapi() -> Response:
        # Built on first use: the URL map is complete only once every blueprint is registered.
        if not openapi_document:
            document = build_openapi(current_app, title="Product service", version=version)
            openapi_document.append(json.dumps(document).encode())
        return Response(openapi_document[0], mimetype="application/json")

    return ops


def _run_check(name: str, check: ReadinessCheck) -> str:
    try:
        check()
    except Exception as error:
        log.warning("readiness check %s failed: %r", name, error)
        return "unavailable"
    return "ok"
