"""Azure foundation: a VNet, AKS, PostgreSQL Flexible Server and Azure Managed Redis.

AKS authenticates through Microsoft Entra ID only (local accounts off, Azure RBAC for
Kubernetes). Postgres sits in a delegated subnet and Redis behind a private endpoint; both are
resolved through private DNS zones linked to the VNet, refuse public traffic, and their subnets'
security groups admit only the cluster's nodes.

Redis is Azure Managed Redis (`Microsoft.Cache/redisEnterprise`: a cluster and its one database),
not Azure Cache for Redis: since 2026-04-01 a tenant without an Azure Cache for Redis cannot
create one, and its Basic/Standard/Premium tiers retire on 2028-09-30.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml
from config import ConfigError, PlatformConfig
from foundation import (
    CERT_MANAGER_ACCOUNT,
    EXTERNAL_DNS_ACCOUNT,
    ClusterFacts,
    Foundation,
    PostgresEndpoint,
    PublicZone,
    RedisEndpoint,
    WorkloadIdentity,
)
from passwords import supplied_or_generated
from pulumi_azure_native import (
    authorization,
    containerservice,
    dbforpostgresql,
    dns,
    managedidentity,
    network,
    privatedns,
    redisenterprise,
    resources,
)

from clouds.shared import platform_name, secret

# Per-profile sizes; `platform:nodeSize`, `dbSize` and `redisSize` override them. A Redis size is an
# Azure Managed Redis SKU, `<family>_<size>`: Balanced_B0 (0.5 GB) ... MemoryOptimized_M10 ...
NODE_SIZES = {"dev": "Standard_D2s_v5", "prod": "Standard_D4s_v5"}
DB_SIZES = {"dev": "Standard_B2s", "prod": "Standard_D4ds_v5"}
REDIS_SIZES = {"dev": "Balanced_B0", "prod": "Balanced_B1"}
REDIS_FAMILIES = ("Balanced_B", "MemoryOptimized_M", "ComputeOptimized_X", "FlashOptimized_A")

POSTGRES_VERSION = "17"
DATABASE = "products"
DATABASE_USER = "platform"
POSTGRES_PORT = 5432
# Flexible Server offers these disk sizes only; a configured size is rounded up to the next one.
POSTGRES_DISK_SIZES_GB = [32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768]

VNET_CIDR = "10.40.0.0/16"
NODE_CIDR = "10.40.0.0/20"
POSTGRES_CIDR = "10.40.16.0/24"
ENDPOINT_CIDR = "10.40.17.0/24"
POD_CIDR = "192.168.0.0/16"  # Azure CNI overlay: pod addresses never consume VNet space
SERVICE_CIDR = "10.41.0.0/16"
DNS_SERVICE_IP = "10.41.0.10"

# Azure Managed Redis behind a private endpoint: its zone, the endpoint's sub-resource, and the
# database's TLS port (learn.microsoft.com/azure/azure-cache-for-redis/managed-redis/managed-redis-private-link).
REDIS_PRIVATE_DNS_ZONE = "privatelink.redis.azure.net"
REDIS_PRIVATE_LINK_GROUP = "redisEnterprise"
REDIS_PORT = 10000
# The roots Flexible Server's certificates chain to; pods verify the server against them.
POSTGRES_CA_ROOTS = Path(__file__).parent / "certs" / "azure-postgres-roots.pem"
# Built-in role ids, the same in every tenant.
AKS_RBAC_CLUSTER_ADMIN_ROLE = "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b"
NETWORK_CONTRIBUTOR_ROLE = "4d97b98b-1d4f-4787-a291-c67834d212e7"
# "DNS Zone Contributor": records and zones, not who may access them (Azure built-in roles).
DNS_ZONE_CONTRIBUTOR_ROLE = "befefa01-2a29-4197-83a8-272ff33ce314"


def build(cfg: PlatformConfig) -> Foundation:
    return AzureFoundation("platform", cfg).foundation


class AzureFoundation(pulumi.ComponentResource):
    foundation: Foundation

    def __init__(self, name: str, cfg: PlatformConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        settings = _settings(cfg)  # every check before the first resource
        super().__init__("platform:azure:Foundation", name, None, opts)
        self._cfg = cfg
        self._settings = settings
        self._location = settings.location
        self._tags = {"platform-stack": cfg.stack}
        self.zones = [str(zone) for zone in range(1, cfg.zone_count + 1)]
        self._client = authorization.get_client_config_output()
        self._group = resources.ResourceGroup(
            "platform", location=self._location, tags=self._tags, opts=pulumi.ResourceOptions(parent=self)
        )

        vnet = self._network()
        cluster = self._cluster(vnet)
        postgres = self._postgres(vnet)
        redis_endpoint = self._redis(vnet)
        public_zone = self._public_zone(cfg.domain, cluster) if cfg.domain else None
        self.foundation = Foundation(
            cloud="azure",
            provider=cluster.provider,
            kubeconfig=cluster.kubeconfig,
            postgres=postgres,
            redis=redis_endpoint,
            cluster=ClusterFacts(
                kubernetes_version=cfg.kubernetes_version,
                zones=[f"{self._location}-{zone}" for zone in self.zones],  # as nodes are labelled
                storage_class=None,  # AKS's default `default` (Azure Disk CSI, StandardSSD)
                needs_metrics_server=False,  # AKS ships metrics-server
                # Azure's load balancer probes a port over HTTP(S) at `/` when the Service port
                # declares an HTTP appProtocol. The ingress controller answers `/` only for hosts it
                # routes (404 otherwise) and has no health path on its traffic ports, so probe its
                # Service ports (80 web, 443 websecure) over TCP: open port = serving.
                load_balancer_annotations={
                    f"service.beta.kubernetes.io/port_{port}_health-probe_protocol": "tcp"
                    for port in (80, 443)
                },
                data_network_peers=[{"ipBlock": {"cidr": cidr}} for cidr in (POSTGRES_CIDR, ENDPOINT_CIDR)],
                public_zone=public_zone,
            ),
        )
        self.register_outputs(
            {
                "resource_group": self._group.name,
                "cluster_name": cluster.aks.name,
                "cluster_fqdn": cluster.aks.fqdn,
                "postgres_host": postgres.host,
                "redis_host": redis_endpoint.host,
            }
        )

    # --- network -----------------------------------------------------------------------------------

    def _network(self) -> _Network:
        group = self._group.name
        opts = pulumi.ResourceOptions(parent=self)
        vnet = network.VirtualNetwork(
            "vnet",
            resource_group_name=group,
            location=self._location,
            address_space=network.AddressSpaceArgs(address_prefixes=[VNET_CIDR]),
            tags=self._tags,
            opts=opts,
        )
        nodes = network.Subnet(
            "nodes",
            resource_group_name=group,
            virtual_network_name=vnet.name,
            address_prefix=NODE_CIDR,
            opts=opts,
        )
        # Azure updates one subnet of a VNet at a time, so each waits for the one before.
        postgres = network.Subnet(
            "postgres",
            resource_group_name=group,
            virtual_network_name=vnet.name,
            address_prefix=POSTGRES_CIDR,
            delegations=[
                network.DelegationArgs(
                    name="postgres", service_name="Microsoft.DBforPostgreSQL/flexibleServers"
                )
            ],
            # High availability needs 5432 between the servers of the subnet itself
            # (learn.microsoft.com/azure/postgresql/flexible-server/concepts-networking-private).
            network_security_group=self._reachable_from_nodes(
                "postgres", POSTGRES_CIDR, POSTGRES_PORT, within_subnet=True
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[nodes]),
        )
        endpoints = network.Subnet(
            "endpoints",
            resource_group_name=group,
            virtual_network_name=vnet.name,
            address_prefix=ENDPOINT_CIDR,
            network_security_group=self._reachable_from_nodes("endpoints", ENDPOINT_CIDR, REDIS_PORT),
            # A subnet's security group applies to its private endpoints only when asked to
            # (learn.microsoft.com/azure/private-link/disable-private-endpoint-network-policy).
            private_endpoint_network_policies="NetworkSecurityGroupEnabled",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[postgres]),
        )
        return _Network(vnet=vnet, nodes=nodes, postgres=postgres, endpoints=endpoints)

    def _reachable_from_nodes(
        self, name: str, subnet_cidr: str, port: int, within_subnet: bool = False
    ) -> network.NetworkSecurityGroupArgs:
        """A data subnet's security group: the cluster's nodes (and, `within_subnet`, the subnet's own
        servers) on the service's port, nothing else from the VNet. Node-level is as narrow as the VNet
        gets: with Azure CNI overlay a pod reaches anything outside the cluster with its node's address
        (learn.microsoft.com/training/modules/aks-network-design-azure-container-network-interface), so
        which pods may connect is decided inside the cluster, by NetworkPolicy. The deny names the VNet's
        own range, so Azure's platform traffic (the AzureLoadBalancer tag's default rule) is untouched."""
        sources = [("nodes", NODE_CIDR), *([("subnet", subnet_cidr)] if within_subnet else [])]
        rules = [
            network.SecurityRuleArgs(
                name=f"allow-{rule}",
                priority=100 + 10 * index,
                direction="Inbound",
                access="Allow",
                protocol="Tcp",
                source_address_prefix=source,
                source_port_range="*",
                destination_address_prefix=subnet_cidr,
                destination_port_range=str(port),
            )
            for index, (rule, source) in enumerate(sources)
        ]
        rules.append(
            network.SecurityRuleArgs(
                name="deny-vnet",
                priority=4000,
                direction="Inbound",
                access="Deny",
                protocol="*",
                source_address_prefix=VNET_CIDR,
                source_port_range="*",
                destination_address_prefix="*",
                destination_port_range="*",
            )
        )
        group = network.NetworkSecurityGroup(
            name,
            resource_group_name=self._group.name,
            location=self._location,
            security_rules=rules,
            tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return network.NetworkSecurityGroupArgs(id=group.id)

    # --- AKS -----------------------------------------------------------------------------------------

    def _cluster(self, vnet: _Network) -> _Cluster:
        cfg = self._cfg
        group = self._group.name
        # With Azure RBAC, whoever runs `pulumi up` needs a role to create Kubernetes objects, and a
        # new assignment takes minutes to reach the cluster's authorizer (the first call is then
        # Forbidden). Granted on the stack's resource group before the cluster exists, it
        # propagates while AKS is created (minutes) and covers the cluster from its first call.
        # Azure refuses a principal type that does not match the principal (UnmatchedPrincipalType),
        # and leaving it out is no way around it: the SDK then sends User. Guessed from the provider's
        # settings it was wrong for a service principal signed in through the Azure CLI (azure/login
        # over OIDC, this repository's workflow). getClientConfig gives the object id but not the type,
        # so the type comes from the deployer's own token (_principal_type).
        deployer = authorization.RoleAssignment(
            "aks-deployer-admin",
            principal_id=self._client.object_id,
            principal_type=_principal_type(authorization.get_client_token_output().token),
            role_definition_id=self._role(AKS_RBAC_CLUSTER_ADMIN_ROLE),
            scope=self._group.id,
            opts=pulumi.ResourceOptions(parent=self),
        )
        aks = containerservice.ManagedCluster(
            "aks",
            resource_group_name=group,
            location=self._location,
            dns_prefix=f"{platform_name(cfg.stack)}"[:54].rstrip("-"),
            kubernetes_version=cfg.kubernetes_version,
            identity=containerservice.ManagedClusterIdentityArgs(type="SystemAssigned"),
            # The Standard tier carries the control plane's uptime SLA.
            sku=containerservice.ManagedClusterSKUArgs(
                name="Base", tier="Standard" if cfg.high_availability else "Free"
            ),
            agent_pool_profiles=[
                containerservice.ManagedClusterAgentPoolProfileArgs(
                    name="system",
                    mode="System",
                    type="VirtualMachineScaleSets",
                    os_type="Linux",
                    os_sku="AzureLinux",
                    vm_size=cfg.node_size or NODE_SIZES[cfg.profile],
                    os_disk_size_gb=64,
                    vnet_subnet_id=vnet.nodes.id,
                    availability_zones=self.zones if len(self.zones) > 1 else None,
                    enable_auto_scaling=True,
                    min_count=cfg.node_min_count,
                    max_count=cfg.node_max_count,
                    count=cfg.node_min_count,
                    enable_node_public_ip=False,
                )
            ],
            network_profile=containerservice.ContainerServiceNetworkProfileArgs(
                network_plugin="azure",
                network_plugin_mode="overlay",
                network_policy="calico",
                pod_cidr=POD_CIDR,
                service_cidr=SERVICE_CIDR,
                dns_service_ip=DNS_SERVICE_IP,
                load_balancer_sku="standard",
                outbound_type="loadBalancer",
            ),
            api_server_access_profile=containerservice.ManagedClusterAPIServerAccessProfileArgs(
                authorized_ip_ranges=cfg.api_allowed_cidrs
            ),
            enable_rbac=True,
            disable_local_accounts=True,
            aad_profile=containerservice.ManagedClusterAADProfileArgs(managed=True, enable_azure_rbac=True),
            oidc_issuer_profile=containerservice.ManagedClusterOIDCIssuerProfileArgs(enabled=True),
            security_profile=containerservice.ManagedClusterSecurityProfileArgs(
                workload_identity=containerservice.ManagedClusterSecurityProfileWorkloadIdentityArgs(
                    enabled=True
                )
            ),
            auto_upgrade_profile=containerservice.ManagedClusterAutoUpgradeProfileArgs(
                upgrade_channel="patch", node_os_upgrade_channel="NodeImage"
            ),
            tags=self._tags,
            # The cluster autoscaler owns the current node count between the bounds.
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[deployer], ignore_changes=["agentPoolProfiles[0].count"]
            ),
        )
        # The cluster's identity manages load balancers and routes in the VNet it was given. That
        # identity is created moments before, so the type is named: ARM then skips the directory lookup.
        authorization.RoleAssignment(
            "aks-network",
            principal_id=aks.identity.principal_id,
            principal_type="ServicePrincipal",
            role_definition_id=self._role(NETWORK_CONTRIBUTOR_ROLE),
            scope=vnet.vnet.id,
            opts=pulumi.ResourceOptions(parent=aks),
        )

        login = _kubelogin_login()
        credentials = containerservice.list_managed_cluster_user_credentials_output(
            resource_group_name=group, resource_name=aks.name, format="exec"
        )
        kubeconfig = secret(
            credentials.kubeconfigs.apply(lambda configs: _kubelogin_as_deployer(configs[0].value, login))
        )
        provider = k8s.Provider(
            "aks", kubeconfig=kubeconfig, opts=pulumi.ResourceOptions(parent=self, depends_on=[deployer])
        )
        return _Cluster(aks=aks, provider=provider, kubeconfig=kubeconfig)

    def _public_zone(self, domain: str, cluster: _Cluster) -> PublicZone:
        """A public Azure DNS zone for platform:domain and a user-assigned managed identity each for
        external-dns and cert-manager, federated with their Kubernetes ServiceAccounts through the
        cluster's OIDC issuer (AKS workload identity), each "DNS Zone Contributor" on that zone only."""
        opts = pulumi.ResourceOptions(parent=self)
        zone = dns.Zone(
            "public",
            zone_name=domain,
            resource_group_name=self._group.name,
            location="global",  # Azure DNS zones are global resources
            zone_type=dns.ZoneType.PUBLIC,
            tags=self._tags,
            opts=opts,
        )
        issuer = cluster.aks.oidc_issuer_profile.apply(
            lambda profile: (profile.issuer_url if profile else None) or ""
        )

        def identity(name: str, account: tuple[str, str]) -> managedidentity.UserAssignedIdentity:
            namespace, service_account = account
            managed = managedidentity.UserAssignedIdentity(
                name,
                resource_group_name=self._group.name,
                location=self._location,
                tags=self._tags,
                opts=opts,
            )
            managedidentity.FederatedIdentityCredential(
                name,
                resource_group_name=self._group.name,
                resource_name_=managed.name,
                issuer=issuer,
                subject=f"system:serviceaccount:{namespace}:{service_account}",
                audiences=["api://AzureADTokenExchange"],
                opts=pulumi.ResourceOptions(parent=managed),
            )
            authorization.RoleAssignment(
                f"{name}-dns-zone",
                principal_id=managed.principal_id,
                principal_type="ServicePrincipal",
                role_definition_id=self._role(DNS_ZONE_CONTRIBUTOR_ROLE),
                scope=zone.id,
                opts=pulumi.ResourceOptions(parent=managed),
            )
            return managed

        def workload(managed: managedidentity.UserAssignedIdentity) -> WorkloadIdentity:
            # learn.microsoft.com/azure/aks/workload-identity-overview: the annotation names the identity,
            # the pod label has the webhook project its token into the pod.
            return WorkloadIdentity(
                service_account_annotations={"azure.workload.identity/client-id": managed.client_id},
                pod_labels={"azure.workload.identity/use": "true"},
            )

        external_dns = identity("external-dns", EXTERNAL_DNS_ACCOUNT)
        cert_manager = identity("cert-manager", CERT_MANAGER_ACCOUNT)
        subscription = self._client.subscription_id
        return PublicZone(
            domain=domain,
            name_servers=zone.name_servers.apply(lambda servers: list(servers or [])),
            external_dns=workload(external_dns),
            cert_manager=workload(cert_manager),
            external_dns_values={"provider": {"name": "azure"}},
            # external-dns's Azure tutorial: azure.json names the zone's subscription and group, and
            # useWorkloadIdentityExtension has it sign in as the pod's federated identity.
            external_dns_files={
                "azure.json": pulumi.Output.json_dumps(
                    {
                        "tenantId": self._client.tenant_id,
                        "subscriptionId": subscription,
                        "resourceGroup": self._group.name,
                        "useWorkloadIdentityExtension": True,
                    }
                )
            },
            # cert-manager.io/docs/configuration/acme/dns01/azuredns: managedIdentity.clientID with AKS
            # workload identity; the zone's subscription, group and name.
            dns01_solver={
                "azureDNS": {
                    "subscriptionID": subscription,
                    "resourceGroupName": self._group.name,
                    "hostedZoneName": domain,
                    "environment": "AzurePublicCloud",
                    "managedIdentity": {"clientID": cert_manager.client_id},
                }
            },
        )

    def _role(self, role_id: str) -> pulumi.Output[str]:
        return self._client.subscription_id.apply(
            lambda sub: f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{role_id}"
        )

    # --- data services -------------------------------------------------------------------------------

    def _postgres(self, vnet: _Network) -> PostgresEndpoint:
        cfg = self._cfg
        group = self._group.name
        opts = pulumi.ResourceOptions(parent=self)
        # Flexible Server wants a zone name ending in `.postgres.database.azure.com`.
        zone, link = self._private_zone(
            "postgres", f"{platform_name(cfg.stack)}.private.postgres.database.azure.com", vnet
        )
        # Letters and digits only: the password goes into a DATABASE_URL unescaped.
        password = supplied_or_generated(cfg, "postgresPassword", "postgres", 40, opts)
        server = dbforpostgresql.Server(
            "postgres",
            resource_group_name=group,
            location=self._location,
            version=POSTGRES_VERSION,
            sku=self._settings.postgres_sku,
            storage=dbforpostgresql.StorageArgs(
                storage_size_gb=_postgres_disk_gb(cfg.db_storage_gb), auto_grow="Enabled"
            ),
            administrator_login=DATABASE_USER,
            administrator_login_password=password,
            auth_config=dbforpostgresql.AuthConfigArgs(
                password_auth="Enabled",  # noqa: S106 (a switch, not a password)
                active_directory_auth="Disabled",
            ),
            network=dbforpostgresql.NetworkArgs(
                delegated_subnet_resource_id=vnet.postgres.id,
                private_dns_zone_arm_resource_id=zone.id,
                public_network_access="Disabled",
            ),
            backup=dbforpostgresql.BackupArgs(
                backup_retention_days=cfg.backup_retention_days,
                geo_redundant_backup="Enabled" if cfg.is_prod else "Disabled",
            ),
            high_availability=dbforpostgresql.HighAvailabilityArgs(
                mode="ZoneRedundant" if cfg.high_availability else "Disabled"
            ),
            tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[link]),
        )
        self._lock_against_deletion("postgres", server)
        tls = dbforpostgresql.Configuration(
            "require-secure-transport",
            resource_group_name=group,
            server_name=server.name,
            configuration_name="require_secure_transport",
            value="on",
            source="user-override",
            opts=pulumi.ResourceOptions(parent=server),
        )
        dbforpostgresql.Database(
            "products",
            resource_group_name=group,
            server_name=server.name,
            database_name=DATABASE,
            charset="UTF8",
            collation="en_US.utf8",
            # Server parameter changes and database creation both lock the server; one at a time.
            opts=pulumi.ResourceOptions(parent=server, depends_on=[tls]),
        )
        return PostgresEndpoint(
            host=server.fully_qualified_domain_name,
            port=POSTGRES_PORT,
            database=DATABASE,
            user=DATABASE_USER,
            password=secret(password),
            # The certificate names the server's FQDN, which the pods resolve through the private zone.
            sslmode="verify-full",
            ca_certificate=POSTGRES_CA_ROOTS.read_text(),
        )

    def _redis(self, vnet: _Network) -> RedisEndpoint:
        cfg = self._cfg
        group = self._group.name
        opts = pulumi.ResourceOptions(parent=self)
        cluster = redisenterprise.RedisEnterprise(
            "redis",
            resource_group_name=group,
            location=self._location,
            sku=redisenterprise.SkuArgs(name=self._settings.redis_sku),
            minimum_tls_version="1.2",
            public_network_access="Disabled",
            # A replica in another zone (where the region has zones); off, the data set has one copy.
            high_availability="Enabled" if cfg.high_availability else "Disabled",
            tags=self._tags,
            opts=opts,
        )
        self._lock_against_deletion("redis", cluster)
        database = redisenterprise.Database(
            "redis",
            resource_group_name=group,
            cluster_name=cluster.name,
            database_name="default",  # the one database a cluster holds is always `default`
            client_protocol="Encrypted",
            port=REDIS_PORT,
            # One endpoint that proxies every command, for clients that are not cluster-aware (the
            # service's); OSSCluster would redirect them to shards.
            clustering_policy="EnterpriseCluster",
            eviction_policy="VolatileLRU",  # a cache: the service sets a TTL on every entry
            access_keys_authentication="Enabled",
            opts=pulumi.ResourceOptions(parent=cluster),
        )
        zone, _ = self._private_zone("redis", REDIS_PRIVATE_DNS_ZONE, vnet)
        endpoint = network.PrivateEndpoint(
            "redis",
            resource_group_name=group,
            location=self._location,
            subnet=network.SubnetArgs(id=vnet.endpoints.id),
            private_link_service_connections=[
                network.PrivateLinkServiceConnectionArgs(
                    name="redis", private_link_service_id=cluster.id, group_ids=[REDIS_PRIVATE_LINK_GROUP]
                )
            ],
            tags=self._tags,
            opts=opts,
        )
        # The zone group keeps the A record for the cluster in the private zone up to date.
        network.PrivateDnsZoneGroup(
            "redis",
            resource_group_name=group,
            private_endpoint_name=endpoint.name,
            private_dns_zone_configs=[
                network.PrivateDnsZoneConfigArgs(name="redis", private_dns_zone_id=zone.id)
            ],
            opts=pulumi.ResourceOptions(parent=endpoint),
        )
        keys = redisenterprise.list_database_keys_output(
            resource_group_name=group, cluster_name=cluster.name, database_name=database.name
        )
        # The certificate names the cluster's host (a public root signs it), so nothing to mount.
        return RedisEndpoint(
            host=cluster.host_name,
            port=database.port,
            password=secret(keys.primary_key),
            tls=True,
        )

    def _private_zone(
        self, name: str, zone_name: str, vnet: _Network
    ) -> tuple[privatedns.PrivateZone, privatedns.VirtualNetworkLink]:
        """A private DNS zone that resolves inside the VNet (and only there)."""
        opts = pulumi.ResourceOptions(parent=self)
        zone = privatedns.PrivateZone(
            name,
            resource_group_name=self._group.name,
            private_zone_name=zone_name,
            location="global",
            tags=self._tags,
            opts=opts,
        )
        link = privatedns.VirtualNetworkLink(
            name,
            resource_group_name=self._group.name,
            private_zone_name=zone.name,
            virtual_network=privatedns.SubResourceArgs(id=vnet.vnet.id),
            registration_enabled=False,
            location="global",
            tags=self._tags,
            opts=opts,
        )
        return zone, link

    def _lock_against_deletion(self, name: str, resource: pulumi.CustomResource) -> None:
        """Azure has no deletion-protection flag on these services; a CanNotDelete lock is its equivalent."""
        if self._cfg.deletion_protection:
            authorization.ManagementLockByScope(
                f"{name}-no-delete",
                scope=resource.id,
                level="CanNotDelete",
                notes="Deletion protection (platform:deletionProtection); remove the lock to delete.",
                opts=pulumi.ResourceOptions(parent=resource),
            )


