"""GCP foundation: a VPC-native network, private GKE, Cloud SQL for PostgreSQL and Memorystore Redis.

Nodes have no public addresses (Cloud NAT gives them egress). Cloud SQL and Memorystore live in
a range reserved for Google's service producers and peered into the VPC, so they have private
addresses only, which only the GKE nodes may reach (egress firewall rules). GKE runs Dataplane V2,
which enforces NetworkPolicy without a Calico add-on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s
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

from clouds.shared import dns_label, plugin_kubeconfig, secret

# Per-profile sizes; `platform:nodeSize`, `dbSize` and `redisSize` (memory in GB) override them.
NODE_SIZES = {"dev": "e2-standard-4", "prod": "n2-standard-4"}
DB_SIZES = {"dev": "db-custom-1-3840", "prod": "db-custom-4-15360"}
REDIS_SIZES = {"dev": "1", "prod": "5"}

POSTGRES_VERSION = "POSTGRES_17"
REDIS_VERSION = "REDIS_7_2"
DATABASE = "products"
DATABASE_USER = "platform"
POSTGRES_PORT = 5432
RELEASE_CHANNEL = "REGULAR"

NODE_CIDR = "10.10.0.0/20"
POD_CIDR = "10.16.0.0/14"
SERVICE_CIDR = "10.20.0.0/20"
CONTROL_PLANE_CIDR = "172.16.0.0/28"
# Reserved for Cloud SQL and Memorystore (private services access); NetworkPolicy egress targets it.
SERVICES_RANGE_ADDRESS = "10.30.0.0"
SERVICES_RANGE_PREFIX = 16

# Cloud SQL ENTERPRISE keeps 1-7 days of transaction log, and refuses fewer retained backups than
# that plus one ("backup retention should be > transaction log retention").
MAX_TRANSACTION_LOG_DAYS = 7
APIS = [
    "compute",
    "container",
    "iam",
    "cloudresourcemanager",
    "sqladmin",
    "redis",
    "servicenetworking",
    "dns",
]
NODE_ROLES = [
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
    "roles/artifactregistry.reader",
]


def build(cfg: PlatformConfig) -> Foundation:
    return GcpFoundation("platform", cfg).foundation


class GcpFoundation(pulumi.ComponentResource):
    foundation: Foundation

    def __init__(self, name: str, cfg: PlatformConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        # Every check before the first resource.
        project = _required_gcp_config("project", "my-project-id")
        region = _required_gcp_config("region", "europe-west1")
        redis_memory_gb = _memory_gb(cfg.redis_size or REDIS_SIZES[cfg.profile])
        _check_backup_retention(cfg.backup_retention_days)
        super().__init__("platform:gcp:Foundation", name, None, opts)
        self._cfg = cfg
        self._redis_memory_gb = redis_memory_gb
        self._project = project
        self._region = region
        self._labels = {"platform-stack": dns_label(cfg.stack)}

        apis = [
            gcp.projects.Service(
                f"api-{api}",
                service=f"{api}.googleapis.com",
                disable_on_destroy=False,  # other workloads in the project may rely on the API
                opts=pulumi.ResourceOptions(parent=self),
            )
            for api in APIS
        ]
        self._apis: list[pulumi.Resource] = list(apis)
        self._after_apis = pulumi.ResourceOptions(parent=self, depends_on=self._apis)
        # Asked only once the Compute API is on: on a fresh project, asking while the program is
        # evaluated fails with 403 accessNotConfigured before the program could enable it.
        self.zones = _zones(self._region, cfg.zone_count, after=apis[APIS.index("compute")])

        network = self._network()
        cluster = self._cluster(network)
        postgres, postgres_address = self._postgres(network)
        redis, redis_ca = self._redis(network)
        self._data_firewall(
            network,
            cluster.nodes_account,
            [("postgres", postgres_address, POSTGRES_PORT), ("redis", redis.host, redis.port)],
        )
        public_zone = self._public_zone(cfg.domain, cluster) if cfg.domain else None
        self.foundation = Foundation(
            cloud="gcp",
            provider=cluster.provider,
            kubeconfig=cluster.kubeconfig,
            postgres=postgres,
            redis=redis,
            cluster=ClusterFacts(
                kubernetes_version=cfg.kubernetes_version,
                zones=self.zones,
                storage_class=None,  # GKE's default `standard-rwo` (PD CSI, balanced disks)
                needs_metrics_server=False,  # GKE ships metrics-server
                data_network_peers=[
                    {"ipBlock": {"cidr": f"{SERVICES_RANGE_ADDRESS}/{SERVICES_RANGE_PREFIX}"}}
                ],
                public_zone=public_zone,
            ),
        )
        self.register_outputs(
            {
                "network": network.vpc.name,
                "cluster_name": cluster.gke.name,
                "cluster_endpoint": cluster.gke.endpoint,
                "postgres_host": postgres.host,
                "redis_host": redis.host,
                "redis_ca_certificate": redis_ca,
            }
        )

    def _public_zone(self, domain: str, cluster: _Cluster) -> PublicZone:
        """A public Cloud DNS zone for platform:domain and a Google service account each for external-dns
        and cert-manager, which their Kubernetes ServiceAccounts act as (GKE Workload Identity).
        roles/dns.admin is granted on the zone only, the lowest level Cloud DNS allows
        (cloud.google.com/iam/docs/roles-permissions/dns). external-dns also lists the project's zones to
        find this one (managedZones.list is a project permission): a custom role with that alone."""
        opts = pulumi.ResourceOptions(parent=self, depends_on=self._apis)
        zone = gcp.dns.ManagedZone(
            "public",
            name=f"{dns_label(self._cfg.stack)}-public",
            dns_name=f"{domain}.",
            description=f"platform:domain of stack {self._cfg.stack}; external-dns and cert-manager write here",
            visibility="public",
            labels=self._labels,
            opts=opts,
        )
        list_zones = gcp.projects.IAMCustomRole(
            "dns-zone-lister",
            role_id=f"platformDnsZoneLister{self._cfg.stack.capitalize()}".replace("-", ""),
            title="List Cloud DNS zones (external-dns)",
            permissions=["dns.managedZones.list"],
            project=self._project,
            opts=opts,
        )

        def identity(name: str, account: tuple[str, str]) -> gcp.serviceaccount.Account:
            namespace, service_account = account
            google = gcp.serviceaccount.Account(
                name, account_id=f"{dns_label(self._cfg.stack)}-{name}"[:30], display_name=name, opts=opts
            )
            gcp.serviceaccount.IAMMember(
                f"{name}-workload-identity",
                service_account_id=google.name,
                role="roles/iam.workloadIdentityUser",
                member=f"serviceAccount:{self._project}.svc.id.goog[{namespace}/{service_account}]",
                opts=pulumi.ResourceOptions(parent=self, depends_on=[cluster.gke]),
            )
            gcp.dns.DnsManagedZoneIamMember(
                f"{name}-zone",
                managed_zone=zone.name,
                role="roles/dns.admin",
                member=google.email.apply(lambda email: f"serviceAccount:{email}"),
                project=self._project,
                opts=opts,
            )
            return google

        external_dns = identity("external-dns", EXTERNAL_DNS_ACCOUNT)
        gcp.projects.IAMMember(
            "external-dns-zone-lister",
            project=self._project,
            role=list_zones.name,
            member=external_dns.email.apply(lambda email: f"serviceAccount:{email}"),
            opts=opts,
        )
        cert_manager = identity("cert-manager", CERT_MANAGER_ACCOUNT)
        return PublicZone(
            domain=domain,
            name_servers=zone.name_servers,
            external_dns=WorkloadIdentity({"iam.gke.io/gcp-service-account": external_dns.email}),
            cert_manager=WorkloadIdentity({"iam.gke.io/gcp-service-account": cert_manager.email}),
            external_dns_values={
                "provider": {"name": "google"},
                "extraArgs": [f"--google-project={self._project}", "--google-zone-visibility=public"],
            },
            # cert-manager.io/docs/configuration/acme/dns01/google: with the zone's name it lists no zones,
            # and without a serviceAccountSecretRef it uses the pod's Workload Identity.
            dns01_solver={"cloudDNS": {"project": self._project, "hostedZoneName": zone.name}},
            # Pods get Workload Identity tokens from GKE's metadata server at 169.254.169.254:80; 988 is the
            # port that server is commonly reported to listen on behind Dataplane V2 (not confirmed in GKE's
            # docs here; docs/clouds.md says what to check when no token comes).
            credential_ports=(80, 988),
        )

    # --- network -----------------------------------------------------------------------------------

    def _network(self) -> _Network:
        opts = self._after_apis
        vpc = gcp.compute.Network(
            "vpc", auto_create_subnetworks=False, routing_mode="REGIONAL", project=self._project, opts=opts
        )
        subnet = gcp.compute.Subnetwork(
            "nodes",
            network=vpc.id,
            region=self._region,
            ip_cidr_range=NODE_CIDR,
            secondary_ip_ranges=[
                gcp.compute.SubnetworkSecondaryIpRangeArgs(range_name="pods", ip_cidr_range=POD_CIDR),
                gcp.compute.SubnetworkSecondaryIpRangeArgs(range_name="services", ip_cidr_range=SERVICE_CIDR),
            ],
            private_ip_google_access=True,
            project=self._project,
            opts=opts,
        )
        router = gcp.compute.Router(
            "nat", network=vpc.id, region=self._region, project=self._project, opts=opts
        )
        gcp.compute.RouterNat(
            "nat",
            router=router.name,
            region=self._region,
            nat_ip_allocate_option="AUTO_ONLY",
            source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
            log_config=gcp.compute.RouterNatLogConfigArgs(enable=True, filter="ERRORS_ONLY"),
            project=self._project,
            opts=opts,
        )
        services_range = gcp.compute.GlobalAddress(
            "private-services",
            network=vpc.id,
            purpose="VPC_PEERING",
            address_type="INTERNAL",
            address=SERVICES_RANGE_ADDRESS,
            prefix_length=SERVICES_RANGE_PREFIX,
            project=self._project,
            opts=opts,
        )
        peering = gcp.servicenetworking.Connection(
            "private-services",
            network=vpc.id,
            service="servicenetworking.googleapis.com",
            reserved_peering_ranges=[services_range.name],
            # Deleting the peering fails while Cloud SQL and Memorystore still hold addresses in it
            # (they are released only days later); abandoning it lets `destroy` finish, and the
            # peering goes with the network.
            deletion_policy="ABANDON",
            opts=opts,
        )
        return _Network(vpc=vpc, subnet=subnet, services_range=services_range, peering=peering)

    # --- GKE -----------------------------------------------------------------------------------------

    def _cluster(self, network: _Network) -> _Cluster:
        cfg = self._cfg
        opts = self._after_apis
        # Nodes run as their own least-privilege account, not the project's default compute account.
        nodes_account = gcp.serviceaccount.Account(
            "gke-nodes",
            account_id=f"gke-nodes-{dns_label(cfg.stack)}"[:30].rstrip("-"),
            display_name=f"GKE nodes ({cfg.stack})",
            project=self._project,
            opts=opts,
        )
        for role in NODE_ROLES:
            gcp.projects.IAMMember(
                f"gke-nodes-{role.rsplit('/', 1)[-1]}",
                project=self._project,
                role=role,
                member=nodes_account.member,  # "serviceAccount:<email>"
                opts=pulumi.ResourceOptions(parent=nodes_account),
            )

        # Regional: a control plane replica in every zone of the region; zonal costs less for dev.
        location = self._region if cfg.high_availability else self.zones.apply(lambda zones: zones[0])
        # A zonal cluster lists only its extra zones; a regional one lists all that it uses.
        node_locations = self.zones.apply(
            lambda zones: (zones if cfg.high_availability else zones[1:]) or None
        )
        gke = gcp.container.Cluster(
            "gke",
            location=location,
            node_locations=node_locations,
            project=self._project,
            min_master_version=cfg.kubernetes_version,
            release_channel=gcp.container.ClusterReleaseChannelArgs(channel=RELEASE_CHANNEL),
            network=network.vpc.id,
            subnetwork=network.subnet.id,
            networking_mode="VPC_NATIVE",
            ip_allocation_policy=gcp.container.ClusterIpAllocationPolicyArgs(
                cluster_secondary_range_name="pods", services_secondary_range_name="services"
            ),
            datapath_provider="ADVANCED_DATAPATH",  # Dataplane V2: NetworkPolicy enforced by eBPF
            private_cluster_config=gcp.container.ClusterPrivateClusterConfigArgs(
                enable_private_nodes=True,
                enable_private_endpoint=False,  # reachable from the authorized networks below
                master_ipv4_cidr_block=CONTROL_PLANE_CIDR,
            ),
            master_authorized_networks_config=gcp.container.ClusterMasterAuthorizedNetworksConfigArgs(
                cidr_blocks=[
                    gcp.container.ClusterMasterAuthorizedNetworksConfigCidrBlockArgs(
                        cidr_block=cidr, display_name=f"platform:apiAllowedCidrs[{i}]"
                    )
                    for i, cidr in enumerate(cfg.api_allowed_cidrs)
                ],
                gcp_public_cidrs_access_enabled=False,
            ),
            workload_identity_config=gcp.container.ClusterWorkloadIdentityConfigArgs(
                workload_pool=f"{self._project}.svc.id.goog"
            ),
            enable_shielded_nodes=True,
            enable_legacy_abac=False,
            master_auth=gcp.container.ClusterMasterAuthArgs(
                client_certificate_config=gcp.container.ClusterMasterAuthClientCertificateConfigArgs(
                    issue_client_certificate=False
                )
            ),
            # The default pool cannot be configured as below; GKE needs one node to create the cluster.
            remove_default_node_pool=True,
            initial_node_count=1,
            deletion_protection=cfg.deletion_protection,
            resource_labels=self._labels,
            opts=opts,
        )
        node_pool = gcp.container.NodePool(
            "nodes",
            cluster=gke.id,
            location=location,
            project=self._project,
            initial_node_count=max(1, math.ceil(cfg.node_min_count / cfg.zone_count)),
            # Totals across all zones, not per zone, so the bounds mean what the config says.
            autoscaling=gcp.container.NodePoolAutoscalingArgs(
                total_min_node_count=cfg.node_min_count,
                total_max_node_count=cfg.node_max_count,
                location_policy="BALANCED",
            ),
            management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=True),
            upgrade_settings=gcp.container.NodePoolUpgradeSettingsArgs(max_surge=1, max_unavailable=0),
            node_config=gcp.container.NodePoolNodeConfigArgs(
                machine_type=cfg.node_size or NODE_SIZES[cfg.profile],
                disk_type="pd-balanced",
                disk_size_gb=50,
                image_type="COS_CONTAINERD",
                service_account=nodes_account.email,
                oauth_scopes=["https://www.googleapis.com/auth/cloud-platform"],
                shielded_instance_config=gcp.container.NodePoolNodeConfigShieldedInstanceConfigArgs(
                    enable_secure_boot=True, enable_integrity_monitoring=True
                ),
                workload_metadata_config=gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(
                    mode="GKE_METADATA"
                ),
                metadata={"disable-legacy-endpoints": "true"},
                labels=self._labels,
            ),
            # The cluster autoscaler owns the current size between the bounds.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["initialNodeCount"]),
        )

        kubeconfig = secret(
            pulumi.Output.all(gke.name, gke.endpoint, gke.master_auth.cluster_ca_certificate).apply(
                lambda a: _kubeconfig(a[0], a[1], a[2])
            )
        )
        provider = k8s.Provider(
            "gke", kubeconfig=kubeconfig, opts=pulumi.ResourceOptions(parent=self, depends_on=[node_pool])
        )
        return _Cluster(gke=gke, provider=provider, kubeconfig=kubeconfig, nodes_account=nodes_account)

    # --- data services -------------------------------------------------------------------------------

    def _postgres(self, network: _Network) -> tuple[PostgresEndpoint, pulumi.Output[str]]:
        """The endpoint, and the instance's private address."""
        cfg = self._cfg
        opts = pulumi.ResourceOptions(parent=self, depends_on=[*self._apis, network.peering])
        instance = gcp.sql.DatabaseInstance(
            "postgres",
            database_version=POSTGRES_VERSION,
            region=self._region,
            project=self._project,
            deletion_protection=cfg.deletion_protection,
            settings=gcp.sql.DatabaseInstanceSettingsArgs(
                # PostgreSQL 16+ defaults to Enterprise Plus, which takes other tiers.
                edition="ENTERPRISE",
                tier=cfg.db_size or DB_SIZES[cfg.profile],
                availability_type="REGIONAL" if cfg.high_availability else "ZONAL",
                disk_type="PD_SSD",
                disk_size=cfg.db_storage_gb,
                disk_autoresize=True,
                deletion_protection_enabled=cfg.deletion_protection,
                ip_configuration=gcp.sql.DatabaseInstanceSettingsIpConfigurationArgs(
                    ipv4_enabled=False,
                    private_network=network.vpc.id,
                    allocated_ip_range=network.services_range.name,
                    ssl_mode="ENCRYPTED_ONLY",
                    # Under the shared CA an instance has a DNS name that its server certificate carries,
                    # which clients verify (see _postgres_name); the per-instance CA's certificates name
                    # only `<project>:<instance>` in their CN, which libpq cannot match.
                    server_ca_mode="GOOGLE_MANAGED_CAS_CA",
                ),
                backup_configuration=gcp.sql.DatabaseInstanceSettingsBackupConfigurationArgs(
                    enabled=True,
                    start_time="02:00",
                    point_in_time_recovery_enabled=cfg.is_prod,
                    transaction_log_retention_days=_transaction_log_days(cfg.backup_retention_days),
                    backup_retention_settings=gcp.sql.DatabaseInstanceSettingsBackupConfigurationBackupRetentionSettingsArgs(
                        retained_backups=cfg.backup_retention_days, retention_unit="COUNT"
                    ),
                ),
                maintenance_window=gcp.sql.DatabaseInstanceSettingsMaintenanceWindowArgs(
                    day=7, hour=3, update_track="stable"
                ),
                user_labels=self._labels,
            ),
            opts=opts,
        )
        database = gcp.sql.Database(
            "products",
            name=DATABASE,
            instance=instance.name,
            project=self._project,
            opts=pulumi.ResourceOptions(parent=self),
        )
        # Letters and digits only: the password goes into a DATABASE_URL unescaped.
        password = supplied_or_generated(
            cfg, "postgresPassword", "postgres", 40, pulumi.ResourceOptions(parent=self)
        )
        gcp.sql.User(
            "platform",
            name=DATABASE_USER,
            instance=instance.name,
            password=password,
            project=self._project,
            # Postgres refuses to drop a role that owns objects; deleting the instance removes it anyway.
            deletion_policy="ABANDON",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[database]),
        )
        endpoint = PostgresEndpoint(
            host=self._postgres_name(instance, network),
            port=POSTGRES_PORT,
            database=DATABASE,
            user=DATABASE_USER,
            password=secret(password),
            sslmode="verify-full",
            # pulumi-gcp marks serverCaCerts secret as a whole; the CA certificates in it are public
            # (every client needs them), and they go to the pods in a ConfigMap.
            ca_certificate=pulumi.Output.unsecret(instance.server_ca_certs.apply(_pem_bundle)),
        )
        return endpoint, instance.private_ip_address

    def _postgres_name(self, instance: gcp.sql.DatabaseInstance, network: _Network) -> pulumi.Output[str]:
        """The name pods connect to Cloud SQL by: the one its server certificate carries.

        verify-full matches the name the client dialled against the certificate, and nothing Google
        publishes says a certificate of the shared CA names the private IP. What Google's own connectors
        do: an instance under the CAS hierarchy reports a DNS name (`dnsNames`, legacy `dnsName`), and they
        verify the server certificate against it (GoogleCloudPlatform/cloud-sql-go-connector,
        internal/cloudsql/refresh.go: "CAS instances also set the DnsName", "Any name in the list may be
        used to validate the server TLS certificate"; tls_verify.go matches it against the SANs). Google
        resolves that name for no one, so a private zone of this VPC, named like it, holds an A record to
        the private IP, as Cloud SQL's manual DNS setup for Private Service Connect does.
        """
        fqdn = pulumi.Output.all(instance.dns_names, instance.dns_name).apply(
            lambda names: _private_services_dns_name(names[0], names[1])
        )
        zone = gcp.dns.ManagedZone(
            "postgres",
            dns_name=fqdn,
            description=f"Cloud SQL's name inside the platform VPC ({self._cfg.stack})",
            visibility="private",
            private_visibility_config=gcp.dns.ManagedZonePrivateVisibilityConfigArgs(
                networks=[gcp.dns.ManagedZonePrivateVisibilityConfigNetworkArgs(network_url=network.vpc.id)]
            ),
            labels=self._labels,
            project=self._project,
            opts=self._after_apis,
        )
        record = gcp.dns.RecordSet(
            "postgres",
            managed_zone=zone.name,
            name=fqdn,
            type="A",
            ttl=300,
            # Cloud SQL keeps its private IP through a regional failover.
            rrdatas=[instance.private_ip_address],
            project=self._project,
            opts=pulumi.ResourceOptions(parent=zone),
        )
        # The record's own output: whatever connects by the name waits until it resolves. libpq compares
        # the name as written with the certificate's, so without the DNS root's trailing dot.
        return record.name.apply(lambda name: name.rstrip("."))

    def _redis(self, network: _Network) -> tuple[RedisEndpoint, pulumi.Output[str]]:
        """Memorystore generates the AUTH string and serves TLS with a per-instance Google CA.

        The CA is not in public trust stores, so it travels with the endpoint: the service's pods
        mount it and verify the server against it. During a rotation the instance lists the old and
        the new CA; the bundle carries every one, so pods trust the server on both sides of it.
        """
        cfg = self._cfg
        redis = gcp.redis.Instance(
            "redis",
            region=self._region,
            project=self._project,
            tier="STANDARD_HA" if cfg.high_availability else "BASIC",
            memory_size_gb=self._redis_memory_gb,
            redis_version=REDIS_VERSION,
            location_id=self.zones.apply(lambda zones: zones[0]),
            alternative_location_id=self.zones.apply(lambda zones: zones[1])
            if cfg.high_availability and cfg.zone_count > 1
            else None,
            authorized_network=network.vpc.id,
            connect_mode="PRIVATE_SERVICE_ACCESS",
            reserved_ip_range=network.services_range.name,
            auth_enabled=True,
            transit_encryption_mode="SERVER_AUTHENTICATION",
            persistence_config=gcp.redis.InstancePersistenceConfigArgs(
                persistence_mode="RDB", rdb_snapshot_period="TWELVE_HOURS"
            )
            if cfg.is_prod
            else None,
            deletion_protection=cfg.deletion_protection,
            labels=self._labels,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*self._apis, network.peering]),
        )
        ca_certificate = redis.server_ca_certs.apply(_pem_bundle)
        endpoint = RedisEndpoint(
            host=redis.host,
            port=redis.port,
            password=secret(redis.auth_string),
            tls=True,
            ca_certificate=ca_certificate,
            # The server certificate names the instance's IP in its CN only, with no IP SAN, and TLS
            # clients match an IP only against SANs (envoyproxy/ratelimit#409, redis/redis-py#3629).
            # The chain is still verified, against CAs that sign this instance's certificate alone.
            verify_hostname=False,
        )
        return endpoint, ca_certificate

    def _data_firewall(
        self,
        network: _Network,
        nodes: gcp.serviceaccount.Account,
        servers: list[tuple[str, pulumi.Input[str], pulumi.Input[int]]],
    ) -> None:
        """Only the cluster's nodes reach Cloud SQL and Memorystore, each on its own address and port;
        nothing else in the VPC reaches the range reserved for them.

        Node-level is as narrow as the VPC gets: firewall rules select instances (here by the nodes'
        service account) and a pod's traffic leaves with its node's rules, whatever the pod. Which pods
        may connect is decided inside the cluster, by NetworkPolicy (Dataplane V2). Google's side of the
        peering takes no rules of ours, so the limit is on egress from this VPC.
        """
        for name, address, port in servers:
            gcp.compute.Firewall(
                f"{name}-from-nodes",
                network=network.vpc.id,
                description=f"{name}: from the GKE nodes only, on its port",
                direction="EGRESS",
                priority=1000,
                target_service_accounts=[nodes.email],
                destination_ranges=[pulumi.Output.from_input(address).apply(lambda ip: f"{ip}/32")],
                allows=[
                    gcp.compute.FirewallAllowArgs(
                        protocol="tcp", ports=[pulumi.Output.from_input(port).apply(str)]
                    )
                ],
                project=self._project,
                opts=self._after_apis,
            )
        gcp.compute.Firewall(
            "private-services-deny",
            network=network.vpc.id,
            description="Nothing else reaches the range reserved for Cloud SQL and Memorystore",
            direction="EGRESS",
            priority=1100,  # after the allows above (a lower number wins)
            destination_ranges=[f"{SERVICES_RANGE_ADDRESS}/{SERVICES_RANGE_PREFIX}"],
            denies=[gcp.compute.FirewallDenyArgs(protocol="all")],
            project=self._project,
            opts=self._after_apis,
        )


