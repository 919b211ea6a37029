"""OpenTelemetry tracing over OTLP, configured only by the standard `OTEL_*` environment variables.

Tracing is off unless an OTLP endpoint is set (`OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`). The exporter's batch thread must be started in the process
that serves, so gunicorn calls `start_tracing` in `post_fork`.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
DEFAULT_SERVICE_NAME = "product-service"


def tracing_enabled(environ: Mapping[str, str]) -> bool:
    if environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").lower() == "none":
        return False
    return any(environ.get(name) for name in _ENDPOINT_VARIABLES)


def import_tracing_modules() -> None:
    """Import the exporter and the instrumentations ahead of time (gunicorn's master), so that workers
    inherit them instead of importing them at each boot. Imports only: no thread, no socket."""
    import opentelemetry.exporter.otlp.proto.http.trace_exporter
    import opentelemetry.instrumentation.flask
    import opentelemetry.instrumentation.psycopg
    import opentelemetry.instrumentation.redis
    import opentelemetry.sdk.trace.export  # noqa: F401


def start_tracing(environ: Mapping[str, str]) -> TracerProvider | None:
    """Install a global tracer provider exporting over OTLP/HTTP; None when tracing is off.

    The exporter, sampler and batch processor read their own `OTEL_*` variables
    (endpoint, headers, timeout, `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`).
    """
    if not tracing_enabled(environ):
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; without either the SDK
    # names the service "unknown_service", which this default replaces.
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": DEFAULT_SERVICE_NAME}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def installed_tracer_provider() -> TracerProvider | None:
    """The provider `start_tracing` installed in this process, if any."""
    provider = trace.get_tracer_provider()
    return provider if isinstance(provider, TracerProvider) else None


def stop_tracing() -> None:
    """Flush and stop the exporter (gunicorn `worker_exit`)."""
    provider = installed_tracer_provider()
    if provider is not None:
        provider.shutdown()