@dataclass
class _Network:
    vnet: network.VirtualNetwork
    nodes: network.Subnet
    postgres: network.Subnet
    endpoints: network.Subnet


@dataclass
class _Cluster:
    aks: containerservice.ManagedCluster
    provider: k8s.Provider
    kubeconfig: pulumi.Output[str]


@dataclass(frozen=True)
class _Settings:
    location: str
    postgres_sku: dbforpostgresql.SkuArgs
    redis_sku: str


def _settings(cfg: PlatformConfig) -> _Settings:
    """The Azure-specific reading of the config, refusing what Azure would refuse mid-deployment."""
    if not 7 <= cfg.backup_retention_days <= 35:
        raise ConfigError(
            "platform:backupRetentionDays must be from 7 to 35 on azure, the range Flexible Server "
            f"accepts (got '{cfg.backup_retention_days}')"
        )
    db_size = cfg.db_size or DB_SIZES[cfg.profile]
    db_tier = _postgres_tier(db_size)
    if cfg.high_availability and db_tier == "Burstable":
        raise ConfigError(
            "platform:dbSize must be a General Purpose or Memory Optimized size (Standard_D…, "
            f"Standard_E…) when highAvailability is true: Burstable has no standby (got '{db_size}')"
        )
    return _Settings(
        location=_location(),
        postgres_sku=dbforpostgresql.SkuArgs(name=db_size, tier=db_tier),
        redis_sku=_redis_sku(cfg.redis_size or REDIS_SIZES[cfg.profile]),
    )


