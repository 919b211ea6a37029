"""Azure guardrails: AKS, Azure Database for PostgreSQL Flexible Server and Azure Managed Redis.

Property names are the azure-native (v3) inputs in camelCase; type tokens with an explicit API
version (`azure-native:redisenterprise/v20250701:RedisEnterprise`) are covered by the default
module's rule. The program declares no Azure Cache for Redis (`azure-native:redis:Redis`), which new
tenants can no longer create, so no rule covers it.
"""

from __future__ import annotations

from ..framework import OPEN_CIDRS, Findings, Subject, dig, items, number, resource_rule

AKS_CLUSTER = "azure-native:containerservice:ManagedCluster"
POSTGRES_SERVER = "azure-native:dbforpostgresql:Server"
REDIS_CLUSTER = "azure-native:redisenterprise:RedisEnterprise"
REDIS_DATABASE = "azure-native:redisenterprise:Database"
ENFORCING_NETWORK_POLICIES = frozenset({"azure", "calico", "cilium"})
HA_MODES = frozenset({"ZoneRedundant", "SameZone"})


# --- AKS ----------------------------------------------------------------------------------------------


# why: the API server is the keys to the cluster; it must not answer the whole internet.
@resource_rule(
    "azure-aks-api-server-restricted",
    "The AKS API server is private or limited to authorized IP ranges (none of them 0.0.0.0/0): the "
    "API server is the keys to the cluster.",
    (AKS_CLUSTER,),
)
def aks_api_server_restricted(subject: Subject, findings: Findings) -> None:
    access = dig(subject.props, "apiServerAccessProfile", default={})
    if dig(access, "enablePrivateCluster") is True:
        return
    ranges = {str(r) for r in items(dig(access, "authorizedIPRanges"))}
    if not ranges:
        findings.violation("the API server is public with no authorizedIPRanges")
    elif ranges & OPEN_CIDRS:
        findings.violation(f"authorizedIPRanges include {', '.join(sorted(ranges & OPEN_CIDRS))}")


# why: without a network policy engine the program's NetworkPolicies are silently ignored.
@resource_rule(
    "azure-aks-network-policy",
    "AKS runs a network policy engine (azure, calico or cilium): without one the program's "
    "NetworkPolicies are accepted and silently ignored.",
    (AKS_CLUSTER,),
)
def aks_network_policy(subject: Subject, findings: Findings) -> None:
    engine = dig(subject.props, "networkProfile", "networkPolicy")
    if engine not in ENFORCING_NETWORK_POLICIES:
        findings.violation(
            f"networkProfile.networkPolicy is {engine or 'unset'}; use azure, calico or cilium"
        )


# why: local accounts are shared static credentials that bypass Entra ID, MFA and revocation.
@resource_rule(
    "azure-aks-entra-rbac",
    "AKS disables local accounts and authorizes through Entra ID with Azure RBAC: the local admin "
    "kubeconfig is a shared static credential that bypasses MFA and revocation.",
    (AKS_CLUSTER,),
)
def aks_entra_rbac(subject: Subject, findings: Findings) -> None:
    with findings.verifying():
        if dig(subject.props, "disableLocalAccounts") is not True:
            findings.violation("disableLocalAccounts is not true")
    with findings.verifying():
        if dig(subject.props, "aadProfile", "enableAzureRBAC") is not True:
            findings.violation("aadProfile.enableAzureRBAC is not true")
    with findings.verifying():
        if dig(subject.props, "enableRBAC", default=True) is not True:
            findings.violation("enableRBAC is false")


# --- PostgreSQL Flexible Server -----------------------------------------------------------------------


