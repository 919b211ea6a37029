"""Compliant resources, as the program declares them and the engine passes them (camelCase inputs).

Each builder returns a fresh dict that passes every rule for its type in prod; tests derive the
non-compliant and unknown variants with `policy_harness.changed`.
"""

from __future__ import annotations

from typing import Any

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
STATEFUL_SET = "kubernetes:apps/v1:StatefulSet"
JOB = "kubernetes:batch/v1:Job"
CRON_JOB = "kubernetes:batch/v1:CronJob"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
SECRET = "kubernetes:core/v1:Secret"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
SERVICE = "kubernetes:core/v1:Service"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
NAMESPACE = "kubernetes:core/v1:Namespace"
ARGOCD_PROJECT = "kubernetes:argoproj.io/v1alpha1:AppProject"
ARGOCD_APPLICATION = "kubernetes:argoproj.io/v1alpha1:Application"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"

EKS = "aws:eks/cluster:Cluster"
RDS = "aws:rds/instance:Instance"
RDS_PARAMETERS = "aws:rds/parameterGroup:ParameterGroup"
AURORA = "aws:rds/cluster:Cluster"
REDIS_GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
CACHE_CLUSTER = "aws:elasticache/cluster:Cluster"
SECURITY_GROUP_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
KMS_KEY = "aws:kms/key:Key"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
GKE = "gcp:container/cluster:Cluster"
CLOUD_SQL = "gcp:sql/databaseInstance:DatabaseInstance"
MEMORYSTORE = "gcp:redis/instance:Instance"
SERVICE_NETWORKING = "gcp:servicenetworking/connection:Connection"
AKS = "azure-native:containerservice:ManagedCluster"
FLEXIBLE_SERVER = "azure-native:dbforpostgresql:Server"
AZURE_REDIS = "azure-native:redisenterprise:RedisEnterprise"
AZURE_REDIS_DATABASE = "azure-native:redisenterprise:Database"

POD_PATH = {
    DEPLOYMENT: "spec.template.spec",
    STATEFUL_SET: "spec.template.spec",
    JOB: "spec.template.spec",
    CRON_JOB: "spec.jobTemplate.spec.template.spec",
}


def pod_spec() -> dict[str, Any]:
    return {
        "serviceAccountName": "api",
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "api",
                "image": f"ghcr.io/example/product-service@sha256:{'ab' * 32}",
                "env": [
                    {"name": "LOG_LEVEL", "value": "INFO"},
                    {
                        "name": "DATABASE_URL",
                        "valueFrom": {"secretKeyRef": {"name": "api", "key": "DATABASE_URL"}},
                    },
                ],
                "ports": [{"containerPort": 8080, "name": "http"}],
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "resources": {
                    "requests": {"cpu": "100m", "memory": "128Mi"},
                    "limits": {"cpu": "1", "memory": "256Mi"},
                },
                "livenessProbe": {"httpGet": {"path": "/health", "port": "http"}},
                "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}},
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
            }
        ],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }


