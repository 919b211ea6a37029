"""AWS foundation: a VPC, EKS with a managed node group, RDS PostgreSQL and ElastiCache Redis.

Nodes and data services live in private subnets; only NAT gateways and load balancers use the
public ones. The databases accept connections from the cluster's security group and nothing else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_aws as aws
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

from clouds.shared import platform_name, plugin_kubeconfig, secret

# Per-profile sizes; `platform:nodeSize`, `dbSize` and `redisSize` override them.
NODE_SIZES = {"dev": "t3.large", "prod": "m6i.xlarge"}
DB_SIZES = {"dev": "db.t4g.medium", "prod": "db.r6g.large"}
REDIS_SIZES = {"dev": "cache.t4g.small", "prod": "cache.r7g.large"}

POSTGRES_VERSION = "17"  # a major version: RDS picks the newest minor and upgrades it in place
POSTGRES_PARAMETER_FAMILY = "postgres17"
# Valkey, the Redis OSS fork ElastiCache prices below Redis OSS: the same protocol, so the
# service's client and the replication group's settings (TLS, AUTH token) stay as they were.
CACHE_ENGINE = "valkey"
CACHE_ENGINE_VERSION = "8.0"
DATABASE = "products"
DATABASE_USER = "platform"
POSTGRES_PORT = 5432
REDIS_PORT = 6379

# The server certificate's CA; the pods trust every current RDS root of the region, so a CA rotation
# (rds-ca-rsa4096-g1, rds-ca-ecc384-g1) needs no new image or manifest.
RDS_CA = "rds-ca-rsa2048-g1"
RDS_CA_ROOTS = Path(__file__).parent / "certs" / "rds-ca-roots.pem"

VPC_CIDR = "10.0.0.0/16"
MIN_ZONES = 2  # EKS and RDS subnet groups both refuse fewer than two zones
CONTROL_PLANE_LOGS = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
RDS_LOG_EXPORTS = ["postgresql", "upgrade"]
STORAGE_CLASS = "gp3"
EBS_CSI_SERVICE_ACCOUNT = "system:serviceaccount:kube-system:ebs-csi-controller-sa"
AUTOSCALER_ACCOUNT = "cluster-autoscaler"  # in kube-system, installed by the cluster add-ons


def build(cfg: PlatformConfig) -> Foundation:
    return AwsFoundation("platform", cfg).foundation


class AwsFoundation(pulumi.ComponentResource):
    foundation: Foundation

    def __init__(self, name: str, cfg: PlatformConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        region = _region()  # checked before the first resource
        token_identity = _token_identity()
        rds_ca_roots = _rds_ca_roots(region)
        super().__init__("platform:aws:Foundation", name, None, opts)
        self._rds_ca_roots = rds_ca_roots
        self._cfg = cfg
        self._region = region
        self._token_identity = token_identity
        self._names = platform_name(cfg.stack)
        self._tags = {"platform:stack": cfg.stack}
        self.zones = _zones(self._region, max(MIN_ZONES, cfg.zone_count))

        network = self._network()
        cluster = self._cluster(network)
        data_key = aws.kms.Key(
            "data",
            description=f"Platform data at rest: RDS, ElastiCache ({cfg.stack})",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        postgres = self._postgres(network, cluster, data_key)
        redis = self._redis(network, cluster, data_key)
        public_zone = self._public_zone(cfg.domain, cluster) if cfg.domain else None
        self.foundation = Foundation(
            cloud="aws",
            provider=cluster.provider,
            kubeconfig=cluster.kubeconfig,
            postgres=postgres,
            redis=redis,
            cluster=ClusterFacts(
                kubernetes_version=cfg.kubernetes_version,
                zones=self.zones,
                storage_class=cluster.storage_class,
                needs_metrics_server=True,  # EKS ships without metrics-server
                load_balancer_annotations={"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"},
                cluster_autoscaler_values={
                    "cloudProvider": "aws",
                    "awsRegion": self._region,
                    # Managed node groups tag their Auto Scaling groups for this auto-discovery.
                    "autoDiscovery": {"clusterName": cluster.eks.name},
                    "rbac": {
                        "serviceAccount": {
                            "name": AUTOSCALER_ACCOUNT,
                            "annotations": {"eks.amazonaws.com/role-arn": cluster.autoscaler_role_arn},
                        }
                    },
                    "extraArgs": {"balance-similar-node-groups": True},
                    # The autoscaler supports only its own Kubernetes minor, so its image follows the
                    # cluster's version (the chart's `image.tag` value) rather than the chart's default.
                    "image": {"tag": f"v{cfg.kubernetes_version}.0"},
                },
                data_network_peers=[{"ipBlock": {"cidr": cidr}} for cidr in network.data_cidrs],
                public_zone=public_zone,
            ),
        )
        self.register_outputs(
            {
                "vpc_id": network.vpc.id,
                "cluster_name": cluster.eks.name,
                "cluster_endpoint": cluster.eks.endpoint,
                "postgres_host": postgres.host,
                "redis_host": redis.host,
            }
        )

    # --- network -----------------------------------------------------------------------------------

    def _network(self) -> _Network:
        opts = pulumi.ResourceOptions(parent=self)
        vpc = aws.ec2.Vpc(
            "vpc",
            cidr_block=VPC_CIDR,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={**self._tags, "Name": f"platform-{self._cfg.stack}"},
            opts=opts,
        )
        igw = aws.ec2.InternetGateway("igw", vpc_id=vpc.id, tags=self._tags, opts=opts)
        public_routes = aws.ec2.RouteTable(
            "public",
            vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags=self._tags,
            opts=opts,
        )

        network = _Network(vpc=vpc)
        # One NAT gateway per zone when highly available, so losing a zone keeps egress elsewhere.
        nat_ids: list[pulumi.Output[str]] = []
        for i, zone in enumerate(self.zones):
            public = self._subnet(
                f"public-{zone}", vpc, zone, f"10.0.{100 + i}.0/24", "kubernetes.io/role/elb"
            )
            aws.ec2.RouteTableAssociation(
                f"public-{zone}", subnet_id=public.id, route_table_id=public_routes.id, opts=opts
            )
            if i == 0 or self._cfg.high_availability:
                eip = aws.ec2.Eip(f"nat-{zone}", domain="vpc", tags=self._tags, opts=opts)
                nat = aws.ec2.NatGateway(
                    f"nat-{zone}",
                    allocation_id=eip.id,
                    subnet_id=public.id,
                    tags=self._tags,
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
                )
                nat_ids.append(nat.id)
            private_routes = aws.ec2.RouteTable(
                f"private-{zone}",
                vpc_id=vpc.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat_ids[-1])],
                tags=self._tags,
                opts=opts,
            )
            # Nodes get a /19 per zone: the VPC CNI gives every pod an address from the node subnet.
            nodes = self._subnet(
                f"nodes-{zone}", vpc, zone, f"10.0.{32 * i}.0/19", "kubernetes.io/role/internal-elb"
            )
            data_cidr = f"10.0.{96 + i}.0/24"
            data = self._subnet(f"data-{zone}", vpc, zone, data_cidr)
            for subnet, kind in ((nodes, "nodes"), (data, "data")):
                aws.ec2.RouteTableAssociation(
                    f"{kind}-{zone}", subnet_id=subnet.id, route_table_id=private_routes.id, opts=opts
                )
            network.node_subnet_ids.append(nodes.id)
            network.data_subnet_ids.append(data.id)
            network.data_cidrs.append(data_cidr)
        return network

    def _subnet(
        self, name: str, vpc: aws.ec2.Vpc, zone: str, cidr: str, load_balancer_role: str | None = None
    ) -> aws.ec2.Subnet:
        # The role tag tells Kubernetes where to place internet-facing or internal load balancers.
        role_tag = {load_balancer_role: "1"} if load_balancer_role else {}
        return aws.ec2.Subnet(
            name,
            vpc_id=vpc.id,
            availability_zone=zone,
            cidr_block=cidr,
            map_public_ip_on_launch=False,
            tags={**self._tags, **role_tag, "Name": f"platform-{self._cfg.stack}-{name}"},
            opts=pulumi.ResourceOptions(parent=self),
        )

    # --- EKS -----------------------------------------------------------------------------------------

    def _cluster(self, network: _Network) -> _Cluster:
        cfg = self._cfg
        opts = pulumi.ResourceOptions(parent=self)
        secrets_key = aws.kms.Key(
            "eks-secrets",
            description=f"EKS secrets envelope encryption ({cfg.stack})",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=self._tags,
            opts=opts,
        )
        cluster_role = self._role(
            "eks-cluster", _service_trust("eks.amazonaws.com"), ["AmazonEKSClusterPolicy"]
        )
        # EKS writes control-plane logs to this group and creates it, without expiry, if it is missing:
        # it must exist, with its retention, before the cluster (the name EKS uses is fixed).
        cluster_name = self._names
        control_plane_logs = self._log_group("eks-control-plane", f"/aws/eks/{cluster_name}/cluster")
        eks = aws.eks.Cluster(
            "eks",
            name=cluster_name,
            version=cfg.kubernetes_version,
            # Standard support only: at its end EKS upgrades the cluster instead of billing
            # extended support, which is the default when the policy is unset.
            upgrade_policy=aws.eks.ClusterUpgradePolicyArgs(support_type="STANDARD"),
            role_arn=cluster_role.arn,
            vpc_config=aws.eks.ClusterVpcConfigArgs(
                subnet_ids=network.node_subnet_ids,
                endpoint_private_access=True,
                endpoint_public_access=True,
                public_access_cidrs=cfg.api_allowed_cidrs,
            ),
            encryption_config=aws.eks.ClusterEncryptionConfigArgs(
                provider=aws.eks.ClusterEncryptionConfigProviderArgs(key_arn=secrets_key.arn),
                resources=["secrets"],
            ),
            enabled_cluster_log_types=CONTROL_PLANE_LOGS,
            # Access entries instead of the aws-auth ConfigMap; whoever runs `pulumi up` is admin.
            access_config=aws.eks.ClusterAccessConfigArgs(
                authentication_mode="API",
                bootstrap_cluster_creator_admin_permissions=True,
            ),
            deletion_protection=cfg.deletion_protection,
            tags=self._tags,
            # A role is usable only once its policies are attached; EKS checks at creation.
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[*cluster_role.attachments, control_plane_logs]
            ),
        )

        node_role = self._role(
            "eks-nodes",
            _service_trust("ec2.amazonaws.com"),
            ["AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly"],
        )
        nodes = aws.eks.NodeGroup(
            "nodes",
            cluster_name=eks.name,
            node_role_arn=node_role.arn,
            subnet_ids=network.node_subnet_ids,
            instance_types=[cfg.node_size or NODE_SIZES[cfg.profile]],
            ami_type="AL2023_x86_64_STANDARD",
            disk_size=50,
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=cfg.node_min_count,
                max_size=cfg.node_max_count,
                desired_size=cfg.node_min_count,
            ),
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
            tags=self._tags,
            # The cluster autoscaler owns the current size between the bounds.
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=node_role.attachments, ignore_changes=["scalingConfig.desiredSize"]
            ),
        )

        # The VPC CNI enforces NetworkPolicy only when asked to; the service's policies rely on it.
        aws.eks.Addon(
            "vpc-cni",
            cluster_name=eks.name,
            addon_name="vpc-cni",
            configuration_values=json.dumps({"enableNetworkPolicy": "true"}),
            resolve_conflicts_on_create="OVERWRITE",  # adopts the copy EKS bootstrapped
            resolve_conflicts_on_update="OVERWRITE",
            tags=self._tags,
            opts=opts,
        )

        issuer = eks.identities[0].oidcs[0].issuer
        oidc = aws.iam.OpenIdConnectProvider(
            "eks-oidc",
            url=issuer,
            client_id_lists=["sts.amazonaws.com"],
            tags=self._tags,
            opts=opts,
        )
        # The EBS CSI driver provisions the volumes Prometheus, Grafana and friends claim.
        ebs_role = self._role(
            "ebs-csi",
            pulumi.Output.all(oidc.arn, issuer).apply(
                lambda a: _irsa_trust(a[0], a[1], EBS_CSI_SERVICE_ACCOUNT)
            ),
            ["service-role/AmazonEBSCSIDriverPolicy"],
        )
        ebs_csi = aws.eks.Addon(
            "ebs-csi",
            cluster_name=eks.name,
            addon_name="aws-ebs-csi-driver",
            service_account_role_arn=ebs_role.arn,
            resolve_conflicts_on_update="OVERWRITE",
            tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[nodes, *ebs_role.attachments]),
        )

        autoscaler_role = self._role(
            "cluster-autoscaler",
            pulumi.Output.all(oidc.arn, issuer).apply(
                lambda a: _irsa_trust(a[0], a[1], f"system:serviceaccount:kube-system:{AUTOSCALER_ACCOUNT}")
            ),
            [],
        )
        aws.iam.RolePolicy(
            "cluster-autoscaler",
            role=autoscaler_role.name,
            policy=eks.name.apply(_autoscaler_policy),
            opts=pulumi.ResourceOptions(parent=self),
        )

        kubeconfig = secret(
            pulumi.Output.all(eks.name, eks.endpoint, eks.certificate_authority.data).apply(
                lambda a: _kubeconfig(a[0], a[1], a[2], self._region, self._token_identity)
            )
        )
        provider = k8s.Provider(
            "eks", kubeconfig=kubeconfig, opts=pulumi.ResourceOptions(parent=self, depends_on=[nodes])
        )
        k8s.storage.v1.StorageClass(
            STORAGE_CLASS,
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=STORAGE_CLASS, annotations={"storageclass.kubernetes.io/is-default-class": "true"}
            ),
            provisioner="ebs.csi.aws.com",
            parameters={"type": "gp3", "encrypted": "true"},
            volume_binding_mode="WaitForFirstConsumer",
            allow_volume_expansion=True,
            reclaim_policy="Delete",
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[ebs_csi]),
        )
        return _Cluster(
            eks=eks,
            security_group_id=eks.vpc_config.cluster_security_group_id,
            provider=provider,
            kubeconfig=kubeconfig,
            storage_class=STORAGE_CLASS,
            autoscaler_role_arn=autoscaler_role.arn,
            oidc_arn=oidc.arn,
            issuer=issuer,
        )

    def _public_zone(self, domain: str, cluster: _Cluster) -> PublicZone:
        """A Route 53 hosted zone for platform:domain and an IRSA role each for external-dns and cert-manager
        that may change records in that zone only. The List* calls below take no zone (Route 53's actions
        table: ListHostedZones and ListHostedZonesByName have no resource type), so they name "*"."""
        zone = aws.route53.Zone(
            "public",
            name=domain,
            comment=f"platform:domain of stack {self._cfg.stack}; external-dns and cert-manager write here",
            tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        zone_arn = zone.zone_id.apply(lambda zone_id: f"arn:aws:route53:::hostedzone/{zone_id}")

        def role(name: str, account: tuple[str, str], policy: pulumi.Output[str]) -> pulumi.Output[str]:
            namespace, service_account = account
            trust = pulumi.Output.all(cluster.oidc_arn, cluster.issuer).apply(
                lambda a: _irsa_trust(a[0], a[1], f"system:serviceaccount:{namespace}:{service_account}")
            )
            dns_role = self._role(name, trust, [])
            aws.iam.RolePolicy(
                name, role=dns_role.name, policy=policy, opts=pulumi.ResourceOptions(parent=self)
            )
            return dns_role.arn

        external_dns = role("external-dns", EXTERNAL_DNS_ACCOUNT, zone_arn.apply(_external_dns_policy))
        cert_manager = role("cert-manager", CERT_MANAGER_ACCOUNT, zone_arn.apply(_cert_manager_policy))
        return PublicZone(
            domain=domain,
            name_servers=zone.name_servers,
            external_dns=WorkloadIdentity({"eks.amazonaws.com/role-arn": external_dns}),
            cert_manager=WorkloadIdentity({"eks.amazonaws.com/role-arn": cert_manager}),
            external_dns_values={
                "provider": {"name": "aws"},
                "env": [{"name": "AWS_DEFAULT_REGION", "value": self._region}],
                "extraArgs": [zone.zone_id.apply(lambda zone_id: f"--zone-id-filter={zone_id}")],
            },
            # cert-manager.io/docs/configuration/acme/dns01/route53: with the zone's id it lists no zones;
            # a ClusterIssuer uses the pod's ambient (IRSA) credentials by default.
            dns01_solver={"route53": {"region": self._region, "hostedZoneID": zone.zone_id}},
        )

    def _log_group(self, name: str, path: str) -> aws.cloudwatch.LogGroup:
        return aws.cloudwatch.LogGroup(
            name,
            name=path,
            retention_in_days=self._cfg.log_retention_days,
            tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _role(self, name: str, trust: pulumi.Input[str], managed_policies: list[str]) -> _Role:
        role = aws.iam.Role(
            name, assume_role_policy=trust, tags=self._tags, opts=pulumi.ResourceOptions(parent=self)
        )
        attachments: list[pulumi.Resource] = [
            aws.iam.RolePolicyAttachment(
                f"{name}-{policy.rsplit('/', 1)[-1]}",
                role=role.name,
                policy_arn=f"arn:aws:iam::aws:policy/{policy}",
                opts=pulumi.ResourceOptions(parent=role),
            )
            for policy in managed_policies
        ]
        return _Role(arn=role.arn, name=role.name, attachments=attachments)

    # --- data services -------------------------------------------------------------------------------

    def _postgres(self, network: _Network, cluster: _Cluster, key: aws.kms.Key) -> PostgresEndpoint:
        cfg = self._cfg
        opts = pulumi.ResourceOptions(parent=self)
        group = self._reachable_from_cluster("postgres", network, cluster, POSTGRES_PORT)
        subnets = aws.rds.SubnetGroup(
            "postgres", subnet_ids=network.data_subnet_ids, tags=self._tags, opts=opts
        )
        parameters = aws.rds.ParameterGroup(
            "postgres",
            family=POSTGRES_PARAMETER_FAMILY,
            description="Platform Postgres: TLS only",
            parameters=[aws.rds.ParameterGroupParameterArgs(name="rds.force_ssl", value="1")],
            tags=self._tags,
            opts=opts,
        )
        # Letters and digits only: the password goes into a DATABASE_URL unescaped.
        password = supplied_or_generated(cfg, "postgresPassword", "postgres", 40, opts)
        # RDS exports each log type to a group named after the instance, created without expiry
        # unless it already exists.
        identifier = f"{self._names}-postgres"
        log_groups = [
            self._log_group(f"rds-{log}", f"/aws/rds/instance/{identifier}/{log}") for log in RDS_LOG_EXPORTS
        ]
        db = aws.rds.Instance(
            "postgres",
            identifier=identifier,
            engine="postgres",
            engine_version=POSTGRES_VERSION,
            auto_minor_version_upgrade=True,
            instance_class=cfg.db_size or DB_SIZES[cfg.profile],
            allocated_storage=cfg.db_storage_gb,
            max_allocated_storage=cfg.db_storage_gb * 4,
            storage_type="gp3",
            storage_encrypted=True,
            kms_key_id=key.arn,
            db_name=DATABASE,
            username=DATABASE_USER,
            password=password,
            port=POSTGRES_PORT,
            db_subnet_group_name=subnets.name,
            vpc_security_group_ids=[group.id],
            parameter_group_name=parameters.name,
            ca_cert_identifier=RDS_CA,
            publicly_accessible=False,
            multi_az=cfg.high_availability,
            deletion_protection=cfg.deletion_protection,
            backup_retention_period=cfg.backup_retention_days,
            copy_tags_to_snapshot=True,
            skip_final_snapshot=not cfg.is_prod,
            final_snapshot_identifier=f"{self._names}-postgres-final" if cfg.is_prod else None,
            enabled_cloudwatch_logs_exports=RDS_LOG_EXPORTS,
            performance_insights_enabled=True,
            performance_insights_kms_key_id=key.arn,
            tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=log_groups),
        )
        return PostgresEndpoint(
            host=db.address,
            port=POSTGRES_PORT,
            database=DATABASE,
            user=DATABASE_USER,
            password=secret(password),
            # The certificate names the instance's endpoint, so libpq verifies chain and name.
            sslmode="verify-full",
            ca_certificate=self._rds_ca_roots,
        )

    def _redis(self, network: _Network, cluster: _Cluster, key: aws.kms.Key) -> RedisEndpoint:
        cfg = self._cfg
        opts = pulumi.ResourceOptions(parent=self)
        group = self._reachable_from_cluster("redis", network, cluster, REDIS_PORT)
        subnets = aws.elasticache.SubnetGroup(
            "redis",
            description="Platform Redis: data subnets",
            subnet_ids=network.data_subnet_ids,
            tags=self._tags,
            opts=opts,
        )
        # ElastiCache accepts only a few punctuation characters in an AUTH token; use none.
        token = supplied_or_generated(cfg, "redisPassword", "redis", 64, opts)
        redis = aws.elasticache.ReplicationGroup(
            "redis",
            description=f"Platform Redis ({cfg.stack})",
            engine=CACHE_ENGINE,
            engine_version=CACHE_ENGINE_VERSION,
            node_type=cfg.redis_size or REDIS_SIZES[cfg.profile],
            port=REDIS_PORT,
            # A replica in another zone is what automatic failover fails over to.
            num_cache_clusters=2 if cfg.high_availability else 1,
            automatic_failover_enabled=cfg.high_availability,
            multi_az_enabled=cfg.high_availability,
            transit_encryption_enabled=True,
            at_rest_encryption_enabled=True,
            kms_key_id=key.arn,
            auth_token=token,
            subnet_group_name=subnets.name,
            security_group_ids=[group.id],
            snapshot_retention_limit=cfg.backup_retention_days,
            apply_immediately=not cfg.is_prod,
            tags=self._tags,
            opts=opts,
        )
        return RedisEndpoint(
            host=redis.primary_endpoint_address,
            port=REDIS_PORT,
            password=secret(token),
            tls=True,
        )

    def _reachable_from_cluster(
        self, name: str, network: _Network, cluster: _Cluster, port: int
    ) -> aws.ec2.SecurityGroup:
        group = aws.ec2.SecurityGroup(
            name,
            vpc_id=network.vpc.id,
            description=f"Platform {name}: reachable from the EKS cluster only",
            tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        # Managed nodes, and so every pod on them, carry the cluster security group.
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-from-cluster",
            security_group_id=group.id,
            referenced_security_group_id=cluster.security_group_id,
            ip_protocol="tcp",
            from_port=port,
            to_port=port,
            description="from EKS nodes and pods",
            opts=pulumi.ResourceOptions(parent=group),
        )
        return group


@dataclass
class _Network:
    vpc: aws.ec2.Vpc
    node_subnet_ids: list[pulumi.Output[str]] = field(default_factory=list)
    data_subnet_ids: list[pulumi.Output[str]] = field(default_factory=list)
    data_cidrs: list[str] = field(default_factory=list)


@dataclass
class _Role:
    arn: pulumi.Output[str]
    name: pulumi.Output[str]
    attachments: list[pulumi.Resource]


@dataclass
class _Cluster:
    eks: aws.eks.Cluster
    security_group_id: pulumi.Output[str]
    provider: k8s.Provider
    kubeconfig: pulumi.Output[str]
    storage_class: str
    autoscaler_role_arn: pulumi.Output[str]
    oidc_arn: pulumi.Output[str]  # the cluster's IRSA identity provider
    issuer: pulumi.Output[str]


def _region() -> str:
    region = pulumi.Config("aws").get("region")
    if not region:
        raise ConfigError(
            "aws:region must be set for cloud 'aws', e.g. `pulumi config set aws:region eu-west-1`"
        )
    return region


def _zones(region: str, count: int) -> list[str]:
    """The first `count` zones of the region that need no opt-in."""
    available = aws.get_availability_zones(
        state="available",
        filters=[aws.GetAvailabilityZonesFilterArgs(name="opt-in-status", values=["opt-in-not-required"])],
    )
    names = sorted(available.names or [])
    # An offline run (no account to ask) gets the region's first zone letters.
    if len(names) < count:
        names = [f"{region}{letter}" for letter in "abc"]
    return names[:count]


def _service_trust(service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
        }
    )


def _irsa_trust(provider_arn: str, issuer: str, service_account: str) -> str:
    """Lets exactly one Kubernetes service account assume the role through the cluster's OIDC issuer."""
    host = issuer.removeprefix("https://")
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {f"{host}:sub": service_account, f"{host}:aud": "sts.amazonaws.com"}
                    },
                }
            ],
        }
    )


