"""CPU time per request of the app alone, without gunicorn or HTTP: a script, not a test.

`run.py` measures the service as it runs; this isolates the app's own cost, which moves far less from
run to run. It opens the app with `open_app` on the bench's Postgres and Valkey (build/bench/data, seeded
by a first `run.py`), calls it as WSGI in one thread, and prints the process's CPU time per request
(every thread's, the span exporter's too) for each of `--rounds` rounds: the fastest and the median.

    .venv/bin/python service/bench/in_process.py --tracing prod --scenario cached
    .venv/bin/python service/bench/in_process.py --tracing bare      # the bare Flask baseline app

Tracing: `off` (no provider), `none` (a provider that samples nothing), `prod` (10 %, as the prod
profile), `all` (every request). Spans are encoded as the OTLP exporter encodes them, then dropped:
the cost of sending them is the collector link's, not the app's.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import psycopg
import redis
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from product_service.devservers import embedded_servers
from product_service.tracing import batching_provider
from run import EVERY_REQUEST_TRACED, OUT, PROD_SAMPLING
from werkzeug.test import EnvironBuilder

# The bench's sampling settings (run.py), and one that samples nothing.
SAMPLERS = {
    "none": PROD_SAMPLING | {"OTEL_TRACES_SAMPLER_ARG": "0"},
    "prod": PROD_SAMPLING,
    "all": EVERY_REQUEST_TRACED,
}
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class EncodeOnlyExporter(SpanExporter):
    """What the OTLP exporter does to a batch before it sends it."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        encode_spans(spans).SerializePartialToString()
        return SpanExportResult.SUCCESS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracing", choices=["bare", "off", *SAMPLERS], default="prod")
    parser.add_argument("--scenario", choices=["cached", "uncached", "list"], default="cached")
    parser.add_argument("--requests", type=int, default=3000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not (OUT / "data").exists():
        raise SystemExit("no bench data: run `make bench-service` once first (it seeds 10,000 products)")
    with embedded_servers(OUT / "data") as servers:
        with psycopg.connect(servers.database_url) as conn:
            ids = [str(row[0]) for row in conn.execute("SELECT id FROM products")]
        cache = redis.Redis.from_url(servers.redis_url)
        app, provider = open_measured_app(args.tracing, servers.database_url, servers.redis_url)
        paths = request_paths(args.tracing, args.scenario, ids)
        rounds = []
        for _ in range(args.rounds):
            cache.flushdb()
            if args.scenario == "cached":
                call_all(app, built(paths))  # back-fills every product
            if args.scenario == "uncached" and args.tracing != "bare":
                order = random.sample(paths, min(args.requests, len(paths)))  # each product once
            else:
                order = [random.choice(paths) for _ in range(args.requests)]  # noqa: S311 (a load shape)
            environs = built(order)  # before the clock starts: their making is not the app's cost
            started = time.process_time()
            call_all(app, environs)
            # What the requests left to background threads (spans, cache back-fills) is their cost too.
            if provider is not None:
                provider.force_flush()
            if args.tracing != "bare":
                app.extensions["product_service"].backfills.flush()
            rounds.append((time.process_time() - started) * 1000 / len(order))
        print(
            f"{args.scenario}, tracing {args.tracing}: {min(rounds):.3f} ms CPU per request at best, "
            f"median {statistics.median(rounds):.3f} ({args.rounds} rounds of {len(order)} requests)"
        )
        cache.close()
    return 0


def open_measured_app(
    tracing: str, database_url: str, redis_url: str
) -> tuple[WsgiApp, TracerProvider | None]:
    os.environ.update(
        {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "JWT_SECRET": "in-process-" + "x" * 32}
    )
    if tracing == "bare":
        import bare_app  # beside this script, which is on sys.path as run.py's modules are

        return bare_app.app, None
    from product_service.app import open_app
    from product_service.settings import load_settings

    provider = None
    if tracing in SAMPLERS:
        os.environ.update(SAMPLERS[tracing])
        provider = batching_provider(EncodeOnlyExporter())
    return open_app(load_settings(os.environ), tracer_provider=provider), provider


def request_paths(tracing: str, scenario: str, ids: list[str]) -> list[str]:
    if tracing == "bare":
        return ["/bare"]
    if scenario == "list":
        return [f"/api/v1/products?limit=20&offset={20 * n}" for n in range(50)]
    return [f"/api/v1/products/{product_id}" for product_id in ids]


def built(paths: Sequence[str]) -> list[dict[str, Any]]:
    """A WSGI environ for each GET of `paths`, in order."""
    environs = {path: EnvironBuilder(path=path).get_environ() for path in set(paths)}
    return [dict(environs[path], **{"wsgi.input": io.BytesIO()}) for path in paths]


def call_all(app: WsgiApp, environs: Sequence[dict[str, Any]]) -> None:
    status: list[str] = []

    def start_response(code: str, headers: Any, exc_info: Any = None) -> None:
        status.append(code)

    for environ in environs:
        body = app(environ, start_response)
        b"".join(body)
        getattr(body, "close", lambda: None)()
        if not status.pop().startswith("200"):
            raise SystemExit(f"GET {environ['PATH_INFO']} did not answer 200")


if __name__ == "__main__":
    sys.exit(main())
