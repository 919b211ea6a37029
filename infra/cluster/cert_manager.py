"""cert-manager, where the stack has a domain: a certificate for every published host from the ACME server
(Let's Encrypt) by DNS-01 in the stack's zone, written through cert-manager's own workload identity.

DNS-01, not HTTP-01: the ACME server never has to reach the cluster, so a private cluster and hosts behind
the admin allow-list get certificates too (cert-manager.io/docs/configuration/acme/dns01).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from foundation import CERT_MANAGER_ACCOUNT, PublicZone
from kube import ANY_ADDRESS, egress_anywhere, tcp

from cluster import bounds, charts
from cluster.shared import Installation, api_flow, chart_release, isolated_namespace

NAMESPACE, SERVICE_ACCOUNT = CERT_MANAGER_ACCOUNT
RELEASE = "cert-manager"
# The chart's webhook listens on 10250 (webhook.securePort), a port GKE's control plane may reach on nodes.
WEBHOOK_PORT = 10250
WEBHOOK_PODS = {"app.kubernetes.io/component": "webhook"}


@dataclass(frozen=True)
class CertManager:
    release: k8s.helm.v3.Release  # its CRDs exist once it is installed
    issuer: k8s.apiextensions.CustomResource

    def certificate(
        self, at: Installation, name: str, host: str, namespace: str, after: list[pulumi.Resource]
    ) -> k8s.apiextensions.CustomResource:
        """A Certificate for `host`, written as the stack's TLS Secret into `namespace` (the Ingress's),
        once `after` (that namespace among them) exists."""
        return k8s.apiextensions.CustomResource(
            f"{name}-certificate",
            api_version="cert-manager.io/v1",
            kind="Certificate",
            metadata={"name": name, "namespace": namespace},
            spec={
                "secretName": at.cfg.tls_secret_name,
                "dnsNames": [host],
                "issuerRef": {"kind": "ClusterIssuer", "name": self.issuer.metadata["name"]},
            },
            opts=at.opts(depends_on=[self.issuer, *after]),
        )


def install(at: Installation, zone: PublicZone) -> CertManager:
    """The release with its CRDs, in its namespace (every pod `restricted`), and the profile's ClusterIssuer."""
    namespace = isolated_namespace(at, NAMESPACE, "restricted", _flows(at, zone))
    values = {
        # The chart's CRDs, kept when the release goes (deleting them would delete every Certificate).
        "crds": {"enabled": True, "keep": True},
        "serviceAccount": {
            "annotations": zone.cert_manager.service_account_annotations,
            "labels": zone.cert_manager.service_account_labels,
        },
        "podLabels": zone.cert_manager.pod_labels,
        # Before it asks for the certificate, cert-manager checks that the challenge record is served. Asked
        # of the cluster's resolver only (from the pod's resolv.conf), not of the zone's own name servers,
        # so its pods need no DNS beyond the cluster's (cert-manager.io/docs/configuration/acme/dns01,
        # "Setting Nameservers for DNS01 Self Check").
        "dns01RecursiveNameserversOnly": True,
    }
    release = chart_release(
        at,
        charts.CERT_MANAGER,
        RELEASE,
        namespace,
        bounds.merged(values, bounds.cert_manager(at.cfg.is_prod)),
    )
    return CertManager(release, _cluster_issuer(at, zone, release))


def _cluster_issuer(
    at: Installation, zone: PublicZone, release: k8s.helm.v3.Release
) -> k8s.apiextensions.CustomResource:
    """One ACME ClusterIssuer per profile (Let's Encrypt production in prod, its staging elsewhere),
    solving DNS-01 in the stack's zone only."""
    issuer = f"acme-{at.cfg.profile}"
    spec: dict[str, Any] = {
        "acme": {
            "server": at.cfg.acme_server,
            "email": at.cfg.acme_email,
            # The ACME account's key, made and kept by cert-manager in its namespace.
            "privateKeySecretRef": {"name": f"{issuer}-account-key"},
            "solvers": [{"selector": {"dnsZones": [zone.domain]}, "dns01": zone.dns01_solver}],
        }
    }
    return k8s.apiextensions.CustomResource(
        issuer,
        api_version="cert-manager.io/v1",
        kind="ClusterIssuer",
        metadata={"name": issuer},
        spec=spec,
        opts=at.opts(depends_on=[release]),
    )


def _flows(at: Installation, zone: PublicZone) -> dict[str, dict[str, Any]]:
    return {
        "allow-api-server": api_flow(at),
        # The ACME server and the cloud's DNS API (and its token exchange), on 443 at addresses nobody knows.
        "allow-acme-and-dns-api": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [egress_anywhere((443, *zone.credential_ports))],
        },
        # The API server calls the webhook; its address is not the pod network's.
        "allow-webhook-calls": {
            "podSelector": {"matchLabels": WEBHOOK_PODS},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [ANY_ADDRESS], "ports": tcp(WEBHOOK_PORT)}],
        },
    }
