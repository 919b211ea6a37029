"""AWS guardrails: EKS, RDS PostgreSQL, ElastiCache Redis, security groups and KMS.

Property names are the pulumi-aws (v7) inputs in camelCase. Where the provider's default is the
unsafe choice (EKS public endpoint open to the world, RDS SSL optional before PostgreSQL 15), the
rule requires the property to be set explicitly.
"""

from __future__ import annotations

import re
from typing import Any

from ..framework import ADVISORY, OPEN_CIDRS, Findings, Subject, dig, items, number, resource_rule

EKS_CLUSTER = "aws:eks/cluster:Cluster"
RDS_INSTANCE = "aws:rds/instance:Instance"
RDS_CLUSTER = "aws:rds/cluster:Cluster"
RDS_TYPES = (RDS_INSTANCE, RDS_CLUSTER)
RDS_PARAMETER_GROUP = "aws:rds/parameterGroup:ParameterGroup"
RDS_CLUSTER_PARAMETER_GROUP = "aws:rds/clusterParameterGroup:ClusterParameterGroup"
REPLICATION_GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
CACHE_CLUSTER = "aws:elasticache/cluster:Cluster"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
SECURITY_GROUP_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
KMS_KEY = "aws:kms/key:Key"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
# The log types an incident responder needs: who called the API, who authenticated, what changed.
REQUIRED_EKS_LOGS = ("api", "audit", "authenticator")
WEB_PORTS = frozenset({80, 443})
LOAD_BALANCER_WORDS = re.compile(r"(?i)(\b|_|-)(lb|alb|nlb|elb|load.?balancer|ingress)(\b|_|-)")


# --- EKS ----------------------------------------------------------------------------------------------


# why: the Kubernetes API is the keys to the cluster; the provider default is open to 0.0.0.0/0.
@resource_rule(
    "aws-eks-endpoint-restricted",
    "The EKS API endpoint is private, or public only to listed CIDRs (never 0.0.0.0/0, the default): "
    "the API server is the keys to the cluster.",
    (EKS_CLUSTER,),
)
def eks_endpoint_restricted(subject: Subject, findings: Findings) -> None:
    vpc = dig(subject.props, "vpcConfig", default={})
    if dig(vpc, "endpointPublicAccess", default=True) is False:
        return
    cidrs = [str(c) for c in items(dig(vpc, "publicAccessCidrs"))]
    if not cidrs:
        findings.violation("the public API endpoint has no publicAccessCidrs, so it is open to 0.0.0.0/0")
    elif OPEN_CIDRS & set(cidrs):
        findings.violation(f"the public API endpoint is open to {', '.join(sorted(OPEN_CIDRS & set(cidrs)))}")


# why: Kubernetes Secrets sit in etcd; envelope encryption with a KMS key keeps them unreadable at rest.
@resource_rule(
    "aws-eks-secrets-encryption",
    "EKS encrypts Kubernetes Secrets with a KMS key (encryptionConfig with resources [secrets]), so "
    "the database passwords in etcd are not readable from its storage or backups.",
    (EKS_CLUSTER,),
)
def eks_secrets_encryption(subject: Subject, findings: Findings) -> None:
    config = dig(subject.props, "encryptionConfig", default={})
    if "secrets" not in [str(r) for r in items(dig(config, "resources"))] or not dig(
        config, "provider", "keyArn"
    ):
        findings.violation("encryptionConfig does not encrypt 'secrets' with a KMS key")


# why: without control-plane logs nobody can tell afterwards who did what to the cluster.
@resource_rule(
    "aws-eks-control-plane-logs",
    "EKS ships api, audit and authenticator control-plane logs, without which nobody can reconstruct "
    "who did what to the cluster after an incident.",
    (EKS_CLUSTER,),
)
def eks_control_plane_logs(subject: Subject, findings: Findings) -> None:
    enabled = {str(t) for t in items(dig(subject.props, "enabledClusterLogTypes"))}
    missing = [t for t in REQUIRED_EKS_LOGS if t not in enabled]
    if missing:
        findings.violation(f"enabledClusterLogTypes lacks {', '.join(missing)}")


# why: with the upgrade policy unset EKS moves a cluster past standard support into paid extended support.
@resource_rule(
    "aws-eks-standard-support",
    "EKS clusters set upgradePolicy.supportType STANDARD: unset, EKS enrols them in extended support "
    "and bills every cluster hour past standard support instead of upgrading them.",
    (EKS_CLUSTER,),
)
def eks_standard_support(subject: Subject, findings: Findings) -> None:
    support = dig(subject.props, "upgradePolicy", "supportType", default="EXTENDED")  # the EKS default
    if support != "STANDARD":
        findings.violation(f"upgradePolicy.supportType is {support}; use STANDARD")


# --- RDS ----------------------------------------------------------------------------------------------


# why: a database with a public address is one leaked password away from the internet.
@resource_rule(
    "aws-rds-not-public",
    "RDS databases are not publicly accessible: with a public address the database is one leaked "
    "password away from the internet.",
    (RDS_INSTANCE,),
)
def rds_not_public(subject: Subject, findings: Findings) -> None:
    if dig(subject.props, "publiclyAccessible") is True:
        findings.violation("publiclyAccessible is true")


