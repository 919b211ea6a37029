"""platform:domain: the API, Grafana and Argo CD at HTTPS names in the stack's own zone, records written by
external-dns and certificates by cert-manager, each through an identity that may write that zone only."""

from __future__ import annotations

import base64
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


# --- the local target: platform:localTls, certificates from a CA cert-manager makes in the cluster ---

LOCAL_TLS = {"localTls": "true", "adminAllowedCidrs": '["127.0.0.1/32"]'}


def test_local_tls_signs_every_published_host_with_the_platforms_ca(plan_for) -> None:
    plan = plan_for("local", "dev", **LOCAL_TLS)
    assert _release(plan, "cert-manager").inputs["version"] == "v1.21.1"
    certificates = {c.metadata["namespace"]: c.inputs["spec"] for c in plan.objects("Certificate")}
    ca = certificates.pop("cert-manager")
    assert {ns: spec["dnsNames"] for ns, spec in certificates.items()} == {
        "products": ["api.dev.localtest.me"],
        "monitoring": ["grafana.dev.localtest.me"],
        "argocd": ["argocd.dev.localtest.me"],
    }
    for spec in certificates.values():
        assert spec["secretName"] == "platform-tls"
        assert spec["issuerRef"] == {"kind": "ClusterIssuer", "name": "platform-ca"}
    assert plan.object("ClusterIssuer", "platform-ca").inputs["spec"] == {"ca": {"secretName": "platform-ca"}}
    # The CA itself: self-signed by an Issuer that only cert-manager's namespace can use.
    assert ca["isCA"] is True and ca["secretName"] == "platform-ca"
    assert ca["issuerRef"] == {"group": "cert-manager.io", "kind": "Issuer", "name": "platform-ca-bootstrap"}
    bootstrap = plan.object("Issuer", "platform-ca-bootstrap")
    assert (bootstrap.metadata["namespace"], bootstrap.inputs["spec"]) == ("cert-manager", {"selfSigned": {}})
    assert [i.metadata["name"] for i in plan.objects("ClusterIssuer")] == ["platform-ca"]


def test_the_local_ca_signs_only_the_stacks_own_names_and_keeps_its_key_on_renewal(plan_for) -> None:
    spec = plan_for("local", "dev", **LOCAL_TLS).object("Certificate", "platform-ca").inputs["spec"]
    assert spec["nameConstraints"] == {"critical": True, "permitted": {"dnsDomains": ["dev.localtest.me"]}}
    assert spec["privateKey"]["rotationPolicy"] == "Never"
    assert spec["commonName"]
    domain = plan_for("local", "dev", localTls="true", domain="shop.example.com")
    constrained = domain.object("Certificate", "platform-ca").inputs["spec"]["nameConstraints"]
    assert constrained["permitted"]["dnsDomains"] == ["shop.example.com"]
    [api] = [c for c in domain.objects("Certificate", "products")]
    assert api.inputs["spec"]["dnsNames"] == ["api.shop.example.com"]


def test_pulumi_never_holds_the_local_cas_key(plan_for) -> None:
    plan = plan_for("local", "dev", **LOCAL_TLS)
    # cert-manager generates the key into a Secret of its own: the program declares none there, and its
    # output says where the certificate alone is copied to.
    assert not plan.objects("Secret", "cert-manager")
    assert "tls.key" not in json.dumps([r.inputs for r in plan.resources])
    assert plan.outputs["ca_certificate"] == "build/dev-ca.crt after `make local-ca STACK=dev`"


def test_with_local_tls_the_ingresses_serve_https_and_plain_http_redirects(plan_for) -> None:
    plan = plan_for("local", "dev", **LOCAL_TLS)
    for ingress in plan.objects("Ingress", "products"):
        assert ingress.inputs["spec"]["tls"] == [
            {"hosts": ["api.dev.localtest.me"], "secretName": "platform-tls"}
        ]
    web = _release(plan, "traefik").inputs["values"]["ports"]["web"]
    assert web["redirections"]["entryPoint"]["scheme"] == "https"
    assert plan.outputs["api_url"] == "https://api.dev.localtest.me"
    assert plan.outputs["grafana_url"] == "https://grafana.dev.localtest.me"


def test_the_local_ca_needs_no_way_out_of_the_cluster(plan_for) -> None:
    plan = plan_for("local", "dev", **LOCAL_TLS)
    policies = {p.metadata["name"] for p in plan.objects("NetworkPolicy", "cert-manager")}
    assert policies == {"default-deny", "allow-dns", "allow-api-server", "allow-webhook-calls"}
    values = _release(plan, "cert-manager").inputs["values"]
    assert "dns01RecursiveNameserversOnly" not in values and "serviceAccount" not in values
    assert "external-dns" not in {r.inputs["chart"] for r in plan.of_type(RELEASE)}


def test_the_local_target_is_plain_http_unless_local_tls_is_on(plan_for) -> None:
    plan = plan_for("local", "dev")
    assert not {r.inputs["chart"] for r in plan.of_type(RELEASE)} & {"cert-manager", "external-dns"}
    assert not plan.objects("Certificate") and not plan.objects("ClusterIssuer")
    assert plan.outputs["api_url"] == "http://api.dev.localtest.me"
    assert "ca_certificate" not in plan.outputs


def test_local_tls_is_ignored_on_a_cloud_with_a_warning(plan_for) -> None:
    plan = plan_for("aws", "dev", localTls="true")
    assert not plan.objects("Certificate") and "ca_certificate" not in plan.outputs
    assert any("platform:localTls applies to the local target only" in w for w in plan.warnings)