def _location() -> str:
    location = pulumi.Config("azure-native").get("location")
    if not location:
        raise ConfigError(
            "azure-native:location must be set for cloud 'azure', e.g. `pulumi config set azure-native:location westeurope`"
        )
    return location


@dataclass(frozen=True)
class _ProviderLogin:
    """How the azure-native provider signs in (its config, else its ARM_* variables)."""

    client_id: str | None
    tenant_id: str | None
    client_secret: bool
    msi: bool
    federated_token: bool  # OpenID Connect with a token file (a pod's Azure workload identity)


def _provider_login() -> _ProviderLogin:
    provider = pulumi.Config("azure-native")
    return _ProviderLogin(
        client_id=provider.get("clientId") or os.environ.get("ARM_CLIENT_ID"),
        tenant_id=provider.get("tenantId") or os.environ.get("ARM_TENANT_ID"),
        client_secret=bool(provider.get("clientSecret") or os.environ.get("ARM_CLIENT_SECRET")),
        msi=bool(provider.get_bool("useMsi")) or os.environ.get("ARM_USE_MSI", "").lower() == "true",
        federated_token=(
            bool(provider.get_bool("useOidc")) or os.environ.get("ARM_USE_OIDC", "").lower() == "true"
        )
        and bool(os.environ.get("AZURE_FEDERATED_TOKEN_FILE")),
    )


