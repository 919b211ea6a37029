"""Helm releases: every component of a third-party chart bounded and hardened through the chart's values.

A `kubernetes:helm.sh/v3:Release` reaches the engine as one resource: the chart's rendered pods never
do, so the workload rules cannot see them. What the pack does see is the release's chart, version and
values. This module knows, per pinned chart, the values key of each component's resources and of its
container and pod securityContext, read in the chart's values.yaml (and templates) at that version,
and checks the values the program passes, not the chart's defaults: a component is bounded only if
the program says so. A chart or version it has not read is itself a finding, so a chart bump re-reads
the keys before it ships.

It cannot see what a chart renders from those values (a template that ignores a key, a container the
values do not name); that stays a review of the chart at each bump.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..framework import ADVISORY, Findings, Subject, dig, dotted, items, resource_rule

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
Path = tuple[str, ...]


@dataclass(frozen=True)
class Component:
    """One container (or group of containers sharing values) a chart renders."""

    name: str
    resources: Path
    # The container securityContext's key; None where an operator builds and hardens the containers.
    container: Path | None
    pod: Path | None = None  # the pod securityContext's key, if the chart has one for this component
    read_only_root: bool = True  # False where the component writes outside its volumes
    # Values that must all be true (their chart default when unset) for the chart to render it.
    enabled_when: tuple[tuple[Path, bool], ...] = ()


@dataclass(frozen=True)
class PinnedChart:
    versions: frozenset[str]  # the versions whose values.yaml the map below was read at
    components: tuple[Component, ...]


def _component(
    name: str, prefix: Path, container: str = "containerSecurityContext", **kwargs: Any
) -> Component:
    """A component whose keys sit under one prefix (`resources`, `containerSecurityContext`, ...)."""
    pod = kwargs.pop("pod", None)
    return Component(
        name,
        (*prefix, "resources"),
        (*prefix, container),
        (*prefix, pod) if pod else None,
        **kwargs,
    )


def _on(*path: str, default: bool = True) -> tuple[Path, bool]:
    return (path, default)


_OPERATOR = ("prometheusOperator",)
_WEBHOOK_PATCH = ("prometheusOperator", "admissionWebhooks", "patch")
_WEBHOOK_ENABLED = (_on(*_OPERATOR, "admissionWebhooks", "enabled"), _on(*_WEBHOOK_PATCH, "enabled"))

CHARTS: dict[str, PinnedChart] = {
    # values.yaml of kube-prometheus-stack and of its grafana, kube-state-metrics and
    # prometheus-node-exporter subcharts; crds/templates/upgrade/job.yaml for the CRD upgrade Job.
    "kube-prometheus-stack": PinnedChart(
        frozenset({"82.9.0"}),
        (
            _component("operator", _OPERATOR, pod="securityContext"),
            Component(
                "admission-webhook-create",
                (*_WEBHOOK_PATCH, "resources"),
                (*_OPERATOR, "admissionWebhooks", "createSecretJob", "securityContext"),
                (*_WEBHOOK_PATCH, "securityContext"),
                enabled_when=_WEBHOOK_ENABLED,
            ),
            Component(
                "admission-webhook-patch",
                (*_WEBHOOK_PATCH, "resources"),
                (*_OPERATOR, "admissionWebhooks", "patchWebhookJob", "securityContext"),
                (*_WEBHOOK_PATCH, "securityContext"),
                enabled_when=_WEBHOOK_ENABLED,
            ),
            Component("config-reloader", (*_OPERATOR, "prometheusConfigReloader", "resources"), None),
            Component(
                "prometheus",
                ("prometheus", "prometheusSpec", "resources"),
                None,
                ("prometheus", "prometheusSpec", "securityContext"),
                enabled_when=(_on("prometheus", "enabled"),),
            ),
            Component(
                "alertmanager",
                ("alertmanager", "alertmanagerSpec", "resources"),
                None,
                ("alertmanager", "alertmanagerSpec", "securityContext"),
                enabled_when=(_on("alertmanager", "enabled"),),
            ),
            _component(
                "crd-upgrade",
                ("crds", "upgradeJob"),
                pod="podSecurityContext",
                enabled_when=(_on("crds", "upgradeJob", "enabled", default=False),),
            ),
            _component(
                "grafana",
                ("grafana",),
                pod="securityContext",
                read_only_root=False,
                enabled_when=(_on("grafana", "enabled"),),
            ),
            Component(
                "grafana-sidecars",
                ("grafana", "sidecar", "resources"),
                ("grafana", "sidecar", "securityContext"),
                ("grafana", "securityContext"),
                enabled_when=(_on("grafana", "enabled"),),
            ),
            Component(
                "grafana-init-chown-data",
                ("grafana", "initChownData", "resources"),
                ("grafana", "initChownData", "securityContext"),
                enabled_when=(
                    _on("grafana", "enabled"),
                    _on("grafana", "persistence", "enabled", default=False),
                    _on("grafana", "initChownData", "enabled"),
                ),
            ),
            _component(
                "kube-state-metrics",
                ("kube-state-metrics",),
                pod="securityContext",
                enabled_when=(_on("kubeStateMetrics", "enabled"),),
            ),
            _component(
                "node-exporter",
                ("prometheus-node-exporter",),
                pod="securityContext",
                enabled_when=(_on("nodeExporter", "enabled"),),
            ),
        ),
    ),
    # values.yaml of argo-cd 9.6.0 (argoproj/argo-helm), which adds repoServer.copyutil.resources and
    # dex.initImage.resources for the init containers that copy the argocd binary.
    "argo-cd": PinnedChart(
        frozenset({"9.6.0"}),
        (
            _component("application-controller", ("controller",)),
            _component("server", ("server",)),
            _component("repo-server", ("repoServer",)),
            Component(
                "repo-server-copyutil",
                ("repoServer", "copyutil", "resources"),
                ("repoServer", "containerSecurityContext"),
            ),
            _component("applicationset-controller", ("applicationSet",)),
            _component(
                "notifications-controller",
                ("notifications",),
                enabled_when=(_on("notifications", "enabled"),),
            ),
            _component("dex-server", ("dex",), enabled_when=(_on("dex", "enabled"),)),
            Component(
                "dex-init",
                ("dex", "initImage", "resources"),
                ("dex", "containerSecurityContext"),
                enabled_when=(_on("dex", "enabled"),),
            ),
            _component("redis", ("redis",), pod="securityContext", enabled_when=(_on("redis", "enabled"),)),
            _component(
                "redis-secret-init",
                ("redisSecretInit",),
                pod="securityContext",
                enabled_when=(_on("redisSecretInit", "enabled"),),
            ),
        ),
    ),
    # values.yaml and templates/controller/deployment.yaml of argo-rollouts 2.41.0: the controller's
    # resources under `controller`, its pod and container securityContext at the top level (the
    # dashboard, with keys of its own, is off).
    "argo-rollouts": PinnedChart(
        frozenset({"2.41.0"}),
        (
            Component(
                "controller",
                ("controller", "resources"),
                ("containerSecurityContext",),
                ("podSecurityContext",),
            ),
        ),
    ),
    # values.yaml and templates/jaeger/jaeger-deploy.yaml of jaeger 4.4.7.
    "jaeger": PinnedChart(
        frozenset({"4.4.7"}),
        (
            _component(
                "jaeger",
                ("jaeger",),
                container="securityContext",
                pod="podSecurityContext",
                enabled_when=(_on("jaeger", "enabled"),),
            ),
        ),
    ),
    "traefik": PinnedChart(
        frozenset({"37.3.0"}),
        (_component("traefik", (), container="securityContext", pod="podSecurityContext"),),
    ),
    "metrics-server": PinnedChart(
        frozenset({"3.13.0"}),
        (_component("metrics-server", (), container="securityContext", pod="podSecurityContext"),),
    ),
    "cluster-autoscaler": PinnedChart(
        frozenset({"9.54.0"}),
        (_component("cluster-autoscaler", (), pod="securityContext"),),
    ),
    # values.yaml: the controller's keys at the top level, then webhook, cainjector and startupapicheck.
    "cert-manager": PinnedChart(
        frozenset({"v1.21.1"}),
        (
            _component("controller", (), pod="securityContext"),
            _component("webhook", ("webhook",), pod="securityContext"),
            _component(
                "cainjector",
                ("cainjector",),
                pod="securityContext",
                enabled_when=(_on("cainjector", "enabled"),),
            ),
            _component(
                "startupapicheck",
                ("startupapicheck",),
                pod="securityContext",
                enabled_when=(_on("startupapicheck", "enabled"),),
            ),
        ),
    ),
    "external-dns": PinnedChart(
        frozenset({"1.21.1"}),
        (_component("external-dns", (), container="securityContext", pod="podSecurityContext"),),
    ),
}

_REQUIRED_RESOURCES = (("requests", "cpu"), ("requests", "memory"), ("limits", "cpu"), ("limits", "memory"))
_SAFE_SECCOMP = frozenset({"RuntimeDefault", "Localhost"})

# One check, two verdicts: Pulumi gives a rule one enforcement level, so the dev verdict (advisory) and
# the prod verdict (mandatory) are two rules that each speak only in their environment.
_DESCRIPTION = (
    "Every component of a third-party Helm chart gets CPU and memory requests and limits and the "
    "restricted securityContext (non-root, no privilege escalation, ALL capabilities dropped, seccomp "
    "RuntimeDefault, read-only root where supported) through the pinned chart's own values keys: an "
    "unbounded add-on can starve or OOM the nodes the product runs on."
)


# why: a chart's defaults leave most containers without a memory limit; the values must bound them.
@resource_rule(
    "k8s-helm-release-bounded",
    _DESCRIPTION + " Mandatory in prod.",
    (HELM_RELEASE,),
    environment_aware=True,
)
def helm_release_bounded(subject: Subject, findings: Findings) -> None:
    if subject.prod:
        check_release(subject, findings)


@resource_rule(
    "k8s-helm-release-bounded-dev",
    _DESCRIPTION + " Advisory outside prod (k8s-helm-release-bounded decides in prod).",
    (HELM_RELEASE,),
    level=ADVISORY,
    environment_aware=True,
)
def helm_release_bounded_dev(subject: Subject, findings: Findings) -> None:
    if not subject.prod:
        check_release(subject, findings)


def check_release(subject: Subject, findings: Findings) -> None:
    chart = str(dig(subject.props, "chart", default="")).rsplit("/", 1)[-1]
    version = str(dig(subject.props, "version", default=""))
    pinned = CHARTS.get(chart)
    if pinned is None:
        findings.violation(
            f"chart '{chart}' is not in this rule's map: read its values.yaml and add where each "
            "component's resources and securityContext live (policies/rules/helm.py)"
        )
        return
    if version not in pinned.versions:
        findings.violation(
            f"chart '{chart}' {version}: the map of its components was read at "
            f"{', '.join(sorted(pinned.versions))}; re-read its values.yaml at {version} and update "
            "policies/rules/helm.py"
        )
        return
    values = dig(subject.props, "values", default={})
    for component in pinned.components:
        with findings.verifying():
            if _renders(values, component):
                _check_component(chart, component, values, findings)


def _renders(values: Any, component: Component) -> bool:
    return all(dig(values, *path, default=default) is True for path, default in component.enabled_when)


def _check_component(chart: str, c: Component, values: Any, findings: Findings) -> None:
    where = f"{chart} component '{c.name}'"
    bounds = dig(values, *c.resources, default={})
    missing = [
        f"{kind}.{resource}" for kind, resource in _REQUIRED_RESOURCES if not dig(bounds, kind, resource)
    ]
    if missing:
        findings.violation(f"{where}: {dotted(c.resources)} sets no {', '.join(missing)}")
    if c.container is None and c.pod is None:
        return  # the operator that builds these containers hardens them; no values key to check
    container = dig(values, *c.container, default={}) if c.container else {}
    pod = dig(values, *c.pod, default={}) if c.pod else {}

    def either(*key: str) -> Any:
        value = dig(container, *key)
        return value if value is not None else dig(pod, *key)

    unsafe = []
    if either("runAsNonRoot") is not True:
        unsafe.append("runAsNonRoot: true")
    if either("seccompProfile", "type") not in _SAFE_SECCOMP:
        unsafe.append("seccompProfile RuntimeDefault")
    if c.container:
        if dig(container, "allowPrivilegeEscalation") is not False:
            unsafe.append("allowPrivilegeEscalation: false")
        if "ALL" not in [str(cap) for cap in items(dig(container, "capabilities", "drop"))]:
            unsafe.append("capabilities.drop [ALL]")
        if c.read_only_root and dig(container, "readOnlyRootFilesystem") is not True:
            unsafe.append("readOnlyRootFilesystem: true")
    if unsafe:
        keys = " / ".join(dotted(p) for p in (c.container, c.pod) if p)
        findings.violation(f"{where}: {keys} does not set {', '.join(unsafe)}")


# --- kube-prometheus-stack: what production monitoring must keep and send --------------------------------


def _monitoring_values(subject: Subject) -> Any:
    """The values of a kube-prometheus-stack release, or None for any other release."""
    if str(dig(subject.props, "chart", default="")).rsplit("/", 1)[-1] != "kube-prometheus-stack":
        return None
    return dig(subject.props, "values", default={})


# why: without volumes every reschedule of Prometheus, Alertmanager or Grafana loses their data.
@resource_rule(
    "k8s-helm-monitoring-volumes",
    "In prod, kube-prometheus-stack keeps Prometheus' series, Alertmanager's silences and Grafana's "
    "settings on persistent volumes: on emptyDir a reschedule loses the retention period.",
    (HELM_RELEASE,),
    environment_aware=True,
)
def monitoring_volumes(subject: Subject, findings: Findings) -> None:
    values = _monitoring_values(subject)
    if values is None or not subject.prod:
        return
    claims = {
        "prometheus.prometheusSpec.storageSpec": ("prometheus", "prometheusSpec", "storageSpec"),
        "alertmanager.alertmanagerSpec.storage": ("alertmanager", "alertmanagerSpec", "storage"),
    }
    for label, path in claims.items():
        with findings.verifying():
            if not dig(values, *path, "volumeClaimTemplate", "spec", "resources", "requests", "storage"):
                findings.violation(f"{label} has no volumeClaimTemplate with a storage request in prod")
    with findings.verifying():
        if dig(values, "grafana", "persistence", "enabled") is not True:
            findings.violation("grafana.persistence.enabled is not true in prod")


# why: the chart's default routes every alert to a receiver named `null`, which notifies nobody.
@resource_rule(
    "k8s-helm-alertmanager-receiver",
    "In prod, Alertmanager routes alerts to a receiver that notifies someone, not only to the chart's "
    "`null` receiver (advisory: a team may route alerts another way, e.g. an AlertmanagerConfig).",
    (HELM_RELEASE,),
    level=ADVISORY,
    environment_aware=True,
)
def alertmanager_receiver(subject: Subject, findings: Findings) -> None:
    values = _monitoring_values(subject)
    if values is None or not subject.prod:
        return
    receivers = items(dig(values, "alertmanager", "config", "receivers"))
    notifying = [r for r in receivers if len([k for k in r if k != "name"]) > 0]
    if not notifying:
        findings.violation(
            "alertmanager.config has no receiver but `null`: no alert reaches anyone "
            "(set platform:alertWebhookUrl)"
        )


def chart_versions() -> Mapping[str, frozenset[str]]:
    """Each chart the rule knows and the versions it was read at (the tests compare charts.py)."""
    return {name: pinned.versions for name, pinned in CHARTS.items()}


POLICIES = [helm_release_bounded, helm_release_bounded_dev, monitoring_volumes, alertmanager_receiver]
