"""GCP guardrails: GKE, Cloud SQL for PostgreSQL and Memorystore for Redis.

Property names are the pulumi-gcp (v10) inputs in camelCase. Cloud SQL assigns a public IPv4
address unless `ipv4Enabled` is false, so that rule needs the explicit value.
"""

from __future__ import annotations

from ..framework import ADVISORY, OPEN_CIDRS, Findings, Subject, dig, items, number, resource_rule

GKE_CLUSTER = "gcp:container/cluster:Cluster"
SQL_INSTANCE = "gcp:sql/databaseInstance:DatabaseInstance"
REDIS_INSTANCE = "gcp:redis/instance:Instance"
SERVICE_NETWORKING_CONNECTION = "gcp:servicenetworking/connection:Connection"
SSL_ONLY_MODES = frozenset({"ENCRYPTED_ONLY", "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"})


# --- GKE ----------------------------------------------------------------------------------------------


# why: nodes with public IPs are reachable from the internet, bypassing every cluster control.
@resource_rule(
    "gcp-gke-private-nodes",
    "GKE nodes have private IPs only (privateClusterConfig.enablePrivateNodes), so no node is "
    "reachable from the internet.",
    (GKE_CLUSTER,),
)
def gke_private_nodes(subject: Subject, findings: Findings) -> None:
    if dig(subject.props, "privateClusterConfig", "enablePrivateNodes") is not True:
        findings.violation("privateClusterConfig.enablePrivateNodes is not true")


# why: the control plane must only answer to known networks, never the whole internet.
@resource_rule(
    "gcp-gke-master-authorized-networks",
    "The GKE control plane accepts only master authorized networks (none of them 0.0.0.0/0), unless "
    "its endpoint is private: the API server is the keys to the cluster.",
    (GKE_CLUSTER,),
)
def gke_master_authorized_networks(subject: Subject, findings: Findings) -> None:
    if dig(subject.props, "privateClusterConfig", "enablePrivateEndpoint") is True:
        return
    config = dig(subject.props, "masterAuthorizedNetworksConfig")
    if config is None:
        findings.violation("masterAuthorizedNetworksConfig is not set, so the API endpoint is open to all")
        return
    cidrs = {str(dig(block, "cidrBlock")) for block in items(dig(config, "cidrBlocks"))}
    if not cidrs:
        findings.violation("masterAuthorizedNetworksConfig lists no cidrBlocks")
    elif cidrs & OPEN_CIDRS:
        findings.violation(f"master authorized networks include {', '.join(sorted(cidrs & OPEN_CIDRS))}")


# why: without Workload Identity pods borrow the node's service account and all its permissions.
@resource_rule(
    "gcp-gke-workload-identity",
    "GKE uses Workload Identity (workloadIdentityConfig.workloadPool), so pods get their own narrow "
    "identities instead of the node's service account.",
    (GKE_CLUSTER,),
)
def gke_workload_identity(subject: Subject, findings: Findings) -> None:
    if not dig(subject.props, "workloadIdentityConfig", "workloadPool"):
        findings.violation("workloadIdentityConfig.workloadPool is not set")


# why: shielded nodes prove their boot chain, so a rootkit cannot impersonate a node.
@resource_rule(
    "gcp-gke-shielded-nodes",
    "GKE shielded nodes stay on (secure boot and integrity monitoring), so a tampered node cannot "
    "join the cluster.",
    (GKE_CLUSTER,),
)
def gke_shielded_nodes(subject: Subject, findings: Findings) -> None:
    if dig(subject.props, "enableShieldedNodes", default=True) is not True:
        findings.violation("enableShieldedNodes is false")


# why: a release channel keeps the control plane and nodes patched (advisory: some pin versions).
@resource_rule(
    "gcp-gke-release-channel",
    "GKE is enrolled in a release channel so security patches arrive without manual upgrades "
    "(advisory: teams with their own upgrade cadence may pin versions).",
    (GKE_CLUSTER,),
    level=ADVISORY,
)
def gke_release_channel(subject: Subject, findings: Findings) -> None:
    channel = dig(subject.props, "releaseChannel", "channel")
    if channel in (None, "", "UNSPECIFIED"):
        findings.violation("releaseChannel.channel is not set")


# why: without an enforcing dataplane the program's NetworkPolicies are silently ignored.
@resource_rule(
    "gcp-gke-network-policy",
    "GKE enforces NetworkPolicies (Dataplane V2, or networkPolicy.enabled): otherwise the program's "
    "NetworkPolicies are accepted and silently ignored.",
    (GKE_CLUSTER,),
)
def gke_network_policy(subject: Subject, findings: Findings) -> None:
    if dig(subject.props, "datapathProvider") == "ADVANCED_DATAPATH":
        return
    if dig(subject.props, "networkPolicy", "enabled") is not True:
        findings.violation("neither Dataplane V2 nor networkPolicy.enabled is set")