# why: a database with a public endpoint is one leaked password away from the internet.
@resource_rule(
    "azure-postgres-no-public-access",
    "PostgreSQL Flexible Server has public network access disabled (VNet integration or private "
    "endpoint only): a public endpoint is one leaked password away from the internet.",
    (POSTGRES_SERVER,),
)
def postgres_no_public_access(subject: Subject, findings: Findings) -> None:
    network = dig(subject.props, "network", default={})
    if dig(network, "publicNetworkAccess") == "Disabled":
        return
    if dig(network, "delegatedSubnetResourceId") and dig(network, "publicNetworkAccess") is None:
        return  # VNet-integrated servers cannot have public access
    findings.violation("network.publicNetworkAccess is not Disabled")


# why: backups are the only way back from a bad migration; geo-redundancy survives a region loss.
@resource_rule(
    "azure-postgres-backup",
    "PostgreSQL Flexible Server keeps backups at least 7 days (30 in prod) and, in prod, geo-redundant, "
    "so neither a bad migration nor a regional outage loses the data.",
    (POSTGRES_SERVER,),
    environment_aware=True,
)
def postgres_backup(subject: Subject, findings: Findings) -> None:
    backup = dig(subject.props, "backup", default={})
    with findings.verifying():
        days = number(dig(backup, "backupRetentionDays", default=7))
        needed = 30 if subject.prod else 7
        if days is None or days < needed:
            findings.violation(
                f"backup.backupRetentionDays is {days if days is None else int(days)}; needs >= {needed}"
            )
    with findings.verifying():
        if subject.prod and dig(backup, "geoRedundantBackup") != "Enabled":
            findings.violation("backup.geoRedundantBackup is not Enabled in prod")


# why: a single-zone prod database loses its service (and unreplicated writes) with its zone.
@resource_rule(
    "azure-postgres-high-availability",
    "In prod, PostgreSQL Flexible Server runs a zone-redundant (or same-zone) standby, so a failure "
    "loses neither the service nor committed data.",
    (POSTGRES_SERVER,),
    environment_aware=True,
)
def postgres_high_availability(subject: Subject, findings: Findings) -> None:
    if subject.prod and dig(subject.props, "highAvailability", "mode") not in HA_MODES:
        findings.violation("highAvailability.mode is not ZoneRedundant in prod")


# --- Azure Managed Redis -----------------------------------------------------------------------------


# why: plaintext or old TLS versions expose the access key and cached data on the wire.
@resource_rule(
    "azure-redis-tls-only",
    "Azure Managed Redis requires TLS 1.2 or later on the cluster and the Encrypted client protocol "
    "on its database, so the access key and cached data never cross the network in the clear.",
    (REDIS_CLUSTER, REDIS_DATABASE),
)
def redis_tls_only(subject: Subject, findings: Findings) -> None:
    if subject.type == REDIS_DATABASE:
        protocol = dig(subject.props, "clientProtocol", default="Encrypted")  # the API's default
        if protocol != "Encrypted":
            findings.violation(f"clientProtocol is {protocol}; use Encrypted")
        return
    version = number(dig(subject.props, "minimumTlsVersion"))
    if version is None or version < 1.2:
        findings.violation(
            f"minimumTlsVersion is {dig(subject.props, 'minimumTlsVersion') or 'unset'}; use 1.2"
        )


# why: a public cache endpoint plus one leaked access key is the whole cache.
@resource_rule(
    "azure-redis-no-public-access",
    "Azure Managed Redis has public network access disabled and is reached through a private "
    "endpoint only: a public endpoint plus one leaked access key is the whole cache.",
    (REDIS_CLUSTER,),
)
def redis_no_public_access(subject: Subject, findings: Findings) -> None:
    if dig(subject.props, "publicNetworkAccess") != "Disabled":
        findings.violation(f"publicNetworkAccess is {dig(subject.props, 'publicNetworkAccess') or 'unset'}")


POLICIES = [
    aks_api_server_restricted,
    aks_network_policy,
    aks_entra_rbac,
    postgres_no_public_access,
    postgres_backup,
    postgres_high_availability,
    redis_tls_only,
    redis_no_public_access,
]
