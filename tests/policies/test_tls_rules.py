"""Public names: cloud-ingress-tls, prod-issuer-trusted and dns-identity-zone-scoped, each both ways."""

from __future__ import annotations

import json
from typing import Any

import policy_fixtures as fx
import pytest
from policy_harness import UNKNOWN, Engine, changed, of

ISSUER = "kubernetes:cert-manager.io/v1:ClusterIssuer"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ZONE_ARN = "arn:aws:route53:::hostedzone/Z0123456789"
VPC = ("aws:ec2/vpc:Vpc", "vpc", {"cidrBlock": "10.0.0.0/16"})
TLS = [{"hosts": ["api.example.com"], "secretName": "platform-tls"}]


def _issuer(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "ClusterIssuer",
        "metadata": {"name": "x"},
        "spec": spec,
    }


def _acme(server: str) -> dict[str, Any]:
    return _issuer(acme={"server": server, "email": "ops@example.com", "solvers": [{"dns01": {}}]})


def _route53_policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"role": "r", "policy": json.dumps({"Version": "2012-10-17", "Statement": list(statements)})}


def _allow(action: str | list[str], resource: str) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource}


def test_an_ingress_without_tls_on_a_cloud_stack_fails_in_prod_and_warns_in_dev(
    engine: Engine, dev_engine: Engine
) -> None:
    stack = [VPC, (fx.INGRESS, "api", fx.ingress())]
    found = of(engine.analyze_stack(stack), "cloud-ingress-tls")
    assert [d.message.splitlines()[-1] for d in found] == [
        "Ingress 'api' serves api.example.com without TLS: set platform:domain (or platform:tlsSecretName)"
    ]
    assert found[0].level == "mandatory"
    assert of(engine.analyze_stack(stack), "cloud-ingress-tls-dev") == []
    assert of(dev_engine.analyze_stack(stack), "cloud-ingress-tls") == []
    [advice] = of(dev_engine.analyze_stack(stack), "cloud-ingress-tls-dev")
    assert advice.level == "advisory"


def test_an_ingress_with_tls_for_its_host_or_on_the_local_target_passes(engine: Engine) -> None:
    with_tls = changed(fx.ingress(), ("spec.tls", TLS))
    assert of(engine.analyze_stack([VPC, (fx.INGRESS, "api", with_tls)]), "cloud-ingress-tls") == []
    assert of(engine.analyze_stack([(fx.INGRESS, "api", fx.ingress())]), "cloud-ingress-tls") == []


def test_tls_for_another_host_does_not_count(engine: Engine) -> None:
    other = changed(fx.ingress(), ("spec.tls", [{"hosts": ["www.example.com"], "secretName": "t"}]))
    assert of(engine.analyze_stack([VPC, (fx.INGRESS, "api", other)]), "cloud-ingress-tls")


@pytest.mark.parametrize(
    ("issuer", "expected"),
    [
        (_acme("https://acme-staging-v02.api.letsencrypt.org/directory"), "is a staging directory"),
        (_issuer(selfSigned={}), "the issuer is selfSigned"),
        (_issuer(ca={"secretName": "root"}), "the issuer is a private CA"),
    ],
)
def test_an_untrusted_issuer_on_a_cloud_stack_fails_in_prod_only(
    engine: Engine, dev_engine: Engine, issuer, expected
) -> None:
    stack = [VPC, (ISSUER, "issuer", issuer)]
    [found] = of(engine.analyze_stack(stack), "prod-issuer-trusted")
    assert expected in found.message and found.level == "mandatory"
    assert of(dev_engine.analyze_stack(stack), "prod-issuer-trusted") == []


def test_lets_encrypts_production_directory_passes_in_prod(engine: Engine) -> None:
    issuer = _acme("https://acme-v02.api.letsencrypt.org/directory")
    assert of(engine.analyze_stack([VPC, (ISSUER, "issuer", issuer)]), "prod-issuer-trusted") == []


def test_the_local_targets_own_ca_passes_in_prod(engine: Engine) -> None:
    # No cloud resources: the local target, where platform:localTls makes a CA its developers trust.
    stack = [
        ("kubernetes:cert-manager.io/v1:Issuer", "bootstrap", _issuer(selfSigned={})),
        (ISSUER, "platform-ca", _issuer(ca={"secretName": "platform-ca"})),
    ]
    assert of(engine.analyze_stack(stack), "prod-issuer-trusted") == []


def test_an_issuer_whose_server_is_unknown_is_unverifiable_in_prod(engine: Engine) -> None:
    issuer = changed(_acme("https://acme-v02.api.letsencrypt.org/directory"), ("spec.acme.server", UNKNOWN))
    found = of(engine.analyze_stack([VPC, (ISSUER, "issuer", issuer)]), "prod-issuer-trusted")
    assert found and all(d.unverifiable for d in found)


@pytest.mark.parametrize(
    "resource",
    [
        (ROLE_POLICY, "dns", _route53_policy(_allow("route53:ChangeResourceRecordSets", "*"))),
        (ROLE_POLICY, "dns", _route53_policy(_allow(["route53:*"], "arn:aws:route53:::hostedzone/*"))),
        (
            "gcp:projects/iAMMember:IAMMember",
            "dns",
            {"role": "roles/dns.admin", "member": "serviceAccount:x"},
        ),
        (
            "azure-native:authorization:RoleAssignment",
            "dns",
            {
                "roleDefinitionId": "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/"
                "befefa01-2a29-4197-83a8-272ff33ce314",
                "scope": "/subscriptions/s/resourceGroups/platform",
                "principalId": "p",
            },
        ),
    ],
)
def test_a_dns_writer_beyond_the_zone_fails(engine: Engine, resource) -> None:
    [found] = of(engine.analyze_stack([resource]), "dns-identity-zone-scoped")
    assert found.level == "mandatory"


@pytest.mark.parametrize(
    "resource",
    [
        (
            ROLE_POLICY,
            "dns",
            _route53_policy(
                _allow("route53:ChangeResourceRecordSets", ZONE_ARN), _allow("route53:ListHostedZones", "*")
            ),
        ),
        ("gcp:dns/dnsManagedZoneIamMember:DnsManagedZoneIamMember", "dns", {"role": "roles/dns.admin"}),
        ("gcp:projects/iAMMember:IAMMember", "lister", {"role": "projects/p/roles/lister", "member": "x"}),
        (
            "azure-native:authorization:RoleAssignment",
            "dns",
            {
                "roleDefinitionId": "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/"
                "befefa01-2a29-4197-83a8-272ff33ce314",
                "scope": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/dnszones/example.com",
                "principalId": "p",
            },
        ),
    ],
)
def test_a_dns_writer_held_to_the_zone_passes(engine: Engine, resource) -> None:
    assert of(engine.analyze_stack([resource]), "dns-identity-zone-scoped") == []
