"""cert-manager: a certificate for every published host, from one ClusterIssuer.

On a cloud with platform:domain the issuer is the ACME server (Let's Encrypt) by DNS-01 in the stack's zone,
written through cert-manager's own workload identity. DNS-01, not HTTP-01: the ACME server never has to
reach the cluster, so a private cluster and hosts behind the admin allow-list get certificates too
(cert-manager.io/docs/configuration/acme/dns01).

On the local target with platform:localTls the issuer is a CA that cert-manager makes in the cluster: a
self-signed bootstrap Issuer signs the CA's Certificate, whose key cert-manager generates into a Secret in
its own namespace, and a CA ClusterIssuer signs the hosts' certificates with it. Pulumi declares the
Certificate only and never reads that Secret, so the CA's key stays out of state and outputs; `make
local-ca` (tools/local-ca.sh) copies the CA's certificate alone out of the cluster for clients to trust.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pulumi
import pulumi_kubernetes as k8s
from foundation import CERT_MANAGER_ACCOUNT, PublicZone
from kube import ANY_ADDRESS, egress_anywhere, tcp

from cluster import bounds, charts
from cluster.shared import (
    Installation,
    Namespace,
    api_flow,
    base_domain,
    chart_release,
    isolated_namespace,
    zone_key,
)

NAMESPACE, SERVICE_ACCOUNT = CERT_MANAGER_ACCOUNT
RELEASE = "cert-manager"
# The local CA: its Certificate, the Secret cert-manager writes it into (in NAMESPACE, where a ClusterIssuer
# reads its Secret: the chart's --cluster-resource-namespace=$(POD_NAMESPACE)), and its ClusterIssuer.
# tools/local-ca.sh reads the Secret by these names.
LOCAL_CA = "platform-ca"
# Ten years, as cert-manager's own istio-csr example issues its root: the copy a developer trusts outlives
# any local cluster.
LOCAL_CA_DURATION = "87600h"
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


def install(at: Installation, zone: PublicZone | None) -> CertManager:
    """The release with its CRDs, in its namespace (every pod `restricted`), and its ClusterIssuer: the
    profile's ACME issuer in the cloud's public `zone`, or without one (the local target) the local CA."""
    namespace = isolated_namespace(at, NAMESPACE, "restricted", _flows(at, zone))
    values: dict[str, Any] = {
        # The chart's CRDs, kept when the release goes (deleting them would delete every Certificate).
        "crds": {"enabled": True, "keep": True},
    }
    if zone is not None:
        values |= {
            "serviceAccount": {
                "annotations": zone.cert_manager.service_account_annotations,
                "labels": zone.cert_manager.service_account_labels,
            },
            "podLabels": zone.cert_manager.pod_labels,
            # Before it asks for the certificate, cert-manager checks that the challenge record is served.
            # Asked of the cluster's resolver only (from the pod's resolv.conf), or of the zone's own server
            # where the cluster's resolver cannot know the zone, never of name servers it looks up, so its
            # pods need no DNS beyond these (cert-manager.io/docs/configuration/acme/dns01, "Setting
            # Nameservers for DNS01 Self Check").
            "dns01RecursiveNameserversOnly": True,
        }
        if zone.check_nameservers:
            values["dns01RecursiveNameservers"] = ",".join(zone.check_nameservers)
    release = chart_release(
        at,
        charts.CERT_MANAGER,
        RELEASE,
        namespace,
        bounds.merged(values, bounds.cert_manager(at.cfg.is_prod)),
        depends_on=zone_key(at, zone, namespace) if zone is not None else [],
    )
    issuer = _acme_issuer(at, zone, release) if zone is not None else _local_ca(at, namespace, release)
    return CertManager(release, issuer)


def _local_ca(
    at: Installation, namespace: Namespace, release: k8s.helm.v3.Release
) -> k8s.apiextensions.CustomResource:
    """The local CA's ClusterIssuer, and what makes the CA: a self-signed Issuer (namespaced, so nothing
    outside cert-manager's namespace can get a self-signed certificate from it) signing the CA's own
    Certificate (cert-manager.io/docs/configuration/selfsigned, "Bootstrapping CA Issuers")."""
    bootstrap = k8s.apiextensions.CustomResource(
        f"{LOCAL_CA}-bootstrap",
        api_version="cert-manager.io/v1",
        kind="Issuer",
        metadata={"name": f"{LOCAL_CA}-bootstrap", "namespace": namespace.name},
        spec={"selfSigned": {}},
        opts=at.opts(depends_on=[release, *namespace.ready]),
    )
    certificate = k8s.apiextensions.CustomResource(
        f"{LOCAL_CA}-certificate",
        api_version="cert-manager.io/v1",
        kind="Certificate",
        metadata={"name": LOCAL_CA, "namespace": namespace.name},
        spec={
            "isCA": True,
            # A self-signed certificate's issuer is its own subject, which RFC 5280 wants non-empty (the
            # self-signed issuer warns "BadConfig" without one).
            "commonName": f"Product Platform local CA ({at.cfg.stack})",
            "secretName": LOCAL_CA,
            "duration": LOCAL_CA_DURATION,
            # ECDSA P-256: small, and verified by every TLS client. `Never`: a renewal keeps the key, so
            # what the CA signed and the copy a developer trusts still verify; cert-manager re-signs nothing
            # when a CA changes (cert-manager#2478), and `Always` is the default since 1.18 (the CRD).
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Never"},
            # What a developer trusts is held to the stack's own names: with the key copied out of the
            # cluster it signs nothing a client accepts elsewhere (RFC 5280 4.2.1.10; the NameConstraints
            # feature gate is beta and on by default in cert-manager 1.21's controller and webhook).
            "nameConstraints": {"critical": True, "permitted": {"dnsDomains": [base_domain(at.cfg.host)]}},
            "issuerRef": {"group": "cert-manager.io", "kind": "Issuer", "name": bootstrap.metadata["name"]},
        },
        opts=at.opts(depends_on=[bootstrap]),
    )
    return k8s.apiextensions.CustomResource(
        LOCAL_CA,
        api_version="cert-manager.io/v1",
        kind="ClusterIssuer",
        metadata={"name": LOCAL_CA},
        # The CA's certificate and key as cert-manager wrote them: a ClusterIssuer reads this Secret in the
        # cluster resource namespace, cert-manager's own (cert-manager.io/docs/configuration/ca).
        spec={"ca": {"secretName": LOCAL_CA}},
        opts=at.opts(depends_on=[certificate]),
    )


def _acme_issuer(
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
    if at.cfg.acme_ca_bundle:
        # A private ACME server's own HTTPS certificate chains to this CA, not to a root in the image.
        spec["acme"]["caBundle"] = base64.b64encode(at.cfg.acme_ca_bundle.encode()).decode()
    return k8s.apiextensions.CustomResource(
        issuer,
        api_version="cert-manager.io/v1",
        kind="ClusterIssuer",
        metadata={"name": issuer},
        spec=spec,
        opts=at.opts(depends_on=[release]),
    )


def _flows(at: Installation, zone: PublicZone | None) -> dict[str, dict[str, Any]]:
    flows: dict[str, dict[str, Any]] = {"allow-api-server": api_flow(at)}
    if zone is not None:
        # The ACME server (on 443, or its URL's port) and the cloud's DNS API (and its token exchange), at
        # addresses nobody knows; or the DNS server the stack names. The local CA signs inside the cluster.
        acme_port = urlsplit(at.cfg.acme_server).port or 443
        flows["allow-acme-and-dns-api"] = {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [
                egress_anywhere(tuple(sorted({443, acme_port, *zone.credential_ports}))),
                *zone.dns_server_egress,
            ],
        }
    # The API server calls the webhook; its address is not the pod network's.
    flows["allow-webhook-calls"] = {
        "podSelector": {"matchLabels": WEBHOOK_PODS},
        "policyTypes": ["Ingress"],
        "ingress": [{"from": [ANY_ADDRESS], "ports": tcp(WEBHOOK_PORT)}],
    }
    return flows
