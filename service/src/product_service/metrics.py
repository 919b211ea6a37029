"""Prometheus metrics, correct under several gunicorn workers.

With `PROMETHEUS_MULTIPROC_DIR` set (gunicorn: see `gunicorn_conf.py`), every worker writes its values
to files in that directory and a scrape, served by any worker, sums the files of all workers.
Without it (tests, a single process) the metrics live in the registry passed in.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Sub-millisecond to seconds: cached reads take about a millisecond, the gunicorn timeout is 30 s.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Any other method a client makes up is counted as `other`: one series per invented word would let a
# client grow the metrics without bound.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class ServiceMetrics:
    """The service's metrics. Route labels are URL rule templates, never raw paths (bounded cardinality)."""

    def __init__(
        self, multiprocess_dir: Path | None = None, registry: CollectorRegistry | None = None
    ) -> None:
        self._multiprocess_dir = multiprocess_dir
        self._registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter(
            "http_server_requests",
            "HTTP requests handled, by route template, method and status.",
            ["route", "method", "status"],
            registry=self._registry,
        )
        self.request_duration = Histogram(
            "http_server_request_duration_seconds",
            "Time from request to response, by route template, method and status.",
            ["route", "method", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=self._registry,
        )
        self.cache_lookups = Counter(
            "product_cache_lookups",
            "Product cache lookups by result (hit, miss).",
            ["result"],
            registry=self._registry,
        )
        self.cache_errors = Counter(
            "product_cache_errors",
            "Redis calls that failed, timed out or were refused by the breaker, and back-fills dropped.",
            ["operation"],
            registry=self._registry,
        )
        self.db_connections_in_use = Gauge(
            "product_db_pool_connections_in_use",
            "Pool connections checked out by requests, summed over live workers.",
            registry=self._registry,
            multiprocess_mode="livesum",
        )
        self.db_connections_open = Gauge(
            "product_db_pool_connections_open",
            "Connections the pools hold open, summed over live workers.",
            registry=self._registry,
            multiprocess_mode="livesum",
        )
        self.dependency_up = Gauge(
            "product_dependency_up",
            "1 while the backing service answers (its circuit breaker is closed), 0 while it is open; "
            "the lowest value over live workers.",
            ["dependency"],
            registry=self._registry,
            multiprocess_mode="livemin",
        )
        self.db_connection_wait = Histogram(
            "product_db_pool_wait_seconds",
            "Time a request waited for a pool connection.",
            buckets=_LATENCY_BUCKETS,
            registry=self._registry,
        )
        # Each request's series, looked up once: `labels()` validates and locks on every call. The keys
        # are bounded: route templates x KNOWN_METHODS x status codes.
        self._request_series: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._cache_hits = self.cache_lookups.labels("hit")
        self._cache_misses = self.cache_lookups.labels("miss")

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        method = method if method in KNOWN_METHODS else "other"
        series = self._request_series.get((route, method, status))
        if series is None:
            labels = (route, method, str(status))
            series = self.requests.labels(*labels), self.request_duration.labels(*labels)
            self._request_series[(route, method, status)] = series
        count, duration = series
        count.inc()
        duration.observe(seconds)

    def cache_hits(self, count: int = 1) -> None:
        if count:
            self._cache_hits.inc(count)

    def cache_misses(self, count: int = 1) -> None:
        if count:
            self._cache_misses.inc(count)

    def cache_error(self, operation: str) -> None:
        self.cache_errors.labels(operation).inc()

    def dependency_available(self, dependency: str, available: bool) -> None:
        self.dependency_up.labels(dependency).set(1 if available else 0)

    def db_connection_acquired(self, waited_seconds: float, pool_stats: dict[str, Any]) -> None:
        self.db_connection_wait.observe(waited_seconds)
        self.db_connections_in_use.inc()
        self.db_connections_open.set(pool_stats.get("pool_size", 0))

    def db_connection_released(self) -> None:
        self.db_connections_in_use.dec()

    def exposition(self) -> bytes:
        """The text a Prometheus scrape receives: every worker's values when in multiprocess mode."""
        if self._multiprocess_dir is None:
            return generate_latest(self._registry)
        registry = CollectorRegistry()
        _WorkerFilesCollector(registry, path=str(self._multiprocess_dir))
        return generate_latest(registry)


class _WorkerFilesCollector(MultiProcessCollector):
    """The multiprocess collector, without the files a worker has created but not yet sized.

    prometheus_client creates a worker's file and sizes it only afterwards, and reading it at 0 bytes
    raises `struct.error`, which failed the whole scrape while any worker booted (every few seconds under
    load, with max_requests), and for good if a worker died in that moment
    (prometheus/client_python#1199, unfixed in 0.26.0). An empty file holds no samples yet."""

    def collect(self) -> Iterable[Any]:
        files = [path for path in glob.glob(os.path.join(self._path, "*.db")) if _written(path)]
        return self.merge(files, accumulate=True)


def _written(path: str) -> bool:
    try:
        return os.path.getsize(path) > 0
    except FileNotFoundError:  # a dead worker's live gauges, removed since the listing
        return False
