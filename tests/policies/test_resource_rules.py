"""Every resource rule: a compliant input passes, a non-compliant one fails with the rule's message
at the rule's level, and an unknown value (preview) is reported as unverifiable, never as a pass
and never as a crash. Inputs go through pulumi_policy's analyzer service as the engine sends them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import policy_fixtures as fx
import pytest
from policy_harness import DELETE, UNKNOWN, Engine, changed, of

from policies.pack import POLICIES


@dataclass(frozen=True)
class Case:
    policy: str
    type: str
    build: Callable[[], dict[str, Any]]
    bad: tuple[tuple[str, Any], ...]  # changes that break the rule
    says: str  # a fragment of the violation message
    unknown: str  # a path the rule must read, set to the preview sentinel
    environment: str = "prod"  # the --policy-pack-config the case runs under

    @property
    def id(self) -> str:
        return f"{self.policy}:{self.says[:30]}"


POD = "spec.template.spec"
C0 = f"{POD}.containers[0]"

CASES = [
    # --- Kubernetes workloads ---
    Case(
        "k8s-run-as-non-root",
        fx.DEPLOYMENT,
        fx.workload,
        ((f"{POD}.securityContext.runAsNonRoot", False),),
        "does not set securityContext.runAsNonRoot",
        f"{POD}.securityContext.runAsNonRoot",
    ),
    Case(
        "k8s-run-as-non-root",
        fx.DEPLOYMENT,
        fx.workload,
        ((f"{C0}.securityContext.runAsUser", 0),),
        "runs as user 0",
        f"{C0}.securityContext",
    ),
    Case(
        "k8s-no-privilege-escalation",
        fx.DEPLOYMENT,
        fx.workload,
        ((f"{C0}.securityContext.allowPrivilegeEscalation", True),),
        "allowPrivilegeEscalation: false",
        f"{C0}.securityContext.allowPrivilegeEscalation",
    ),
    Case(
        "k8s-drop-all-capabilities",
        fx.DEPLOYMENT,
        fx.workload,
        ((f"{C0}.securityContext.capabilities.drop", ["NET_RAW"]),),
        "does not drop ALL capabilities",
        f"{C0}.securityContext.capabilities.drop",
    ),
    Case(
        "k8s-drop-all-capabilities",
        fx.DEPLOYMENT,
        fx.workload,
        ((f"{C0}.securityContext.capabilities.add", ["SYS_ADMIN"]),),
        "adds capabilities SYS_ADMIN",
        f"{C0}.securityContext.capabilities",
    ),
    Case(
        "k8s-seccomp-runtime-default",
        fx.DEPLOYMENT,
        fx.workload,
        ((f"{POD}.securityContext.seccompProfile.type", "Unconfined"),),
        "seccomp profile Unconfined",
        f"{POD}.securityContext.seccompProfile",
    ),
    Case(
        "k8s-read-only-root-filesystem",
        fx.DEPLOYMENT,
        fx.workload,
        ((f"{C0}.securityContext.readOnlyRootFilesystem", DELETE),),
        "readOnlyRootFilesystem: true",
        f"{C0}.securityContext.readOnlyRootFilesystem",
    ),
    Case(
        "k8s-no-host-access",
        fx.DEPLOYMENT,
        fx.workload,
        ((f"{POD}.hostNetwork", True),),
        "hostNetwork",
        f"{POD}.hostPID",
    ),
    Case(
        "k8s-no-host-access",
        fx.DEPLOYMENT,
        fx.workload,
        ((f"{POD}.volumes[0].hostPath", {"path": "/var/run/docker.sock"}),),
        "is a hostPath",
        f"{POD}.volumes[0]",
    ),
    Case(
        "k8s-no-host-access",
        fx.DEPLOYMENT,
        fx.workload,
        ((f"{C0}.ports[0].hostPort", 8080),),
        "binds hostPort 8080",
        f"{C0}.ports[0].hostPort",
    ),
    Case(
        "k8s-no-host-access",
        fx.DEPLOYMENT,
        fx.workload,
        ((f"{C0}.securityContext.privileged", True),),
        "is privileged",
        f"{C0}.securityContext.privileged",
    ),
    Case(
        "k8s-resource-requests-limits",
        fx.DEPLOYMENT,
        fx.workload,
        ((f"{C0}.resources.limits", DELETE),),
        "no resources limits.cpu, limits.memory",
        f"{C0}.resources",
    ),
    Case(
        "k8s-liveness-readiness-probes",
        fx.DEPLOYMENT,
        fx.workload,
        ((f"{C0}.livenessProbe", DELETE),),
        "has no livenessProbe",
        f"{C0}.livenessProbe",
    ),
    Case(
        "k8s-image-pinned",
        fx.DEPLOYMENT,
        fx.workload,
        ((f"{C0}.image", "ghcr.io/example/product-service:latest"),),
        "is not pinned",
        f"{C0}.image",
    ),
    Case(
        "k8s-image-pinned",
        fx.DEPLOYMENT,
        fx.workload,
        ((f"{C0}.image", "nginx"),),
        "'nginx' is not pinned",
        f"{C0}.image",
    ),
    Case(
        "k8s-image-digest-in-prod",
        fx.DEPLOYMENT,
        fx.workload,
        ((f"{C0}.image", "ghcr.io/example/product-service:1.2.3"),),
        "is not pinned by digest",
        f"{C0}.image",
    ),
    Case(
        "k8s-dedicated-service-account",
        fx.DEPLOYMENT,
        fx.workload,
        ((f"{POD}.serviceAccountName", DELETE),),
        "default ServiceAccount",
        f"{POD}.serviceAccountName",
    ),
    Case(
        "k8s-dedicated-service-account",
        fx.DEPLOYMENT,
        fx.workload,
        ((f"{POD}.automountServiceAccountToken", True),),
        "automountServiceAccountToken: false",
        f"{POD}.automountServiceAccountToken",
    ),
    Case(
        "k8s-no-secret-literals",
        fx.DEPLOYMENT,
        fx.workload,
        ((f"{C0}.env[1]", {"name": "DB_PASSWORD", "value": "hunter2hunter2"}),),
        "env DB_PASSWORD looks like a credential",
        f"{C0}.env[1].value",
    ),
    Case(
        "k8s-no-secret-literals",
        fx.DEPLOYMENT,
        fx.workload,
        ((f"{C0}.env[1]", {"name": "DATABASE_URL", "value": "postgresql://app:pw123456@db:5432/app"}),),
        "holds a URL with a password",
        f"{C0}.env[1].value",
    ),
    Case(
        "k8s-no-secret-literals",
        fx.DEPLOYMENT,
        fx.workload,
        ((f"{C0}.args", ["--requirepass", "$(DATABASE_URL)"]),),  # env[1] comes from a Secret
        "args[1] expands $(DATABASE_URL), a Secret's value, into the process's command line",
        f"{C0}.args",
    ),
    Case(
        "k8s-no-secret-literals",
        fx.CONFIG_MAP,
        fx.config_map,
        (("data.REDIS_PASSWORD", "s3cr3t-value"),),
        "ConfigMap key 'REDIS_PASSWORD' looks like a credential",
        "data.LOG_LEVEL",
    ),
    Case(
        "k8s-no-secret-literals",
        fx.CONFIG_MAP,
        fx.config_map,
        (("metadata.annotations", {"example.com/api-token": "abcdef0123456789"}),),
        "annotation 'example.com/api-token'",
        "metadata.annotations",
    ),
    Case(
        "k8s-no-secret-literals",
        fx.HELM_RELEASE,
        fx.helm_release,
        (("values.grafana.adminPassword", "prom-operator"),),
        "Helm value grafana.adminPassword",
        "values.grafana",
    ),
    Case(
        "k8s-helm-chart-pinned",
        fx.HELM_RELEASE,
        fx.helm_release,
        (("version", DELETE),),
        "is not an exact version",
        "version",
    ),
    Case(
        "k8s-helm-chart-pinned",
        fx.HELM_RELEASE,
        fx.helm_release,
        (("version", "^77.0.0"),),
        "'^77.0.0' is not an exact version",
        "version",
    ),
    Case(
        "k8s-helm-release-bounded",
        fx.HELM_RELEASE,
        fx.bounded_release,
        (("values.resources.limits.memory", DELETE),),
        "traefik component 'traefik': resources sets no limits.memory",
        "values.resources",
    ),
    Case(
        "k8s-helm-release-bounded",
        fx.HELM_RELEASE,
        fx.bounded_release,
        (("values.securityContext.capabilities.drop", ["NET_RAW"]),),
        "does not set capabilities.drop [ALL]",
        "values.securityContext.capabilities",
    ),
    Case(
        "k8s-helm-release-bounded",
        fx.HELM_RELEASE,
        fx.bounded_release,
        (("version", "38.0.0"),),
        "re-read its values.yaml at 38.0.0",
        "version",
    ),
    Case(
        "k8s-helm-release-bounded-dev",
        fx.HELM_RELEASE,
        fx.bounded_release,
        (("values.podSecurityContext.runAsNonRoot", DELETE),),
        "does not set runAsNonRoot: true",
        "values.podSecurityContext",
        environment="dev",
    ),
    Case(
        "k8s-helm-monitoring-volumes",
        fx.HELM_RELEASE,
        fx.monitoring_release,
        (("values.alertmanager.alertmanagerSpec.storage", DELETE),),
        "alertmanager.alertmanagerSpec.storage has no volumeClaimTemplate",
        "values.grafana.persistence.enabled",
    ),
    Case(
        "k8s-helm-alertmanager-receiver",
        fx.HELM_RELEASE,
        fx.monitoring_release,
        (("values.alertmanager.config.receivers", [{"name": "null"}]),),
        "has no receiver but `null`",
        "values.alertmanager.config.receivers",
    ),
    # --- the edge ---
    Case(
        "k8s-ingress-controller-client-address",
        fx.HELM_RELEASE,
        fx.client_address_release,
        (("values.service.spec.externalTrafficPolicy", "Cluster"),),
        "externalTrafficPolicy is Cluster: every client reaches Traefik with a node's address",
        "values.service.spec.externalTrafficPolicy",
    ),
    Case(
        "k8s-ingress-controller-client-address",
        fx.HELM_RELEASE,
        fx.client_address_release,
        (("values.ports.websecure.forwardedHeaders.insecure", True),),
        "ports.websecure.forwardedHeaders.insecure trusts every client",
        "values.ports.websecure.forwardedHeaders",
    ),
    Case(
        "k8s-ingress-controller-client-address",
        fx.HELM_RELEASE,
        fx.client_address_release,
        (("values.ports.web.proxyProtocol.trustedIPs", ["10.0.0.0/16", "0.0.0.0/0"]),),
        "ports.web.proxyProtocol.trustedIPs include every address",
        "values.ports.web.proxyProtocol.trustedIPs",
    ),
    Case(
        "k8s-hpa-min-replicas",
        fx.HPA,
        fx.hpa,
        (("spec.minReplicas", 2),),
        "minReplicas is 2; prod needs >= 3",
        "spec.minReplicas",
    ),
    Case(
        "k8s-no-loadbalancer-service",
        fx.SERVICE,
        fx.service,
        (("spec.type", "LoadBalancer"),),
        "is of type LoadBalancer",
        "spec.type",
    ),
    Case(
        "k8s-ingress-no-ops-paths",
        fx.INGRESS,
        fx.ingress,
        (("spec.rules[0].http.paths[0].path", "/"),),
        "path '/' (Prefix) publishes every path of its backend",
        "spec.rules[0].http.paths[0].path",
    ),
    Case(
        "k8s-ingress-no-ops-paths",
        fx.INGRESS,
        fx.ingress,
        (("spec.rules[0].http.paths[1].path", "/metrics"),),
        "path '/metrics' (Exact) publishes /metrics",
        "spec.rules[0].http.paths[1].pathType",
    ),
    Case(
        "k8s-ingress-no-ops-paths",
        fx.INGRESS,
        fx.ingress,
        (("spec.defaultBackend", {"service": {"name": "api", "port": {"name": "http"}}}),),
        "spec.defaultBackend publishes every path",
        "spec.defaultBackend",
    ),
    Case(
        "k8s-namespace-pod-security",
        fx.NAMESPACE,
        fx.namespace,
        (("metadata.labels", {"pod-security.kubernetes.io/enforce": "restricted"}),),
        "no pod-security.kubernetes.io/warn label",
        "metadata.labels",
    ),
    Case(
        "k8s-namespace-pod-security",
        fx.NAMESPACE,
        fx.namespace,
        (("metadata.labels", fx.pod_security("privileged", audit="baseline")),),
        "pod-security.kubernetes.io/audit is baseline; use restricted",
        "metadata.labels",
    ),
    Case(
        "k8s-namespace-pod-security",
        fx.NAMESPACE,
        fx.namespace,
        (("metadata.labels", fx.pod_security("strict")),),
        "pod-security.kubernetes.io/enforce is 'strict', none of privileged, baseline, restricted",
        "metadata.labels",
    ),
    Case(
        "k8s-namespace-pod-security",
        fx.NAMESPACE,
        fx.namespace,
        (("metadata.labels", {**fx.pod_security(), "pod-security.kubernetes.io/warn-version": "1.36"}),),
        "pod-security.kubernetes.io/warn-version is '1.36'; use latest or a minor like v1.36",
        "metadata",
    ),
    Case(
        "k8s-network-policy-dns-to-kube-system",
        fx.NETWORK_POLICY,
        fx.dns_network_policy,
        (("spec.egress[0].to[0].namespaceSelector", {}),),
        "egress rule 0 opens DNS to pods outside kube-system",
        "spec.egress[0].to[0].namespaceSelector",
    ),
    Case(
        "k8s-network-policy-dns-to-kube-system",
        fx.NETWORK_POLICY,
        fx.dns_network_policy,
        (("spec.egress[0].to[0]", {"podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}),),
        "egress rule 0 opens DNS to pods outside kube-system",
        "spec.egress[0].ports[0].port",
    ),
    Case(
        "k8s-network-policy-dns-to-kube-system",
        fx.NETWORK_POLICY,
        fx.dns_network_policy,
        (("spec.egress[1].ports", [{"port": 1, "endPort": 1024}]),),
        "egress rule 1 opens DNS to pods outside kube-system",
        "spec.egress[1].ports[0]",
    ),
    Case(
        "k8s-network-policy-dns-to-kube-system",
        fx.NETWORK_POLICY,
        fx.dns_network_policy,
        (("spec.egress[0].to", DELETE),),
        "egress rule 0 opens DNS to every destination",
        "spec.egress[0].to",
    ),
    Case(
        "k8s-network-policy-dns-to-kube-system",
        fx.NETWORK_POLICY,
        fx.dns_network_policy,
        (("spec.egress[0].to[0]", {"ipBlock": {"cidr": "0.0.0.0/0"}}),),
        "egress rule 0 opens DNS to the addresses 0.0.0.0/0",
        "spec.egress[0].to[0]",
    ),
    Case(
        "k8s-network-policy-dns-to-kube-system",
        fx.NETWORK_POLICY,
        fx.dns_network_policy,
        (("spec.egress[0].to[0].podSelector", {}),),
        "egress rule 0 opens DNS to every pod of kube-system",
        "spec.egress[0].to[0].podSelector",
    ),
    Case(
        "argocd-project-scoped",
        fx.ARGOCD_APPLICATION,
        fx.argocd_application,
        (("spec.project", "default"),),
        "Application uses the `default` project",
        "spec.project",
    ),
    Case(
        "argocd-project-scoped",
        fx.ARGOCD_PROJECT,
        fx.argocd_project,
        (("spec.destinations[0].namespace", "*"),),
        "spec.destinations allows a wildcard (server=https://kubernetes.default.svc, namespace=*)",
        "spec.destinations[0].namespace",
    ),
    Case(
        "argocd-project-scoped",
        fx.ARGOCD_PROJECT,
        fx.argocd_project,
        (("spec.namespaceResourceWhitelist", DELETE),),
        "spec.namespaceResourceWhitelist is empty",
        "spec.namespaceResourceWhitelist",
    ),
    Case(
        "argocd-project-scoped",
        fx.ARGOCD_PROJECT,
        fx.argocd_project,
        (("spec.clusterResourceWhitelist", [{"group": "*", "kind": "*"}]),),
        "spec.clusterResourceWhitelist allows a wildcard (group=*, kind=*)",
        "spec.clusterResourceWhitelist",
    ),
    Case(
        "argocd-project-scoped",
        fx.ARGOCD_PROJECT,
        fx.argocd_project,
        (("spec.sourceRepos", ["*"]),),
        "spec.sourceRepos allows a wildcard (*)",
        "spec.sourceRepos[0]",
    ),
    # --- AWS ---
    Case(
        "aws-eks-endpoint-restricted",
        fx.EKS,
        fx.eks,
        (("vpcConfig.publicAccessCidrs", ["0.0.0.0/0"]),),
        "open to 0.0.0.0/0",
        "vpcConfig.publicAccessCidrs",
    ),
    Case(
        "aws-eks-endpoint-restricted",
        fx.EKS,
        fx.eks,
        (("vpcConfig.publicAccessCidrs", DELETE),),
        "has no publicAccessCidrs",
        "vpcConfig.endpointPublicAccess",
    ),
    Case(
        "aws-eks-secrets-encryption",
        fx.EKS,
        fx.eks,
        (("encryptionConfig", DELETE),),
        "does not encrypt 'secrets'",
        "encryptionConfig.provider.keyArn",
    ),
    Case(
        "aws-eks-control-plane-logs",
        fx.EKS,
        fx.eks,
        (("enabledClusterLogTypes", ["api"]),),
        "lacks audit, authenticator",
        "enabledClusterLogTypes",
    ),
    Case(
        "aws-eks-standard-support",
        fx.EKS,
        fx.eks,
        (("upgradePolicy", DELETE),),
        "supportType is EXTENDED; use STANDARD",
        "upgradePolicy.supportType",
    ),
    Case(
        "aws-log-group-retention",
        fx.LOG_GROUP,
        fx.log_group,
        (("retentionInDays", DELETE),),
        "retentionInDays is unset",
        "retentionInDays",
    ),
    Case(
        "aws-rds-not-public",
        fx.RDS,
        fx.rds,
        (("publiclyAccessible", True),),
        "publiclyAccessible is true",
        "publiclyAccessible",
    ),
    Case(
        "aws-rds-storage-encrypted",
        fx.RDS,
        fx.rds,
        (("storageEncrypted", False),),
        "storageEncrypted is not true",
        "storageEncrypted",
    ),
    Case(
        "aws-rds-storage-encrypted",
        fx.AURORA,
        fx.aurora,
        (("storageEncrypted", DELETE),),
        "storageEncrypted is not true",
        "storageEncrypted",
    ),
    Case(
        "aws-rds-backup-retention",
        fx.AURORA,
        fx.aurora,
        (("backupRetentionPeriod", DELETE),),
        "backupRetentionPeriod is 1 days; needs >= 30",
        "backupRetentionPeriod",
    ),
    Case(
        "aws-rds-deletion-protection",
        fx.AURORA,
        fx.aurora,
        (("deletionProtection", False),),
        "deletionProtection is not true in prod",
        "deletionProtection",
    ),
    Case(
        "aws-elasticache-encryption",
        fx.CACHE_CLUSTER,
        fx.memcached_cluster,
        (("engine", "redis"),),
        "standalone Redis cache cluster cannot encrypt",
        "engine",
    ),
    Case(
        "aws-security-group-no-public-ingress",
        fx.SECURITY_GROUP_RULE,
        fx.security_group_rule,
        (("fromPort", 22), ("toPort", 22)),
        "opens tcp 22-22 to 0.0.0.0/0",
        "cidrBlocks",
    ),
    Case(
        "aws-rds-backup-retention",
        fx.RDS,
        fx.rds,
        (("backupRetentionPeriod", 7),),
        "backupRetentionPeriod is 7 days; needs >= 30",
        "backupRetentionPeriod",
    ),
    Case("aws-rds-multi-az", fx.RDS, fx.rds, (("multiAz", False),), "multiAz is not true in prod", "multiAz"),
    Case(
        "aws-rds-deletion-protection",
        fx.RDS,
        fx.rds,
        (("deletionProtection", DELETE),),
        "deletionProtection is not true in prod",
        "deletionProtection",
    ),
    Case(
        "aws-rds-ssl-enforced",
        fx.RDS_PARAMETERS,
        fx.rds_parameters,
        (("parameters[0].value", "0"),),
        "does not set rds.force_ssl = 1",
        "parameters[0].value",
    ),
    Case(
        "aws-rds-ssl-enforced",
        fx.RDS,
        fx.rds,
        (("engineVersion", "14.9"), ("parameterGroupName", DELETE)),
        "with the default parameter group",
        "engineVersion",
    ),
    Case(
        "aws-elasticache-encryption",
        fx.REDIS_GROUP,
        fx.redis_group,
        (("transitEncryptionEnabled", False),),
        "transitEncryptionEnabled is not true",
        "transitEncryptionEnabled",
    ),
    Case(
        "aws-elasticache-encryption",
        fx.REDIS_GROUP,
        fx.redis_group,
        (("transitEncryptionMode", "preferred"),),
        "transitEncryptionMode is preferred",
        "transitEncryptionMode",
    ),
    Case(
        "aws-elasticache-encryption",
        fx.REDIS_GROUP,
        fx.redis_group,
        (("atRestEncryptionEnabled", DELETE),),
        "atRestEncryptionEnabled is not true",
        "atRestEncryptionEnabled",
    ),
    Case(
        "aws-elasticache-auth-token",
        fx.REDIS_GROUP,
        fx.redis_group,
        (("authToken", DELETE),),
        "no authToken",
        "authToken",
    ),
    Case(
        "aws-elasticache-failover",
        fx.REDIS_GROUP,
        fx.redis_group,
        (("automaticFailoverEnabled", False),),
        "automaticFailoverEnabled is not true in prod",
        "automaticFailoverEnabled",
    ),
    Case(
        "aws-security-group-no-public-ingress",
        fx.SECURITY_GROUP,
        fx.security_group,
        (("ingress[1].cidrBlocks", ["0.0.0.0/0"]),),
        "opens tcp 5432-5432 to 0.0.0.0/0",
        "ingress[1].cidrBlocks",
    ),
    Case(
        "aws-security-group-no-public-ingress",
        fx.SECURITY_GROUP,
        fx.security_group,
        (("description", "nodes"),),
        "opens tcp 443-443 to 0.0.0.0/0",
        "ingress[0].fromPort",
    ),
    Case(
        "aws-security-group-no-public-ingress",
        fx.INGRESS_RULE,
        fx.ingress_rule,
        (("cidrIpv6", "::/0"),),
        "opens tcp 5432-5432 to ::/0",
        "cidrIpv4",
    ),
    Case(
        "aws-kms-key-rotation",
        fx.KMS_KEY,
        fx.kms_key,
        (("enableKeyRotation", False),),
        "enableKeyRotation is not true",
        "enableKeyRotation",
    ),
    # --- GCP ---
    Case(
        "gcp-gke-private-nodes",
        fx.GKE,
        fx.gke,
        (("privateClusterConfig.enablePrivateNodes", False),),
        "enablePrivateNodes is not true",
        "privateClusterConfig.enablePrivateNodes",
    ),
    Case(
        "gcp-gke-master-authorized-networks",
        fx.GKE,
        fx.gke,
        (("masterAuthorizedNetworksConfig.cidrBlocks[0].cidrBlock", "0.0.0.0/0"),),
        "include 0.0.0.0/0",
        "masterAuthorizedNetworksConfig.cidrBlocks[0].cidrBlock",
    ),
    Case(
        "gcp-gke-master-authorized-networks",
        fx.GKE,
        fx.gke,
        (("masterAuthorizedNetworksConfig", DELETE),),
        "is not set",
        "masterAuthorizedNetworksConfig",
    ),
    Case(
        "gcp-gke-workload-identity",
        fx.GKE,
        fx.gke,
        (("workloadIdentityConfig", DELETE),),
        "workloadPool is not set",
        "workloadIdentityConfig.workloadPool",
    ),
    Case(
        "gcp-gke-shielded-nodes",
        fx.GKE,
        fx.gke,
        (("enableShieldedNodes", False),),
        "enableShieldedNodes is false",
        "enableShieldedNodes",
    ),
    Case(
        "gcp-gke-release-channel",
        fx.GKE,
        fx.gke,
        (("releaseChannel.channel", "UNSPECIFIED"),),
        "releaseChannel.channel is not set",
        "releaseChannel.channel",
    ),
    Case(
        "gcp-gke-network-policy",
        fx.GKE,
        fx.gke,
        (("datapathProvider", "LEGACY_DATAPATH"),),
        "neither Dataplane V2 nor networkPolicy",
        "datapathProvider",
    ),
    Case(
        "gcp-gke-no-legacy-abac",
        fx.GKE,
        fx.gke,
        (("enableLegacyAbac", True),),
        "enableLegacyAbac is true",
        "enableLegacyAbac",
    ),
    Case(
        "gcp-sql-no-public-ip",
        fx.CLOUD_SQL,
        fx.cloud_sql,
        (("settings.ipConfiguration.ipv4Enabled", DELETE),),
        "ipv4Enabled is not false",
        "settings.ipConfiguration.ipv4Enabled",
    ),
    Case(
        "gcp-sql-no-public-ip",
        fx.CLOUD_SQL,
        fx.cloud_sql,
        (("settings.ipConfiguration.authorizedNetworks", [{"value": "0.0.0.0/0"}]),),
        "an authorized network is 0.0.0.0/0",
        "settings.ipConfiguration.authorizedNetworks",
    ),
    Case(
        "gcp-sql-ssl-required",
        fx.CLOUD_SQL,
        fx.cloud_sql,
        (("settings.ipConfiguration.sslMode", "ALLOW_UNENCRYPTED_AND_ENCRYPTED"),),
        "sslMode is ALLOW_UNENCRYPTED",
        "settings.ipConfiguration.sslMode",
    ),
    Case(
        "gcp-sql-backups",
        fx.CLOUD_SQL,
        fx.cloud_sql,
        (("settings.backupConfiguration.enabled", False),),
        "backupConfiguration.enabled is not true",
        "settings.backupConfiguration.enabled",
    ),
    Case(
        "gcp-sql-backups",
        fx.CLOUD_SQL,
        fx.cloud_sql,
        (("settings.backupConfiguration.backupRetentionSettings.retainedBackups", 7),),
        "retainedBackups is 7; needs >= 30",
        "settings.backupConfiguration.backupRetentionSettings",
    ),
    Case(
        "gcp-sql-backups-outlast-transaction-logs",
        fx.CLOUD_SQL,
        fx.cloud_sql,
        (("settings.backupConfiguration.backupRetentionSettings.retainedBackups", 7),),
        "retainedBackups (7) is not more than transactionLogRetentionDays (7)",
        "settings.backupConfiguration.transactionLogRetentionDays",
    ),
    Case(
        "gcp-sql-verifiable-server-certificate",
        fx.CLOUD_SQL,
        fx.cloud_sql,
        (("settings.ipConfiguration.serverCaMode", DELETE),),
        "serverCaMode is GOOGLE_MANAGED_INTERNAL_CA",
        "settings.ipConfiguration.serverCaMode",
    ),
    Case(
        "gcp-service-networking-abandon",
        fx.SERVICE_NETWORKING,
        fx.service_networking,
        (("deletionPolicy", DELETE),),
        "deletionPolicy is not ABANDON",
        "deletionPolicy",
    ),
    Case(
        "gcp-sql-regional-ha",
        fx.CLOUD_SQL,
        fx.cloud_sql,
        (("settings.availabilityType", "ZONAL"),),
        "availabilityType is not REGIONAL",
        "settings.availabilityType",
    ),
    Case(
        "gcp-sql-deletion-protection",
        fx.CLOUD_SQL,
        fx.cloud_sql,
        (("deletionProtection", False),),
        "deletionProtection is false in prod",
        "deletionProtection",
    ),
    Case(
        "gcp-sql-deletion-protection",
        fx.CLOUD_SQL,
        fx.cloud_sql,
        (("settings.deletionProtectionEnabled", DELETE),),
        "deletionProtectionEnabled is not true",
        "settings.deletionProtectionEnabled",
    ),
    Case(
        "gcp-redis-auth-tls",
        fx.MEMORYSTORE,
        fx.memorystore,
        (("authEnabled", DELETE),),
        "authEnabled is not true",
        "authEnabled",
    ),
    Case(
        "gcp-redis-auth-tls",
        fx.MEMORYSTORE,
        fx.memorystore,
        (("transitEncryptionMode", "DISABLED"),),
        "not SERVER_AUTHENTICATION",
        "transitEncryptionMode",
    ),
    Case(
        "gcp-redis-standard-ha", fx.MEMORYSTORE, fx.memorystore, (("tier", "BASIC"),), "tier is BASIC", "tier"
    ),
    # --- Azure ---
    Case(
        "azure-aks-api-server-restricted",
        fx.AKS,
        fx.aks,
        (("apiServerAccessProfile.authorizedIPRanges", ["0.0.0.0/0"]),),
        "include 0.0.0.0/0",
        "apiServerAccessProfile.authorizedIPRanges",
    ),
    Case(
        "azure-aks-api-server-restricted",
        fx.AKS,
        fx.aks,
        (("apiServerAccessProfile", DELETE),),
        "public with no authorizedIPRanges",
        "apiServerAccessProfile",
    ),
    Case(
        "azure-aks-network-policy",
        fx.AKS,
        fx.aks,
        (("networkProfile.networkPolicy", "none"),),
        "networkPolicy is none",
        "networkProfile.networkPolicy",
    ),
    Case(
        "azure-aks-entra-rbac",
        fx.AKS,
        fx.aks,
        (("disableLocalAccounts", False),),
        "disableLocalAccounts is not true",
        "disableLocalAccounts",
    ),
    Case(
        "azure-aks-entra-rbac",
        fx.AKS,
        fx.aks,
        (("aadProfile", DELETE),),
        "enableAzureRBAC is not true",
        "aadProfile.enableAzureRBAC",
    ),
    Case(
        "azure-postgres-no-public-access",
        fx.FLEXIBLE_SERVER,
        fx.flexible_server,
        (("network", {"publicNetworkAccess": "Enabled"}),),
        "publicNetworkAccess is not Disabled",
        "network.publicNetworkAccess",
    ),
    Case(
        "azure-postgres-backup",
        fx.FLEXIBLE_SERVER,
        fx.flexible_server,
        (("backup.geoRedundantBackup", "Disabled"),),
        "geoRedundantBackup is not Enabled in prod",
        "backup.geoRedundantBackup",
    ),
    Case(
        "azure-postgres-backup",
        fx.FLEXIBLE_SERVER,
        fx.flexible_server,
        (("backup.backupRetentionDays", 14),),
        "backupRetentionDays is 14; needs >= 30",
        "backup.backupRetentionDays",
    ),
    Case(
        "azure-postgres-high-availability",
        fx.FLEXIBLE_SERVER,
        fx.flexible_server,
        (("highAvailability.mode", "Disabled"),),
        "highAvailability.mode is not ZoneRedundant",
        "highAvailability.mode",
    ),
    Case(
        "azure-redis-tls-only",
        fx.AZURE_REDIS_DATABASE,
        fx.azure_redis_database,
        (("clientProtocol", "Plaintext"),),
        "clientProtocol is Plaintext; use Encrypted",
        "clientProtocol",
    ),
    Case(
        "azure-redis-tls-only",
        fx.AZURE_REDIS,
        fx.azure_redis,
        (("minimumTlsVersion", "1.0"),),
        "minimumTlsVersion is 1.0",
        "minimumTlsVersion",
    ),
    Case(
        "azure-redis-no-public-access",
        fx.AZURE_REDIS,
        fx.azure_redis,
        (("publicNetworkAccess", "Enabled"),),
        "publicNetworkAccess is Enabled",
        "publicNetworkAccess",
    ),
]

LEVELS = {p.name: (p.enforcement_level.value if p.enforcement_level else "advisory") for p in POLICIES}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_compliant_input_passes(engine: Engine, dev_engine: Engine, case: Case) -> None:
    engine = dev_engine if case.environment == "dev" else engine
    assert of(engine.analyze(case.type, case.build()), case.policy) == []


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_non_compliant_input_fails_with_the_rules_message(
    engine: Engine, dev_engine: Engine, case: Case
) -> None:
    engine = dev_engine if case.environment == "dev" else engine
    found = of(engine.analyze(case.type, changed(case.build(), *case.bad)), case.policy)
    assert [d for d in found if case.says in d.message], found
    assert {d.level for d in found} == {LEVELS[case.policy]}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_unknown_value_is_reported_as_unverifiable_during_preview(
    engine: Engine, dev_engine: Engine, case: Case
) -> None:
    engine = dev_engine if case.environment == "dev" else engine
    found = of(engine.analyze(case.type, changed(case.build(), (case.unknown, UNKNOWN))), case.policy)
    assert [d for d in found if d.unverifiable], f"unknown {case.unknown} passed silently: {found}"


def test_every_resource_rule_has_cases() -> None:
    from pulumi_policy import ResourceValidationPolicy

    resource_rules = {p.name for p in POLICIES if isinstance(p, ResourceValidationPolicy)}
    assert resource_rules == {c.policy for c in CASES}


def test_an_unknown_value_does_not_hide_other_violations(engine: Engine) -> None:
    props = changed(fx.workload(), (f"{C0}.securityContext.allowPrivilegeEscalation", UNKNOWN))
    props["spec"]["template"]["spec"]["containers"].append(
        {**props["spec"]["template"]["spec"]["containers"][0], "name": "sidecar", "securityContext": {}}
    )
    found = of(engine.analyze(fx.DEPLOYMENT, props), "k8s-no-privilege-escalation")
    assert any("container 'sidecar'" in d.message and d.level == "mandatory" for d in found)
    assert any(d.unverifiable and d.level == "advisory" for d in found)


@pytest.mark.parametrize("kind", [fx.STATEFUL_SET, fx.JOB, fx.CRON_JOB])
def test_pod_templates_of_every_controller_are_checked(engine: Engine, kind: str) -> None:
    assert of(engine.analyze(kind, fx.workload(kind)), "k8s-run-as-non-root") == []
    root = changed(fx.workload(kind), (f"{fx.POD_PATH[kind]}.containers[0].securityContext.runAsUser", 0))
    assert of(engine.analyze(kind, root), "k8s-run-as-non-root")


@pytest.mark.parametrize("kind", [fx.JOB, fx.CRON_JOB])
def test_run_to_completion_workloads_need_no_probes(engine: Engine, kind: str) -> None:
    bare = changed(fx.workload(kind), (f"{fx.POD_PATH[kind]}.containers[0].livenessProbe", DELETE))
    assert of(engine.analyze(kind, bare), "k8s-liveness-readiness-probes") == []


def test_secret_references_in_env_and_helm_values_are_fine(engine: Engine) -> None:
    props = changed(fx.workload(), (f"{C0}.env[0]", {"name": "PGPASSWORD", "value": "$(DB_PASSWORD)"}))
    assert of(engine.analyze(fx.DEPLOYMENT, props), "k8s-no-secret-literals") == []
    # Arguments may expand plain variables, and $$(VAR) is a literal, not an expansion.
    args = changed(fx.workload(), (f"{C0}.args", ["--level", "$(LOG_LEVEL)", "--raw", "$$(DATABASE_URL)"]))
    assert of(engine.analyze(fx.DEPLOYMENT, args), "k8s-no-secret-literals") == []
    secret = {"kind": "Secret", "metadata": {"name": "db"}, "stringData": {"DB_PASSWORD": "hunter2hunter2"}}
    assert of(engine.analyze(fx.SECRET, secret), "k8s-no-secret-literals") == []
    assert of(engine.analyze(fx.HELM_RELEASE, fx.helm_release()), "k8s-no-secret-literals") == []


def test_a_credential_in_a_custom_resources_spec_is_a_violation(engine: Engine) -> None:
    application = "kubernetes:argoproj.io/v1alpha1:Application"

    def with_repo(url: str) -> dict[str, object]:
        return {
            "metadata": {"name": "product-service"},
            "spec": {"source": {"repoURL": url, "path": "deploy"}},
        }

    [violation] = of(
        engine.analyze(application, with_repo("https://deploy:hunter2@git.example.com/x.git")),
        "k8s-no-secret-literals",
    )
    assert "spec.source.repoURL holds a URL with a password" in violation.message
    assert (
        of(engine.analyze(application, with_repo("https://git.example.com/x.git")), "k8s-no-secret-literals")
        == []
    )


def test_a_load_balancer_for_the_ingress_controller_is_fine(engine: Engine) -> None:
    # Traefik's chart names its Service after the release; the namespace says what it is.
    props = fx.service("LoadBalancer", name="traefik", namespace="ingress")
    assert of(engine.analyze(fx.SERVICE, props), "k8s-no-loadbalancer-service") == []


@pytest.mark.parametrize(
    ("path", "path_type", "published"),
    [
        ("/health", "Prefix", "/health"),
        ("/ready/", "Prefix", "/ready"),
        ("/grpc.health.v1.Health", "Prefix", "/grpc.health.v1.Health"),
        ("/grpc.health.v1.Health/Check", "Exact", "/grpc.health.v1.Health"),
        (
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            "Exact",
            "/grpc.reflection.v1alpha",
        ),
        ("/readyz", "ImplementationSpecific", "/readyz"),
        ("/met", "ImplementationSpecific", "/metrics"),
    ],
)
def test_an_ingress_path_onto_an_operational_endpoint_is_a_violation(
    engine: Engine, path: str, path_type: str, published: str
) -> None:
    props = changed(
        fx.ingress(),
        ("spec.rules[0].http.paths[0].path", path),
        ("spec.rules[0].http.paths[0].pathType", path_type),
    )
    [violation] = of(engine.analyze(fx.INGRESS, props), "k8s-ingress-no-ops-paths")
    assert published in violation.message and violation.level == "mandatory"


@pytest.mark.parametrize(
    ("path", "path_type"),
    [("/apifoo", "Prefix"), ("/metricsviewer", "Prefix"), ("/product.v1.ProductService", "Prefix")],
)
def test_an_ingress_path_beside_the_operational_endpoints_is_fine(
    engine: Engine, path: str, path_type: str
) -> None:
    # Prefix compares whole `/`-separated elements: /metricsviewer is not under /metrics.
    props = changed(
        fx.ingress(),
        ("spec.rules[0].http.paths[0].path", path),
        ("spec.rules[0].http.paths[0].pathType", path_type),
    )
    assert of(engine.analyze(fx.INGRESS, props), "k8s-ingress-no-ops-paths") == []


@pytest.mark.parametrize(
    ("policy", "type_", "props"),
    [
        ("k8s-hpa-min-replicas", fx.HPA, fx.hpa(min_replicas=1)),
        ("aws-rds-backup-retention", fx.RDS, changed(fx.rds(), ("backupRetentionPeriod", 7))),
        ("aws-rds-multi-az", fx.RDS, changed(fx.rds(), ("multiAz", False))),
        ("aws-rds-deletion-protection", fx.RDS, changed(fx.rds(), ("deletionProtection", False))),
        (
            "aws-elasticache-failover",
            fx.REDIS_GROUP,
            changed(fx.redis_group(), ("automaticFailoverEnabled", False)),
        ),
        (
            "gcp-sql-backups",
            fx.CLOUD_SQL,
            changed(
                fx.cloud_sql(), ("settings.backupConfiguration.backupRetentionSettings.retainedBackups", 7)
            ),
        ),
        (
            "gcp-sql-regional-ha",
            fx.CLOUD_SQL,
            changed(fx.cloud_sql(), ("settings.availabilityType", "ZONAL")),
        ),
        ("gcp-sql-deletion-protection", fx.CLOUD_SQL, changed(fx.cloud_sql(), ("deletionProtection", False))),
        ("gcp-redis-standard-ha", fx.MEMORYSTORE, changed(fx.memorystore(), ("tier", "BASIC"))),
        (
            "azure-postgres-backup",
            fx.FLEXIBLE_SERVER,
            changed(
                fx.flexible_server(), ("backup", {"backupRetentionDays": 7, "geoRedundantBackup": "Disabled"})
            ),
        ),
        (
            "azure-postgres-high-availability",
            fx.FLEXIBLE_SERVER,
            changed(fx.flexible_server(), ("highAvailability", {})),
        ),
        (
            "k8s-image-digest-in-prod",
            fx.DEPLOYMENT,
            changed(fx.workload(), (f"{C0}.image", "ghcr.io/example/product-service:1.2.3")),
        ),
    ],
)
def test_prod_only_checks_fail_by_default_and_pass_in_dev(
    engine: Engine, dev_engine: Engine, policy: str, type_: str, props: dict[str, Any]
) -> None:
    assert of(engine.analyze(type_, props), policy), "strict (prod) is the default"
    assert of(dev_engine.analyze(type_, props), policy) == []


def test_dev_still_needs_a_week_of_backups(dev_engine: Engine) -> None:
    found = of(
        dev_engine.analyze(fx.RDS, changed(fx.rds(), ("backupRetentionPeriod", 3))),
        "aws-rds-backup-retention",
    )
    assert [d.message for d in found] == [
        "RDS keeps automated backups for at least 7 days (30 in prod): backups are the only way back from "
        "a bad migration or a dropped table.\nbackupRetentionPeriod is 3 days; needs >= 7"
    ]


def test_versioned_azure_types_are_covered(engine: Engine) -> None:
    props = changed(fx.azure_redis(), ("minimumTlsVersion", "1.0"))
    versioned = "azure-native:redisenterprise/v20250701:RedisEnterprise"
    assert of(engine.analyze(versioned, props), "azure-redis-tls-only")


def test_a_cloud_sql_instance_without_backups_has_no_transaction_log_to_outlast(engine: Engine) -> None:
    props = changed(fx.cloud_sql(), ("settings.backupConfiguration.enabled", False))
    assert of(engine.analyze(fx.CLOUD_SQL, props), "gcp-sql-backups-outlast-transaction-logs") == []


def test_the_retired_azure_cache_for_redis_type_has_no_rules_left(engine: Engine) -> None:
    assert engine.analyze("azure-native:redis:Redis", {"enableNonSslPort": True}) == []
