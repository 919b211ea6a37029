"""Public names: TLS on every Ingress of a cloud stack, a trusted issuer in prod, DNS writers held to the zone.

With platform:domain, external-dns writes the stack's records and cert-manager its certificates, each through
a cloud identity of its own. Those identities can write DNS, which is how a domain is taken over: each must
be able to write the stack's zone and no other.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..framework import ADVISORY, Findings, dig, items, stack_rule

INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
ISSUERS = ("kubernetes:cert-manager.io/v1:ClusterIssuer", "kubernetes:cert-manager.io/v1:Issuer")
CLOUD_PACKAGES = ("aws", "gcp", "azure-native")
AWS_ROLE_POLICIES = ("aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy")
GCP_PROJECT_GRANTS = ("gcp:projects/iAMMember:IAMMember", "gcp:projects/iAMBinding:IAMBinding")
AZURE_ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"
# Route 53 actions that take no zone (its actions table lists no resource type for them), and GetChange,
# whose resource is a change, not a zone.
ROUTE53_UNSCOPED = frozenset(
    {"route53:ListHostedZones", "route53:ListHostedZonesByName", "route53:GetChange"}
)
# Cloud DNS roles that write records.
GCP_DNS_WRITERS = frozenset({"roles/dns.admin"})
# Azure built-in roles that write DNS records: "DNS Zone Contributor".
AZURE_DNS_WRITERS = frozenset({"befefa01-2a29-4197-83a8-272ff33ce314"})


_TLS_DESCRIPTION = (
    "On a cloud stack (AWS, GCP or Azure resources) every Ingress serves TLS: a tls entry with a Secret "
    "for each of its hosts (platform:domain, or platform:tlsSecretName for your own certificate)."
)


# why: on a cloud the API and the admin UIs are on the internet; without TLS tokens and passwords cross it
# in the clear.
@stack_rule("cloud-ingress-tls", _TLS_DESCRIPTION + " Mandatory in prod.", environment_aware=True)
def cloud_ingress_tls(resources: Sequence[Any], findings: Findings, prod: bool) -> None:
    if prod:
        _check_ingress_tls(resources, findings)


# A dev stack planned on a cloud (the committed dev stack is local) hears of it without being stopped.
@stack_rule(
    "cloud-ingress-tls-dev",
    _TLS_DESCRIPTION + " Advisory outside prod (cloud-ingress-tls decides in prod).",
    level=ADVISORY,
    environment_aware=True,
)
def cloud_ingress_tls_dev(resources: Sequence[Any], findings: Findings, prod: bool) -> None:
    if not prod:
        _check_ingress_tls(resources, findings)


def _check_ingress_tls(resources: Sequence[Any], findings: Findings) -> None:
    if not _on_a_cloud(resources):
        return
    for r in resources:
        if str(r.resource_type) != INGRESS:
            continue
        with findings.verifying():
            name = str(dig(r.props, "metadata", "name", default=r.name))
            covered = {
                str(host)
                for entry in items(dig(r.props, "spec", "tls"))
                if dig(entry, "secretName")
                for host in items(dig(entry, "hosts"))
            }
            hosts = [str(dig(rule, "host")) for rule in items(dig(r.props, "spec", "rules"))]
            if not hosts or any(host not in covered for host in hosts):
                findings.violation(
                    f"Ingress '{name}' serves {', '.join(hosts) or 'every host'} without TLS: set platform:domain "
                    "(or platform:tlsSecretName)",
                    r.urn,
                )


# why: a staging ACME server's certificates and a self-signed one are trusted by no browser or client. A stack
# without cloud resources is the local target, whose CA (platform:localTls) is the point: nothing public
# reaches it, and its developers trust that CA on purpose.
@stack_rule(
    "prod-issuer-trusted",
    "In prod on a cloud stack (AWS, GCP or Azure resources) a cert-manager issuer is an ACME issuer of a "
    "production directory: not a staging one (its certificates chain to a root no client trusts), not "
    "selfSigned, not a private CA.",
    environment_aware=True,
)
def prod_issuer_trusted(resources: Sequence[Any], findings: Findings, prod: bool) -> None:
    if not prod or not _on_a_cloud(resources):
        return
    for r in resources:
        if str(r.resource_type) not in ISSUERS:
            continue
        with findings.verifying():
            problem = _issuer_problem(dig(r.props, "spec", default={}))
            if problem:
                findings.violation(problem, r.urn)


def _issuer_problem(spec: Any) -> str | None:
    if dig(spec, "selfSigned") is not None:
        return "the issuer is selfSigned; use an ACME issuer of a production directory"
    if dig(spec, "ca") is not None:
        return "the issuer is a private CA; use an ACME issuer of a production directory"
    if "staging" in str(dig(spec, "acme", "server", default="")):
        return (
            f"the ACME server {dig(spec, 'acme', 'server')} is a staging directory; "
            "use a production one (platform:acmeServer, or leave it to the prod profile)"
        )
    return None


# why: an identity that may write any zone of the account can take over every domain in it.
@stack_rule(
    "dns-identity-zone-scoped",
    "A cloud identity that writes DNS records writes one zone: an AWS policy changes records of named "
    "hosted zones only (List* and GetChange, which take no zone, aside); roles/dns.admin is granted on a "
    "Cloud DNS managed zone, never on the project; DNS Zone Contributor is assigned on an Azure DNS zone, "
    "never on a group or subscription.",
)
def dns_identity_zone_scoped(resources: Sequence[Any], findings: Findings, prod: bool) -> None:
    for r in resources:
        kind = str(r.resource_type)
        with findings.verifying():
            if kind in AWS_ROLE_POLICIES:
                problem = _route53_problem(dig(r.props, "policy"))
            elif kind in GCP_PROJECT_GRANTS:
                role = str(dig(r.props, "role", default=""))
                problem = f"{role} is granted on the whole project" if role in GCP_DNS_WRITERS else None
            elif kind == AZURE_ROLE_ASSIGNMENT:
                problem = _azure_problem(dig(r.props, "roleDefinitionId"), dig(r.props, "scope"))
            else:
                problem = None
            if problem:
                findings.violation(f"{r.name}: {problem}", r.urn)


def _route53_problem(policy: Any) -> str | None:
    document = json.loads(policy) if isinstance(policy, str) else policy
    for statement in items(dig(document, "Statement")):
        if dig(statement, "Effect") != "Allow":
            continue
        actions = {str(a) for a in _listed(dig(statement, "Action"))}
        writes = {
            a for a in actions if a.startswith("route53:") or a in ("*", "route53:*")
        } - ROUTE53_UNSCOPED
        if not writes:
            continue
        for resource in _listed(dig(statement, "Resource")):
            if not str(resource).startswith("arn:aws:route53:::hostedzone/") or str(resource).endswith("*"):
                return f"{', '.join(sorted(writes))} on {resource}, not on the stack's hosted zone"
    return None


def _azure_problem(role: Any, scope: Any) -> str | None:
    if str(role).rsplit("/", 1)[-1] not in AZURE_DNS_WRITERS:
        return None
    if "/providers/Microsoft.Network/dnszones/" not in str(scope):
        return f"DNS Zone Contributor is assigned on {scope}, not on a DNS zone"
    return None


def _on_a_cloud(resources: Sequence[Any]) -> bool:
    return any(str(r.resource_type).split(":", 1)[0] in CLOUD_PACKAGES for r in resources)


def _listed(value: Any) -> list[Any]:
    return [value] if isinstance(value, str) else items(value)


POLICIES = [cloud_ingress_tls, cloud_ingress_tls_dev, prod_issuer_trusted, dns_identity_zone_scoped]
