"""The AWS foundation under the offline engine: what `pulumi up` would ask AWS for, per profile."""

from __future__ import annotations

import json
from typing import Any

import pytest
from clouds.shared import dns_label
from plan import Plan, PlannedResource, run_plan

PROFILES = ("dev", "prod")

EKS = "aws:eks/cluster:Cluster"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
RDS = "aws:rds/instance:Instance"
REDIS = "aws:elasticache/replicationGroup:ReplicationGroup"
SUBNET = "aws:ec2/subnet:Subnet"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"


def subnets(plan: Plan, role: str) -> list[PlannedResource]:
    return [s for s in plan.of_type(SUBNET) if s.name.startswith(f"{role}-")]


def urns(resources: list[PlannedResource]) -> set[str]:
    return {r.urn for r in resources}


@pytest.mark.parametrize("profile", PROFILES)
def test_program_builds_eks_rds_and_elasticache_inside_one_component(plan_for, profile):
    plan = plan_for("aws", profile)
    component = plan.one("platform:aws:Foundation")
    for type_ in (
        EKS,
        NODE_GROUP,
        RDS,
        REDIS,
        "aws:ec2/vpc:Vpc",
        "aws:iam/openIdConnectProvider:OpenIdConnectProvider",
    ):
        assert plan.one(type_).parent == component.urn


@pytest.mark.parametrize(("profile", "zones"), [("dev", 2), ("prod", 3)])
def test_vpc_spans_at_least_two_zones_and_three_in_prod(plan_for, profile, zones):
    plan = plan_for("aws", profile)
    for role in ("public", "nodes", "data"):
        assert len({s.inputs["availabilityZone"] for s in subnets(plan, role)}) == zones


def test_nat_gateway_per_zone_only_when_highly_available(plan_for):
    assert len(plan_for("aws", "dev").of_type("aws:ec2/natGateway:NatGateway")) == 1
    assert len(plan_for("aws", "prod").of_type("aws:ec2/natGateway:NatGateway")) == 3


@pytest.mark.parametrize("profile", PROFILES)
def test_cluster_nodes_and_databases_use_private_subnets_only(plan_for, profile):
    plan = plan_for("aws", profile)
    subnet_urns = urns(plan.of_type(SUBNET))
    node_group_subnets = set(plan.one(NODE_GROUP).dependencies) & subnet_urns
    assert node_group_subnets == urns(subnets(plan, "nodes"))
    for group in ("aws:rds/subnetGroup:SubnetGroup", "aws:elasticache/subnetGroup:SubnetGroup"):
        assert set(plan.one(group).dependencies) & subnet_urns == urns(subnets(plan, "data"))
    assert not any(s.inputs.get("mapPublicIpOnLaunch") for s in plan.of_type(SUBNET))


@pytest.mark.parametrize("profile", PROFILES)
def test_private_subnets_reach_the_internet_only_through_nat(plan_for, profile):
    plan = plan_for("aws", profile)
    private_tables = [
        t for t in plan.of_type("aws:ec2/routeTable:RouteTable") if t.name.startswith("private-")
    ]
    assert private_tables
    for table in private_tables:
        (route,) = table.inputs["routes"]
        assert route["natGatewayId"] and "gatewayId" not in route
    # Every node and data subnet is associated with one of those tables, never the public one.
    private = urns(subnets(plan, "nodes") + subnets(plan, "data"))
    associations = plan.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")
    for association in associations:
        if set(association.dependencies) & private:
            assert set(association.dependencies) & urns(private_tables)
    assert sum(bool(set(a.dependencies) & private) for a in associations) == len(private)


def test_eks_api_endpoint_is_limited_to_the_configured_cidrs(plan_for):
    cidrs = ["198.51.100.0/24", "192.0.2.16/28"]
    vpc_config = plan_for("aws", "prod", apiAllowedCidrs=cidrs).one(EKS).inputs["vpcConfig"]
    assert vpc_config["publicAccessCidrs"] == cidrs
    assert vpc_config["endpointPrivateAccess"] is True


@pytest.mark.parametrize("profile", PROFILES)
def test_eks_encrypts_secrets_with_a_rotating_key_and_logs_the_control_plane(plan_for, profile):
    plan = plan_for("aws", profile)
    cluster = plan.one(EKS)
    encryption = cluster.inputs["encryptionConfig"]
    assert encryption["resources"] == ["secrets"]
    key = next(k for k in plan.of_type("aws:kms/key:Key") if k.urn in cluster.dependencies)
    assert encryption["provider"]["keyArn"] == key.outputs["arn"]
    assert key.inputs["enableKeyRotation"] is True
    assert set(cluster.inputs["enabledClusterLogTypes"]) >= {"api", "audit", "authenticator"}


