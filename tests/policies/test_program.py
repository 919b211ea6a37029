"""The real program (under the offline plan) against the pack: every cloud and profile passes the gate,
and an unsafe stack config or an unsafe resource fails it with the rule's message."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from plan import Plan, PlannedResource, committed_stacks
from policy_harness import changed
from program_plans import CLOUDS, PROFILES, committed_plan, plan_of

from policies import gate


def tampered(plan: Plan, type_: str, *changes: tuple[str, Any], where: str = "") -> list[PlannedResource]:
    """The plan's resources with the first resource of `type_` (whose name contains `where`) changed,
    in its inputs and, as a provider would echo them, its outputs."""
    target = next(r for r in plan.resources if r.type == type_ and where in r.name)

    def edit(r: PlannedResource) -> PlannedResource:
        outputs = changed(r.outputs, *changes) if r.outputs else r.outputs
        return dataclasses.replace(r, inputs=changed(r.inputs, *changes), outputs=outputs)

    return [edit(r) if r is target else r for r in plan.resources]


def mandatory(violations: list[gate.Violation]) -> list[tuple[str, str]]:
    return sorted((v.policy, v.message) for v in violations if v.mandatory)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("cloud", CLOUDS)
def test_the_program_passes_the_gate(cloud: str, profile: str) -> None:
    violations = gate.evaluate(plan_of(cloud, profile))
    assert not gate.has_mandatory_violations(violations), gate.format_table(violations)


@pytest.mark.parametrize("cloud", CLOUDS)
def test_a_prod_stack_that_brings_its_own_addons_passes_the_gate(cloud: str) -> None:
    violations = gate.evaluate(plan_of(cloud, "prod", addons="[]", domain=None))
    assert not gate.has_mandatory_violations(violations), gate.format_table(violations)


@pytest.mark.parametrize("profile", PROFILES)
def test_the_local_target_with_its_own_ca_passes_the_gate(profile: str) -> None:
    violations = gate.evaluate(plan_of("local", profile, localTls="true"))
    assert not gate.has_mandatory_violations(violations), gate.format_table(violations)


@pytest.mark.parametrize("stack", committed_stacks())
def test_every_committed_stack_passes_the_gate_on_its_own_cloud(stack: str) -> None:
    violations = gate.evaluate(committed_plan(stack))
    assert not gate.has_mandatory_violations(violations), gate.format_table(violations)


# One deliberately unsafe prod stack per cloud: no HA, no deletion protection, a week of backups.
UNSAFE_PROD = {"highAvailability": "false", "deletionProtection": "false", "backupRetentionDays": "7"}


@pytest.mark.parametrize(
    ("cloud", "policy", "says"),
    [
        ("aws", "aws-rds-multi-az", "multiAz is not true in prod"),
        ("aws", "aws-rds-deletion-protection", "deletionProtection is not true in prod"),
        ("aws", "aws-rds-backup-retention", "backupRetentionPeriod is 7 days; needs >= 30"),
        ("gcp", "gcp-sql-regional-ha", "settings.availabilityType is not REGIONAL in prod"),
        ("gcp", "gcp-sql-deletion-protection", "settings.deletionProtectionEnabled is not true in prod"),
        ("gcp", "gcp-sql-backups", "retainedBackups is 7; needs >= 30"),
        ("azure", "azure-postgres-high-availability", "highAvailability.mode is not ZoneRedundant in prod"),
        ("azure", "azure-postgres-backup", "backup.backupRetentionDays is 7; needs >= 30"),
    ],
)
def test_an_unsafe_prod_stack_config_fails_with_the_rules_message(cloud: str, policy: str, says: str) -> None:
    violations = gate.evaluate(plan_of(cloud, "prod", **UNSAFE_PROD))
    assert (policy, says) in mandatory(violations)


def test_the_same_settings_pass_in_dev() -> None:
    assert not gate.has_mandatory_violations(gate.evaluate(plan_of("aws", "dev", **UNSAFE_PROD)))


@pytest.mark.parametrize(
    ("cloud", "type_", "change", "policy", "says"),
    [
        ("aws", "aws:rds/instance:Instance", ("publiclyAccessible", True), "aws-rds-not-public",
         "publiclyAccessible is true"),
        ("gcp", "gcp:sql/databaseInstance:DatabaseInstance", ("settings.ipConfiguration.ipv4Enabled", True),
         "gcp-sql-no-public-ip", "settings.ipConfiguration.ipv4Enabled is not false (public IP)"),
        ("azure", "azure-native:dbforpostgresql:Server", ("network.publicNetworkAccess", "Enabled"),
         "azure-postgres-no-public-access", "network.publicNetworkAccess is not Disabled"),
    ],
)  # fmt: skip
def test_a_public_database_fails(
    cloud: str, type_: str, change: tuple[str, Any], policy: str, says: str
) -> None:
    violations = gate.evaluate(tampered(plan_of(cloud, "prod"), type_, change), "prod")
    assert (policy, says) in mandatory(violations)


@pytest.mark.parametrize(
    ("cloud", "type_", "change", "policy", "says"),
    [
        ("aws", "aws:elasticache/replicationGroup:ReplicationGroup", ("transitEncryptionEnabled", False),
         "aws-elasticache-encryption", "transitEncryptionEnabled is not true"),
        ("gcp", "gcp:redis/instance:Instance", ("transitEncryptionMode", "DISABLED"),
         "gcp-redis-auth-tls", "transitEncryptionMode is not SERVER_AUTHENTICATION"),
        ("azure", "azure-native:redisenterprise:Database", ("clientProtocol", "Plaintext"),
         "azure-redis-tls-only", "clientProtocol is Plaintext; use Encrypted"),
    ],
)  # fmt: skip
def test_a_redis_without_tls_fails(
    cloud: str, type_: str, change: tuple[str, Any], policy: str, says: str
) -> None:
    violations = gate.evaluate(tampered(plan_of(cloud, "prod"), type_, change), "prod")
    assert (policy, says) in mandatory(violations)


@pytest.mark.parametrize("cloud", CLOUDS)
def test_a_product_container_running_as_root_fails(cloud: str) -> None:
    plan = plan_of(cloud, "dev")
    rollout = next(r for r in plan.resources if r.type == "kubernetes:argoproj.io/v1alpha1:Rollout")
    name = rollout.inputs["spec"]["template"]["spec"]["containers"][0]["name"]
    resources = tampered(
        plan,
        "kubernetes:argoproj.io/v1alpha1:Rollout",
        ("spec.template.spec.securityContext.runAsUser", 0),
        ("spec.template.spec.containers[0].securityContext.runAsUser", 0),
        where=rollout.name,
    )
    violations = gate.evaluate(resources, "dev")
    assert ("k8s-run-as-non-root", f"container '{name}' runs as user 0 (root)") in mandatory(violations)


@pytest.mark.parametrize("cloud", CLOUDS)
def test_an_api_ingress_that_publishes_everything_again_fails(cloud: str) -> None:
    """What the REST Ingress did before it named its paths: `/` published /metrics, /health and /ready."""
    plan = plan_of(cloud, "dev")
    rest = next(r for r in plan.objects("Ingress") if r.metadata["name"] == "product-service")
    catch_all = (
        "spec.rules[0].http.paths",
        [{**rest.inputs["spec"]["rules"][0]["http"]["paths"][0], "path": "/"}],
    )
    edited = dataclasses.replace(
        rest,
        inputs=changed(rest.inputs, catch_all),
        outputs=changed(rest.outputs, catch_all) if rest.outputs else rest.outputs,
    )
    resources = [edited if r is rest else r for r in plan.resources]
    violations = [v for v in gate.evaluate(resources, "dev") if v.mandatory]
    assert [(v.policy, v.urn) for v in violations] == [("k8s-ingress-no-ops-paths", rest.urn)]


@pytest.mark.parametrize("cloud", CLOUDS)
def test_a_connection_string_copied_into_the_service_configmap_fails(cloud: str) -> None:
    plan = plan_of(cloud, "dev")
    secret = next(
        r for r in plan.resources if r.type == "kubernetes:core/v1:Secret" and "DATABASE_URL" in str(r.inputs)
    )
    database_url = secret.inputs["stringData"]["DATABASE_URL"]
    config_map = next(
        r for r in plan.resources if r.type == "kubernetes:core/v1:ConfigMap" and "LOG_LEVEL" in str(r.inputs)
    )
    resources = tampered(plan, config_map.type, ("data.DATABASE_URL", database_url), where=config_map.name)
    violations = [v for v in gate.evaluate(resources, "dev") if v.mandatory and v.urn == config_map.urn]
    assert {v.policy for v in violations} == {"k8s-no-secret-literals", "no-plaintext-secrets"}


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_a_service_that_stops_verifying_the_database_fails(cloud: str) -> None:
    plan = plan_of(cloud, "prod")
    secret = next(
        r for r in plan.resources if r.type == "kubernetes:core/v1:Secret" and "DATABASE_URL" in str(r.inputs)
    )
    weakened = secret.inputs["stringData"]["DATABASE_URL"].replace("sslmode=verify-full", "sslmode=require")
    resources = tampered(plan, secret.type, ("stringData.DATABASE_URL", weakened), where=secret.name)
    found = [v for v in gate.evaluate(resources, "prod") if v.policy == "data-clients-verify-tls"]
    assert [v.message.splitlines()[-1] for v in found] == [
        f"{secret.name}: DATABASE_URL connects with sslmode=require; use verify-full"
    ]


@pytest.mark.parametrize("cloud", CLOUDS)
def test_a_namespace_that_drops_its_pod_security_labels_fails(cloud: str) -> None:
    """What every add-on namespace was before: no label, so the API server admitted privileged pods."""
    plan = plan_of(cloud, "dev")
    namespace = next(r for r in plan.objects("Namespace") if r.metadata["name"] == "tracing")
    resources = tampered(plan, namespace.type, ("metadata.labels", {}), where=namespace.name)
    violations = [v for v in gate.evaluate(resources, "dev") if v.mandatory]
    assert {(v.policy, v.urn) for v in violations} == {("k8s-namespace-pod-security", namespace.urn)}


@pytest.mark.parametrize("cloud", CLOUDS)
def test_a_namespace_whose_default_deny_lets_traffic_in_fails(cloud: str) -> None:
    plan = plan_of(cloud, "dev")
    deny = next(
        r for r in plan.objects("NetworkPolicy", "monitoring") if r.metadata["name"] == "default-deny"
    )
    resources = tampered(plan, deny.type, ("spec.ingress", [{}]), where=deny.name)
    namespace = plan.object("Namespace", "monitoring")
    violations = [v for v in gate.evaluate(resources, "dev") if v.mandatory]
    assert {(v.policy, v.urn) for v in violations} == {("k8s-namespace-default-deny", namespace.urn)}


@pytest.mark.parametrize("cloud", CLOUDS)
def test_dns_to_any_namespaces_kube_dns_pods_again_fails(cloud: str) -> None:
    """What the service's egress said before: port 53 to any pod labelled k8s-app=kube-dns, anywhere."""
    plan = plan_of(cloud, "dev")
    policy = plan.object("NetworkPolicy", "allow-api-egress")
    resources = tampered(plan, policy.type, ("spec.egress[0].to[0].namespaceSelector", {}), where=policy.name)
    violations = [v for v in gate.evaluate(resources, "dev") if v.mandatory]
    assert [(v.policy, v.urn, v.message.splitlines()[-1]) for v in violations] == [
        (
            "k8s-network-policy-dns-to-kube-system",
            policy.urn,
            "egress rule 0 opens DNS to pods outside kube-system; "
            "name kube-system (kubernetes.io/metadata.name) and its DNS pods in one peer",
        )
    ]


GITOPS = {"delivery": "argocd", "gitopsRepoUrl": "https://git.example.com/deploy.git"}


@pytest.mark.parametrize("cloud", CLOUDS)
def test_argocd_delivery_passes_the_gate_and_fails_it_in_the_default_project(cloud: str) -> None:
    plan = plan_of(cloud, "prod", **GITOPS)
    assert not gate.has_mandatory_violations(gate.evaluate(plan))
    application = plan.object("Application", "product-service")
    resources = tampered(plan, application.type, ("spec.project", "default"), where=application.name)
    violations = [v for v in gate.evaluate(resources, "prod") if v.mandatory]
    assert [(v.policy, v.urn) for v in violations] == [("argocd-project-scoped", application.urn)]
