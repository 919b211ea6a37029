"""external-dns, where the stack has a domain: the records of every host the Ingresses publish, in the
stack's zone only, written through external-dns's own workload identity."""

from __future__ import annotations

from typing import Any

import pulumi_kubernetes as k8s
from foundation import EXTERNAL_DNS_ACCOUNT, EXTERNAL_DNS_CONFIG_DIR, PublicZone
from kube import egress_anywhere

from cluster import bounds, charts
from cluster.shared import Installation, api_flow, chart_release, isolated_namespace, zone_key

NAMESPACE, SERVICE_ACCOUNT = EXTERNAL_DNS_ACCOUNT
RELEASE = "external-dns"


def install(at: Installation, zone: PublicZone) -> None:
    """The release in its namespace (its one pod `restricted`), reading Ingresses and writing the zone."""
    namespace = isolated_namespace(
        at,
        NAMESPACE,
        "restricted",
        {
            "allow-api-server": api_flow(at),
            "allow-dns-api": {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [egress_anywhere((443, *zone.credential_ports)), *zone.dns_server_egress],
            },
        },
    )
    values: dict[str, Any] = {
        # Ingresses only: their hosts are the published names, and their status carries Traefik's address.
        "sources": ["ingress"],
        "domainFilters": [zone.domain],
        # sync: a host an Ingress stops naming loses its record; the TXT registry marks the records this
        # stack owns (txtOwnerId), and external-dns never touches a record without that mark.
        "policy": "sync",
        "registry": "txt",
        "txtOwnerId": f"{at.cfg.stack}-{at.cfg.cloud}",
        "serviceAccount": {
            "annotations": zone.external_dns.service_account_annotations,
            "labels": zone.external_dns.service_account_labels,
        },
        "podLabels": zone.external_dns.pod_labels,
        **zone.external_dns_values,
    }
    after = zone_key(at, zone, namespace)
    if zone.external_dns_files:
        files = k8s.core.v1.Secret(
            "external-dns-provider",
            metadata={"name": "external-dns-provider", "namespace": NAMESPACE},
            string_data=zone.external_dns_files,
            opts=at.opts(depends_on=namespace.ready),
        )
        after.append(files)
        values["extraVolumes"] = [{"name": "provider", "secret": {"secretName": "external-dns-provider"}}]
        values["extraVolumeMounts"] = [
            {"name": "provider", "mountPath": EXTERNAL_DNS_CONFIG_DIR, "readOnly": True}
        ]
    chart_release(
        at,
        charts.EXTERNAL_DNS,
        RELEASE,
        namespace,
        bounds.merged(values, bounds.external_dns(at.cfg.is_prod)),
        depends_on=after,
    )
