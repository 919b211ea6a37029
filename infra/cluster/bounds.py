"""Requests, limits and the restricted securityContext for every container of every add-on.

Each chart takes them under its own values keys, read in the chart's values.yaml (sources below);
the policy pack's rule `k8s-helm-release-bounded` knows the same keys per pinned chart and fails a
release that leaves a component unbounded. One function per chart returns that part of its values;
the add-ons merge it with the functional values (`merged`).

Sources (values.yaml and templates in the charts' repositories):
- kube-prometheus-stack: prometheusOperator (+ admissionWebhooks.patch, createSecretJob,
  patchWebhookJob, prometheusConfigReloader), prometheus.prometheusSpec, alertmanager.alertmanagerSpec,
  crds.upgradeJob; subcharts grafana (grafana-community/helm-charts: resources, securityContext,
  containerSecurityContext, sidecar.*), kube-state-metrics and prometheus-node-exporter
  (resources, securityContext, containerSecurityContext).
- argo-rollouts 2.41.0: controller.resources; podSecurityContext and containerSecurityContext (top level).
- argo-cd 9.6.0: controller, server, repoServer (+ copyutil), applicationSet, notifications, dex
  (+ initImage), redis, redisSecretInit: each `resources` and `containerSecurityContext`.
- jaeger 4.4.7: jaeger.resources, jaeger.securityContext, jaeger.podSecurityContext.
- traefik, metrics-server: resources, securityContext (container), podSecurityContext.
- cluster-autoscaler: resources, containerSecurityContext, securityContext (pod).
- cert-manager v1.21.1: the controller at the top level, webhook, cainjector and startupapicheck: each
  `resources`, `securityContext` (pod) and `containerSecurityContext`.
- external-dns 1.21.1: resources, securityContext (container), podSecurityContext.
"""

from __future__ import annotations

from typing import Any

from kube import container_security, resources

# (cpu request, memory request, cpu limit, memory limit) per component: (dev, prod). Memory limits sit
# well above the steady working set the charts document, so a limit means "runaway", not "busy".
_SIZES: dict[str, tuple[tuple[str, str, str, str], tuple[str, str, str, str]]] = {
    "prometheus": (("200m", "1Gi", "1", "2Gi"), ("500m", "2Gi", "2", "4Gi")),
    "alertmanager": (("10m", "64Mi", "100m", "128Mi"), ("20m", "128Mi", "200m", "256Mi")),
    "config-reloader": (("10m", "32Mi", "100m", "64Mi"), ("10m", "32Mi", "100m", "64Mi")),
    "operator": (("50m", "128Mi", "200m", "256Mi"), ("100m", "256Mi", "500m", "512Mi")),
    "job": (("10m", "32Mi", "100m", "128Mi"), ("10m", "32Mi", "100m", "128Mi")),
    "grafana": (("50m", "128Mi", "500m", "512Mi"), ("100m", "256Mi", "1", "1Gi")),
    "grafana-sidecar": (("10m", "64Mi", "100m", "128Mi"), ("20m", "64Mi", "200m", "256Mi")),
    "kube-state-metrics": (("10m", "64Mi", "100m", "256Mi"), ("50m", "128Mi", "500m", "512Mi")),
    "node-exporter": (("10m", "32Mi", "100m", "64Mi"), ("20m", "32Mi", "200m", "128Mi")),
    "jaeger": (("100m", "256Mi", "1", "1Gi"), ("200m", "512Mi", "2", "2Gi")),
    "argocd-controller": (("100m", "256Mi", "1", "1Gi"), ("250m", "512Mi", "2", "2Gi")),
    "argocd-server": (("20m", "64Mi", "200m", "256Mi"), ("50m", "128Mi", "500m", "512Mi")),
    "argocd-repo-server": (("20m", "128Mi", "500m", "512Mi"), ("100m", "256Mi", "1", "1Gi")),
    # copyutil copies the ~220 MiB argocd binary; the page cache is charged to its cgroup (9.6.0 notes).
    "argocd-copyutil": (("10m", "256Mi", "100m", "256Mi"), ("10m", "256Mi", "100m", "256Mi")),
    "argocd-small": (("10m", "64Mi", "100m", "128Mi"), ("20m", "64Mi", "200m", "256Mi")),
    "argo-rollouts": (("20m", "64Mi", "500m", "256Mi"), ("50m", "128Mi", "1", "512Mi")),
    "argocd-redis": (("10m", "64Mi", "100m", "128Mi"), ("50m", "128Mi", "500m", "256Mi")),
    "traefik": (("100m", "128Mi", "500m", "256Mi"), ("200m", "128Mi", "1", "512Mi")),
    "metrics-server": (("50m", "100Mi", "200m", "200Mi"), ("100m", "200Mi", "500m", "400Mi")),
    "cluster-autoscaler": (("50m", "128Mi", "200m", "512Mi"), ("100m", "300Mi", "500m", "1Gi")),
    "cert-manager": (("10m", "64Mi", "200m", "256Mi"), ("20m", "128Mi", "500m", "512Mi")),
    "cert-manager-small": (("10m", "32Mi", "100m", "128Mi"), ("10m", "64Mi", "200m", "256Mi")),
    "external-dns": (("10m", "64Mi", "100m", "128Mi"), ("20m", "64Mi", "200m", "256Mi")),
}

_SECCOMP = {"seccompProfile": {"type": "RuntimeDefault"}}


def bounded(component: str, prod: bool) -> dict[str, Any]:
    return resources(*_SIZES[component][1 if prod else 0])


