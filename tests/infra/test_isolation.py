"""What keeps the platform's namespaces apart: Pod Security admission on every namespace the program
creates, and the network flows each one admits."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from config import KUBERNETES_VERSION
from plan import Plan, PlannedResource

PlanFor = Callable[..., Plan]
RELEASE = "kubernetes:helm.sh/v3:Release"
TARGETS = [(cloud, profile) for cloud in ("aws", "gcp", "azure", "local") for profile in ("dev", "prod")]
POD_SECURITY = "pod-security.kubernetes.io"
# The strictest standard each namespace's pods meet; node-exporter alone needs the host.
ENFORCED = {
    "products": "restricted",
    "monitoring": "restricted",
    "node-exporter": "privileged",
    "tracing": "restricted",
    "argocd": "restricted",
    "ingress": "restricted",
}


@pytest.fixture(params=TARGETS, ids=[f"{c}-{p}" for c, p in TARGETS])
def plan(request: pytest.FixtureRequest, plan_for: PlanFor) -> Plan:
    cloud, profile = request.param
    return plan_for(cloud, profile)


def _release(plan: Plan, chart: str) -> PlannedResource:
    [release] = [r for r in plan.of_type(RELEASE) if r.inputs["chart"].rsplit("/", 1)[-1] == chart]
    return release


# --- Pod Security -----------------------------------------------------------------------------------


def test_every_namespace_enforces_the_strictest_standard_its_pods_meet_and_warns_below_restricted(
    plan: Plan,
) -> None:
    expected = {**ENFORCED, **({"platform-data": "restricted"} if plan.cloud == "local" else {})}
    labels = {n.metadata["name"]: n.metadata.get("labels", {}) for n in plan.objects("Namespace")}
    assert set(labels) == set(expected)
    for name, level in expected.items():
        modes = {mode: labels[name].get(f"{POD_SECURITY}/{mode}") for mode in ("enforce", "warn", "audit")}
        assert modes == {"enforce": level, "warn": "restricted", "audit": "restricted"}, name


def test_pod_security_is_pinned_to_the_stacks_kubernetes_minor(plan_for: PlanFor) -> None:
    for minor, plan in (
        (KUBERNETES_VERSION, plan_for("gcp", "prod")),
        ("1.35", plan_for("aws", "dev", kubernetesVersion="1.35")),
    ):
        for namespace in plan.objects("Namespace"):
            versions = {
                value for key, value in namespace.metadata["labels"].items() if key.endswith("-version")
            }
            assert versions == {f"v{minor}"}, namespace.metadata["name"]


def test_node_exporter_runs_alone_in_the_one_namespace_that_allows_host_access(plan: Plan) -> None:
    release = _release(plan, "kube-prometheus-stack")
    assert release.inputs["namespace"] == "monitoring"
    assert release.inputs["values"]["prometheus-node-exporter"]["namespaceOverride"] == "node-exporter"
    assert plan.object("Namespace", "node-exporter").urn in release.dependencies
    # Nothing else of the program's goes there.
    assert not [r for r in plan.kubernetes_objects() if r.metadata.get("namespace") == "node-exporter"
                and r.kind != "NetworkPolicy"]  # fmt: skip
    assert not [r for r in plan.of_type(RELEASE) if r.inputs["namespace"] == "node-exporter"]