# why: unencrypted storage exposes data through snapshots, disks and backups.
@resource_rule(
    "aws-rds-storage-encrypted",
    "RDS storage is encrypted (storageEncrypted), so snapshots and disks never hold data in the clear.",
    RDS_TYPES,
)
def rds_storage_encrypted(subject: Subject, findings: Findings) -> None:
    if dig(subject.props, "storageEncrypted") is not True:
        findings.violation("storageEncrypted is not true")


# why: backups are the only way back from a bad migration or a deleted table.
@resource_rule(
    "aws-rds-backup-retention",
    "RDS keeps automated backups for at least 7 days (30 in prod): backups are the only way back from "
    "a bad migration or a dropped table.",
    RDS_TYPES,
    environment_aware=True,
)
def rds_backup_retention(subject: Subject, findings: Findings) -> None:
    days = number(
        dig(subject.props, "backupRetentionPeriod", default=1 if subject.type == RDS_CLUSTER else 0)
    )
    needed = 30 if subject.prod else 7
    if days is None or days < needed:
        findings.violation(
            f"backupRetentionPeriod is {days if days is None else int(days)} days; needs >= {needed}"
        )


# why: a single-AZ prod database loses its data and its service with its zone.
@resource_rule(
    "aws-rds-multi-az",
    "In prod, RDS instances are Multi-AZ, with a synchronous standby in another zone, so a zone outage "
    "loses neither the service nor committed data.",
    (RDS_INSTANCE,),
    environment_aware=True,
)
def rds_multi_az(subject: Subject, findings: Findings) -> None:
    if subject.prod and dig(subject.props, "multiAz") is not True:
        findings.violation("multiAz is not true in prod")


# why: one mistaken destroy must not take the production database with it.
@resource_rule(
    "aws-rds-deletion-protection",
    "In prod, RDS has deletion protection, so one mistaken destroy or replace cannot drop the database.",
    RDS_TYPES,
    environment_aware=True,
)
def rds_deletion_protection(subject: Subject, findings: Findings) -> None:
    if subject.prod and dig(subject.props, "deletionProtection") is not True:
        findings.violation("deletionProtection is not true in prod")


# why: without rds.force_ssl a misconfigured client sends passwords and data unencrypted.
@resource_rule(
    "aws-rds-ssl-enforced",
    "PostgreSQL on RDS refuses non-TLS connections (rds.force_ssl = 1: the default from PostgreSQL 15, "
    "and required in every custom parameter group), so no client can talk to it in the clear.",
    (RDS_INSTANCE, RDS_PARAMETER_GROUP, RDS_CLUSTER_PARAMETER_GROUP),
)
def rds_ssl_enforced(subject: Subject, findings: Findings) -> None:
    props = subject.props
    if subject.type == RDS_INSTANCE:
        if "postgres" not in str(dig(props, "engine", default="")):
            return
        major = number(str(dig(props, "engineVersion", default="0")).split(".")[0]) or 0
        group = str(dig(props, "parameterGroupName", default=""))
        if major < 15 and (not group or group.startswith("default.")):
            findings.violation(
                f"PostgreSQL {dig(props, 'engineVersion')} with the default parameter group does not force SSL"
            )
        return
    if "postgres" not in str(dig(props, "family", default="")):
        return
    forced = [
        p
        for p in items(dig(props, "parameters"))
        if dig(p, "name") == "rds.force_ssl" and str(dig(p, "value")) == "1"
    ]
    if not forced:
        findings.violation("the PostgreSQL parameter group does not set rds.force_ssl = 1")


# --- ElastiCache --------------------------------------------------------------------------------------


# why: cached rows are the database's data; plain-text Redis leaks them on disk and on the wire.
@resource_rule(
    "aws-elasticache-encryption",
    "ElastiCache Redis encrypts at rest and in transit (transitEncryptionMode required, not preferred): "
    "cached rows are the database's data.",
    (REPLICATION_GROUP, CACHE_CLUSTER),
)
def elasticache_encryption(subject: Subject, findings: Findings) -> None:
    props = subject.props
    if subject.type == CACHE_CLUSTER:
        if dig(props, "engine") in ("redis", "valkey") and not dig(props, "replicationGroupId"):
            findings.violation("a standalone Redis cache cluster cannot encrypt; use a replication group")
        return
    with findings.verifying():
        if dig(props, "atRestEncryptionEnabled") is not True:
            findings.violation("atRestEncryptionEnabled is not true")
    with findings.verifying():
        if dig(props, "transitEncryptionEnabled") is not True:
            findings.violation("transitEncryptionEnabled is not true")
        elif dig(props, "transitEncryptionMode", default="required") != "required":
            findings.violation(
                f"transitEncryptionMode is {dig(props, 'transitEncryptionMode')}; use required"
            )