def _principal_type(token: pulumi.Output[str]) -> pulumi.Output[str]:
    """The role-assignment principal type of whoever holds `token`, the provider's access token for ARM.

    A user's access token carries the scopes granted to the client (`scp`, "only included for user
    tokens"); an application's (service principal, managed identity) carries none, and `idtyp`, where
    present, says which it is (learn.microsoft.com/entra/identity-platform/access-token-claims-reference).
    azure-native reads `scp` too, to tell whether it signed in as a service principal
    (provider/pkg/provider/auth_getclientconfig.go), but keeps the answer to itself. The type is no
    secret, though the token is."""
    return pulumi.Output.unsecret(token.apply(_principal_type_of))


def _principal_type_of(token: str) -> str:
    claims = _token_claims(token)
    kind = claims.get("idtyp")
    if kind in ("app", "user"):
        return "ServicePrincipal" if kind == "app" else "User"
    return "User" if "scp" in claims else "ServicePrincipal"


def _token_claims(token: str) -> dict[str, Any]:
    """A JWT's payload, read without verifying it: the token is the provider's own, fresh from Entra ID."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        claims = None
    if not isinstance(claims, dict):
        raise pulumi.RunError(
            "the azure-native provider's access token is not a JWT, so the deployer's principal type "
            "(User or ServicePrincipal) for its role assignment cannot be told"
        )
    return claims


def _kubelogin_login() -> list[str]:
    """kubelogin's login flags for the identity the provider deploys as, which holds the cluster
    role; another identity gets Forbidden (azure.github.io/kubelogin/cli/get-token.html):
    - a service principal with a secret: `spn`; kubelogin reads the secret from
      AAD_SERVICE_PRINCIPAL_CLIENT_SECRET or AZURE_CLIENT_SECRET, never from the kubeconfig;
    - a managed identity: `msi` (with its client id when it is user-assigned);
    - OpenID Connect with a federated token file (AZURE_FEDERATED_TOKEN_FILE, as Azure workload
      identity mounts it in a pod): `workloadidentity`, which reads that file;
    - otherwise the Azure CLI's account: a person after `az login`, or CI after `azure/login`
      (OpenID Connect), which signs the CLI in as the deploying principal."""
    login = _provider_login()
    if login.client_id and login.client_secret:
        return ["--login", "spn", "--client-id", login.client_id, *_flag("--tenant-id", login.tenant_id)]
    if login.msi:
        return ["--login", "msi", *_flag("--client-id", login.client_id)]
    if login.federated_token:
        return [
            "--login",
            "workloadidentity",
            *_flag("--client-id", login.client_id),
            *_flag("--tenant-id", login.tenant_id),
        ]
    return ["--login", "azurecli"]


def _flag(name: str, value: str | None) -> list[str]:
    return [name, value] if value else []


def _postgres_tier(size: str) -> str:
    """Flexible Server's tier follows from the VM series: B burstable, E memory optimized, else D."""
    series = size.removeprefix("Standard_")[:1]
    return {"B": "Burstable", "E": "MemoryOptimized"}.get(series, "GeneralPurpose")


