"""The Kubernetes cluster-autoscaler, where the cloud's node groups do not resize themselves (EKS).

Without it the HPA's extra replicas stay Pending once the minimum node count is full.
"""

from __future__ import annotations

from typing import Any

from cluster import bounds, charts
from cluster.shared import Installation, chart_release


def install(at: Installation, values: dict[str, Any]) -> None:
    """In kube-system, with the cloud's values (ClusterFacts.cluster_autoscaler_values)."""
    chart_release(
        at,
        charts.CLUSTER_AUTOSCALER,
        "cluster-autoscaler",
        None,
        bounds.merged(values, bounds.cluster_autoscaler(at.cfg.is_prod)),
    )
