"""Stack rules (NetworkPolicy per namespace, PDBs, plain-text secrets) through `AnalyzeStack`, which
the engine calls with every resource's outputs once the update (or preview) is done."""

from __future__ import annotations

import policy_fixtures as fx
from policy_harness import UNKNOWN, Engine, changed, of, secret

PASSWORD = "Zx8vQ2mN4kL7pR9tW3yB6cD1"


def test_a_namespace_with_workloads_and_no_network_policy_fails(engine: Engine) -> None:
    found = of(engine.analyze_stack([(fx.DEPLOYMENT, "api", fx.workload())]), "k8s-namespace-network-policy")
    assert [d.message.splitlines()[-1] for d in found] == [
        "namespace 'shop' runs api but has no NetworkPolicy"
    ]
    assert found[0].level == "mandatory"
    assert found[0].urn.endswith("::api")


def test_a_network_policy_in_the_namespace_satisfies_it(engine: Engine) -> None:
    stack = [(fx.DEPLOYMENT, "api", fx.workload()), (fx.NETWORK_POLICY, "deny", fx.network_policy())]
    assert of(engine.analyze_stack(stack), "k8s-namespace-network-policy") == []


def test_a_network_policy_elsewhere_does_not(engine: Engine) -> None:
    stack = [(fx.DEPLOYMENT, "api", fx.workload()), (fx.NETWORK_POLICY, "deny", fx.network_policy("other"))]
    assert of(engine.analyze_stack(stack), "k8s-namespace-network-policy")


def test_an_unknown_namespace_cannot_be_verified(engine: Engine) -> None:
    stack = [(fx.DEPLOYMENT, "api", changed(fx.workload(), ("metadata.namespace", UNKNOWN)))]
    found = of(engine.analyze_stack(stack), "k8s-namespace-network-policy")
    assert found and all(d.unverifiable for d in found)


def test_a_namespace_without_a_default_deny_network_policy_fails(engine: Engine) -> None:
    allow_dns = changed(
        fx.network_policy(), ("spec.policyTypes", ["Egress"]), ("spec.egress", [{"ports": [{"port": 53}]}])
    )
    for stack in (
        [(fx.NAMESPACE, "shop", fx.namespace())],
        [(fx.NAMESPACE, "shop", fx.namespace()), (fx.NETWORK_POLICY, "dns", allow_dns)],
        [(fx.NAMESPACE, "shop", fx.namespace()), (fx.NETWORK_POLICY, "deny", fx.network_policy("other"))],
    ):
        found = of(engine.analyze_stack(stack), "k8s-namespace-default-deny")
        assert [(d.level, d.message.splitlines()[-1]) for d in found] == [
            (
                "mandatory",
                "namespace 'shop' has no default-deny NetworkPolicy "
                "(podSelector {}, policyTypes Ingress and Egress, no rules)",
            )
        ]
        assert found[0].urn.endswith("::shop")


def test_a_default_deny_network_policy_in_the_namespace_satisfies_it(engine: Engine) -> None:
    stack = [(fx.NAMESPACE, "shop", fx.namespace()), (fx.NETWORK_POLICY, "deny", fx.network_policy())]
    assert of(engine.analyze_stack(stack), "k8s-namespace-default-deny") == []
    unknown = [(fx.NAMESPACE, "shop", changed(fx.namespace(), ("metadata.name", UNKNOWN)))]
    assert all(d.unverifiable for d in of(engine.analyze_stack(unknown), "k8s-namespace-default-deny"))


def test_helm_release_namespaces_without_network_policy_are_advisory(engine: Engine) -> None:
    found = of(
        engine.analyze_stack([(fx.HELM_RELEASE, "monitoring", fx.helm_release())]),
        "k8s-helm-namespace-network-policy",
    )
    assert [(d.level, d.message.splitlines()[-1]) for d in found] == [
        ("advisory", "namespace 'monitoring' of Helm release monitoring has no NetworkPolicy")
    ]
    covered = [
        (fx.HELM_RELEASE, "monitoring", fx.helm_release()),
        (fx.NETWORK_POLICY, "np", fx.network_policy("monitoring")),
    ]
    assert of(engine.analyze_stack(covered), "k8s-helm-namespace-network-policy") == []
    unknown = [(fx.HELM_RELEASE, "monitoring", changed(fx.helm_release(), ("namespace", UNKNOWN)))]
    assert all(d.unverifiable for d in of(engine.analyze_stack(unknown), "k8s-helm-namespace-network-policy"))


