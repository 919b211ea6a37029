"""`make charts`: the real add-on charts, judged before a user's first `pulumi up`.

    python harness/chart_audit.py [--repository URL] [--stack dev ...] [--cloud aws ...]

For every committed stack on every cloud it runs the offline plan (harness/plan/plan.py) and takes each Helm
Release the program declares: chart, pinned version, release name, namespace and values. It pulls each
pinned chart from the chart's own repository, or from one mirror (`--repository`, the same contract as
`platform:chartRepository`: every chart under its own name and version), and renders it with Helm (built
from harness/go/helm, the Helm release the Kubernetes provider embeds) at the stack's Kubernetes minor,
with the API versions of every CRD the stack's charts install. It prints one line per problem and
exits 1 when there is one:

- a pinned version the repository does not serve;
- a chart that does not render with the values the program passes;
- a container of any rendered workload (init containers and hook Jobs included) without a memory
  limit, CPU and memory requests, or Pod Security's "restricted" settings, unless
  `charts.EXCEPTIONS` excuses that finding with its reason;
- RBAC that does not grant what `charts.PERMISSIONS` says a chart's workload needs;
- a Service the program or a stack output names (`cluster.CHART_SERVICES`) not rendered with that
  name, namespace and ports;
- a custom resource the program declares whose CRD none of the stack's charts installs.

What it cannot see: what runs (images, webhooks, hook Jobs' effects), and objects an operator creates
at run time (the Prometheus and Alertmanager pods come from the Prometheus operator).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "infra"), str(REPO / "harness" / "plan")]

from cluster import CHART_SERVICES  # noqa: E402 (the program's own names)
from cluster.charts import EXCEPTIONS, PERMISSIONS, ChartException, ChartPermission, ChartService  # noqa: E402
from config import KUBERNETES_VERSION  # noqa: E402
from plan import CLOUDS, HELM_RELEASE, Plan, committed_stacks, release_listing, run_plan  # noqa: E402

HELM = REPO / ".tools" / "bin" / "helm"
WORKLOAD_KINDS = ("Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob")
# API groups the API server serves itself; a custom resource of any other group needs a CRD.
BUILT_IN_GROUPS = frozenset(
    {
        "",
        "apps",
        "batch",
        "policy",
        "autoscaling",
        "networking.k8s.io",
        "rbac.authorization.k8s.io",
        "storage.k8s.io",
        "scheduling.k8s.io",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "admissionregistration.k8s.io",
        "apiextensions.k8s.io",
        "apiregistration.k8s.io",
        "certificates.k8s.io",
        "node.k8s.io",
        "flowcontrol.apiserver.k8s.io",
        "resource.k8s.io",
    }
)


Source = tuple[str, str, str | None]  # (chart or oci:// reference, version, repository)


@dataclass(frozen=True)
class Release:
    """One Helm Release as a plan declares it. Equal releases of different plans are one value, so each
    distinct one renders once."""

    name: str
    namespace: str
    chart: str  # a chart name (pulled from `repo`), or an oci:// reference
    version: str
    repo: str | None
    values: str  # JSON, so that releases compare by their values
    kube_version: str

    @property
    def source(self) -> Source:
        return (self.chart, self.version, self.repo)

    @property
    def chart_name(self) -> str:
        return self.chart.rsplit("/", 1)[-1]

    @property
    def label(self) -> str:
        return f"{self.chart_name} {self.version}"


@dataclass
class StackUnderAudit:
    """What one plan asks of the charts: its releases, its custom resources, the Services it names."""

    where: str
    releases: list[Release]
    custom_kinds: set[tuple[str, str]]  # (apiVersion, kind)
    services: list[ChartService]
    # Learnt from the first render: the CRDs the stack's charts install.
    crd_kinds: set[tuple[str, str]] = field(default_factory=set)

    @property
    def api_versions(self) -> tuple[str, ...]:
        return tuple(sorted({api_version for api_version, _ in self.crd_kinds}))


@dataclass(frozen=True)
class Failed:
    message: str


Rendered = list[dict[str, Any]] | Failed


@dataclass
class Findings:
    """Problem line -> the plans it was found in; each line is printed once."""

    lines: dict[str, set[str]] = field(default_factory=dict)

    def add(self, line: str, where: str) -> None:
        self.lines.setdefault(line, set()).add(where)

    def report(self, every: set[str]) -> list[str]:
        return [
            line + ("" if where == every else f"  [{', '.join(sorted(where))}]")
            for line, where in sorted(self.lines.items())
        ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chart_audit", description="Audit the pinned Helm charts.")
    parser.add_argument(
        "--repository", help="one Helm repository (https://) or OCI registry serving every chart"
    )
    parser.add_argument("--stack", action="append", help="a committed stack (default: every one)")
    parser.add_argument("--cloud", action="append", choices=CLOUDS, help="a cloud (default: every one)")
    args = parser.parse_args(argv)
    if not HELM.exists():
        parser.error(f"{HELM.relative_to(REPO)} is missing: `make charts` builds it (Go 1.26+)")
    overrides = {"chartRepository": args.repository} if args.repository else {}
    stacks = [
        from_plan(run_plan(stack, cloud, overrides))
        for stack in args.stack or committed_stacks()
        for cloud in args.cloud or CLOUDS
    ]
    charts = sorted({r.label for s in stacks for r in s.releases})
    print(f"Auditing {', '.join(charts)} for {len(stacks)} plan(s)", flush=True)
    lines = audit(stacks, EXCEPTIONS, PERMISSIONS)
    print("\n".join(lines) + f"\n{len(lines)} problem(s)" if lines else "No problems.")
    return 1 if lines else 0


def from_plan(plan: Plan) -> StackUnderAudit:
    where = f"{plan.stack}-{plan.cloud}"
    kube_version = plan.config.get("platform:kubernetesVersion", KUBERNETES_VERSION)
    releases = [
        Release(
            name=listed["release"],
            namespace=listed["namespace"] or "default",
            chart=listed["chart"],
            version=listed["version"],
            repo=listed["repo"],
            values=json.dumps(listed["values"], sort_keys=True),
            kube_version=kube_version,
        )
        for listed in map(release_listing, plan.of_type(HELM_RELEASE))
    ]
    custom = {
        (o.inputs["apiVersion"], o.inputs["kind"])
        for o in plan.kubernetes_objects()
        if _group(o.inputs["apiVersion"]) not in BUILT_IN_GROUPS
    }
    installed = {r.chart_name for r in releases}
    return StackUnderAudit(where, releases, custom, [s for s in CHART_SERVICES if s.chart in installed])


def audit(
    stacks: list[StackUnderAudit],
    exceptions: Iterable[ChartException] = (),
    permissions: Iterable[ChartPermission] = (),
    helm: Path = HELM,
) -> list[str]:
    """Every problem of these plans' releases, one line each."""
    findings = Findings()
    with tempfile.TemporaryDirectory(prefix="chart-audit-") as scratch:
        renderer = _Helm(helm, Path(scratch))
        pulls = renderer.pull_all({r.source for s in stacks for r in s.releases})
        archives = {source: archive for source, archive in pulls.items() if isinstance(archive, Path)}
        for stack in stacks:
            for r in stack.releases:
                if isinstance(failed := pulls[r.source], Failed):
                    findings.add(
                        f"{r.label}: cannot be pulled from {r.repo or r.chart}: {failed.message}", stack.where
                    )
        pulled = {r for s in stacks for r in s.releases if r.source in archives}
        # Pass 1 learns which CRDs each plan's charts install; pass 2 renders with their API versions
        # known, as Helm sees a cluster that has them (charts switch ServiceMonitors and the like on them).
        # A chart that refuses to render without another's API (Traefik's ServiceMonitor) shows its own
        # CRDs in pass 2 only.
        first = renderer.render_all({(r, ()) for r in pulled}, archives)
        for stack in stacks:
            stack.crd_kinds = _crd_kinds(first.get((r, ())) for r in stack.releases)
        rendered = renderer.render_all(
            {(r, s.api_versions) for s in stacks for r in s.releases if r in pulled}, archives
        )
        for stack in stacks:
            renders = {r: rendered[(r, stack.api_versions)] for r in stack.releases if r in pulled}
            stack.crd_kinds |= _crd_kinds(renders.values())
            _judge(stack, renders, exceptions, permissions, findings)
    return findings.report({s.where for s in stacks})


