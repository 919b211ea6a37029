"""OpenTelemetry tracing over OTLP, configured only by the standard `OTEL_*` environment variables.

Tracing is off unless an OTLP endpoint is set (`OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`). The exporter's batch thread must be started in the process
that serves, so gunicorn calls `start_tracing` in `post_fork`.

Unsampled requests cost almost nothing: `SampledFirst` asks the sampler before any instrumentation
runs. A request the sampler drops is served by an uninstrumented twin of the app under a non-recording
span that carries the trace context (its trace id reaches the logs, and a caller's trace continues);
only sampled requests pay for the Flask, psycopg and Redis instrumentations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

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

    # The exporter imports its HTTP client only when it is built, in each worker's post_fork: 60 ms of
    # CPU per worker boot (235 ms without bytecode), and max_requests boots one every few seconds.
    import requests  # noqa: F401


def start_tracing(environ: Mapping[str, str]) -> TracerProvider | None:
    """Install a global tracer provider exporting over OTLP/HTTP; None when tracing is off.

    The exporter, sampler and batch processor read their own `OTEL_*` variables
    (endpoint, headers, timeout, `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`).
    """
    if not tracing_enabled(environ):
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = batching_provider(OTLPSpanExporter())
    trace.set_tracer_provider(provider)
    return provider


def batching_provider(exporter: SpanExporter) -> TracerProvider:
    """The service's tracer provider (resource, sampler from `OTEL_*`, `RequestTraceIds`), its spans
    batched to `exporter`; not installed. The benchmark gives it an exporter of its own."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; without either the SDK
    # names the service "unknown_service", which this default replaces.
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": DEFAULT_SERVICE_NAME}))
    provider = TracerProvider(resource=resource, id_generator=RequestTraceIds())
    provider.add_span_processor(BatchSpanProcessor(exporter))
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


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# The trace id `SampledFirst` chose for a request that starts a trace, for the request's first span.
_DECIDED_TRACE_ID: ContextVar[int | None] = ContextVar("product_service_decided_trace_id", default=None)


class RequestTraceIds(RandomIdGenerator):
    """Random ids, except that the root span of a request gets the trace id its sampling decision
    was made on (`SampledFirst`), so the SDK's own decision, on the same trace id, is the same one."""

    def generate_trace_id(self) -> int:
        decided = _DECIDED_TRACE_ID.get()
        if decided is None:
            return super().generate_trace_id()
        _DECIDED_TRACE_ID.set(None)
        return decided


class SampledFirst:
    """WSGI middleware: the sampler's decision first, then the instrumented app (`traced`) for a
    sampled request, or `untraced`, the same app without instrumentation, for the others.

    An unsampled request runs under the non-recording span the SDK makes for it, with the incoming
    trace context as its parent, and with instrumentation suppressed (psycopg, Redis): its children
    would not be recorded either. `excluded_paths` get no span at all, nor do the calls they make.
    """

    def __init__(
        self, traced: WsgiApp, untraced: WsgiApp, provider: TracerProvider, excluded_paths: Iterable[str]
    ) -> None:
        if not isinstance(provider.id_generator, RequestTraceIds):
            raise ValueError("SampledFirst needs a TracerProvider whose id_generator is a RequestTraceIds")
        # Imported here: the gunicorn master imports this module whether or not tracing is on.
        from opentelemetry.instrumentation.utils import suppress_instrumentation
        from opentelemetry.instrumentation.wsgi import wsgi_getter

        self._suppress_instrumentation, self._getter = suppress_instrumentation, wsgi_getter
        self._traced, self._untraced = traced, untraced
        self._provider = provider
        self._tracer = provider.get_tracer(__name__)
        self._excluded = frozenset(excluded_paths)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") in self._excluded:
            # Suppressed too: the readiness probe's PING and SELECT 1 would each start a trace of their own.
            with self._suppress_instrumentation():
                return self._untraced(environ, start_response)
        parent = propagate.extract(environ, getter=self._getter)
        parent_span = trace.get_current_span(parent).get_span_context()
        root = not parent_span.is_valid
        trace_id = self._provider.id_generator.generate_trace_id() if root else parent_span.trace_id
        name = environ.get("REQUEST_METHOD", "HTTP")
        decision = self._provider.sampler.should_sample(parent, trace_id, name, trace.SpanKind.SERVER)
        decided = _DECIDED_TRACE_ID.set(trace_id if root else None)
        try:
            if decision.decision.is_sampled():
                return self._traced(environ, start_response)
            span = self._tracer.start_span(name, context=parent, kind=trace.SpanKind.SERVER)
        finally:
            _DECIDED_TRACE_ID.reset(decided)
        activated = context.attach(trace.set_span_in_context(span, parent))
        try:
            with self._suppress_instrumentation():
                return self._untraced(environ, start_response)
        finally:
            context.detach(activated)
            span.end()