@pytest.mark.parametrize("profile", PROFILES)
def test_vpc_cni_enforces_network_policies(plan_for, profile):
    addons = {
        a.inputs["addonName"]: a.inputs for a in plan_for("aws", profile).of_type("aws:eks/addon:Addon")
    }
    assert json.loads(addons["vpc-cni"]["configurationValues"]) == {"enableNetworkPolicy": "true"}


def test_eks_runs_the_configured_kubernetes_version(plan_for):
    assert plan_for("aws", "dev", kubernetesVersion="1.33").one(EKS).inputs["version"] == "1.33"


def test_eks_uses_access_entries_and_deletion_protection_only_in_prod(plan_for):
    dev, prod = plan_for("aws", "dev").one(EKS), plan_for("aws", "prod").one(EKS)
    assert prod.inputs["accessConfig"]["authenticationMode"] == "API"
    assert prod.inputs["deletionProtection"] is True
    assert dev.inputs["deletionProtection"] is False


def test_node_group_size_and_bounds_come_from_config(plan_for):
    plan = plan_for("aws", "dev", nodeMinCount=2, nodeMaxCount=5, nodeSize="m7i.large")
    group = plan.one(NODE_GROUP).inputs
    assert group["scalingConfig"] == {"minSize": 2, "maxSize": 5, "desiredSize": 2}
    assert group["instanceTypes"] == ["m7i.large"]


@pytest.mark.parametrize(("profile", "size"), [("dev", "t3.large"), ("prod", "m6i.xlarge")])
def test_node_group_defaults_follow_the_profile(plan_for, profile, size):
    group = plan_for("aws", profile).one(NODE_GROUP).inputs
    assert group["instanceTypes"] == [size]
    assert group["scalingConfig"]["minSize"] <= group["scalingConfig"]["maxSize"]


def test_oidc_provider_trusts_the_cluster_issuer_for_irsa(plan_for):
    plan = plan_for("aws", "prod")
    issuer = plan.one(EKS).outputs["identities"][0]["oidcs"][0]["issuer"]
    provider = plan.one("aws:iam/openIdConnectProvider:OpenIdConnectProvider").inputs
    assert provider["url"] == issuer
    assert provider["clientIdLists"] == ["sts.amazonaws.com"]
    ebs_role = next(r for r in plan.of_type("aws:iam/role:Role") if r.name == "ebs-csi")
    statement = json.loads(ebs_role.inputs["assumeRolePolicy"])["Statement"][0]
    host = issuer.removeprefix("https://")
    assert statement["Condition"]["StringEquals"][f"{host}:sub"].endswith(
        ":kube-system:ebs-csi-controller-sa"
    )


def test_the_cluster_autoscaler_resizes_only_this_clusters_node_groups_through_irsa(plan_for):
    plan = plan_for("aws", "prod")
    [release] = [r for r in plan.of_type("kubernetes:helm.sh/v3:Release") if r.name == "cluster-autoscaler"]
    values = release.inputs["values"]
    cluster_name = plan.one(EKS).outputs["name"]
    assert values["autoDiscovery"]["clusterName"] == cluster_name
    assert values["awsRegion"] == "eu-west-1"
    role = next(r for r in plan.of_type("aws:iam/role:Role") if r.name == "cluster-autoscaler")
    account = values["rbac"]["serviceAccount"]
    assert account["annotations"]["eks.amazonaws.com/role-arn"] == role.outputs["arn"]
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Condition"]["StringEquals"]
    assert any(v == f"system:serviceaccount:kube-system:{account['name']}" for v in trust.values())
    policy = plan.one("aws:iam/rolePolicy:RolePolicy", "cluster-autoscaler")
    writes = next(s for s in json.loads(policy.inputs["policy"])["Statement"] if "Condition" in s)
    assert "autoscaling:SetDesiredCapacity" in writes["Action"]
    assert writes["Condition"]["StringEquals"] == {
        f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster_name}": "owned"
    }


@pytest.mark.parametrize("cloud", ["gcp", "azure", "local"])
def test_clouds_that_autoscale_nodes_themselves_get_no_cluster_autoscaler(plan_for, cloud):
    releases = {r.name for r in plan_for(cloud, "prod").of_type("kubernetes:helm.sh/v3:Release")}
    assert "cluster-autoscaler" not in releases


@pytest.mark.parametrize("profile", PROFILES)
def test_postgres_is_private_encrypted_and_forces_tls(plan_for, profile):
    plan = plan_for("aws", profile)
    db = plan.one(RDS).inputs
    assert db["publiclyAccessible"] is False
    assert db["storageEncrypted"] is True and db["kmsKeyId"].startswith("arn:aws:kms:")
    assert db["engine"] == "postgres" and int(db["engineVersion"].split(".")[0]) >= 16
    parameters = plan.one("aws:rds/parameterGroup:ParameterGroup").inputs
    assert parameters["family"] == f"postgres{db['engineVersion'].split('.')[0]}"
    assert {"name": "rds.force_ssl", "value": "1"}.items() <= parameters["parameters"][0].items()


