"""The policy pack holds the gRPC Rollout to the same rules as the REST one (and as a Deployment)."""

from __future__ import annotations

from typing import Any

import pytest
from program_plans import CLOUDS, plan_of
from test_program import mandatory, tampered

from policies import gate

ROLLOUT = "kubernetes:argoproj.io/v1alpha1:Rollout"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
CONTAINER = "spec.template.spec.containers[0]"


@pytest.mark.parametrize("cloud", CLOUDS)
def test_a_grpc_container_running_as_root_fails(cloud: str) -> None:
    resources = tampered(
        plan_of(cloud, "dev"),
        ROLLOUT,
        ("spec.template.spec.securityContext.runAsUser", 0),
        (f"{CONTAINER}.securityContext.runAsUser", 0),
        where="grpc-rollout",
    )

    violations = mandatory(gate.evaluate(resources, "dev"))

    assert ("k8s-run-as-non-root", "container 'product-service-grpc' runs as user 0 (root)") in violations


@pytest.mark.parametrize(
    ("change", "policy"),
    [
        ((f"{CONTAINER}.image", "ghcr.io/example/product-service:latest"), "k8s-image-pinned"),
        ((f"{CONTAINER}.securityContext.readOnlyRootFilesystem", False), "k8s-read-only-root-filesystem"),
        ((f"{CONTAINER}.resources", {}), "k8s-resource-requests-limits"),
    ],
)
def test_an_unsafe_grpc_rollout_fails_the_rest_workload_rules(change: tuple[str, Any], policy: str) -> None:
    resources = tampered(plan_of("local", "dev"), ROLLOUT, change, where="grpc-rollout")

    violations = gate.evaluate(resources, "dev")

    assert policy in {v.policy for v in violations if v.mandatory}


def test_a_grpc_container_without_probes_is_reported() -> None:
    resources = tampered(
        plan_of("local", "dev"), ROLLOUT, (f"{CONTAINER}.readinessProbe", None), where="grpc-rollout"
    )

    violations = gate.evaluate(resources, "dev")

    assert any(
        v.policy == "k8s-liveness-readiness-probes" and "product-service-grpc" in v.message
        for v in violations
    )


def test_a_prod_grpc_rollout_without_its_disruption_budget_fails() -> None:
    plan = plan_of("aws", "prod")
    resources = [r for r in plan.resources if not (r.type == PDB and r.name == "grpc-disruption-budget")]

    violations = mandatory(gate.evaluate(resources, "prod"))

    assert any(
        policy == "k8s-pdb-for-multi-replica" and "'product-service-grpc'" in message
        for policy, message in violations
    )