def test_a_multi_replica_deployment_needs_a_pdb_selecting_its_pods(engine: Engine) -> None:
    stack = [(fx.DEPLOYMENT, "api", fx.workload(replicas=3))]
    found = of(engine.analyze_stack(stack), "k8s-pdb-for-multi-replica")
    assert [d.message.splitlines()[-1] for d in found] == [
        "Deployment 'api' runs 3 replicas but no PodDisruptionBudget selects its pods"
    ]
    assert of(engine.analyze_stack([*stack, (fx.PDB, "api", fx.pdb())]), "k8s-pdb-for-multi-replica") == []
    assert of(engine.analyze_stack([*stack, (fx.PDB, "web", fx.pdb("web"))]), "k8s-pdb-for-multi-replica")


def test_an_hpa_minimum_above_one_makes_a_deployment_multi_replica(engine: Engine) -> None:
    stack = [(fx.DEPLOYMENT, "api", fx.workload()), (fx.HPA, "api", fx.hpa(min_replicas=3))]
    assert of(engine.analyze_stack(stack), "k8s-pdb-for-multi-replica")
    single = [(fx.DEPLOYMENT, "api", fx.workload()), (fx.HPA, "api", fx.hpa(min_replicas=1))]
    assert of(engine.analyze_stack(single), "k8s-pdb-for-multi-replica") == []


def test_an_unknown_pdb_selector_cannot_be_verified(engine: Engine) -> None:
    stack = [
        (fx.DEPLOYMENT, "api", fx.workload(replicas=3)),
        (fx.PDB, "api", changed(fx.pdb(), ("spec.selector", UNKNOWN))),
    ]
    found = of(engine.analyze_stack(stack), "k8s-pdb-for-multi-replica")
    assert any(d.unverifiable for d in found)


def _with_password() -> list[tuple[str, str, dict]]:
    return [
        (fx.RANDOM_PASSWORD, "db-password", {"length": 24, "special": False, "result": secret(PASSWORD)}),
        (
            fx.SECRET,
            "api",
            {
                "kind": "Secret",
                "metadata": {"name": "api", "namespace": "shop"},
                "stringData": secret(
                    {"DATABASE_URL": f"postgresql://app:{PASSWORD}@db:5432/app", "DB_USER": "app"}
                ),
            },
        ),
        (fx.RDS, "postgres", {**fx.rds(), "password": secret(PASSWORD)}),
        (fx.DEPLOYMENT, "api", fx.workload()),
    ]


def test_credentials_kept_in_secrets_and_password_inputs_pass(engine: Engine) -> None:
    assert of(engine.analyze_stack(_with_password()), "no-plaintext-secrets") == []


def test_a_generated_password_copied_into_a_configmap_fails(engine: Engine) -> None:
    leak = changed(fx.config_map(), ("data.PGOPTIONS", f"-c password={PASSWORD}"))
    found = of(
        engine.analyze_stack([*_with_password(), (fx.CONFIG_MAP, "api-config", leak)]), "no-plaintext-secrets"
    )
    assert [d.message.splitlines()[-1] for d in found] == [
        "api-config: data.PGOPTIONS contains a credential in plain text; reference a Secret (secretKeyRef) instead"
    ]
    assert found[0].level == "mandatory"


def test_a_password_on_a_container_command_line_fails(engine: Engine) -> None:
    redis = changed(
        fx.workload(fx.STATEFUL_SET, name="redis"),
        ("spec.template.spec.containers[0].args", ["--requirepass", PASSWORD]),
    )
    found = of(
        engine.analyze_stack([*_with_password(), (fx.STATEFUL_SET, "redis", redis)]), "no-plaintext-secrets"
    )
    assert ["spec.template.spec.containers[0].args[1]" in d.message for d in found] == [True]