# why: legacy ABAC grants broad static permissions that bypass RBAC.
@resource_rule(
    "gcp-gke-no-legacy-abac",
    "GKE legacy ABAC stays off: it grants broad permissions that RBAC cannot restrict.",
    (GKE_CLUSTER,),
)
def gke_no_legacy_abac(subject: Subject, findings: Findings) -> None:
    if dig(subject.props, "enableLegacyAbac") is True:
        findings.violation("enableLegacyAbac is true")


# --- Cloud SQL ----------------------------------------------------------------------------------------


# why: a public IP (the default) or an open authorized network puts the database on the internet.
@resource_rule(
    "gcp-sql-no-public-ip",
    "Cloud SQL has no public IPv4 address (ipv4Enabled false; the default is true) and no 0.0.0.0/0 "
    "authorized network: the database is reached over private IP only.",
    (SQL_INSTANCE,),
)
def sql_no_public_ip(subject: Subject, findings: Findings) -> None:
    ip = dig(subject.props, "settings", "ipConfiguration", default={})
    with findings.verifying():
        if dig(ip, "ipv4Enabled", default=True) is not False:
            findings.violation("settings.ipConfiguration.ipv4Enabled is not false (public IP)")
    with findings.verifying():
        open_networks = [str(dig(n, "value")) for n in items(dig(ip, "authorizedNetworks"))]
        if OPEN_CIDRS & set(open_networks):
            findings.violation("an authorized network is 0.0.0.0/0")


# why: without SSL-only mode a misconfigured client talks to the database in the clear.
@resource_rule(
    "gcp-sql-ssl-required",
    "Cloud SQL accepts only encrypted connections (sslMode ENCRYPTED_ONLY or "
    "TRUSTED_CLIENT_CERTIFICATE_REQUIRED), so no client can send data in the clear.",
    (SQL_INSTANCE,),
)
def sql_ssl_required(subject: Subject, findings: Findings) -> None:
    mode = dig(subject.props, "settings", "ipConfiguration", "sslMode")
    if mode not in SSL_ONLY_MODES:
        findings.violation(f"settings.ipConfiguration.sslMode is {mode or 'unset'}; use ENCRYPTED_ONLY")


# why: backups are the only way back from a bad migration or a dropped table.
@resource_rule(
    "gcp-sql-backups",
    "Cloud SQL takes automated backups and keeps at least 7 (30 in prod): backups are the only way "
    "back from a bad migration or a dropped table.",
    (SQL_INSTANCE,),
    environment_aware=True,
)
def sql_backups(subject: Subject, findings: Findings) -> None:
    backups = dig(subject.props, "settings", "backupConfiguration", default={})
    if dig(backups, "enabled") is not True:
        findings.violation("settings.backupConfiguration.enabled is not true")
        return
    kept = number(dig(backups, "backupRetentionSettings", "retainedBackups", default=7))
    needed = 30 if subject.prod else 7
    if kept is None or kept < needed:
        findings.violation(f"retainedBackups is {kept if kept is None else int(kept)}; needs >= {needed}")


# why: Cloud SQL refuses the whole instance when it would keep fewer backups than days of log.
@resource_rule(
    "gcp-sql-backups-outlast-transaction-logs",
    "Cloud SQL keeps more backups than days of transaction log (retainedBackups > "
    "transactionLogRetentionDays, which defaults to 7): otherwise the API refuses the instance with "
    "'backup retention should be > transaction log retention'.",
    (SQL_INSTANCE,),
)
def sql_backups_outlast_transaction_logs(subject: Subject, findings: Findings) -> None:
    backups = dig(subject.props, "settings", "backupConfiguration", default={})
    if dig(backups, "enabled") is not True:
        return
    kept = number(dig(backups, "backupRetentionSettings", "retainedBackups", default=7))
    log_days = number(dig(backups, "transactionLogRetentionDays", default=7))
    if kept is not None and log_days is not None and kept <= log_days:
        findings.violation(
            f"retainedBackups ({int(kept)}) is not more than transactionLogRetentionDays ({int(log_days)})"
        )