def _external_dns_policy(zone_arn: str) -> str:
    """external-dns's IAM policy (its AWS tutorial's, narrowed from every zone to the stack's): change and
    read the records and tags of one zone; list the zones to find it."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": [
                        "route53:ChangeResourceRecordSets",
                        "route53:ListResourceRecordSets",
                        "route53:ListTagsForResources",
                    ],
                    "Resource": zone_arn,
                },
                {"Effect": "Allow", "Action": "route53:ListHostedZones", "Resource": "*"},
            ],
        }
    )


def _cert_manager_policy(zone_arn: str) -> str:
    """cert-manager's (cert-manager.io/docs/configuration/acme/dns01/route53), on one zone and for TXT
    records named _acme-challenge only; GetChange follows its change until Route 53 serves it."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "route53:GetChange", "Resource": "arn:aws:route53:::change/*"},
                {"Effect": "Allow", "Action": "route53:ListResourceRecordSets", "Resource": zone_arn},
                {
                    "Effect": "Allow",
                    "Action": "route53:ChangeResourceRecordSets",
                    "Resource": zone_arn,
                    "Condition": {
                        "ForAllValues:StringEquals": {"route53:ChangeResourceRecordSetsRecordTypes": ["TXT"]},
                        "ForAllValues:StringLike": {
                            "route53:ChangeResourceRecordSetsNormalizedRecordNames": ["_acme-challenge.*"]
                        },
                    },
                },
            ],
        }
    )


def _autoscaler_policy(cluster_name: str) -> str:
    """Read every Auto Scaling group, resize only the ones tagged as this cluster's node groups."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": [
                        "autoscaling:DescribeAutoScalingGroups",
                        "autoscaling:DescribeAutoScalingInstances",
                        "autoscaling:DescribeLaunchConfigurations",
                        "autoscaling:DescribeScalingActivities",
                        "autoscaling:DescribeTags",
                        "ec2:DescribeImages",
                        "ec2:DescribeInstanceTypes",
                        "ec2:DescribeLaunchTemplateVersions",
                        "ec2:GetInstanceTypesFromInstanceRequirements",
                        "eks:DescribeNodegroup",
                    ],
                    "Resource": "*",
                },
                {
                    "Effect": "Allow",
                    "Action": [
                        "autoscaling:SetDesiredCapacity",
                        "autoscaling:TerminateInstanceInAutoScalingGroup",
                    ],
                    "Resource": "*",
                    "Condition": {
                        "StringEquals": {f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster_name}": "owned"}
                    },
                },
            ],
        }
    )


@dataclass(frozen=True)
class _TokenIdentity:
    """Who `aws eks get-token` must sign in as: the identity the AWS provider deploys with, which
    EKS made cluster admin (bootstrapClusterCreatorAdminPermissions)."""

    profile: str | None
    role_arn: str | None

    @property
    def args(self) -> list[str]:
        return [
            *(["--profile", self.profile] if self.profile else []),
            *(["--role-arn", self.role_arn] if self.role_arn else []),
        ]


def _rds_ca_roots(region: str) -> str:
    """The region's RDS root certificates from the bundled RDS_CA_ROOTS (each follows a `# <CN>` line)."""
    blocks = RDS_CA_ROOTS.read_text().split("\n# ")[1:]
    roots = [block.split("\n", 1)[1] for block in blocks if block.startswith(f"Amazon RDS {region} Root CA ")]
    if not roots:
        raise ConfigError(
            f"aws:region '{region}' has no Amazon RDS root CA in {RDS_CA_ROOTS.name}: add the region's "
            "certificates from AWS's RDS certificate bundle (global-bundle.pem) to it"
        )
    return "".join(roots)


def _token_identity() -> _TokenIdentity:
    """The provider's `aws:profile` and `aws:assumeRoles`, which `aws eks get-token` would otherwise
    ignore and sign in as whoever the environment names (then the cluster answers Unauthorized)."""
    provider = pulumi.Config("aws")
    roles = provider.get_object("assumeRoles") or []
    if (
        not isinstance(roles, list)
        or len(roles) > 1
        or any(not isinstance(role, dict) or role.get("externalId") for role in roles)
    ):
        raise ConfigError(
            "aws:assumeRoles must name at most one role, without externalId, on cloud 'aws': "
            "`aws eks get-token` assumes a single role; chain roles in an AWS profile (aws:profile) instead"
        )
    return _TokenIdentity(
        profile=provider.get("profile"), role_arn=roles[0].get("roleArn") if roles else None
    )


def _kubeconfig(name: str, endpoint: str, ca_data: str, region: str, identity: _TokenIdentity) -> str:
    """A kubeconfig that asks the AWS CLI for a short-lived token as the provider's own identity."""
    return plugin_kubeconfig(
        name,
        endpoint,
        ca_data,
        {
            "command": "aws",
            "args": ["eks", "get-token", "--cluster-name", name, "--region", region, *identity.args],
        },
    )