# why: without AUTH anyone who reaches the port can read and rewrite the cache.
@resource_rule(
    "aws-elasticache-auth-token",
    "ElastiCache Redis requires an AUTH token, so reaching the port is not enough to read or poison "
    "the cache.",
    (REPLICATION_GROUP,),
)
def elasticache_auth_token(subject: Subject, findings: Findings) -> None:
    token = dig(subject.props, "authToken") or dig(subject.props, "authTokenWo")
    if not token and not dig(subject.props, "userGroupIds"):
        findings.violation("no authToken (or RBAC user group) is set")


# why: Redis here is a cache, so losing a node costs latency, not data (advisory).
@resource_rule(
    "aws-elasticache-failover",
    "In prod, ElastiCache Redis has automatic failover across AZs, so a node loss does not take the "
    "cache away (advisory: the cache holds no unique data).",
    (REPLICATION_GROUP,),
    level=ADVISORY,
    environment_aware=True,
)
def elasticache_failover(subject: Subject, findings: Findings) -> None:
    if not subject.prod:
        return
    for field in ("automaticFailoverEnabled", "multiAzEnabled"):
        with findings.verifying():
            if dig(subject.props, field) is not True:
                findings.violation(f"{field} is not true in prod")


# --- network and keys ---------------------------------------------------------------------------------


# why: anything but web traffic to a load balancer should never be reachable from the whole internet.
@resource_rule(
    "aws-security-group-no-public-ingress",
    "Security groups allow ingress from 0.0.0.0/0 or ::/0 only on ports 80/443 of load balancers: any "
    "other port open to the internet is an attack surface.",
    (SECURITY_GROUP, SECURITY_GROUP_RULE, INGRESS_RULE),
)
def security_group_no_public_ingress(subject: Subject, findings: Findings) -> None:
    props = subject.props
    if subject.type == SECURITY_GROUP:
        context = f"{dig(props, 'name', default='')} {dig(props, 'description', default='')} {subject.name}"
        for index, rule in enumerate(items(dig(props, "ingress"))):
            with findings.verifying():
                _check_ingress(findings, f"ingress[{index}]", rule, "cidrBlocks", "ipv6CidrBlocks", context)
    elif subject.type == SECURITY_GROUP_RULE:
        if dig(props, "type") == "ingress":
            context = f"{dig(props, 'description', default='')} {subject.name}"
            _check_ingress(findings, "rule", props, "cidrBlocks", "ipv6CidrBlocks", context)
    else:
        context = f"{dig(props, 'description', default='')} {subject.name}"
        _check_ingress(findings, "rule", props, "cidrIpv4", "cidrIpv6", context)


def _check_ingress(findings: Findings, where: str, rule: Any, v4: str, v6: str, context: str) -> None:
    sources = {str(c) for key in (v4, v6) for c in _as_list(dig(rule, key))}
    open_to = sorted(sources & OPEN_CIDRS)
    if not open_to:
        return
    low = number(dig(rule, "fromPort", default=0))
    high = number(dig(rule, "toPort", default=low))
    protocol = str(dig(rule, "protocol", default=dig(rule, "ipProtocol", default="-1")))
    web_only = protocol in ("tcp", "6") and low is not None and low == high and int(low) in WEB_PORTS
    if web_only and LOAD_BALANCER_WORDS.search(f" {context} "):
        return
    ports = "all ports" if protocol == "-1" or low is None else f"{protocol} {low:g}-{high:g}"
    findings.violation(f"{where} opens {ports} to {', '.join(open_to)}")


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return items(value) if not isinstance(value, str) else [value]


# why: a log group without retention keeps (and bills) every line forever.
@resource_rule(
    "aws-log-group-retention",
    "CloudWatch log groups expire their events (retentionInDays): the default keeps control-plane and "
    "database logs, and their cost, forever.",
    (LOG_GROUP,),
)
def log_group_retention(subject: Subject, findings: Findings) -> None:
    days = number(dig(subject.props, "retentionInDays"))
    if not days:
        findings.violation("retentionInDays is unset: the group never expires")


# why: a rotated key limits how much data one leaked key version can decrypt.
@resource_rule(
    "aws-kms-key-rotation",
    "Symmetric KMS keys rotate automatically (enableKeyRotation), limiting what one compromised key "
    "version can decrypt.",
    (KMS_KEY,),
)
def kms_key_rotation(subject: Subject, findings: Findings) -> None:
    spec = dig(subject.props, "customerMasterKeySpec", default="SYMMETRIC_DEFAULT")
    if spec == "SYMMETRIC_DEFAULT" and dig(subject.props, "enableKeyRotation") is not True:
        findings.violation("enableKeyRotation is not true")


POLICIES = [
    eks_endpoint_restricted,
    eks_secrets_encryption,
    eks_control_plane_logs,
    eks_standard_support,
    rds_not_public,
    rds_storage_encrypted,
    rds_backup_retention,
    rds_multi_az,
    rds_deletion_protection,
    rds_ssl_enforced,
    elasticache_encryption,
    elasticache_auth_token,
    elasticache_failover,
    security_group_no_public_ingress,
    log_group_retention,
    kms_key_rotation,
]