def _judge(
    stack: StackUnderAudit,
    rendered: dict[Release, Rendered],
    exceptions: Iterable[ChartException],
    permissions: Iterable[ChartPermission],
    findings: Findings,
) -> None:
    services: dict[tuple[str, str], set[int]] = {}
    for release, result in rendered.items():
        if isinstance(result, Failed):
            findings.add(
                f"{release.label}: does not render with the program's values: {result.message}", stack.where
            )
            continue
        for obj in result:
            namespace = obj.get("metadata", {}).get("namespace") or release.namespace
            if obj.get("kind") == "Service":
                services[(namespace, obj["metadata"]["name"])] = {
                    p.get("port") for p in obj.get("spec", {}).get("ports") or []
                }
        for line in _container_problems(release, result, exceptions):
            findings.add(line, stack.where)
        for line in _missing_permissions(release, result, permissions):
            findings.add(line, stack.where)
    rendered_charts = {r.chart_name for r, result in rendered.items() if not isinstance(result, Failed)}
    for service in stack.services:
        if service.chart not in rendered_charts:
            continue
        rendered_ports = services.get((service.namespace, service.name))
        if rendered_ports is None:
            findings.add(
                f"{service.chart}: renders no Service {service.namespace}/{service.name} ({service.purpose})",
                stack.where,
            )
        elif missing := sorted(set(service.ports) - rendered_ports):
            findings.add(
                f"{service.chart}: Service {service.namespace}/{service.name} has no port "
                f"{', '.join(map(str, missing))} ({service.purpose})",
                stack.where,
            )
    if len(rendered_charts) == len(stack.releases):
        for api_version, kind in sorted(stack.custom_kinds - stack.crd_kinds):
            findings.add(
                f"no chart installs the CRD of {kind} ({api_version}), a kind the program declares",
                stack.where,
            )


