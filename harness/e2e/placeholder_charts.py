"""A Helm repository of PLACEHOLDER charts: the real names and versions, none of the real contents.

    python harness/e2e/placeholder_charts.py OUT_DIR    # writes OUT_DIR/index.yaml and one .tgz per chart

The e2e tier cannot reach the charts' repositories, and the Kubernetes provider downloads every
chart during preview. So it serves this repository on 127.0.0.1 through `platform:chartRepository`
(the setting that air-gapped clusters and company mirrors use). Each placeholder has a Chart.yaml and
no templates, so a Release installs nothing but itself; the kube-prometheus-stack placeholder carries
the ServiceMonitor and PrometheusRule CRDs in its crds/, the Traefik one the Middleware CRD and the
cert-manager one the Certificate, Issuer and ClusterIssuer CRDs (open schemas), because the program's own
monitoring objects, the API's per-client limits and the local CA (platform:localTls) need those kinds to
exist. What the real charts render is not seen here.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "infra"))

from cluster import charts  # noqa: E402 (the program's own pins)

PLACEHOLDER_NOTE = "PLACEHOLDER for the e2e tier: the real chart's name and version, none of its contents."
# The custom resources the program declares, by the chart whose crds/ ship their CRD: (group, version,
# kind, plural, scope) each.
CRDS = {
    charts.KUBE_PROMETHEUS_STACK.name: (
        ("monitoring.coreos.com", "v1", "ServiceMonitor", "servicemonitors", "Namespaced"),
        ("monitoring.coreos.com", "v1", "PrometheusRule", "prometheusrules", "Namespaced"),
    ),
    charts.TRAEFIK.name: (("traefik.io", "v1alpha1", "Middleware", "middlewares", "Namespaced"),),
    charts.CERT_MANAGER.name: (
        ("cert-manager.io", "v1", "Certificate", "certificates", "Namespaced"),
        ("cert-manager.io", "v1", "Issuer", "issuers", "Namespaced"),
        ("cert-manager.io", "v1", "ClusterIssuer", "clusterissuers", "Cluster"),
    ),
    charts.ARGO_CD.name: (
        ("argoproj.io", "v1alpha1", "Application", "applications", "Namespaced"),
        ("argoproj.io", "v1alpha1", "AppProject", "appprojects", "Namespaced"),
    ),
    charts.ARGO_ROLLOUTS.name: (
        ("argoproj.io", "v1alpha1", "Rollout", "rollouts", "Namespaced"),
        ("argoproj.io", "v1alpha1", "AnalysisTemplate", "analysistemplates", "Namespaced"),
    ),
}


def main() -> None:
    write_repository(Path(sys.argv[1]), lambda chart: (placeholder(chart), PLACEHOLDER_NOTE))


def write_repository(out: Path, archive_of: Callable[[charts.Chart], tuple[bytes, str]]) -> None:
    """OUT/index.yaml and one archive per pinned chart: `archive_of` gives its bytes and description."""
    out.mkdir(parents=True, exist_ok=True)
    entries = {}
    for chart in charts.ALL:
        data, description = archive_of(chart)
        archive = out / f"{chart.name}-{chart.version}.tgz"
        archive.write_bytes(data)
        entries[chart.name] = [
            {
                "apiVersion": "v2",
                "name": chart.name,
                "version": chart.version,
                "description": description,
                "urls": [archive.name],
                "digest": hashlib.sha256(data).hexdigest(),
                "created": "2026-01-01T00:00:00Z",
            }
        ]
    # JSON is YAML: Helm reads this index as it reads any.
    (out / "index.yaml").write_text(json.dumps({"apiVersion": "v1", "entries": entries}, indent=2))


def placeholder(chart: charts.Chart) -> bytes:
    files = {
        "Chart.yaml": json.dumps(
            {
                "apiVersion": "v2",
                "name": chart.name,
                "version": chart.version,
                "description": PLACEHOLDER_NOTE,
                "type": "application",
            }
        )
    }
    files |= {
        f"crds/{plural}.yaml": json.dumps(_open_crd(group, version, kind, plural, scope))
        for group, version, kind, plural, scope in CRDS.get(chart.name, ())
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in sorted(files.items()):
            data = text.encode()
            info = tarfile.TarInfo(f"{chart.name}/{name}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _open_crd(group: str, version: str, kind: str, plural: str, scope: str) -> dict[str, object]:
    """The CRD's name, group and version as the chart's; any spec is accepted."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{group}",
            "annotations": {"platform.example/placeholder": PLACEHOLDER_NOTE},
        },
        "spec": {
            "group": group,
            "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower()},
            "scope": scope,
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }


if __name__ == "__main__":
    main()