def workload(
    type_: str = DEPLOYMENT, name: str = "api", namespace: str = "shop", replicas: int = 1
) -> dict[str, Any]:
    kind = type_.rsplit(":", 1)[1]
    template = {"metadata": {"labels": {"app": name}}, "spec": pod_spec()}
    spec: dict[str, Any]
    if type_ == CRON_JOB:
        template["spec"]["restartPolicy"] = "Never"
        spec = {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": template}}}
    elif type_ == JOB:
        template["spec"]["restartPolicy"] = "Never"
        spec = {"template": template}
    else:
        spec = {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": template}
    api = "batch/v1" if type_ in (JOB, CRON_JOB) else "apps/v1"
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def config_map() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "api", "namespace": "shop"},
        "data": {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger-collector.tracing:4317", "LOG_LEVEL": "INFO"},
    }


def helm_release() -> dict[str, Any]:
    return {
        "chart": "kube-prometheus-stack",
        "version": "77.5.0",
        "namespace": "monitoring",
        "repositoryOpts": {"repo": "https://prometheus-community.github.io/helm-charts"},
        "values": {
            "grafana": {"admin": {"existingSecret": "grafana-admin", "passwordKey": "admin-password"}}
        },
    }


def bounded_release() -> dict[str, Any]:
    """A Traefik release whose one component is bounded and hardened through the chart's own keys."""
    return {
        "chart": "traefik",
        "version": "37.3.0",
        "namespace": "ingress",
        "values": {
            "resources": {
                "requests": {"cpu": "100m", "memory": "128Mi"},
                "limits": {"cpu": "1", "memory": "256Mi"},
            },
            "podSecurityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65532,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            },
        },
    }


def client_address_release() -> dict[str, Any]:
    """A Traefik release that keeps the client's address and trusts no forwarded header."""
    trust_no_one = {"trustedIPs": [], "insecure": False}
    entry_point = {"forwardedHeaders": trust_no_one, "proxyProtocol": trust_no_one}
    return {
        "chart": "traefik",
        "version": "37.3.0",
        "namespace": "ingress",
        "values": {
            "ports": {"web": {"port": 8000, **entry_point}, "websecure": {"port": 8443, **entry_point}},
            "service": {"spec": {"externalTrafficPolicy": "Local"}},
        },
    }


def monitoring_release() -> dict[str, Any]:
    """kube-prometheus-stack with volumes for its data and a receiver that notifies someone."""
    claim = {"volumeClaimTemplate": {"spec": {"resources": {"requests": {"storage": "50Gi"}}}}}
    return {
        "chart": "kube-prometheus-stack",
        "version": "82.9.0",
        "namespace": "monitoring",
        "values": {
            "prometheus": {"prometheusSpec": {"storageSpec": claim}},
            "alertmanager": {
                "alertmanagerSpec": {"storage": claim},
                "config": {
                    "receivers": [
                        {"name": "null"},
                        {
                            "name": "platform",
                            "webhook_configs": [{"url_file": "/etc/alertmanager/secrets/a/url"}],
                        },
                    ]
                },
            },
            "grafana": {"persistence": {"enabled": True}},
        },
    }


def service(type_: str = "ClusterIP", name: str = "api", namespace: str = "shop") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"type": type_, "selector": {"app": "api"}, "ports": [{"port": 80, "targetPort": "http"}]},
    }


def ingress() -> dict[str, Any]:
    backend = {"service": {"name": "api", "port": {"name": "http"}}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "api", "namespace": "shop"},
        "spec": {
            "ingressClassName": "traefik",
            "rules": [
                {
                    "host": "api.example.com",
                    "http": {
                        "paths": [
                            {"path": "/api", "pathType": "Prefix", "backend": backend},
                            {"path": "/openapi.json", "pathType": "Exact", "backend": backend},
                        ]
                    },
                }
            ],
        },
    }


def hpa(min_replicas: int = 3, target: str = "api", namespace: str = "shop") -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": target, "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": min_replicas,
            "maxReplicas": 10,
        },
    }


def pdb(app: str = "api", namespace: str = "shop") -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": app, "namespace": namespace},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": app}}},
    }


def pod_security(enforce: str = "restricted", **modes: str) -> dict[str, str]:
    """Pod Security labels: `enforce` as given, warn and audit restricted unless `modes` say otherwise."""
    levels = {"enforce": enforce, "warn": "restricted", "audit": "restricted", **modes}
    labels = {}
    for mode, level in levels.items():
        labels[f"pod-security.kubernetes.io/{mode}"] = level
        labels[f"pod-security.kubernetes.io/{mode}-version"] = "v1.36"
    return labels


def namespace(name: str = "shop") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": pod_security()},
    }


def argocd_project() -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AppProject",
        "metadata": {"name": "shop", "namespace": "argocd"},
        "spec": {
            "sourceRepos": ["https://git.example.com/deploy.git"],
            "destinations": [{"server": "https://kubernetes.default.svc", "namespace": "shop"}],
            "clusterResourceWhitelist": [],
            "namespaceResourceWhitelist": [{"group": "apps", "kind": "Deployment"}],
        },
    }


