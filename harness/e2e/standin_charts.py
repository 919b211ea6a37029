"""A Helm repository for the e2e's REAL NODE: STAND-IN charts that run the real add-on programs.

    python harness/e2e/standin_charts.py OUT_DIR [REAL]   # writes OUT_DIR/index.yaml and one .tgz per chart

The charts' own repositories cannot be reached here, so the real node cannot install them. For the add-ons
it runs, this repository serves a STAND-IN under the pinned chart's name and version: templates of our own
(standin_charts/<chart>/) that run the images `make images` builds from the programs' pinned Go modules,
with the names, labels, Services and ports the real chart renders and the values the program passes
(resources, security contexts, entry points). Their CRDs are the programs' own, read from the same pinned
modules. Every other chart is a placeholder (placeholder_charts.py). The stand-ins say in their templates
what they leave out.

With REAL (E2E_CHARTS: a repository URL, or "upstream" for each chart's own), the charts whose every image
`make images` builds are the real ones from there, running the same images: Traefik, Jaeger and
metrics-server and Argo Rollouts. kube-prometheus-stack stays a stand-in (its Grafana, Alertmanager, node-exporter,
kube-state-metrics and webhook images are not built here).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path
from urllib.parse import urljoin

import yaml
from placeholder_charts import PLACEHOLDER_NOTE, REPO, charts, placeholder, write_repository

STANDINS = Path(__file__).resolve().parent / "standin_charts"
STANDIN_NOTE = "STAND-IN for the e2e's real node: the real program, this repository's own templates."
# Each stand-in's CRDs: (Go module of harness/go, module path, files in it).
CRDS = {
    charts.TRAEFIK.name: (
        "traefik",
        "github.com/traefik/traefik/v3",
        ("docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml",),
    ),
    charts.KUBE_PROMETHEUS_STACK.name: (
        "prometheus-operator",
        "github.com/prometheus-operator/prometheus-operator",
        tuple(
            f"example/prometheus-operator-crd/monitoring.coreos.com_{plural}.yaml"
            for plural in ("servicemonitors", "podmonitors", "probes", "prometheusrules", "prometheuses",
                           "prometheusagents", "scrapeconfigs", "alertmanagers", "alertmanagerconfigs",
                           "thanosrulers")
        ),
    ),
    charts.ARGO_ROLLOUTS.name: (
        "argo-rollouts",
        "github.com/argoproj/argo-rollouts",
        tuple(
            f"manifests/crds/{kind}-crd.yaml"
            for kind in ("rollout", "analysis-template", "analysis-run", "cluster-analysis-template", "experiment")
        ),
    ),
}  # fmt: skip


REAL_ON_THE_NODE = (
    charts.TRAEFIK.name,
    charts.JAEGER.name,
    charts.METRICS_SERVER.name,
    charts.ARGO_ROLLOUTS.name,
)


def main() -> None:
    real = sys.argv[2] if len(sys.argv) > 2 else None
    write_repository(Path(sys.argv[1]), lambda chart: _archive(chart, real))


def _archive(chart: charts.Chart, real: str | None) -> tuple[bytes, str]:
    if real and chart.name in REAL_ON_THE_NODE:
        repository = chart.repo if real == "upstream" else real
        return _downloaded(chart, repository), f"the real chart, from {repository}"
    if (STANDINS / chart.name).is_dir():
        return standin(chart), STANDIN_NOTE
    return placeholder(chart), PLACEHOLDER_NOTE


def _downloaded(chart: charts.Chart, repository: str) -> bytes:
    """The pinned chart's archive, as Helm finds it: through the repository's index."""
    base = repository.rstrip("/") + "/"
    with urllib.request.urlopen(urljoin(base, "index.yaml"), timeout=60) as index:  # noqa: S310 (http(s) only)
        entries = yaml.safe_load(index.read())["entries"][chart.name]
    (entry,) = [e for e in entries if e["version"] == chart.version]
    with urllib.request.urlopen(urljoin(base, entry["urls"][0]), timeout=60) as archive:  # noqa: S310
        return bytes(archive.read())


def standin(chart: charts.Chart) -> bytes:
    files = {
        f"{chart.name}/Chart.yaml": json.dumps(
            {"apiVersion": "v2", "name": chart.name, "version": chart.version, "description": STANDIN_NOTE}
        ).encode()
    }
    for template in sorted((STANDINS / chart.name / "templates").iterdir()):
        files[f"{chart.name}/templates/{template.name}"] = template.read_bytes()
    if chart.name in CRDS:
        module, path, names = CRDS[chart.name]
        source = module_dir(module, path)
        for name in names:
            crds = [crd for crd in yaml.load_all((source / name).read_text(), _CrdLoader) if crd]
            files[f"{chart.name}/crds/{Path(name).name}"] = "\n---\n".join(
                json.dumps(_without_descriptions(crd)) for crd in crds
            ).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class _CrdLoader(yaml.SafeLoader):
    """YAML 1.1 reads a bare `=` (an enum value in the operator's CRDs) as a "value" tag: it is a string."""


def _string(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return str(loader.construct_scalar(node))  # type: ignore[arg-type]


_CrdLoader.add_constructor("tag:yaml.org,2002:value", _string)


def _without_descriptions(node: object) -> object:
    """The CRD without its schema's prose: Helm keeps a chart's files in the release's Secret, which may
    not exceed 1 MiB, and the operator's ten CRDs with their descriptions do."""
    if isinstance(node, dict):
        # A property named "description" has a schema (a dict) as its value; the prose is a string.
        return {
            k: _without_descriptions(v)
            for k, v in node.items()
            if not (k == "description" and isinstance(v, str))
        }
    if isinstance(node, list):
        return [_without_descriptions(v) for v in node]
    return node


def module_dir(module: str, path: str) -> Path:
    """Where Go's module cache holds `path` at the version harness/go/<module> pins (downloaded if needed)."""
    go = ["go", "-C", str(REPO / "harness" / "go" / module)]
    env = {**os.environ, "GOTOOLCHAIN": "auto"}  # as harness.mk builds it: a newer Go where go.mod names one
    subprocess.run([*go, "mod", "download", path], check=True, capture_output=True, timeout=600, env=env)
    listed = subprocess.run(
        [*go, "list", "-m", "-f", "{{.Dir}}", path],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    return Path(listed.stdout.strip())


if __name__ == "__main__":
    main()