@pytest.mark.parametrize(
    ("profile", "protected"),
    [("dev", False), ("prod", True)],
)
def test_postgres_multi_az_deletion_protection_and_final_snapshot_only_in_prod(plan_for, profile, protected):
    db = plan_for("aws", profile).one(RDS).inputs
    assert db["multiAz"] is protected
    assert db["deletionProtection"] is protected
    assert db["skipFinalSnapshot"] is not protected
    assert ("finalSnapshotIdentifier" in db) is protected


@pytest.mark.parametrize(("profile", "days"), [("dev", 7), ("prod", 30)])
def test_backup_retention_follows_the_profile(plan_for, profile, days):
    plan = plan_for("aws", profile)
    assert plan.one(RDS).inputs["backupRetentionPeriod"] == days
    assert plan.one(REDIS).inputs["snapshotRetentionLimit"] == days


def test_backup_retention_can_be_overridden(plan_for):
    assert plan_for("aws", "prod", backupRetentionDays=35).one(RDS).inputs["backupRetentionPeriod"] == 35


@pytest.mark.parametrize("profile", PROFILES)
def test_data_services_admit_only_the_cluster_security_group(plan_for, profile):
    plan = plan_for("aws", profile)
    cluster_group = plan.one(EKS).outputs["vpcConfig"]["clusterSecurityGroupId"]
    rules = plan.of_type(INGRESS_RULE)
    assert sorted(r.inputs["fromPort"] for r in rules) == [5432, 6379]
    for rule in rules:
        assert rule.inputs["referencedSecurityGroupId"] == cluster_group
        assert rule.inputs["fromPort"] == rule.inputs["toPort"]
        assert not rule.inputs.get("cidrIpv4") and not rule.inputs.get("cidrIpv6")
    for group in plan.of_type("aws:ec2/securityGroup:SecurityGroup"):
        assert not group.inputs.get("ingress")


@pytest.mark.parametrize(("profile", "ha"), [("dev", False), ("prod", True)])
def test_redis_requires_tls_and_auth_and_fails_over_only_in_prod(plan_for, profile, ha):
    redis = plan_for("aws", profile).one(REDIS)
    assert redis.inputs["transitEncryptionEnabled"] is True
    assert redis.inputs["atRestEncryptionEnabled"] is True
    assert len(redis.inputs["authToken"]) >= 16 and redis.inputs["authToken"].isalnum()
    assert redis.inputs["automaticFailoverEnabled"] is ha
    assert redis.inputs["multiAzEnabled"] is ha
    assert redis.inputs["numCacheClusters"] == (2 if ha else 1)


@pytest.mark.parametrize("profile", PROFILES)
def test_every_password_and_kubeconfig_input_is_secret(plan_for, profile):
    plan = plan_for("aws", profile)
    assert plan.one(RDS).is_secret(("password",))
    assert plan.one(REDIS).is_secret(("authToken",))
    assert plan.one("pulumi:providers:kubernetes").is_secret(("kubeconfig",))
    for resource in plan.resources:
        for path in _paths(resource.inputs):
            if str(path[-1]).lower() in {"password", "authtoken", "masterpassword"}:
                assert resource.is_secret(path), f"{resource.urn} {path} is not secret"


def test_kubeconfig_gets_short_lived_tokens_from_the_aws_cli(plan_for):
    plan = plan_for("aws", "prod")
    cluster = plan.one(EKS)
    kubeconfig = json.loads(plan.one("pulumi:providers:kubernetes").inputs["kubeconfig"])
    (user,) = kubeconfig["users"]
    assert "token" not in user["user"]
    exec_ = user["user"]["exec"]
    assert exec_["command"] == "aws"
    assert exec_["args"][:4] == ["eks", "get-token", "--cluster-name", cluster.outputs["name"]]
    assert kubeconfig["clusters"][0]["cluster"]["server"] == cluster.outputs["endpoint"]