def _postgres_disk_gb(requested: int) -> int:
    return next((size for size in POSTGRES_DISK_SIZES_GB if size >= requested), POSTGRES_DISK_SIZES_GB[-1])


def _redis_sku(size: str) -> str:
    family = next((f for f in REDIS_FAMILIES if size.startswith(f)), None)
    if family is None or not size.removeprefix(family).isdigit():
        raise ConfigError(
            "platform:redisSize must be an Azure Managed Redis size like Balanced_B0, Balanced_B5 or "
            f"MemoryOptimized_M10 on azure (got '{size}')"
        )
    return size


def _kubelogin_as_deployer(kubeconfig_b64: str, login: list[str]) -> str:
    """The user kubeconfig in exec format runs kubelogin with device-code login, which cannot work
    unattended; `login` (from _kubelogin_login) makes kubelogin sign in as the provider does."""
    kubeconfig = yaml.safe_load(base64.b64decode(kubeconfig_b64))
    for user in kubeconfig.get("users", []):
        exec_ = user.get("user", {}).get("exec") or {}
        args = exec_.get("args") or []
        if "--server-id" in args:
            server_id = args[args.index("--server-id") + 1]
            exec_["args"] = ["get-token", *login, "--server-id", server_id]
    return yaml.safe_dump(kubeconfig)
