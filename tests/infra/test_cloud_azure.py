"""The Azure foundation under the offline engine: what `pulumi up` would ask Azure for, per profile."""

from __future__ import annotations

import base64

import pytest
import yaml
from clouds.azure import _azure_cli_login
from plan import run_plan

PROFILES = ("dev", "prod")

AKS = "azure-native:containerservice:ManagedCluster"
POSTGRES = "azure-native:dbforpostgresql:Server"
REDIS = "azure-native:redis:Redis"
SUBNET = "azure-native:network:Subnet"
PRIVATE_ZONE = "azure-native:privatedns:PrivateZone"
ZONE_LINK = "azure-native:privatedns:VirtualNetworkLink"
LOCK = "azure-native:authorization:ManagementLockByScope"


@pytest.mark.parametrize("profile", PROFILES)
def test_program_builds_aks_postgres_and_redis_inside_one_component(plan_for, profile):
    plan = plan_for("azure", profile)
    component = plan.one("platform:azure:Foundation")
    for type_ in (AKS, POSTGRES, REDIS, "azure-native:resources:ResourceGroup"):
        assert plan.one(type_).parent == component.urn


@pytest.mark.parametrize("profile", PROFILES)
def test_aks_uses_managed_identity_azure_cni_and_network_policy(plan_for, profile):
    cluster = plan_for("azure", profile).one(AKS).inputs
    assert cluster["identity"]["type"] == "SystemAssigned"
    assert cluster["networkProfile"]["networkPlugin"] == "azure"
    assert cluster["networkProfile"]["networkPolicy"] in {"azure", "calico", "cilium"}


@pytest.mark.parametrize("profile", PROFILES)
def test_aks_signs_in_only_through_entra_id_with_workload_identity(plan_for, profile):
    cluster = plan_for("azure", profile).one(AKS).inputs
    assert cluster["disableLocalAccounts"] is True
    assert cluster["aadProfile"] == {"managed": True, "enableAzureRBAC": True}
    assert cluster["oidcIssuerProfile"]["enabled"] is True
    assert cluster["securityProfile"]["workloadIdentity"]["enabled"] is True


def test_aks_api_server_accepts_only_the_configured_cidrs(plan_for):
    cidrs = ["198.51.100.0/24", "192.0.2.16/28"]
    cluster = plan_for("azure", "prod", apiAllowedCidrs=cidrs).one(AKS).inputs
    assert cluster["apiServerAccessProfile"]["authorizedIPRanges"] == cidrs


def test_aks_autoscaler_bounds_and_vm_size_come_from_config(plan_for):
    plan = plan_for("azure", "dev", nodeMinCount=2, nodeMaxCount=6, nodeSize="Standard_D8s_v5")
    (pool,) = plan.one(AKS).inputs["agentPoolProfiles"]
    assert pool["enableAutoScaling"] is True
    assert (pool["minCount"], pool["maxCount"], pool["count"]) == (2, 6, 2)
    assert pool["vmSize"] == "Standard_D8s_v5"
    assert plan.one(SUBNET, "nodes").urn in plan.one(AKS).dependencies


@pytest.mark.parametrize(("profile", "zones"), [("dev", None), ("prod", ["1", "2", "3"])])
def test_aks_nodes_spread_over_zones_only_in_prod(plan_for, profile, zones):
    (pool,) = plan_for("azure", profile).one(AKS).inputs["agentPoolProfiles"]
    assert pool.get("availabilityZones") == zones


def test_deployer_gets_kubernetes_rbac_admin_on_the_cluster(plan_for):
    plan = plan_for("azure", "prod")
    assignment = plan.one("azure-native:authorization:RoleAssignment", "aks-deployer-admin")
    assert assignment.inputs["roleDefinitionId"].endswith(
        "/roleDefinitions/b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b"
    )
    assert plan.one(AKS).urn in assignment.dependencies
    # The provider for the Kubernetes objects waits for the role, or its first calls are refused.
    assert assignment.urn in plan.one("pulumi:providers:kubernetes").dependencies
    assert assignment.inputs["principalType"] == "User"  # the offline run signs in as no service principal


@pytest.mark.parametrize("profile", PROFILES)
def test_postgres_lives_in_a_delegated_subnet_behind_private_dns_with_no_public_access(plan_for, profile):
    plan = plan_for("azure", profile)
    server = plan.one(POSTGRES)
    assert server.inputs["network"]["publicNetworkAccess"] == "Disabled"
    subnet = plan.one(SUBNET, "postgres")
    assert subnet.urn in server.dependencies
    assert [d["serviceName"] for d in subnet.inputs["delegations"]] == [
        "Microsoft.DBforPostgreSQL/flexibleServers"
    ]
    zone = plan.one(PRIVATE_ZONE, "postgres")
    assert zone.inputs["privateZoneName"].endswith(".private.postgres.database.azure.com")
    assert zone.urn in server.dependencies
    assert plan.one(ZONE_LINK, "postgres").urn in server.dependencies
    assert int(server.inputs["version"]) >= 16


