"""Traces of requests, SQL queries and Redis commands; JSON log lines carrying the trace ids."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import SpanKind
from product_service.app import close_app, open_app
from product_service.logs import SPAN_ID_ENVIRON_KEY, TRACE_ID_ENVIRON_KEY, JsonFormatter
from product_service.settings import Settings
from product_service.tracing import RequestTraceIds, SampledFirst, start_tracing, tracing_enabled
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


def test_probes_and_metrics_are_not_traced_nor_the_calls_they_make(
    traced: tuple[Flask, InMemorySpanExporter],
) -> None:
    app, exporter = traced
    client = app.test_client()

    client.get("/health")
    assert client.get("/ready").status_code == 200  # a Postgres query and a Redis PING
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


@dataclass
class TracedApp:
    """An app whose spans land in memory, with the WSGI environ of each request it served, as gunicorn's
    access log reads it afterwards."""

    client: FlaskClient
    exporter: InMemorySpanExporter
    environs: list[dict[str, Any]]

    def logged_ids(self) -> tuple[str, str]:
        """The trace and span id the last request left for its access log line."""
        environ = self.environs[-1]
        return environ[TRACE_ID_ENVIRON_KEY], environ[SPAN_ID_ENVIRON_KEY]


@pytest.fixture
def sampled_at(settings: Settings) -> Iterator[Callable[[Sampler], TracedApp]]:
    """Opens an app whose tracer provider uses the given sampler."""
    opened: list[tuple[Flask, TracerProvider]] = []

    def open_with(sampler: Sampler) -> TracedApp:
        exporter = InMemorySpanExporter()
        provider = TracerProvider(sampler=sampler, id_generator=RequestTraceIds())
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        app = open_app(settings, tracer_provider=provider)
        opened.append((app, provider))
        environs: list[dict[str, Any]] = []
        served = app.wsgi_app

        def recording(environ: dict[str, Any], start_response: Any) -> Any:
            environs.append(environ)
            return served(environ, start_response)

        app.wsgi_app = recording  # type: ignore[method-assign]
        return TracedApp(app.test_client(), exporter, environs)

    yield open_with
    for app, provider in opened:
        close_app(app)
        provider.shutdown()


def test_an_unsampled_request_records_no_span_and_keeps_the_callers_trace(
    sampled_at: Callable[[Sampler], TracedApp], auth: dict[str, str]
) -> None:
    traced = sampled_at(ParentBased(ALWAYS_OFF))
    product = create_product(traced.client, auth)
    traced.exporter.clear()
    caller_trace, caller_span = "ab" * 16, "cd" * 8

    response = traced.client.get(
        f"/api/v1/products/{product['id']}", headers={"traceparent": f"00-{caller_trace}-{caller_span}-00"}
    )

    assert response.json == product
    assert traced.exporter.get_finished_spans() == ()
    trace_id, span_id = traced.logged_ids()
    assert trace_id == caller_trace
    assert span_id not in (caller_span, "0" * 16)


def test_an_unsampled_root_request_still_gets_a_trace_id_for_its_logs(
    sampled_at: Callable[[Sampler], TracedApp],
) -> None:
    traced = sampled_at(ParentBased(ALWAYS_OFF))

    first = traced.client.get("/api/v1/products?limit=1")
    first_trace, _ = traced.logged_ids()
    traced.client.get("/api/v1/products?limit=1")
    second_trace, _ = traced.logged_ids()

    assert first.status_code == 200
    assert traced.exporter.get_finished_spans() == ()
    assert first_trace != "0" * 32
    assert second_trace != first_trace


def test_a_sampled_caller_is_traced_even_when_the_sampler_would_drop_a_root(
    sampled_at: Callable[[Sampler], TracedApp], auth: dict[str, str]
) -> None:
    traced = sampled_at(ParentBased(ALWAYS_OFF))
    product = create_product(traced.client, auth)
    traced.exporter.clear()

    traced.client.get(
        f"/api/v1/products/{product['id']}", headers={"traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01"}
    )

    spans = traced.exporter.get_finished_spans()
    server = [span for span in spans if span.kind == SpanKind.SERVER]
    assert [span.name for span in server] == ["GET /api/v1/products/<product_id>"]
    assert server[0].parent is not None and format(server[0].parent.span_id, "016x") == "cd" * 8
    assert any((span.attributes or {}).get("db.system") == "redis" for span in spans)
    assert traced.logged_ids() == ("ab" * 16, format(server[0].context.span_id, "016x"))


def test_a_ratio_sampler_traces_its_share_of_root_requests_with_the_trace_id_it_decided_on(
    sampled_at: Callable[[Sampler], TracedApp],
) -> None:
    sampler = TraceIdRatioBased(0.5)
    traced = sampled_at(ParentBased(sampler))

    logged = []
    for _ in range(200):
        traced.client.get("/api/v1/products?limit=1")
        logged.append(traced.logged_ids()[0])

    server = [span for span in traced.exporter.get_finished_spans() if span.kind == SpanKind.SERVER]
    exported = {format(span.context.trace_id, "032x") for span in server}
    sampled = {trace_id for trace_id in logged if int(trace_id, 16) & sampler.TRACE_ID_LIMIT < sampler.bound}
    # Each root request is traced exactly when the ratio says so for the trace id its logs carry; a
    # second decision on another id would trace about a quarter of them, under other trace ids.
    assert exported == sampled
    assert 60 <= len(sampled) <= 140
    assert {span.name for span in server} == {"GET /api/v1/products"}  # the instrumentation's, each one


def test_the_middleware_refuses_a_provider_that_would_decide_on_another_trace_id() -> None:
    with pytest.raises(ValueError, match="RequestTraceIds"):
        SampledFirst(lambda environ, start: [], lambda environ, start: [], TracerProvider(), ())
