"""CPU time per request of the app alone, without gunicorn or HTTP: a script, not a test.

`run.py` measures the service as it runs; this isolates the app's own cost, which moves far less from
run to run. It opens the app with `open_app` on the bench's Postgres and Valkey (build/bench/data, seeded
by a first `run.py`), calls it as WSGI in one thread, and prints the process's CPU time per request
(every thread's, the span exporter's too) for each of `--rounds` rounds: the fastest and the median.

    .venv/bin/python harness/bench/in_process.py --tracing prod --scenario cached
    .venv/bin/python harness/bench/in_process.py --tracing bare      # the bare Flask baseline app
    .venv/bin/python harness/bench/in_process.py --tracing off none --scenario uncached --rounds 8

Several `--tracing` settings are measured in one process, each on an app of its own, their rounds
alternating; the report adds each one's difference to the first, round by round. Two runs of this
script minutes apart differ by more than most changes do (the machine drifts); rounds run back to back
do not.

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
from typing import Any, cast

import psycopg
import redis
from flask import Flask
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
    parser.add_argument(
        "--tracing",
        choices=["bare", "off", *SAMPLERS],
        nargs="+",
        default=["prod"],
        help="one setting, or several to compare: each gets its own app, and their rounds alternate",
    )
    parser.add_argument("--scenario", choices=["cached", "uncached", "list"], default="cached")
    parser.add_argument("--requests", type=int, default=3000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not (OUT / "data").exists():
        raise SystemExit("no bench data: run `make bench-service` once first (it seeds 10,000 products)")
    settings = list(dict.fromkeys(args.tracing))
    with embedded_servers(OUT / "data") as servers:
        with psycopg.connect(servers.database_url) as conn:
            ids = [str(row[0]) for row in conn.execute("SELECT id FROM products")]
        cache = redis.Redis.from_url(servers.redis_url)
        apps = {
            tracing: open_measured_app(tracing, servers.database_url, servers.redis_url)
            for tracing in settings
        }
        paths = {tracing: request_paths(tracing, args.scenario, ids) for tracing in settings}
        # An uncached round asks for each product once, so it holds at most one request per product.
        requests = min(args.requests, len(ids)) if args.scenario == "uncached" else args.requests
        rounds: dict[str, list[float]] = {tracing: [] for tracing in settings}
        for number in range(args.rounds):
            # Alternating the order as well: a setting measured always first or always last would carry
            # whatever the machine does at that point of each round.
            for tracing in settings if number % 2 == 0 else reversed(settings):
                app, provider = apps[tracing]
                ms = measure_round(app, provider, tracing, args.scenario, paths[tracing], requests, cache)
                rounds[tracing].append(ms)
        for tracing, measured in rounds.items():
            print(
                f"{args.scenario}, tracing {tracing}: {min(measured):.3f} ms CPU per request at best, "
                f"median {statistics.median(measured):.3f} ({args.rounds} rounds of {requests} requests)"
            )
        first = settings[0]
        for tracing in settings[1:]:
            # Rounds of the same number ran back to back: their differences cancel the machine's drift.
            differences = [b - a for a, b in zip(rounds[first], rounds[tracing], strict=True)]
            print(
                f"{tracing} - {first}: {statistics.median(differences):+.3f} ms per request, median of the "
                f"rounds' differences ({min(differences):+.3f} to {max(differences):+.3f})"
            )
        cache.close()
    return 0


def measure_round(
    app: WsgiApp,
    provider: TracerProvider | None,
    tracing: str,
    scenario: str,
    paths: list[str],
    requests: int,
    cache: redis.Redis,
) -> float:
    """CPU ms per request of one round of `requests` GETs of `paths` (`scenario`'s) on `app`."""
    cache.flushdb()
    if scenario == "cached":
        call_all(app, built(paths))  # back-fills every product
    if scenario == "uncached" and tracing != "bare":
        order = random.sample(paths, requests)  # each product once
    else:
        order = [random.choice(paths) for _ in range(requests)]  # noqa: S311 (a load shape)
    environs = built(order)  # before the clock starts: their making is not the app's cost
    started = time.process_time()
    call_all(app, environs)
    # What the requests left to background threads (spans, cache back-fills) is their cost too.
    if provider is not None:
        provider.force_flush()
    if tracing != "bare":
        cast(Flask, app).extensions["product_service"].backfills.flush()
    return (time.process_time() - started) * 1000 / len(order)


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