# why: with the per-instance CA the server certificate names no host a client can connect by.
@resource_rule(
    "gcp-sql-verifiable-server-certificate",
    "Cloud SQL certificates come from a CA hierarchy (serverCaMode GOOGLE_MANAGED_CAS_CA or "
    "CUSTOMER_MANAGED_CAS_CA) under which the instance has a DNS name its certificate carries, so "
    "clients that connect by that name can verify the server (sslmode verify-full); the per-instance "
    "CA's certificates name only project:instance.",
    (SQL_INSTANCE,),
)
def sql_verifiable_server_certificate(subject: Subject, findings: Findings) -> None:
    mode = dig(
        subject.props, "settings", "ipConfiguration", "serverCaMode", default="GOOGLE_MANAGED_INTERNAL_CA"
    )
    if mode not in ("GOOGLE_MANAGED_CAS_CA", "CUSTOMER_MANAGED_CAS_CA"):
        findings.violation(f"settings.ipConfiguration.serverCaMode is {mode}; use GOOGLE_MANAGED_CAS_CA")


# why: a zonal prod database loses its service with its zone.
@resource_rule(
    "gcp-sql-regional-ha",
    "In prod, Cloud SQL is REGIONAL (a synchronous standby in another zone), so a zone outage loses "
    "neither the service nor committed data.",
    (SQL_INSTANCE,),
    environment_aware=True,
)
def sql_regional_ha(subject: Subject, findings: Findings) -> None:
    if subject.prod and dig(subject.props, "settings", "availabilityType") != "REGIONAL":
        findings.violation("settings.availabilityType is not REGIONAL in prod")


# why: one mistaken destroy must not take the production database with it.
@resource_rule(
    "gcp-sql-deletion-protection",
    "In prod, Cloud SQL is protected from deletion both by Pulumi (deletionProtection) and by the API "
    "(settings.deletionProtectionEnabled), so no tool can drop it by mistake.",
    (SQL_INSTANCE,),
    environment_aware=True,
)
def sql_deletion_protection(subject: Subject, findings: Findings) -> None:
    if not subject.prod:
        return
    with findings.verifying():
        if dig(subject.props, "deletionProtection", default=True) is not True:
            findings.violation("deletionProtection is false in prod")
    with findings.verifying():
        if dig(subject.props, "settings", "deletionProtectionEnabled") is not True:
            findings.violation("settings.deletionProtectionEnabled is not true in prod")


# why: the peering cannot be deleted while Cloud SQL or Memorystore addresses linger in it.
@resource_rule(
    "gcp-service-networking-abandon",
    "The private services peering is abandoned on destroy (deletionPolicy ABANDON): Google keeps the "
    "producers' addresses for days after their instances go, and deleting the peering meanwhile fails "
    "the whole destroy (advisory).",
    (SERVICE_NETWORKING_CONNECTION,),
    level=ADVISORY,
)
def service_networking_abandon(subject: Subject, findings: Findings) -> None:
    if dig(subject.props, "deletionPolicy") != "ABANDON":
        findings.violation("deletionPolicy is not ABANDON: destroy fails while addresses are held")


# --- Memorystore --------------------------------------------------------------------------------------


# why: without AUTH and TLS anyone on the VPC can read or poison the cache, and sniff it.
@resource_rule(
    "gcp-redis-auth-tls",
    "Memorystore Redis requires AUTH and encrypts in transit (SERVER_AUTHENTICATION), so reaching the "
    "VPC is not enough to read, poison or sniff the cache.",
    (REDIS_INSTANCE,),
)
def redis_auth_tls(subject: Subject, findings: Findings) -> None:
    with findings.verifying():
        if dig(subject.props, "authEnabled") is not True:
            findings.violation("authEnabled is not true")
    with findings.verifying():
        if dig(subject.props, "transitEncryptionMode") != "SERVER_AUTHENTICATION":
            findings.violation("transitEncryptionMode is not SERVER_AUTHENTICATION")


# why: Redis here is a cache, so a lost instance costs latency, not data (advisory).
@resource_rule(
    "gcp-redis-standard-ha",
    "In prod, Memorystore Redis is STANDARD_HA with a replica in another zone (advisory: the cache "
    "holds no unique data).",
    (REDIS_INSTANCE,),
    level=ADVISORY,
    environment_aware=True,
)
def redis_standard_ha(subject: Subject, findings: Findings) -> None:
    if subject.prod and dig(subject.props, "tier") != "STANDARD_HA":
        findings.violation(f"tier is {dig(subject.props, 'tier', default='BASIC')}; prod wants STANDARD_HA")


POLICIES = [
    gke_private_nodes,
    gke_master_authorized_networks,
    gke_workload_identity,
    gke_shielded_nodes,
    gke_release_channel,
    gke_network_policy,
    gke_no_legacy_abac,
    sql_no_public_ip,
    sql_ssl_required,
    sql_backups,
    sql_backups_outlast_transaction_logs,
    sql_verifiable_server_certificate,
    sql_regional_ha,
    sql_deletion_protection,
    service_networking_abandon,
    redis_auth_tls,
    redis_standard_ha,
]
