"""Kubernetes guardrails: pod security, resources, probes, images, identities, network and disruption.

Workload rules look at the pod template of every controller the program declares (Deployment,
StatefulSet, DaemonSet, ReplicaSet, Job, CronJob) and at bare Pods. Helm releases of third-party
charts are opaque here: their rendered pods never reach the engine, so pod-level rules cannot see
them. For a release the pack checks what it can see: a pinned chart version, no secret literals in
its values, and (advisory) a NetworkPolicy in its namespace here; bounds and security contexts of
each chart's components, through its values keys, in `helm.py`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..framework import (
    ADVISORY,
    Findings,
    Subject,
    dig,
    dotted,
    items,
    number,
    resource_rule,
    shown,
    stack_rule,
    walk,
)
from ..secrets import looks_like_secret_key, secret_shaped

ROLLOUT = "kubernetes:argoproj.io/v1alpha1:Rollout"
# The replicated workloads an HPA scales, by kind: each needs a disruption budget past one replica.
REPLICATED = {"kubernetes:apps/v1:Deployment": "Deployment", ROLLOUT: "Rollout"}
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    # Argo Rollouts' Deployment with canaries (infra/app/rollout.py): the same pod template.
    ROLLOUT: ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "kubernetes:core/v1:Pod": ("spec",),
}
WORKLOADS = tuple(POD_SPEC_PATHS)
# What a service answers for the cluster, not for its clients: metrics, liveness and readiness under
# their usual names, gRPC health and reflection (an RPC's path starts with its service's full name).
OPERATIONAL_PATHS = (
    "/metrics",
    "/health",
    "/healthz",
    "/livez",
    "/ready",
    "/readyz",
    "/grpc.health.v1.Health",
    "/grpc.reflection.v1.ServerReflection",
    "/grpc.reflection.v1alpha.ServerReflection",
)
# Run-to-completion workloads: no probes expected.
BATCH = frozenset({"kubernetes:batch/v1:Job", "kubernetes:batch/v1:CronJob"})
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
KUBERNETES_SECRET = "kubernetes:core/v1:Secret"  # noqa: S105 (a type token, not a credential)
SERVICE = "kubernetes:core/v1:Service"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
NAMESPACE = "kubernetes:core/v1:Namespace"
ARGOCD_APPLICATION = "kubernetes:argoproj.io/v1alpha1:Application"
ARGOCD_PROJECT = "kubernetes:argoproj.io/v1alpha1:AppProject"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
HPA_TYPES = (
    "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
    "kubernetes:autoscaling/v1:HorizontalPodAutoscaler",
)
SAFE_SECCOMP = frozenset({"RuntimeDefault", "Localhost"})
# The only capability the restricted Pod Security Standard lets a container add back.
ALLOWED_ADDED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
# Pod Security admission's namespace labels: the standards, and what a version label may say.
POD_SECURITY_LABEL = "pod-security.kubernetes.io"
POD_SECURITY_LEVELS = ("privileged", "baseline", "restricted")
POD_SECURITY_VERSION = re.compile(r"latest|v1\.\d+")


@dataclass(frozen=True)
class Container:
    name: str
    spec: Mapping[str, Any]
    init: bool

    @property
    def label(self) -> str:
        return f"{'init container' if self.init else 'container'} '{self.name}'"

    def security(self, key: str) -> Any:
        return dig(self.spec, "securityContext", key)


def pod_spec(subject: Subject) -> Mapping[str, Any]:
    return dig(subject.props, *POD_SPEC_PATHS[subject.type], default={})


def containers(spec: Mapping[str, Any], include_init: bool = True) -> Iterator[Container]:
    groups = ("initContainers", "containers") if include_init else ("containers",)
    for group in groups:
        for index, container in enumerate(items(dig(spec, group))):
            yield Container(
                str(dig(container, "name", default=f"#{index}")), container, group == "initContainers"
            )


# --- pod security -------------------------------------------------------------------------------------


# why: a process that escapes a root container is root on the node.
@resource_rule(
    "k8s-run-as-non-root",
    "Containers run as a non-root user (runAsNonRoot, and never runAsUser 0): a container escape as "
    "root is root on the node.",
    WORKLOADS,
)
def run_as_non_root(subject: Subject, findings: Findings) -> None:
    spec = pod_spec(subject)
    pod_non_root = dig(spec, "securityContext", "runAsNonRoot")
    pod_user = number(dig(spec, "securityContext", "runAsUser"))
    for c in containers(spec):
        with findings.verifying():
            non_root = c.security("runAsNonRoot")
            user = number(c.security("runAsUser"))
            effective_user = user if user is not None else pod_user
            if effective_user == 0:
                findings.violation(f"{c.label} runs as user 0 (root)")
            elif (non_root if non_root is not None else pod_non_root) is not True:
                findings.violation(f"{c.label} does not set securityContext.runAsNonRoot: true")


# why: setuid binaries and file capabilities are how a compromised process gains root.
@resource_rule(
    "k8s-no-privilege-escalation",
    "Containers set allowPrivilegeEscalation: false, so setuid binaries cannot raise privileges.",
    WORKLOADS,
)
def no_privilege_escalation(subject: Subject, findings: Findings) -> None:
    for c in containers(pod_spec(subject)):
        with findings.verifying():
            if c.security("allowPrivilegeEscalation") is not False:
                findings.violation(f"{c.label} does not set securityContext.allowPrivilegeEscalation: false")


# why: default capabilities (NET_RAW, CHOWN, ...) are attack surface a web service never uses.
@resource_rule(
    "k8s-drop-all-capabilities",
    "Containers drop ALL Linux capabilities (adding back at most NET_BIND_SERVICE): the defaults "
    "include NET_RAW and others a service never needs.",
    WORKLOADS,
)
def drop_all_capabilities(subject: Subject, findings: Findings) -> None:
    for c in containers(pod_spec(subject)):
        with findings.verifying():
            dropped = [str(x).upper() for x in items(dig(c.spec, "securityContext", "capabilities", "drop"))]
            if "ALL" not in dropped:
                findings.violation(f"{c.label} does not drop ALL capabilities")
        with findings.verifying():
            added = {str(x).upper() for x in items(dig(c.spec, "securityContext", "capabilities", "add"))}
            extra = sorted(added - ALLOWED_ADDED_CAPABILITIES)
            if extra:
                findings.violation(f"{c.label} adds capabilities {', '.join(extra)}")


# why: without a seccomp profile every syscall (keyctl, unshare, ...) is open to an attacker.
@resource_rule(
    "k8s-seccomp-runtime-default",
    "Pods use the RuntimeDefault (or a Localhost) seccomp profile, which blocks syscalls that "
    "container escapes rely on.",
    WORKLOADS,
)
def seccomp_runtime_default(subject: Subject, findings: Findings) -> None:
    spec = pod_spec(subject)
    pod_profile = dig(spec, "securityContext", "seccompProfile", "type")
    for c in containers(spec):
        with findings.verifying():
            own = dig(c.spec, "securityContext", "seccompProfile", "type")
            effective = own if own is not None else pod_profile
            if effective not in SAFE_SECCOMP:
                findings.violation(
                    f"{c.label} has seccomp profile {effective or 'unset (Unconfined)'}; use RuntimeDefault"
                )


# why: an attacker who cannot write to the image cannot drop tools or alter binaries.
@resource_rule(
    "k8s-read-only-root-filesystem",
    "Containers mount their root filesystem read-only (writable paths as emptyDir volumes), so an "
    "attacker cannot plant tools or modify the image.",
    WORKLOADS,
)
def read_only_root_filesystem(subject: Subject, findings: Findings) -> None:
    for c in containers(pod_spec(subject)):
        with findings.verifying():
            if c.security("readOnlyRootFilesystem") is not True:
                findings.violation(f"{c.label} does not set securityContext.readOnlyRootFilesystem: true")


# why: privileged mode and host namespaces/paths/ports hand the node to the container.
@resource_rule(
    "k8s-no-host-access",
    "Pods use no privileged containers, hostNetwork, hostPID, hostIPC, hostPath volumes or hostPorts: "
    "each gives the container a way onto the node.",
    WORKLOADS,
)
def no_host_access(subject: Subject, findings: Findings) -> None:
    spec = pod_spec(subject)
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        with findings.verifying():
            if dig(spec, field) is True:
                findings.violation(f"pod sets {field}: true")
    for volume in items(dig(spec, "volumes")):
        with findings.verifying():
            if dig(volume, "hostPath") is not None:
                findings.violation(f"volume '{dig(volume, 'name')}' is a hostPath")
    for c in containers(spec):
        with findings.verifying():
            if c.security("privileged") is True:
                findings.violation(f"{c.label} is privileged")
        for port in items(dig(c.spec, "ports")):
            with findings.verifying():
                if dig(port, "hostPort") is not None:
                    findings.violation(f"{c.label} binds hostPort {shown(dig(port, 'hostPort'))}")


# why: a namespace without an `enforce` label admits privileged pods (the API server's default), and
# without `warn` and `audit` at restricted nobody sees a pod that falls short of it.
@resource_rule(
    "k8s-namespace-pod-security",
    "Every Namespace carries the Pod Security admission labels: `enforce` at a standard (privileged, "
    "baseline, restricted), `warn` and `audit` at restricted, their versions `latest` or a minor like "
    "v1.36. Without `enforce` the API server admits privileged pods there; without `warn` and `audit` at "
    "restricted, a pod that falls short of it goes unseen.",
    (NAMESPACE,),
)
def namespace_pod_security(subject: Subject, findings: Findings) -> None:
    labels = dig(subject.props, "metadata", "labels", default={})
    for mode in ("enforce", "warn", "audit"):
        label = f"{POD_SECURITY_LABEL}/{mode}"
        with findings.verifying():
            level = dig(labels, label)
            if level is None:
                findings.violation(f"no {label} label")
            elif level not in POD_SECURITY_LEVELS:
                findings.violation(f"{label} is '{level}', none of {', '.join(POD_SECURITY_LEVELS)}")
            elif mode != "enforce" and level != "restricted":
                findings.violation(f"{label} is {level}; use restricted")
        with findings.verifying():
            version = dig(labels, f"{label}-version")
            if version is not None and not POD_SECURITY_VERSION.fullmatch(str(version)):
                findings.violation(f"{label}-version is '{version}'; use latest or a minor like v1.36")


# --- resources, probes, images, identity ------------------------------------------------------------


# why: a pod without limits can starve or OOM its node's neighbours; the HPA needs CPU requests.
@resource_rule(
    "k8s-resource-requests-limits",
    "Containers declare CPU and memory requests and limits: without them one pod can starve or OOM "
    "everything on its node, and the autoscaler has nothing to measure against.",
    WORKLOADS,
)
def resource_requests_limits(subject: Subject, findings: Findings) -> None:
    for c in containers(pod_spec(subject)):
        with findings.verifying():
            missing = [
                f"{kind}.{resource}"
                for kind in ("requests", "limits")
                for resource in ("cpu", "memory")
                if dig(c.spec, "resources", kind, resource) is None
            ]
            if missing:
                findings.violation(f"{c.label} has no resources {', '.join(missing)}")


# why: without readiness traffic reaches pods that cannot serve; without liveness hung pods stay.
@resource_rule(
    "k8s-liveness-readiness-probes",
    "Long-running containers have liveness and readiness probes, so rollouts wait for ready pods and "
    "hung ones restart (advisory: some sidecars legitimately have neither).",
    [t for t in WORKLOADS if t not in BATCH],
    level=ADVISORY,
)
def liveness_readiness_probes(subject: Subject, findings: Findings) -> None:
    for c in containers(pod_spec(subject), include_init=False):
        with findings.verifying():
            missing = [p for p in ("livenessProbe", "readinessProbe") if dig(c.spec, p) is None]
            if missing:
                findings.violation(f"{c.label} has no {' or '.join(missing)}")


# why: a moving tag means what runs is not what was reviewed, and rollbacks are not reproducible.
@resource_rule(
    "k8s-image-pinned",
    "Images are pinned by a tag other than latest, or by digest: a moving tag runs code nobody "
    "reviewed and makes rollbacks unreproducible.",
    WORKLOADS,
)
def image_pinned(subject: Subject, findings: Findings) -> None:
    for c in containers(pod_spec(subject)):
        with findings.verifying():
            image = dig(c.spec, "image")
            if not isinstance(image, str) or not image_is_pinned(image):
                findings.violation(f"{c.label} image '{image}' is not pinned to a tag or digest")


# why: a tag can be moved to other code after the release was reviewed; a digest names the bytes.
@resource_rule(
    "k8s-image-digest-in-prod",
    "In prod, the workloads' images are pinned by digest (repository@sha256:...), as the deploy "
    "workflow sets them: a tag can be moved to other code after the release was reviewed.",
    WORKLOADS,
    environment_aware=True,
)
def image_digest_in_prod(subject: Subject, findings: Findings) -> None:
    if not subject.prod:
        return
    for c in containers(pod_spec(subject)):
        with findings.verifying():
            image = dig(c.spec, "image")
            if not isinstance(image, str) or not DIGEST.fullmatch(image):
                findings.violation(f"{c.label} image '{image}' is not pinned by digest")


DIGEST = re.compile(r"[^@\s]+@sha256:[0-9a-f]{64}")


def image_is_pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    return ":" in last and last.rsplit(":", 1)[1] not in ("", "latest")


# why: the default ServiceAccount is shared, and a mounted token is a credential for the API server.
@resource_rule(
    "k8s-dedicated-service-account",
    "Pods run under their own ServiceAccount with automountServiceAccountToken: false: the default "
    "account is shared, and a mounted token is an API credential an attacker can steal.",
    WORKLOADS,
)
def dedicated_service_account(subject: Subject, findings: Findings) -> None:
    spec = pod_spec(subject)
    with findings.verifying():
        account = dig(spec, "serviceAccountName") or dig(spec, "serviceAccount")
        if account in (None, "", "default"):
            findings.violation("pod runs under the namespace's default ServiceAccount")
    with findings.verifying():
        if dig(spec, "automountServiceAccountToken") is not False:
            findings.violation("pod does not set automountServiceAccountToken: false")


# --- secrets in plain places --------------------------------------------------------------------------


def _plain_kubernetes_object(type_: str) -> bool:
    """Every Kubernetes resource except a Secret, the one object meant to hold credentials."""
    return type_.startswith("kubernetes:") and type_ != KUBERNETES_SECRET


# why: env values, command lines, ConfigMaps, annotations and Helm values are readable by anyone who
# can read the object (and land in logs and state); credentials belong in Secrets. A Secret's value
# expanded into a container's arguments ($(VAR)) stays out of the object but lands on the process's
# command line, which `ps` and /proc/<pid>/cmdline show to anyone on the node.
@resource_rule(
    "k8s-no-secret-literals",
    "No secret-looking literal (a password/token/key-named value, a URL with credentials, a private "
    "key) in container env values or arguments, ConfigMaps, annotations or Helm values: those are "
    "readable by anyone who can read the object; reference a Secret instead. And no container "
    "argument that expands a variable taken from a Secret ($(VAR)): the value lands on the process's "
    "command line; pass it in a file or the environment.",
    _plain_kubernetes_object,
)
def no_secret_literals(subject: Subject, findings: Findings) -> None:
    with findings.verifying():
        for key, value in (dig(subject.props, "metadata", "annotations", default={}) or {}).items():
            _check_literal(findings, f"annotation '{key}'", str(key), value)
    if subject.type in POD_SPEC_PATHS:
        for c in containers(pod_spec(subject)):
            from_secrets: set[str] = set()
            for env in items(dig(c.spec, "env")):
                with findings.verifying():
                    name = str(dig(env, "name", default=""))
                    _check_literal(findings, f"{c.label} env {name}", name, dig(env, "value"))
                    if dig(env, "valueFrom", "secretKeyRef") is not None:
                        from_secrets.add(name)
            for field in ("command", "args"):
                for index, argument in enumerate(items(dig(c.spec, field))):
                    with findings.verifying():
                        where = f"{c.label} {field}[{index}]"
                        _check_literal(findings, where, "", argument)
                        _check_expansion(findings, where, argument, from_secrets)
    elif subject.type == CONFIG_MAP:
        for key in dig(subject.props, "data", default={}) or {}:
            with findings.verifying():
                _check_literal(findings, f"ConfigMap key '{key}'", str(key), subject.props["data"][key])
    elif subject.type == HELM_RELEASE:
        with findings.verifying():
            for path, value in walk(dig(subject.props, "values", default={})):
                last = next((str(p) for p in reversed(path) if isinstance(p, str)), "")
                _check_literal(findings, f"Helm value {dotted(path)}", last, value)
    else:
        # Any other object's spec (an Argo CD Application's repoURL, ...): its field names follow no
        # common convention, so only a value's shape is judged there.
        with findings.verifying():
            for path, value in walk(dig(subject.props, "spec", default={})):
                shape = secret_shaped(value) if isinstance(value, str) else None
                if shape:
                    findings.violation(
                        f"spec.{dotted(path)} holds {shape} in plain text; reference a Secret instead"
                    )


def _check_literal(findings: Findings, where: str, key: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        return
    shape = secret_shaped(value)
    if shape:
        findings.violation(f"{where} holds {shape} in plain text; reference a Secret instead")
    elif looks_like_secret_key(key) and not _is_reference(value):
        findings.violation(f"{where} looks like a credential set in plain text; reference a Secret instead")


# Kubernetes expands $(VAR) in command and args from the container's env; $$(VAR) is a literal.
_EXPANSION = re.compile(r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def _check_expansion(findings: Findings, where: str, value: Any, from_secrets: set[str]) -> None:
    if not isinstance(value, str):
        return
    for name in _EXPANSION.findall(value):
        if name in from_secrets:
            findings.violation(
                f"{where} expands $({name}), a Secret's value, into the process's command line, which "
                "ps shows; pass it in a file or the environment"
            )


def _is_reference(value: str) -> bool:
    """`$(VAR)`, `${VAR}` and `{{ template }}` point at a value held elsewhere."""
    return bool(re.fullmatch(r"\s*(\$\([^)]*\)|\$\{[^}]*\}|\{\{.*\}\})\s*", value))


# --- Helm releases ------------------------------------------------------------------------------------


# why: an unpinned chart installs whatever the repository publishes next, unreviewed.
@resource_rule(
    "k8s-helm-chart-pinned",
    "Helm releases pin an exact chart version: without it each deployment installs whatever the "
    "repository published last, unreviewed.",
    (HELM_RELEASE,),
)
def helm_chart_pinned(subject: Subject, findings: Findings) -> None:
    version = dig(subject.props, "version")
    if not isinstance(version, str) or not re.fullmatch(r"v?\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?", version):
        findings.violation(
            f"chart '{dig(subject.props, 'chart')}' version '{version}' is not an exact version"
        )


# --- scaling and exposure -----------------------------------------------------------------------------


# why: with fewer than three replicas one node drain or zone outage takes away most of the capacity.
@resource_rule(
    "k8s-hpa-min-replicas",
    "In prod, HorizontalPodAutoscalers keep at least 3 replicas, so a node drain or a zone outage "
    "never leaves a single pod serving (advisory: small services may choose otherwise).",
    HPA_TYPES,
    level=ADVISORY,
    environment_aware=True,
)
def hpa_min_replicas(subject: Subject, findings: Findings) -> None:
    if not subject.prod:
        return
    minimum = number(dig(subject.props, "spec", "minReplicas", default=1))
    if minimum is None or minimum < 3:
        findings.violation(f"minReplicas is {shown(minimum)}; prod needs >= 3")


# why: every LoadBalancer Service is a public entry point outside the ingress controller's TLS and
# policies (advisory: some protocols need their own).
@resource_rule(
    "k8s-no-loadbalancer-service",
    "Only the ingress controller is exposed through a Service of type LoadBalancer; anything else "
    "becomes a public endpoint that bypasses the ingress TLS and rules (advisory).",
    (SERVICE,),
    level=ADVISORY,
)
def no_loadbalancer_service(subject: Subject, findings: Findings) -> None:
    if dig(subject.props, "spec", "type") != "LoadBalancer":
        return
    metadata = dig(subject.props, "metadata", default={})
    labels = dig(metadata, "labels", default={}) or {}
    identity = " ".join(
        str(x)
        for x in (
            dig(metadata, "namespace", default=""),
            dig(metadata, "name", default=""),
            labels.get("app.kubernetes.io/name", ""),
            labels.get("app.kubernetes.io/component", ""),
        )
    )
    if "ingress" not in identity.lower():
        findings.violation(
            f"Service '{dig(metadata, 'name', default=subject.name)}' is of type LoadBalancer; "
            "expose it through the ingress controller"
        )


# why: a catch-all route publishes whatever the backend serves; probes and metrics are for the cluster
# (the kubelet and Prometheus reach the pods directly), and a public readiness check lets anyone make
# every pod query its databases.
@resource_rule(
    "k8s-ingress-no-ops-paths",
    "Ingresses publish named paths: no catch-all (a `/` prefix, a defaultBackend) and no operational "
    "endpoint (metrics, health, readiness, gRPC health or reflection): those are for the cluster, and a "
    "public readiness check lets anyone make every pod query its databases.",
    (INGRESS,),
)
def ingress_no_ops_paths(subject: Subject, findings: Findings) -> None:
    with findings.verifying():
        if dig(subject.props, "spec", "defaultBackend") is not None:
            findings.violation("spec.defaultBackend publishes every path of its backend")
    for rule in items(dig(subject.props, "spec", "rules")):
        for route in items(dig(rule, "http", "paths")):
            with findings.verifying():
                # A path may be left out only with ImplementationSpecific, and then matches everything.
                path = str(dig(route, "path", default="/"))
                path_type = str(dig(route, "pathType"))
                if not _elements(path) and path_type != "Exact":
                    findings.violation(f"path '{path}' ({path_type}) publishes every path of its backend")
                    continue
                published = [p for p in OPERATIONAL_PATHS if _publishes(path, path_type, p)]
                if published:
                    findings.violation(f"path '{path}' ({path_type}) publishes {', '.join(published)}")


def _publishes(path: str, path_type: str, endpoint: str) -> bool:
    """Whether requests under `endpoint` reach the backend through `path`. Kubernetes' semantics: Exact
    compares the whole path, Prefix whole `/`-separated elements (`/metrics` is not a prefix of
    `/metricsviewer`). ImplementationSpecific is up to the controller (Traefik's is a plain string
    prefix), so it is judged as both."""
    route, target = _elements(path), _elements(endpoint)
    if path_type == "Exact":
        return route[: len(target)] == target
    shared = min(len(route), len(target))
    element_wise = route[:shared] == target[:shared]
    return element_wise or (path_type != "Prefix" and endpoint.startswith(path))


def _elements(path: str) -> list[str]:
    return [element for element in path.split("/") if element]


# --- network -----------------------------------------------------------------------------------------


# why: port 53 open to "pods labelled k8s-app=kube-dns" in any namespace (or to any address) lets a pod
# that calls itself the cluster's DNS answer lookups, or carry data out through them.
@resource_rule(
    "k8s-network-policy-dns-to-kube-system",
    "An egress rule that opens DNS (port 53) sends it to kube-system's DNS pods only: each peer names the "
    "kube-system namespace (kubernetes.io/metadata.name) and selects pods in it. A pod selector alone, in "
    "any namespace, lets a pod that calls itself kube-dns answer the lookups or carry data out through "
    "them; an address block lets anything do so.",
    (NETWORK_POLICY,),
)
def network_policy_dns_to_kube_system(subject: Subject, findings: Findings) -> None:
    for index, rule in enumerate(items(dig(subject.props, "spec", "egress"))):
        with findings.verifying():
            if not any(_opens_dns(port) for port in items(dig(rule, "ports"))):
                continue
            peers = items(dig(rule, "to"))
            if not peers:
                findings.violation(f"egress rule {index} opens DNS to every destination; {DNS_ADVICE}")
            for peer in peers:
                wrong = _not_kube_system_dns(peer)
                if wrong:
                    findings.violation(f"egress rule {index} opens DNS to {wrong}; {DNS_ADVICE}")


DNS_ADVICE = "name kube-system (kubernetes.io/metadata.name) and its DNS pods in one peer"


def _opens_dns(port: Mapping[str, Any]) -> bool:
    """A port entry that names DNS: 53, a range over it, or a port named dns. (An entry without a port
    opens every port, as Prometheus's scrapes do; that is not a rule about DNS.)"""
    number_ = number(dig(port, "port"))
    if number_ is None:
        return str(dig(port, "port", default="")).startswith("dns")
    end = number(dig(port, "endPort")) or number_
    return number_ <= 53 <= end


def _not_kube_system_dns(peer: Mapping[str, Any]) -> str | None:
    """What a peer opens beyond kube-system's DNS pods, or None."""
    if dig(peer, "ipBlock") is not None:
        return f"the addresses {dig(peer, 'ipBlock', 'cidr')}"
    if dig(peer, "namespaceSelector", "matchLabels", "kubernetes.io/metadata.name") != "kube-system":
        return "pods outside kube-system"
    selector = dig(peer, "podSelector", default={})
    if not dig(selector, "matchLabels") and not dig(selector, "matchExpressions"):
        return "every pod of kube-system"
    return None


# --- GitOps ------------------------------------------------------------------------------------------


# why: Argo CD's controller may write anything anywhere (its chart's ClusterRole); the project is what
# limits what a commit to the synced repository can make it deploy.
@resource_rule(
    "argocd-project-scoped",
    "Argo CD Applications belong to a project other than `default`, and every AppProject names its "
    "repositories, its destinations and the namespaced kinds it may deploy, without wildcards: `default` "
    "and a wildcard let whoever commits to the repository deploy any kind into any namespace, with the "
    "controller's cluster-wide rights.",
    (ARGOCD_APPLICATION, ARGOCD_PROJECT),
)
def argocd_project_scoped(subject: Subject, findings: Findings) -> None:
    if subject.type == ARGOCD_APPLICATION:
        project = dig(subject.props, "spec", "project", default="default")
        if project in ("", "default"):
            findings.violation("Application uses the `default` project, which allows any kind anywhere")
        return
    spec = dig(subject.props, "spec", default={})
    checks: list[tuple[str, tuple[str, ...], bool]] = [
        ("sourceRepos", (), True),
        ("destinations", ("server", "name", "namespace"), True),
        ("namespaceResourceWhitelist", ("group", "kind"), True),
        ("clusterResourceWhitelist", ("group", "kind"), False),
    ]
    for field, keys, required in checks:
        with findings.verifying():
            entries = items(dig(spec, field))
            if required and not entries:
                findings.violation(f"spec.{field} is empty; name what the project allows")
            for entry in entries:
                values = [entry] if not keys else [dig(entry, key, default="") for key in keys]
                if any("*" in str(value) for value in values):
                    findings.violation(f"spec.{field} allows a wildcard ({_entry(entry, keys)})")


def _entry(entry: Any, keys: tuple[str, ...]) -> str:
    if not keys:
        return str(entry)
    return ", ".join(f"{key}={dig(entry, key)}" for key in keys if dig(entry, key) is not None)


# --- stack-wide: network isolation and disruption budgets ---------------------------------------------


def _kind_of(resource: Any) -> str:
    return str(resource.resource_type)


def _namespace(props: Mapping[str, Any]) -> str:
    return str(dig(props, "metadata", "namespace", default="default"))


# why: without a NetworkPolicy every pod in the namespace accepts traffic from anywhere in the cluster.
@stack_rule(
    "k8s-namespace-network-policy",
    "Every namespace with workloads the program declares has a NetworkPolicy: without one, each pod "
    "accepts traffic from any pod in the cluster, so one compromised pod reaches them all.",
)
def namespace_network_policy(resources: Sequence[Any], findings: Findings, prod: bool) -> None:
    covered = _namespaces_with_network_policy(resources, findings)
    for r in resources:
        if _kind_of(r) in POD_SPEC_PATHS:
            with findings.verifying():
                namespace = _namespace(r.props)
                if namespace not in covered:
                    findings.violation(
                        f"namespace '{namespace}' runs {r.name} but has no NetworkPolicy", r.urn
                    )


# why: pods no policy selects accept from and send to anywhere; a namespace that starts from default deny
# admits only the flows its policies name, however many pods come later.
@stack_rule(
    "k8s-namespace-default-deny",
    "Every Namespace the program declares has a default-deny NetworkPolicy (every pod, Ingress and Egress, "
    "no rule): then every flow in or out is one a policy names, for the pods of today and those a chart or a "
    "teammate adds later, which would otherwise accept from and send to anywhere.",
)
def namespace_default_deny(resources: Sequence[Any], findings: Findings, prod: bool) -> None:
    denied: set[str] = set()
    for r in resources:
        if _kind_of(r) == NETWORK_POLICY:
            with findings.verifying():
                if _denies_everything(dig(r.props, "spec", default={})):
                    denied.add(_namespace(r.props))
    for r in resources:
        if _kind_of(r) == NAMESPACE:
            with findings.verifying():
                name = str(dig(r.props, "metadata", "name"))
                if name not in denied:
                    findings.violation(
                        f"namespace '{name}' has no default-deny NetworkPolicy "
                        "(podSelector {}, policyTypes Ingress and Egress, no rules)",
                        r.urn,
                    )


def _denies_everything(spec: Mapping[str, Any]) -> bool:
    selector = dig(spec, "podSelector", default={})
    types = {str(t) for t in items(dig(spec, "policyTypes"))}
    return (
        not dig(selector, "matchLabels")
        and not dig(selector, "matchExpressions")
        and {"Ingress", "Egress"} <= types
        and not items(dig(spec, "ingress"))
        and not items(dig(spec, "egress"))
    )


# why: charts bring their own pods; the pack cannot see whether the chart renders a NetworkPolicy.
@stack_rule(
    "k8s-helm-namespace-network-policy",
    "Every namespace a Helm release installs into has a NetworkPolicy declared by the program "
    "(advisory: a chart may render its own, which the pack cannot see).",
    level=ADVISORY,
)
def helm_namespace_network_policy(resources: Sequence[Any], findings: Findings, prod: bool) -> None:
    covered = _namespaces_with_network_policy(resources, findings)
    for r in resources:
        if _kind_of(r) == HELM_RELEASE:
            with findings.verifying():
                namespace = str(dig(r.props, "namespace", default="default"))
                if namespace not in covered:
                    findings.violation(
                        f"namespace '{namespace}' of Helm release {r.name} has no NetworkPolicy", r.urn
                    )


def _namespaces_with_network_policy(resources: Sequence[Any], findings: Findings) -> set[str]:
    covered: set[str] = set()
    for r in resources:
        if _kind_of(r) == NETWORK_POLICY:
            with findings.verifying():
                covered.add(_namespace(r.props))
    return covered


# why: without a PDB a node upgrade may evict every replica at once.
@stack_rule(
    "k8s-pdb-for-multi-replica",
    "Every Deployment or Rollout that runs more than one replica (by spec.replicas or an HPA's minReplicas) has a "
    "PodDisruptionBudget selecting its pods: without one, a node upgrade may evict all of them at once.",
)
def pdb_for_multi_replica(resources: Sequence[Any], findings: Findings, prod: bool) -> None:
    budgets: list[tuple[str, Mapping[str, Any]]] = []
    scaled: dict[tuple[str, str], float] = {}
    for r in resources:
        with findings.verifying():
            if _kind_of(r) == PDB:
                budgets.append(
                    (_namespace(r.props), dig(r.props, "spec", "selector", "matchLabels", default={}))
                )
            elif (
                _kind_of(r) in HPA_TYPES
                and dig(r.props, "spec", "scaleTargetRef", "kind") in REPLICATED.values()
            ):
                target = (_namespace(r.props), str(dig(r.props, "spec", "scaleTargetRef", "name")))
                scaled[target] = number(dig(r.props, "spec", "minReplicas", default=1)) or 1
    for r in resources:
        kind = REPLICATED.get(_kind_of(r))
        if kind is None:
            continue
        with findings.verifying():
            namespace = _namespace(r.props)
            name = str(dig(r.props, "metadata", "name", default=r.name))
            replicas = max(
                number(dig(r.props, "spec", "replicas", default=1)) or 1, scaled.get((namespace, name), 0)
            )
            if replicas <= 1:
                continue
            labels = dig(r.props, "spec", "template", "metadata", "labels", default={}) or {}
            if not any(ns == namespace and _selects(selector, labels) for ns, selector in budgets):
                findings.violation(
                    f"{kind} '{name}' runs {int(replicas)} replicas but no PodDisruptionBudget selects its pods",
                    r.urn,
                )


def _selects(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


POLICIES = [
    run_as_non_root,
    no_privilege_escalation,
    drop_all_capabilities,
    seccomp_runtime_default,
    read_only_root_filesystem,
    no_host_access,
    namespace_pod_security,
    resource_requests_limits,
    liveness_readiness_probes,
    image_pinned,
    image_digest_in_prod,
    dedicated_service_account,
    no_secret_literals,
    helm_chart_pinned,
    hpa_min_replicas,
    no_loadbalancer_service,
    ingress_no_ops_paths,
    network_policy_dns_to_kube_system,
    argocd_project_scoped,
    namespace_network_policy,
    namespace_default_deny,
    helm_namespace_network_policy,
    pdb_for_multi_replica,
]