def test_a_connection_string_from_a_secret_copied_into_helm_values_fails(engine: Engine) -> None:
    values = changed(fx.helm_release(), ("values.env.DSN", f"postgresql://app:{PASSWORD}@db:5432/app"))
    found = of(
        engine.analyze_stack([*_with_password(), (fx.HELM_RELEASE, "tool", values)]), "no-plaintext-secrets"
    )
    assert found and "values.env.DSN" in found[0].message


def test_an_unknown_generated_password_cannot_be_verified(engine: Engine) -> None:
    stack = [(fx.RANDOM_PASSWORD, "db-password", {"length": 24, "result": UNKNOWN})]
    found = of(engine.analyze_stack(stack), "no-plaintext-secrets")
    assert found and all(d.unverifiable for d in found)


def _service_secret(database_url: str, redis_url: str) -> tuple[str, str, dict]:
    return (
        fx.SECRET,
        "credentials",
        {
            "kind": "Secret",
            "metadata": {"name": "credentials", "namespace": "products"},
            "stringData": secret({"DATABASE_URL": database_url, "REDIS_URL": redis_url}),
        },
    )


VERIFIED_POSTGRES = f"postgresql://app:{PASSWORD}@db.example:5432/app?sslmode=verify-full&sslrootcert=/ca.crt"
VERIFIED_REDIS = f"rediss://:{PASSWORD}@10.0.0.4:6378/0?ssl_ca_certs=/ca.crt&ssl_check_hostname=false"


def test_clients_that_verify_managed_postgres_and_redis_pass(engine: Engine) -> None:
    stack = [(fx.RDS, "postgres", fx.rds()), (fx.REDIS_GROUP, "redis", fx.redis_group())]
    stack.append(_service_secret(VERIFIED_POSTGRES, VERIFIED_REDIS))
    assert of(engine.analyze_stack(stack), "data-clients-verify-tls") == []


def test_sslmode_require_to_a_managed_database_fails(engine: Engine) -> None:
    stack = [(fx.CLOUD_SQL, "postgres", fx.cloud_sql())]
    stack.append(_service_secret(VERIFIED_POSTGRES.replace("verify-full", "require"), VERIFIED_REDIS))
    found = of(engine.analyze_stack(stack), "data-clients-verify-tls")
    assert [d.message.splitlines()[-1] for d in found] == [
        "credentials: DATABASE_URL connects with sslmode=require; use verify-full"
    ]
    assert found[0].level == "mandatory"


def test_redis_without_tls_or_with_verification_off_fails(engine: Engine) -> None:
    for url, says in (
        (f"redis://:{PASSWORD}@cache:6379/0", "connects without TLS"),
        (f"rediss://:{PASSWORD}@cache:6380/0?ssl_cert_reqs=none", "ssl_cert_reqs=none"),
    ):
        stack = [(fx.AZURE_REDIS, "redis", fx.azure_redis()), _service_secret(VERIFIED_POSTGRES, url)]
        found = of(engine.analyze_stack(stack), "data-clients-verify-tls")
        assert len(found) == 1 and says in found[0].message


def test_in_cluster_data_services_are_not_held_to_it(engine: Engine) -> None:
    stack = [
        _service_secret(
            f"postgresql://app:{PASSWORD}@postgres:5432/app?sslmode=disable", "redis://redis:6379/0"
        )
    ]
    assert of(engine.analyze_stack(stack), "data-clients-verify-tls") == []


def test_an_unknown_connection_url_cannot_be_verified(engine: Engine) -> None:
    stack = [(fx.RDS, "postgres", fx.rds()), _service_secret(UNKNOWN, VERIFIED_REDIS)]
    found = of(engine.analyze_stack(stack), "data-clients-verify-tls")
    assert found and all(d.unverifiable for d in found)