def pod_security(uid: int, fs_group: int | None = None) -> dict[str, Any]:
    """A pod securityContext for a chart whose image runs as `uid` (each chart's own default user)."""
    group = fs_group if fs_group is not None else uid
    return {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": group, "fsGroup": group, **_SECCOMP}


def kube_prometheus_stack(prod: bool) -> dict[str, Any]:
    job = {"resources": bounded("job", prod)}
    return {
        "crds": {
            "upgradeJob": {
                **job,
                "containerSecurityContext": container_security(),
                "podSecurityContext": pod_security(65534),
            }
        },
        "prometheusOperator": {
            "resources": bounded("operator", prod),
            "securityContext": pod_security(65534),
            "containerSecurityContext": container_security(),
            # Hook Jobs that create and patch the admission webhook's certificate.
            "admissionWebhooks": {
                "patch": {**job, "securityContext": pod_security(2000)},
                "createSecretJob": {"securityContext": container_security()},
                "patchWebhookJob": {"securityContext": container_security()},
            },
            # The config-reloader sidecar the operator adds to Prometheus and Alertmanager pods.
            "prometheusConfigReloader": {"resources": bounded("config-reloader", prod)},
        },
        # The operator builds these pods and hardens their containers itself; the values set the pod.
        "prometheus": {
            "prometheusSpec": {
                "resources": bounded("prometheus", prod),
                "securityContext": pod_security(1000, 2000),
            }
        },
        "alertmanager": {
            "alertmanagerSpec": {
                "resources": bounded("alertmanager", prod),
                "securityContext": pod_security(1000, 2000),
            }
        },
        "grafana": {
            "resources": bounded("grafana", prod),
            "securityContext": pod_security(472),
            # Grafana writes outside its data volume, so its root filesystem stays writable.
            "containerSecurityContext": container_security(readOnlyRootFilesystem=False),
            "sidecar": {
                "resources": bounded("grafana-sidecar", prod),
                "securityContext": container_security(),
            },
            # The init container chowns the data volume as root; fsGroup does that job without root.
            "initChownData": {"enabled": False},
            # A `helm test` pod, never needed by the platform.
            "testFramework": {"enabled": False},
        },
        "kube-state-metrics": {
            "resources": bounded("kube-state-metrics", prod),
            "securityContext": {"enabled": True, **pod_security(65534)},
            "containerSecurityContext": container_security(),
        },
        # Node exporter needs the host's network and PID namespaces by design (hostNetwork, hostPID);
        # everything else is as restricted as for the other add-ons.
        "prometheus-node-exporter": {
            "resources": bounded("node-exporter", prod),
            "securityContext": pod_security(65534),
            "containerSecurityContext": container_security(),
        },
    }


def argo_cd(prod: bool) -> dict[str, Any]:
    def component(size: str) -> dict[str, Any]:
        return {"resources": bounded(size, prod), "containerSecurityContext": container_security()}

    return {
        "controller": component("argocd-controller"),
        "server": component("argocd-server"),
        "repoServer": {
            **component("argocd-repo-server"),
            "copyutil": {"resources": bounded("argocd-copyutil", prod)},
        },
        "applicationSet": component("argocd-small"),
        "notifications": component("argocd-small"),
        "dex": {**component("argocd-small"), "initImage": {"resources": bounded("argocd-copyutil", prod)}},
        "redis": component("argocd-redis"),
        "redisSecretInit": component("job"),
    }


def jaeger(prod: bool) -> dict[str, Any]:
    return {
        "jaeger": {
            "resources": bounded("jaeger", prod),
            "podSecurityContext": pod_security(10001),
            "securityContext": container_security(),
        }
    }


def traefik(prod: bool) -> dict[str, Any]:
    # 65532: the chart's default user; ports above 1024, so no NET_BIND_SERVICE.
    return {
        "resources": bounded("traefik", prod),
        "podSecurityContext": pod_security(65532),
        "securityContext": container_security(),
    }


def metrics_server(prod: bool) -> dict[str, Any]:
    return {
        "resources": bounded("metrics-server", prod),
        "podSecurityContext": pod_security(1000),
        "securityContext": container_security(),
    }


def argo_rollouts(prod: bool) -> dict[str, Any]:
    # No user named: the image's own non-root user (999), which the chart's runAsNonRoot relies on too.
    return {
        "controller": {"resources": bounded("argo-rollouts", prod)},
        "podSecurityContext": {"runAsNonRoot": True, **_SECCOMP},
        "containerSecurityContext": container_security(),
    }


def cluster_autoscaler(prod: bool) -> dict[str, Any]:
    return {
        "resources": bounded("cluster-autoscaler", prod),
        "securityContext": pod_security(65534),
        "containerSecurityContext": container_security(),
    }


def cert_manager(prod: bool) -> dict[str, Any]:
    # No user named: the images' own non-root user, which the chart's default (runAsNonRoot) relies on too.
    def component(size: str) -> dict[str, Any]:
        return {
            "resources": bounded(size, prod),
            "securityContext": {"runAsNonRoot": True, **_SECCOMP},
            "containerSecurityContext": container_security(),
        }

    return {
        **component("cert-manager"),
        "webhook": component("cert-manager-small"),
        "cainjector": component("cert-manager-small"),
        "startupapicheck": component("job"),
    }


def external_dns(prod: bool) -> dict[str, Any]:
    # 65532: the chart's default user.
    return {
        "resources": bounded("external-dns", prod),
        "podSecurityContext": pod_security(65532),
        "securityContext": container_security(),
    }


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`base` with `extra` merged in, maps key by key (Helm coalesces values the same way)."""
    result = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result