# --- what a container and its pod must set ---------------------------------------------------------


def _container_problems(
    release: Release, objects: list[dict[str, Any]], exceptions: Iterable[ChartException]
) -> Iterator[str]:
    for obj in objects:
        pod = _pod_spec(obj)
        if pod is None:
            continue
        workload = f"{obj['kind']}/{obj['metadata']['name']}"
        excused = {
            (e.container, finding)
            for e in exceptions
            if e.chart == release.chart_name and e.workload == workload
            for finding in e.findings
        }
        place = f"{release.label}: {obj['kind']} {obj.get('metadata', {}).get('namespace') or release.namespace}/{obj['metadata']['name']}"
        if pod_findings := [f for f in _pod_findings(pod) if ("", f) not in excused]:
            yield f"{place}: {', '.join(pod_findings)}"
        for init, container in [(True, c) for c in pod.get("initContainers") or []] + [
            (False, c) for c in pod.get("containers") or []
        ]:
            name = container["name"]
            if missing := [
                f
                for f in _container_findings(pod, container)
                if (name, f) not in excused and ("*", f) not in excused
            ]:
                yield f"{place}, {'init container' if init else 'container'} {name}: {', '.join(missing)}"


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    if kind not in WORKLOAD_KINDS:
        return None
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        return spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec", {})
    return spec.get("template", {}).get("spec", {})


def _pod_findings(pod: dict[str, Any]) -> list[str]:
    found = [host for host in ("hostNetwork", "hostPID", "hostIPC") if pod.get(host)]
    if any("hostPath" in volume for volume in pod.get("volumes") or []):
        found.append("hostPath volume")
    return found


