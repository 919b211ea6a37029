"""metrics-server, where the cloud does not ship it: the HPA's CPU figures come from it."""

from __future__ import annotations

from cluster import bounds, charts
from cluster.shared import Installation, chart_release


def install(at: Installation) -> None:
    """In kube-system, with the cluster's extra arguments (ClusterFacts.metrics_server_args)."""
    values = {"args": at.cluster.metrics_server_args}
    chart_release(
        at,
        charts.METRICS_SERVER,
        "metrics-server",
        None,
        bounds.merged(values, bounds.metrics_server(at.cfg.is_prod)),
    )