# --- the local target with platform:dnsServer: a zone on a DNS server that takes RFC 2136 updates ---

TSIG_SECRET = "c2VjcmV0LWtleS1vZi10aGUtem9uZQ=="
LOCAL_ZONE = {
    "domain": "shop.test",
    "acmeEmail": "ops@shop.test",
    "acmeServer": "https://acme.shop.test:14000/dir",
    "dnsServer": "192.0.2.53:5353",
    "dnsTsigKeyName": "platform-dev",
    "dnsTsigSecret": TSIG_SECRET,
    "ingressAddress": "192.0.2.80",
    "adminAllowedCidrs": '["127.0.0.1/32"]',
}


def test_a_local_zone_gets_every_hosts_certificate_by_acme_dns01_on_its_own_server(plan_for) -> None:
    plan = plan_for("local", "dev", **LOCAL_ZONE)
    hosts = {c.metadata["namespace"]: c.inputs["spec"]["dnsNames"] for c in plan.objects("Certificate")}
    assert hosts == {
        "products": ["api.shop.test"],
        "monitoring": ["grafana.shop.test"],
        "argocd": ["argocd.shop.test"],
    }
    acme = plan.object("ClusterIssuer", "acme-dev").inputs["spec"]["acme"]
    assert acme["server"] == "https://acme.shop.test:14000/dir"
    assert acme["solvers"] == [
        {
            "selector": {"dnsZones": ["shop.test"]},
            "dns01": {
                "rfc2136": {
                    "nameserver": "192.0.2.53:5353",
                    "tsigKeyName": "platform-dev",
                    "tsigAlgorithm": "HMACSHA256",
                    "tsigSecretSecretRef": {"name": "dns-zone-key", "key": "secret"},
                }
            },
        }
    ]
    assert "caBundle" not in acme
    # The challenge's record is checked on the zone's own server: the cluster's resolver does not know it.
    values = _release(plan, "cert-manager").inputs["values"]
    assert (values["dns01RecursiveNameservers"], values["dns01RecursiveNameserversOnly"]) == (
        "192.0.2.53:5353",
        True,
    )
    assert plan.outputs["api_url"] == "https://api.shop.test"


def test_external_dns_updates_the_local_zone_with_the_key_from_a_secret(plan_for) -> None:
    plan = plan_for("local", "dev", **LOCAL_ZONE)
    values = _release(plan, "external-dns").inputs["values"]
    assert values["provider"] == {"name": "rfc2136"}
    assert values["domainFilters"] == ["shop.test"]
    assert set(values["extraArgs"]) == {
        "--rfc2136-host=192.0.2.53",
        "--rfc2136-port=5353",
        "--rfc2136-zone=shop.test",
        "--rfc2136-tsig-keyname=platform-dev",
        "--rfc2136-tsig-secret-alg=hmac-sha256",
        "--rfc2136-tsig-axfr",
    }
    assert values["env"] == [
        {
            "name": "EXTERNAL_DNS_RFC2136_TSIG_SECRET",
            "valueFrom": {"secretKeyRef": {"name": "dns-zone-key", "key": "secret"}},
        }
    ]
    # The key is in the two add-ons' Secrets only, and a secret there.
    for namespace in ("external-dns", "cert-manager"):
        [key] = plan.objects("Secret", namespace)
        assert key.metadata["name"] == "dns-zone-key" and key.is_secret(("stringData", "secret"))
    releases = json.dumps([r.inputs for r in plan.of_type(RELEASE)])
    assert TSIG_SECRET not in releases


def test_traefik_publishes_the_ingress_address_the_local_records_point_at(plan_for) -> None:
    values = _release(plan_for("local", "dev", **LOCAL_ZONE), "traefik").inputs["values"]
    assert values["providers"]["kubernetesIngress"]["publishedService"] == {"enabled": False}
    assert values["additionalArguments"] == ["--providers.kubernetesingress.ingressendpoint.ip=192.0.2.80"]
    assert values["ports"]["web"]["redirections"]["entryPoint"]["scheme"] == "https"


def test_the_local_zones_writers_reach_its_server_and_the_acme_servers_port_only(plan_for) -> None:
    plan = plan_for("local", "dev", **LOCAL_ZONE)
    to_server = {
        "to": [{"ipBlock": {"cidr": "192.0.2.53/32"}}],
        "ports": [{"protocol": "UDP", "port": 5353}, {"protocol": "TCP", "port": 5353}],
    }
    for namespace, policy, ports in (
        ("external-dns", "allow-dns-api", [443]),
        ("cert-manager", "allow-acme-and-dns-api", [443, 14000]),
    ):
        [isolation] = [p for p in plan.objects("NetworkPolicy", namespace) if p.metadata["name"] == policy]
        egress = isolation.inputs["spec"]["egress"]
        assert [p["port"] for p in egress[0]["ports"]] == ports
        assert egress[1:] == [to_server]


def test_a_private_acme_servers_ca_is_the_issuers_ca_bundle(plan_for) -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n"
    acme = plan_for("local", "dev", **LOCAL_ZONE, acmeCaBundle=pem).object("ClusterIssuer", "acme-dev")
    assert base64.b64decode(acme.inputs["spec"]["acme"]["caBundle"]).decode() == pem


def test_a_dns_server_is_ignored_on_a_cloud_with_a_warning(plan_for) -> None:
    plan = plan_for("aws", "dev", dnsServer="192.0.2.53", apiAllowedCidrs='["203.0.113.0/24"]')
    assert not plan.objects("Certificate")
    assert any("platform:dnsServer applies to the local target only" in w for w in plan.warnings)