@pytest.mark.parametrize("profile", PROFILES)
def test_postgres_requires_tls_and_its_password_is_generated_and_secret(plan_for, profile):
    plan = plan_for("azure", profile)
    server = plan.one(POSTGRES)
    assert server.is_secret(("administratorLoginPassword",))
    assert len(server.inputs["administratorLoginPassword"]) >= 32
    setting = plan.one("azure-native:dbforpostgresql:Configuration").inputs
    assert (setting["configurationName"], setting["value"]) == ("require_secure_transport", "on")
    assert plan.one("azure-native:dbforpostgresql:Database").inputs["databaseName"] == "products"


@pytest.mark.parametrize(
    ("profile", "ha", "geo", "days"),
    [("dev", "Disabled", "Disabled", 7), ("prod", "ZoneRedundant", "Enabled", 30)],
)
def test_postgres_ha_and_geo_redundant_backups_only_in_prod(plan_for, profile, ha, geo, days):
    server = plan_for("azure", profile).one(POSTGRES).inputs
    assert server["highAvailability"]["mode"] == ha
    assert server["backup"] == {"backupRetentionDays": days, "geoRedundantBackup": geo}


def test_postgres_disk_rounds_up_to_a_size_flexible_server_offers(plan_for):
    assert plan_for("azure", "dev", dbStorageGb=100).one(POSTGRES).inputs["storage"]["storageSizeGB"] == 128


def test_backup_retention_below_what_flexible_server_accepts_is_refused():
    with pytest.raises(Exception, match=r"^platform:backupRetentionDays must be from 7 to 35 on azure"):
        run_plan("dev", cloud="azure", overrides={"backupRetentionDays": 3})


@pytest.mark.parametrize(("profile", "locked"), [("dev", set()), ("prod", {"postgres", "redis"})])
def test_data_services_are_locked_against_deletion_only_in_prod(plan_for, profile, locked):
    plan = plan_for("azure", profile)
    locks = plan.of_type(LOCK)
    assert all(lock.inputs["level"] == "CanNotDelete" for lock in locks)
    assert {plan.by_urn(lock.parent).name for lock in locks} == locked


@pytest.mark.parametrize(("profile", "sku"), [("dev", "Basic"), ("prod", "Premium")])
def test_redis_is_tls_only_and_private(plan_for, profile, sku):
    plan = plan_for("azure", profile)
    redis = plan.one(REDIS).inputs
    assert redis["enableNonSslPort"] is False
    assert redis["minimumTlsVersion"] == "1.2"
    assert redis["publicNetworkAccess"] == "Disabled"
    assert redis["sku"]["name"] == sku


@pytest.mark.parametrize("profile", PROFILES)
def test_redis_is_reached_through_a_private_endpoint_and_private_dns(plan_for, profile):
    plan = plan_for("azure", profile)
    endpoint = plan.one("azure-native:network:PrivateEndpoint")
    (connection,) = endpoint.inputs["privateLinkServiceConnections"]
    assert connection["groupIds"] == ["redisCache"]
    assert plan.one(REDIS).urn in endpoint.dependencies
    zone = plan.one(PRIVATE_ZONE, "redis")
    assert zone.inputs["privateZoneName"] == "privatelink.redis.cache.windows.net"
    group = plan.one("azure-native:network:PrivateDnsZoneGroup")
    assert zone.urn in group.dependencies


def test_redis_size_comes_from_config(plan_for):
    sku = plan_for("azure", "dev", redisSize="Standard_C2").one(REDIS).inputs["sku"]
    assert sku == {"name": "Standard", "family": "C", "capacity": 2}


def test_redis_without_a_replica_is_refused_when_highly_available():
    with pytest.raises(Exception, match=r"^platform:redisSize must be a Standard_ or Premium_ size"):
        run_plan("dev", cloud="azure", overrides={"highAvailability": True, "dbSize": "Standard_D2ds_v5"})


def test_burstable_postgres_is_refused_when_highly_available():
    with pytest.raises(
        Exception, match=r"^platform:dbSize must be a General Purpose or Memory Optimized size"
    ):
        run_plan("dev", cloud="azure", overrides={"highAvailability": True})


def test_kubeconfig_comes_from_the_cluster_user_credentials_and_is_secret(plan_for):
    provider = plan_for("azure", "prod").one("pulumi:providers:kubernetes")
    assert provider.is_secret(("kubeconfig",))
    assert yaml.safe_load(provider.inputs["kubeconfig"])["clusters"][0]["cluster"]["server"]


def test_user_kubeconfig_login_is_switched_from_device_code_to_the_azure_cli():
    exec_user = {
        "exec": {
            "command": "kubelogin",
            "args": ["get-token", "--login", "devicecode", "--server-id", "6dae42f8", "--client-id", "x"],
        }
    }
    kubeconfig = {"users": [{"name": "clusterUser", "user": exec_user}]}
    converted = yaml.safe_load(
        _azure_cli_login(base64.b64encode(yaml.safe_dump(kubeconfig).encode()).decode())
    )
    assert converted["users"][0]["user"]["exec"]["args"] == [
        "get-token",
        "--login",
        "azurecli",
        "--server-id",
        "6dae42f8",
    ]