@dataclass
class _Network:
    vpc: gcp.compute.Network
    subnet: gcp.compute.Subnetwork
    services_range: gcp.compute.GlobalAddress
    peering: gcp.servicenetworking.Connection


@dataclass
class _Cluster:
    gke: gcp.container.Cluster
    provider: k8s.Provider
    kubeconfig: pulumi.Output[str]
    nodes_account: gcp.serviceaccount.Account


def _required_gcp_config(key: str, example: str) -> str:
    value = pulumi.Config("gcp").get(key)
    if not value:
        raise ConfigError(
            f"gcp:{key} must be set for cloud 'gcp', e.g. `pulumi config set gcp:{key} {example}`"
        )
    return value


def _zones(region: str, count: int, after: pulumi.Resource) -> pulumi.Output[list[str]]:
    """The first `count` zones of the region that are up, asked once `after` (the Compute API) exists."""
    available = gcp.compute.get_zones_output(
        region=region, status="UP", opts=pulumi.InvokeOutputOptions(depends_on=[after])
    )
    return available.names.apply(lambda names: sorted(names or [])[:count])


def _pem_bundle(certificates: Sequence[Any] | None) -> str:
    """Every CA an instance lists (its `server_ca_certs`), as one PEM file: two while a CA rotates."""
    pems = [c.cert for c in certificates or [] if c.cert]
    return "".join(pem if pem.endswith("\n") else pem + "\n" for pem in pems)


