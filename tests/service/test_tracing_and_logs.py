"""Traces of requests, SQL queries and Redis commands; JSON log lines carrying the trace ids."""

from __future__ import annotations

import io
import json
import logging

import pytest
from flask import Flask
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from product_service.logs import JsonFormatter
from product_service.tracing import start_tracing, tracing_enabled
from service_helpers import create_product


def test_a_request_traces_its_sql_and_redis_calls_as_children(
    traced: tuple[Flask, InMemorySpanExporter], auth: dict[str, str]
) -> None:
    app, exporter = traced
    client = app.test_client()
    product = create_product(client, auth)
    exporter.clear()

    client.get(f"/api/v1/products/{product['id']}", headers={"traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01"})

    spans = exporter.get_finished_spans()
    server = [span for span in spans if span.kind == SpanKind.SERVER]
    assert len(server) == 1
    assert server[0].name == "GET /api/v1/products/<product_id>"
    assert format(server[0].context.trace_id, "032x") == "ab" * 16  # continues the caller's trace
    database = [span for span in spans if (span.attributes or {}).get("db.system") == "postgresql"]
    cache = [span for span in spans if (span.attributes or {}).get("db.system") == "redis"]
    assert database, [span.name for span in spans]
    assert cache
    assert "SELECT" in str((database[0].attributes or {}).get("db.statement"))
    for child in [*database, *cache]:
        assert child.context.trace_id == server[0].context.trace_id
        assert child.parent is not None


def test_health_and_metrics_are_not_traced(traced: tuple[Flask, InMemorySpanExporter]) -> None:
    app, exporter = traced
    client = app.test_client()

    client.get("/health")
    client.get("/metrics")

    assert exporter.get_finished_spans() == ()


def test_log_lines_are_json_with_the_current_trace_and_span_ids() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.json")
    logger.addHandler(handler)
    logger.propagate = False
    provider = TracerProvider()
    try:
        with provider.get_tracer("test").start_as_current_span("work") as span:
            logger.warning("cache down", extra={"fields": {"product_id": "p1"}})
        logger.warning("outside a span")
    finally:
        logger.removeHandler(handler)

    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["message"] == "cache down"
    assert inside["level"] == "warning"
    assert inside["product_id"] == "p1"
    assert inside["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert inside["span_id"] == format(span.get_span_context().span_id, "016x")
    assert "trace_id" not in outside


@pytest.mark.parametrize(
    ("environ", "enabled"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ],
)
def test_tracing_is_on_only_with_an_otlp_endpoint(environ: dict[str, str], enabled: bool) -> None:
    assert tracing_enabled(environ) is enabled


def test_no_endpoint_installs_no_tracer_provider() -> None:
    assert start_tracing({}) is None
