"""The product service's Grafana dashboard and alert rules, as code.

Metric names are the service's own (`service/src/product_service/metrics.py`); prometheus_client
adds `_total` to counters. The `job` label is the name of the service's Kubernetes Service, which
the ServiceMonitor scrapes.
"""

from __future__ import annotations

import json
from typing import Any

REQUESTS = "http_server_requests_total"
LATENCY_BUCKETS = "http_server_request_duration_seconds_bucket"
CACHE_LOOKUPS = "product_cache_lookups_total"
POOL_IN_USE = "product_db_pool_connections_in_use"
POOL_OPEN = "product_db_pool_connections_open"

ERROR_RATIO_THRESHOLD = 0.05  # 5% of requests answered with a 5xx
P99_LATENCY_THRESHOLD_SECONDS = 1.0


def error_ratio(job: str, window: str = "5m") -> str:
    return (
        f'sum(rate({REQUESTS}{{job="{job}",status=~"5.."}}[{window}]))'
        f' / clamp_min(sum(rate({REQUESTS}{{job="{job}"}}[{window}])), 1e-9)'
    )


def latency_quantile(job: str, quantile: float, window: str = "5m") -> str:
    return f'histogram_quantile({quantile}, sum by (le) (rate({LATENCY_BUCKETS}{{job="{job}"}}[{window}])))'


def dashboard_json(job: str) -> str:
    """A Grafana dashboard (schema 39) with the five questions an on-call engineer asks first."""
    panels = [
        _panel(
            1,
            "Request rate by route",
            "reqps",
            [(f'sum by (route) (rate({REQUESTS}{{job="{job}"}}[5m]))', "{{route}}")],
        ),
        _panel(2, "Error ratio (5xx)", "percentunit", [(error_ratio(job), "5xx ratio")]),
        _panel(
            3,
            "Latency p50 / p99",
            "s",
            [(latency_quantile(job, 0.5), "p50"), (latency_quantile(job, 0.99), "p99")],
        ),
        _panel(
            4,
            "Cache hit ratio",
            "percentunit",
            [
                (
                    f'sum(rate({CACHE_LOOKUPS}{{job="{job}",result="hit"}}[5m]))'
                    f' / clamp_min(sum(rate({CACHE_LOOKUPS}{{job="{job}"}}[5m])), 1e-9)',
                    "hit ratio",
                )
            ],
        ),
        _panel(
            5,
            "Database pool usage",
            "short",
            [
                (f'sum({POOL_IN_USE}{{job="{job}"}})', "in use"),
                (f'sum({POOL_OPEN}{{job="{job}"}})', "open"),
            ],
        ),
    ]
    return json.dumps(
        {
            "uid": "product-service",
            "title": "Product service",
            "schemaVersion": 39,
            "time": {"from": "now-3h", "to": "now"},
            "refresh": "30s",
            "tags": ["product-service"],
            "panels": panels,
        },
        indent=2,
    )


def _panel(panel_id: int, title: str, unit: str, queries: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "prometheus"},
        "gridPos": {"h": 8, "w": 12, "x": 12 * ((panel_id - 1) % 2), "y": 8 * ((panel_id - 1) // 2)},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(queries)
        ],
    }


def alert_groups(job: str) -> list[dict[str, Any]]:
    """PrometheusRule groups: page on errors, warn on slowness. `for` rides out single bad scrapes."""
    return [
        {
            "name": "product-service",
            "rules": [
                {
                    "alert": "ProductServiceHighErrorRate",
                    "expr": f"{error_ratio(job)} > {ERROR_RATIO_THRESHOLD}",
                    "for": "10m",
                    "labels": {"severity": "critical"},
                    "annotations": {
                        "summary": "More than 5% of product API requests fail with a 5xx.",
                        "description": "5xx ratio is {{ $value | humanizePercentage }} over 5 minutes.",
                    },
                },
                {
                    "alert": "ProductServiceHighLatency",
                    "expr": f"{latency_quantile(job, 0.99)} > {P99_LATENCY_THRESHOLD_SECONDS}",
                    "for": "10m",
                    "labels": {"severity": "warning"},
                    "annotations": {
                        "summary": "Product API p99 latency is above 1 second.",
                        "description": "p99 latency is {{ $value | humanizeDuration }} over 5 minutes.",
                    },
                },
            ],
        }
    ]