def test_ebs_storage_class_is_the_default_and_encrypted(plan_for):
    storage_class = plan_for("aws", "dev").object("StorageClass", "gp3").inputs
    assert storage_class["provisioner"] == "ebs.csi.aws.com"
    assert storage_class["parameters"]["encrypted"] == "true"
    assert storage_class["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"


def test_missing_region_stops_the_program_naming_the_key():
    with pytest.raises(Exception, match=r"^aws:region must be set") as raised:
        run_plan("dev", cloud="aws", overrides={"aws:region": None})
    assert type(raised.value).__name__ == "ConfigError"


def _paths(value: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every leaf path of an input value."""
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in _paths(item, (*path, key))]
    if isinstance(value, list):
        return [p for index, item in enumerate(value) for p in _paths(item, (*path, index))]
    return [path]


def test_stack_names_become_valid_resource_name_parts():
    assert dns_label("Team_A.prod--2") == "team-a-prod-2"


@pytest.mark.parametrize("profile", PROFILES)
def test_eks_stays_in_standard_support_instead_of_paid_extended_support(plan_for, profile):
    cluster = plan_for("aws", profile).one(EKS).inputs
    assert cluster["upgradePolicy"] == {"supportType": "STANDARD"}
    assert cluster["version"] == "1.36"


@pytest.mark.parametrize(("profile", "days"), [("dev", 30), ("prod", 365)])
def test_control_plane_and_database_logs_go_to_groups_that_expire(plan_for, profile, days):
    plan = plan_for("aws", profile)
    cluster, db = plan.one(EKS), plan.one(RDS)
    groups = {g.inputs["name"]: g for g in plan.of_type("aws:cloudwatch/logGroup:LogGroup")}
    control_plane = groups[f"/aws/eks/{cluster.inputs['name']}/cluster"]
    assert control_plane.urn in cluster.dependencies  # exists before EKS would create it unexpiring
    for log in db.inputs["enabledCloudwatchLogsExports"]:
        group = groups[f"/aws/rds/instance/{db.inputs['identifier']}/{log}"]
        assert group.urn in db.dependencies
    assert {g.inputs["retentionInDays"] for g in groups.values()} == {days}


def test_log_retention_comes_from_config_and_must_be_a_cloudwatch_period(plan_for):
    groups = plan_for("aws", "dev", logRetentionDays="90").of_type("aws:cloudwatch/logGroup:LogGroup")
    assert {g.inputs["retentionInDays"] for g in groups} == {90}
    with pytest.raises(Exception, match=r"^platform:logRetentionDays must be one of 1, 3, 5, 7, 14, 30"):
        run_plan("dev", cloud="aws", overrides={"logRetentionDays": "10"})


def test_redis_runs_the_valkey_engine(plan_for):
    redis = plan_for("aws", "prod").one(REDIS).inputs
    assert (redis["engine"], redis["engineVersion"]) == ("valkey", "8.0")


@pytest.mark.parametrize("profile", PROFILES)
def test_service_verifies_rds_against_the_regions_rds_roots(plan_for, profile):
    plan = plan_for("aws", profile)
    assert plan.one(RDS).inputs["caCertIdentifier"] == "rds-ca-rsa2048-g1"
    ca = next(c for c in plan.objects("ConfigMap", "products") if c.name == "postgres-ca")
    bundle = ca.inputs["data"]["ca.crt"]
    assert bundle.count("-----BEGIN CERTIFICATE-----") == 3  # RSA2048, RSA4096 and ECC384 G1 roots
    credentials = next(s for s in plan.objects("Secret", "products") if s.name == "credentials")
    url = credentials.inputs["stringData"]["DATABASE_URL"]
    assert url.endswith("?sslmode=verify-full&sslrootcert=/etc/platform/postgres-ca/ca.crt")
    assert f"@{plan.one(RDS).outputs['address']}:5432/" in url


def test_a_region_without_bundled_rds_roots_is_refused():
    with pytest.raises(Exception, match=r"^aws:region 'xx-nowhere-1' has no Amazon RDS root CA"):
        run_plan("dev", cloud="aws", overrides={"aws:region": "xx-nowhere-1"})


def test_get_token_signs_in_as_the_providers_profile_and_role(plan_for):
    role = "arn:aws:iam::123456789012:role/deployer"
    plan = plan_for("aws", "dev", **{"aws:profile": "platform", "aws:assumeRoles": [{"roleArn": role}]})
    (user,) = json.loads(plan.one("pulumi:providers:kubernetes").inputs["kubeconfig"])["users"]
    assert user["user"]["exec"]["args"][-4:] == ["--profile", "platform", "--role-arn", role]


def test_get_token_without_provider_identity_settings_uses_the_environments(plan_for):
    (user,) = json.loads(plan_for("aws", "prod").one("pulumi:providers:kubernetes").inputs["kubeconfig"])[
        "users"
    ]
    assert (
        "--profile" not in user["user"]["exec"]["args"] and "--role-arn" not in user["user"]["exec"]["args"]
    )


def test_a_role_chain_get_token_cannot_follow_is_refused():
    roles = [{"roleArn": "arn:aws:iam::1:role/a"}, {"roleArn": "arn:aws:iam::1:role/b"}]
    with pytest.raises(Exception, match=r"^aws:assumeRoles must name at most one role"):
        run_plan("dev", cloud="aws", overrides={"aws:assumeRoles": json.dumps(roles)})