def _container_findings(pod: dict[str, Any], container: dict[str, Any]) -> list[str]:
    """What the container lacks of bounded resources and Pod Security's restricted profile."""
    resources = container.get("resources") or {}
    found = [
        need
        for need, (kind, resource) in {
            "memory limit": ("limits", "memory"),
            "cpu request": ("requests", "cpu"),
            "memory request": ("requests", "memory"),
        }.items()
        if not (resources.get(kind) or {}).get(resource)
    ]
    own, pods = container.get("securityContext") or {}, pod.get("securityContext") or {}

    def setting(key: str) -> Any:
        return own[key] if key in own else pods.get(key)

    if setting("runAsNonRoot") is not True:
        found.append("runAsNonRoot")
    if setting("runAsUser") == 0:
        found.append("runAsUser 0")
    if own.get("allowPrivilegeEscalation") is not False:
        found.append("allowPrivilegeEscalation")
    if own.get("privileged"):
        found.append("privileged")
    capabilities = own.get("capabilities") or {}
    if "ALL" not in (capabilities.get("drop") or []):
        found.append("capabilities.drop ALL")
    if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
        found.append("capabilities.add")
    if (setting("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
        found.append("seccompProfile")
    if any(port.get("hostPort") for port in container.get("ports") or []):
        found.append("hostPort")
    return found


def _missing_permissions(
    release: Release, objects: list[dict[str, Any]], permissions: Iterable[ChartPermission]
) -> Iterator[str]:
    rules = [
        rule
        for obj in objects
        if obj.get("kind") in ("ClusterRole", "Role")
        for rule in obj.get("rules") or []
    ]

    def granted(group: str, resource: str, verb: str) -> bool:
        return any(
            {group, "*"} & set(rule.get("apiGroups") or [])
            and {resource, "*"} & set(rule.get("resources") or [])
            and {verb, "*"} & set(rule.get("verbs") or [])
            for rule in rules
        )

    for need in permissions:
        if need.chart != release.chart_name:
            continue
        missing = [
            f"{verb} {resource}"
            for resource in need.resources
            for verb in need.verbs
            if not granted(need.api_group, resource, verb)
        ]
        if missing:
            yield f"{release.label}: its RBAC does not grant {', '.join(missing)} in {need.api_group or 'core'} ({need.reason})"


# --- Helm -------------------------------------------------------------------------------------------


class _Helm:
    """The pinned Helm binary, with its cache, config and data in a scratch directory."""

    def __init__(self, binary: Path, scratch: Path) -> None:
        self._binary = binary
        self._scratch = scratch
        self._env = {
            **os.environ,
            **{f"HELM_{part}_HOME": str(scratch / part.lower()) for part in ("CACHE", "CONFIG", "DATA")},
        }

    def pull_all(self, sources: set[Source]) -> dict[Source, Path | Failed]:
        ordered = sorted(sources, key=str)
        with ThreadPoolExecutor(max_workers=4) as pool:
            return dict(zip(ordered, pool.map(self._pull, ordered), strict=True))

    def render_all(
        self, jobs: set[tuple[Release, tuple[str, ...]]], archives: dict[Source, Path]
    ) -> dict[tuple[Release, tuple[str, ...]], Rendered]:
        ordered = sorted(jobs, key=lambda job: (job[0].name, job[0].values, job[1]))
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            results = pool.map(lambda job: self._render(job[0], job[1], archives[job[0].source]), ordered)
            return dict(zip(ordered, results, strict=True))

    def _pull(self, source: Source) -> Path | Failed:
        chart, version, repo = source
        into = Path(tempfile.mkdtemp(dir=self._scratch, prefix="chart-"))
        result = self._run(
            [
                "pull",
                chart,
                "--version",
                version,
                "--destination",
                str(into),
                *(["--repo", repo] if repo else []),
            ]
        )
        if isinstance(result, Failed):
            return result
        return next(into.glob("*.tgz"))

    def _render(self, release: Release, api_versions: tuple[str, ...], archive: Path) -> Rendered:
        values = Path(tempfile.mkstemp(dir=self._scratch, suffix=".json")[1])
        values.write_text(release.values)  # JSON is YAML
        result = self._run(
            [
                "template",
                release.name,
                str(archive),
                "--namespace",
                release.namespace,
                "--kube-version",
                f"v{release.kube_version}.0",
                "--include-crds",
                "--values",
                str(values),
                *(arg for version in api_versions for arg in ("--api-versions", version)),
            ]
        )
        if isinstance(result, Failed):
            return result
        return [doc for doc in yaml.load_all(result, Loader=_ManifestLoader) if isinstance(doc, dict)]

    def _run(self, args: list[str]) -> str | Failed:
        done = subprocess.run(
            [str(self._binary), *args], env=self._env, capture_output=True, text=True, timeout=300
        )
        if done.returncode:
            errors = [
                line.removeprefix("Error: ") for line in done.stderr.splitlines() if line.startswith("Error:")
            ]
            return Failed((errors or done.stderr.strip().splitlines() or ["helm failed"])[-1])
        return done.stdout


class _ManifestLoader(yaml.SafeLoader):
    """YAML as Kubernetes reads it: a bare `=` is a string (CRD enums list it), not YAML 1.1's value tag."""


_ManifestLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:value"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _of_kind(result: Rendered | None, kind: str) -> list[dict[str, Any]]:
    return [obj for obj in result or [] if obj.get("kind") == kind] if isinstance(result, list) else []


def _crd_kinds(renders: Iterable[Rendered | None]) -> set[tuple[str, str]]:
    """(apiVersion, kind) of every CRD these renders install, at each version it serves."""
    return {
        (api_version, crd["spec"]["names"]["kind"])
        for render in renders
        for crd in _of_kind(render, "CustomResourceDefinition")
        for api_version in _served_api_versions(crd)
    }


def _served_api_versions(crd: dict[str, Any]) -> list[str]:
    group = crd["spec"]["group"]
    return [f"{group}/{v['name']}" for v in crd["spec"].get("versions") or [] if v.get("served", True)]


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


if __name__ == "__main__":
    sys.exit(main())
