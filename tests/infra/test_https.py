"""platform:domain: the API, Grafana and Argo CD at HTTPS names in the stack's own zone, records written by
external-dns and certificates by cert-manager, each through an identity that may write that zone only."""

from __future__ import annotations

import json

import pytest
from plan import Plan, PlannedResource

RELEASE = "kubernetes:helm.sh/v3:Release"
CLOUDS = ("aws", "gcp", "azure")
# The committed prod stack names its zone (Pulumi.prod.yaml).
DOMAIN = "example.com"


def _release(plan: Plan, chart: str) -> PlannedResource:
    [release] = [r for r in plan.of_type(RELEASE) if r.inputs["chart"] == chart]
    return release


@pytest.mark.parametrize("cloud", CLOUDS)
def test_every_published_host_gets_a_certificate_from_the_profiles_issuer(plan_for, cloud: str) -> None:
    plan = plan_for(cloud, "prod", adminAllowedCidrs='["198.51.100.0/24"]')
    certificates = {
        (c.metadata["namespace"], tuple(c.inputs["spec"]["dnsNames"])): c.inputs["spec"]
        for c in plan.objects("Certificate")
    }
    assert set(certificates) == {
        ("products", (f"api.{DOMAIN}",)),
        ("monitoring", (f"grafana.{DOMAIN}",)),
        ("argocd", (f"argocd.{DOMAIN}",)),
    }
    for spec in certificates.values():
        assert spec["secretName"] == "platform-tls"
        assert spec["issuerRef"] == {"kind": "ClusterIssuer", "name": "acme-prod"}
    issuer = plan.object("ClusterIssuer", "acme-prod").inputs["spec"]["acme"]
    assert issuer["server"] == "https://acme-v02.api.letsencrypt.org/directory"
    assert issuer["solvers"][0]["selector"] == {"dnsZones": [DOMAIN]}
    [ingress] = [i for i in plan.objects("Ingress", "products") if "grpc" not in i.name]
    assert ingress.inputs["spec"]["tls"] == [{"hosts": [f"api.{DOMAIN}"], "secretName": "platform-tls"}]


def test_a_dev_profile_gets_lets_encrypts_staging_certificates(plan_for) -> None:
    plan = plan_for(
        "aws",
        "dev",
        domain="dev.example.com",
        acmeEmail="ops@example.com",
        apiAllowedCidrs='["203.0.113.0/24"]',
    )
    issuer = plan.object("ClusterIssuer", "acme-dev").inputs["spec"]["acme"]
    assert issuer["server"] == "https://acme-staging-v02.api.letsencrypt.org/directory"


@pytest.mark.parametrize("cloud", CLOUDS)
def test_external_dns_owns_only_the_stacks_records_in_its_zone(plan_for, cloud: str) -> None:
    values = _release(plan_for(cloud, "prod"), "external-dns").inputs["values"]
    assert values["domainFilters"] == [DOMAIN]
    assert values["sources"] == ["ingress"]
    assert (values["registry"], values["txtOwnerId"]) == ("txt", f"prod-{cloud}")


@pytest.mark.parametrize("cloud", CLOUDS)
def test_plain_http_redirects_to_https_with_a_managed_domain(plan_for, cloud: str) -> None:
    web = _release(plan_for(cloud, "prod"), "traefik").inputs["values"]["ports"]["web"]
    assert web["redirections"]["entryPoint"]["scheme"] == "https"


def test_without_a_domain_neither_add_on_is_installed(plan_for) -> None:
    charts = {r.inputs["chart"] for r in plan_for("gcp", "dev").of_type(RELEASE)}
    assert not charts & {"cert-manager", "external-dns"}


def test_aws_dns_roles_change_records_in_the_stacks_zone_only(plan_for) -> None:
    plan = plan_for("aws", "prod")
    zone_id = plan.one("aws:route53/zone:Zone").outputs["zoneId"]
    zone_arn = f"arn:aws:route53:::hostedzone/{zone_id}"
    for name in ("external-dns", "cert-manager"):
        statements = json.loads(plan.one("aws:iam/rolePolicy:RolePolicy", name).inputs["policy"])["Statement"]
        changes = [s for s in statements if "route53:ChangeResourceRecordSets" in json.dumps(s["Action"])]
        assert [s["Resource"] for s in changes] == [zone_arn]
        for statement in statements:
            if statement["Resource"] == "*":
                assert statement["Action"] == "route53:ListHostedZones"
    [cert_manager_change] = [
        s
        for s in json.loads(plan.one("aws:iam/rolePolicy:RolePolicy", "cert-manager").inputs["policy"])[
            "Statement"
        ]
        if s["Action"] == "route53:ChangeResourceRecordSets"
    ]
    assert cert_manager_change["Condition"]["ForAllValues:StringEquals"] == {
        "route53:ChangeResourceRecordSetsRecordTypes": ["TXT"]
    }


def test_gcp_dns_identities_are_admins_of_the_zone_alone(plan_for) -> None:
    plan = plan_for("gcp", "prod")
    zone = plan.one("gcp:dns/managedZone:ManagedZone", "public")
    grants = plan.of_type("gcp:dns/dnsManagedZoneIamMember:DnsManagedZoneIamMember")
    assert {g.name for g in grants} == {"external-dns-zone", "cert-manager-zone"}
    assert {g.inputs["managedZone"] for g in grants} == {zone.inputs["name"]}
    project_grants = [
        g for g in plan.of_type("gcp:projects/iAMMember:IAMMember") if "dns" in json.dumps(g.inputs)
    ]
    assert [g.name for g in project_grants] == ["external-dns-zone-lister"]
    lister = plan.one("gcp:projects/iAMCustomRole:IAMCustomRole")
    assert lister.inputs["permissions"] == ["dns.managedZones.list"]


def test_azure_dns_identities_are_zone_contributors_on_the_zone_alone(plan_for) -> None:
    plan = plan_for("azure", "prod")
    plan.one("azure-native:dns:Zone", "public")
    grants = [
        r for r in plan.of_type("azure-native:authorization:RoleAssignment") if r.name.endswith("-dns-zone")
    ]
    assert len(grants) == 2
    for grant in grants:
        assert grant.inputs["scope"].endswith(f"/providers/Microsoft.Network/dnszones/{DOMAIN}")
        assert grant.inputs["roleDefinitionId"].endswith("befefa01-2a29-4197-83a8-272ff33ce314")
    subjects = {
        r.inputs["subject"] for r in plan.of_type("azure-native:managedidentity:FederatedIdentityCredential")
    }
    assert subjects == {
        "system:serviceaccount:external-dns:external-dns",
        "system:serviceaccount:cert-manager:cert-manager",
    }