def _private_services_dns_name(dns_names: Sequence[Mapping[str, Any]] | None, dns_name: str | None) -> str:
    """The instance's DNS name for private services access, as a zone wants it (with the root's dot)."""
    names = [
        n["name"]
        for n in dns_names or []
        if n.get("name") and n.get("connection_type") == "PRIVATE_SERVICES_ACCESS"
    ]
    name = names[0] if names else dns_name
    if not name:
        raise pulumi.RunError(
            "Cloud SQL reported no DNS name for the instance, so sslmode=verify-full has no name to check "
            "its certificate against: the instance must use serverCaMode GOOGLE_MANAGED_CAS_CA"
        )
    return name.rstrip(".") + "."


def _check_backup_retention(days: int) -> None:
    if days < 2:
        raise ConfigError(
            "platform:backupRetentionDays must be from 2 to 35 on gcp: Cloud SQL keeps more backups than "
            f"days of transaction log, and at least one day of log (got '{days}')"
        )


def _transaction_log_days(retained_backups: int) -> int:
    return min(MAX_TRANSACTION_LOG_DAYS, retained_backups - 1)


def _memory_gb(size: str) -> int:
    if not size.isdigit() or not 1 <= int(size) <= 300:
        raise ConfigError(
            f"platform:redisSize must be a whole number of GB from 1 to 300 on gcp (got '{size}')"
        )
    return int(size)


def _kubeconfig(name: str, endpoint: str, ca_data: str) -> str:
    """A kubeconfig that asks gke-gcloud-auth-plugin for a short-lived token; no credential is stored.

    The GCP provider signs in with Application Default Credentials; the plugin would otherwise use
    gcloud's own account (`gcloud auth login`), which may be another identity. With
    --use_application_default_credentials both are the same (GOOGLE_APPLICATION_CREDENTIALS, or
    `gcloud auth application-default login`)."""
    return plugin_kubeconfig(
        name,
        f"https://{endpoint}",
        ca_data,
        {
            "command": "gke-gcloud-auth-plugin",
            "args": ["--use_application_default_credentials"],
            "provideClusterInfo": True,
        },
    )
