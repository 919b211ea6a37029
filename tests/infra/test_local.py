"""What only the local target builds: in-cluster Postgres and Redis for a kubeconfig context."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from plan import Plan

PlanFor = Callable[..., Plan]


@pytest.fixture(params=["dev", "prod"])
def plan(request: pytest.FixtureRequest, plan_for: PlanFor) -> Plan:
    return plan_for("local", request.param)


def test_the_provider_uses_the_current_context_unless_one_is_configured(plan_for: PlanFor) -> None:
    [current] = plan_for("local", "dev").of_type("pulumi:providers:kubernetes")
    assert "context" not in current.inputs
    [chosen] = plan_for("local", "dev", kubeContext="kind-platform").of_type("pulumi:providers:kubernetes")
    assert chosen.inputs["context"] == "kind-platform"


def test_postgres_and_redis_run_as_stateful_sets_with_volumes_in_their_own_namespace(plan: Plan) -> None:
    sets = {s.metadata["name"]: s.inputs["spec"] for s in plan.objects("StatefulSet", "platform-data")}
    assert set(sets) == {"postgres", "redis"}
    for spec in sets.values():
        [claim] = spec["volumeClaimTemplates"]
        assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
        [container] = spec["template"]["spec"]["containers"]
        assert {"livenessProbe", "readinessProbe", "resources", "securityContext"} <= set(container)
        assert ":" in container["image"] and not container["image"].endswith(":latest")
    storage = sets["postgres"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    assert storage == ("100Gi" if plan.config["platform:profile"] == "prod" else "20Gi")


def test_data_passwords_are_generated_secrets_that_reach_pods_only_through_a_secret(plan: Plan) -> None:
    secret = plan.object("Secret", "data-credentials")
    assert secret.is_secret(("stringData", "POSTGRES_PASSWORD"))
    assert secret.is_secret(("stringData", "REDIS_PASSWORD"))
    postgres = plan.object("StatefulSet", "postgres").inputs["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in postgres["env"]}
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "data-credentials"


def test_redis_reads_its_password_from_a_file_of_the_secret_never_from_its_command_line(plan: Plan) -> None:
    # An argument shows in `ps` and in the pod spec; a $(VAR) argument shows in `ps` once expanded.
    secret = plan.object("Secret", "data-credentials")
    password = secret.inputs["stringData"]["REDIS_PASSWORD"]
    assert secret.inputs["stringData"]["redis-auth.conf"] == f"requirepass {password}\n"
    assert secret.is_secret(("stringData", "redis-auth.conf"))
    pod = plan.object("StatefulSet", "redis").inputs["spec"]["template"]["spec"]
    [redis] = pod["containers"]
    [auth] = [v for v in pod["volumes"] if v["name"] == "auth"]
    assert auth["secret"]["secretName"] == secret.metadata["name"]
    assert auth["secret"]["items"] == [{"key": "redis-auth.conf", "path": "redis-auth.conf"}]
    [mount] = [m for m in redis["volumeMounts"] if m["name"] == "auth"]
    assert mount["readOnly"] is True
    # The file is redis-server's first argument: `redis-server <config file> --option value ...`.
    assert redis["args"][0] == f"{mount['mountPath']}/redis-auth.conf"
    assert redis["readinessProbe"]["exec"]["command"] == ["redis-cli", "ping"]
    assert [e["name"] for e in redis["env"]] == ["REDISCLI_AUTH"]
    assert redis["env"][0]["valueFrom"]["secretKeyRef"]["key"] == "REDIS_PASSWORD"
    for workload in (*plan.objects("StatefulSet"), *plan.objects("Rollout"), *plan.objects("Job")):
        spec = workload.inputs["spec"]["template"]["spec"]
        for container in (*spec["containers"], *spec.get("initContainers", [])):
            words = [*container.get("command", []), *container.get("args", [])]
            values = [str(e.get("value", "")) for e in container.get("env", [])]
            assert not any(password in word or "REDIS_PASSWORD" in word for word in words), workload.name
            assert not any(password in value for value in values), workload.name


def test_the_data_namespace_denies_everything_but_the_two_server_ports(plan: Plan) -> None:
    policies = {p.metadata["name"]: p.inputs["spec"] for p in plan.objects("NetworkPolicy", "platform-data")}
    assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    ports = sorted(
        port["port"]
        for name, spec in policies.items()
        if name != "default-deny"
        for r in spec["ingress"]
        for port in r["ports"]
    )
    assert ports == [5432, 6379]


def test_the_service_egress_reaches_the_data_namespace_by_label(plan: Plan) -> None:
    policy = plan.object("NetworkPolicy", "allow-api-egress").inputs["spec"]
    peers = [peer for rule in policy["egress"] for peer in rule["to"]]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "platform-data"}}} in peers


def test_metrics_server_is_installed_and_trusts_the_local_kubelets(plan: Plan) -> None:
    [release] = [r for r in plan.of_type("kubernetes:helm.sh/v3:Release") if r.name == "metrics-server"]
    assert release.inputs["values"]["args"] == ["--kubelet-insecure-tls"]