def argocd_application() -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "shop", "namespace": "argocd"},
        "spec": {
            "project": "shop",
            "source": {"repoURL": "https://git.example.com/deploy.git", "path": "deploy/shop"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "shop"},
        },
    }


def dns_network_policy(namespace: str = "shop") -> dict[str, Any]:
    """Every pod of the namespace may resolve names through kube-system's DNS pods, and nothing more."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "allow-dns", "namespace": namespace},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                            },
                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                        }
                    ],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                },
                {"to": [{"podSelector": {"matchLabels": {"app": "db"}}}], "ports": [{"port": 5432}]},
            ],
        },
    }


def network_policy(namespace: str = "shop") -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "default-deny", "namespace": namespace},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }


# --- AWS ----------------------------------------------------------------------------------------------


def eks() -> dict[str, Any]:
    return {
        "name": "platform-prod",
        "version": "1.36",
        "roleArn": "arn:aws:iam::123456789012:role/eks",
        "upgradePolicy": {"supportType": "STANDARD"},
        "vpcConfig": {
            "subnetIds": ["subnet-1", "subnet-2"],
            "endpointPrivateAccess": True,
            "endpointPublicAccess": True,
            "publicAccessCidrs": ["203.0.113.0/24"],
        },
        "encryptionConfig": {
            "resources": ["secrets"],
            "provider": {"keyArn": "arn:aws:kms:us-east-1:1:key/k"},
        },
        "enabledClusterLogTypes": ["api", "audit", "authenticator", "controllerManager", "scheduler"],
    }


def rds() -> dict[str, Any]:
    return {
        "engine": "postgres",
        "engineVersion": "16.4",
        "instanceClass": "db.r6g.large",
        "publiclyAccessible": False,
        "storageEncrypted": True,
        "backupRetentionPeriod": 30,
        "multiAz": True,
        "deletionProtection": True,
        "parameterGroupName": "postgres-ssl-abc1234",
        "password": "generated-password-0123456789",
    }


def aurora() -> dict[str, Any]:
    return {
        "engine": "aurora-postgresql",
        "engineVersion": "16.4",
        "storageEncrypted": True,
        "backupRetentionPeriod": 35,
        "deletionProtection": True,
        "masterPassword": "generated-password-0123456789",
    }


def memcached_cluster() -> dict[str, Any]:
    return {"engine": "memcached", "nodeType": "cache.t4g.micro", "numCacheNodes": 1}


def security_group_rule() -> dict[str, Any]:
    return {
        "type": "ingress",
        "securityGroupId": "sg-1",
        "protocol": "tcp",
        "fromPort": 443,
        "toPort": 443,
        "cidrBlocks": ["0.0.0.0/0"],
        "description": "https to the public load balancer",
    }


def rds_parameters() -> dict[str, Any]:
    return {"family": "postgres16", "parameters": [{"name": "rds.force_ssl", "value": "1"}]}


def redis_group() -> dict[str, Any]:
    return {
        "description": "cache",
        "engine": "redis",
        "atRestEncryptionEnabled": True,
        "transitEncryptionEnabled": True,
        "transitEncryptionMode": "required",
        "authToken": "generated-token-0123456789abcdef",
        "automaticFailoverEnabled": True,
        "multiAzEnabled": True,
        "numCacheClusters": 2,
    }


def security_group() -> dict[str, Any]:
    return {
        "description": "public load balancer",
        "ingress": [
            {"protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": ["0.0.0.0/0"]},
            {"protocol": "tcp", "fromPort": 5432, "toPort": 5432, "cidrBlocks": ["10.0.0.0/16"]},
        ],
    }


def ingress_rule() -> dict[str, Any]:
    return {
        "securityGroupId": "sg-1",
        "ipProtocol": "tcp",
        "fromPort": 5432,
        "toPort": 5432,
        "cidrIpv4": "10.0.0.0/16",
        "description": "postgres from the cluster",
    }


def log_group(name: str = "/aws/eks/platform-prod/cluster") -> dict[str, Any]:
    return {"name": name, "retentionInDays": 365}


def kms_key() -> dict[str, Any]:
    return {"description": "EKS secrets", "enableKeyRotation": True, "deletionWindowInDays": 30}


# --- GCP ----------------------------------------------------------------------------------------------


def gke() -> dict[str, Any]:
    return {
        "location": "europe-west1",
        "privateClusterConfig": {"enablePrivateNodes": True, "enablePrivateEndpoint": False},
        "masterAuthorizedNetworksConfig": {
            "cidrBlocks": [{"cidrBlock": "203.0.113.0/24", "displayName": "office"}]
        },
        "workloadIdentityConfig": {"workloadPool": "example-project.svc.id.goog"},
        "enableShieldedNodes": True,
        "releaseChannel": {"channel": "REGULAR"},
        "datapathProvider": "ADVANCED_DATAPATH",
        "enableLegacyAbac": False,
    }


def cloud_sql() -> dict[str, Any]:
    return {
        "databaseVersion": "POSTGRES_16",
        "deletionProtection": True,
        "settings": {
            "tier": "db-custom-2-7680",
            "availabilityType": "REGIONAL",
            "deletionProtectionEnabled": True,
            "ipConfiguration": {
                "ipv4Enabled": False,
                "privateNetwork": "projects/p/global/networks/n",
                "sslMode": "ENCRYPTED_ONLY",
                "serverCaMode": "GOOGLE_MANAGED_CAS_CA",
            },
            "backupConfiguration": {
                "enabled": True,
                "pointInTimeRecoveryEnabled": True,
                "transactionLogRetentionDays": 7,
                "backupRetentionSettings": {"retainedBackups": 30},
            },
        },
    }


def memorystore() -> dict[str, Any]:
    return {
        "memorySizeGb": 1,
        "tier": "STANDARD_HA",
        "authEnabled": True,
        "transitEncryptionMode": "SERVER_AUTHENTICATION",
    }


def service_networking() -> dict[str, Any]:
    return {
        "network": "projects/p/global/networks/n",
        "service": "servicenetworking.googleapis.com",
        "reservedPeeringRanges": ["private-services"],
        "deletionPolicy": "ABANDON",
    }


# --- Azure --------------------------------------------------------------------------------------------


def aks() -> dict[str, Any]:
    return {
        "resourceGroupName": "rg",
        "apiServerAccessProfile": {"authorizedIPRanges": ["203.0.113.0/24"]},
        "networkProfile": {"networkPlugin": "azure", "networkPolicy": "azure"},
        "aadProfile": {"managed": True, "enableAzureRBAC": True},
        "disableLocalAccounts": True,
        "enableRBAC": True,
    }


def flexible_server() -> dict[str, Any]:
    return {
        "resourceGroupName": "rg",
        "version": "16",
        "administratorLogin": "platform",
        "administratorLoginPassword": "generated-password-0123456789",
        "network": {
            "delegatedSubnetResourceId": "/subscriptions/s/subnets/db",
            "publicNetworkAccess": "Disabled",
        },
        "backup": {"backupRetentionDays": 30, "geoRedundantBackup": "Enabled"},
        "highAvailability": {"mode": "ZoneRedundant"},
    }


def azure_redis() -> dict[str, Any]:
    return {
        "resourceGroupName": "rg",
        "sku": {"name": "Balanced_B1"},
        "minimumTlsVersion": "1.2",
        "publicNetworkAccess": "Disabled",
        "highAvailability": "Enabled",
    }


def azure_redis_database() -> dict[str, Any]:
    return {
        "resourceGroupName": "rg",
        "clusterName": "redis1a2b3c4d",
        "databaseName": "default",
        "clientProtocol": "Encrypted",
        "port": 10000,
        "clusteringPolicy": "EnterpriseCluster",
    }
