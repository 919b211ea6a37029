"""The Azure foundation under the offline engine: what `pulumi up` would ask Azure for, per profile."""

from __future__ import annotations

import base64

import offline_engine
import pulumi
import pytest
import yaml
from clouds.azure import _kubelogin_as_deployer, _principal_type_of
from plan import run_plan

PROFILES = ("dev", "prod")

AKS = "azure-native:containerservice:ManagedCluster"
POSTGRES = "azure-native:dbforpostgresql:Server"
REDIS = "azure-native:redisenterprise:RedisEnterprise"
REDIS_DATABASE = "azure-native:redisenterprise:Database"
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


def test_deployer_gets_kubernetes_rbac_admin_before_the_cluster_exists(plan_for):
    plan = plan_for("azure", "prod")
    assignment = plan.one("azure-native:authorization:RoleAssignment", "aks-deployer-admin")
    assert assignment.inputs["roleDefinitionId"].endswith(
        "/roleDefinitions/b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b"
    )
    # Granted on the stack's resource group, before AKS is created: the assignment propagates to
    # the cluster's authorizer during the cluster's creation, so the first Kubernetes call is allowed.
    group = plan.one("azure-native:resources:ResourceGroup")
    assert group.urn in assignment.dependencies and plan.one(AKS).urn not in assignment.dependencies
    assert assignment.urn in plan.one(AKS).dependencies
    assert assignment.urn in plan.one("pulumi:providers:kubernetes").dependencies


# How the deployer signs in, what the Azure CLI is signed in as, and the type its assignment must name:
# a person after `az login`; this repository's workflow (azure/login over OIDC signs the Azure CLI in as a
# service principal and sets only AZURE_CLIENT_ID); a service principal with a secret; a managed identity.
DEPLOYER_SIGN_INS = {
    "person": ({}, {}, "user", "User"),
    "workflow": ({}, {"AZURE_CLIENT_ID": "5555"}, "application", "ServicePrincipal"),
    "secret": (
        {"azure-native:clientId": "1111", "azure-native:clientSecret": "s3cr3t"},
        {},
        "user",
        "ServicePrincipal",
    ),
    "msi": ({"azure-native:useMsi": "true"}, {}, "user", "ServicePrincipal"),
}


@pytest.mark.parametrize("sign_in", DEPLOYER_SIGN_INS)
def test_the_deployers_role_assignment_names_the_type_of_the_signed_in_principal(monkeypatch, sign_in):
    # Azure refuses a type that does not match the principal (UnmatchedPrincipalType), and AKS waits for
    # the assignment: guessed from the provider's settings, the workflow's service principal went out as
    # User. The type now comes from the provider's own token (offline_engine._azure_token).
    overrides, environment, cli_account, expected = DEPLOYER_SIGN_INS[sign_in]
    for name in ("ARM_CLIENT_ID", "ARM_CLIENT_SECRET", "ARM_USE_MSI", "ARM_USE_OIDC"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(offline_engine, "AZURE_CLI_ACCOUNT", cli_account)
    plan = run_plan("dev", cloud="azure", overrides={"profile": "dev", **overrides})
    deployer = plan.one("azure-native:authorization:RoleAssignment", "aks-deployer-admin")
    assert deployer.inputs["principalType"] == expected
    assert deployer.inputs["principalId"] == "00000000-0000-0000-0000-000000000002"  # getClientConfig
    assert not deployer.is_secret(("principalType",))  # read from a secret token, but no secret itself
    # The cluster's own identity is a service principal created moments before its assignment.
    network = plan.one("azure-native:authorization:RoleAssignment", "aks-network")
    assert network.inputs["principalType"] == "ServicePrincipal"


def test_a_provider_token_that_is_no_jwt_stops_the_program_with_one_sentence():
    with pytest.raises(pulumi.RunError, match=r"^the azure-native provider's access token is not a JWT"):
        _principal_type_of("opaque-token")


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
def test_only_the_cluster_nodes_reach_the_postgres_and_redis_subnets(plan_for, profile):
    plan = plan_for("azure", profile)
    vnet = plan.one("azure-native:network:VirtualNetwork").inputs["addressSpace"]["addressPrefixes"][0]
    nodes = plan.one(SUBNET, "nodes").inputs["addressPrefix"]
    groups = {g.name: g for g in plan.of_type("azure-native:network:NetworkSecurityGroup")}
    for subnet_name, port, sources in (
        ("postgres", "5432", {nodes, plan.one(SUBNET, "postgres").inputs["addressPrefix"]}),  # + HA peers
        ("endpoints", "10000", {nodes}),
    ):
        subnet = plan.one(SUBNET, subnet_name)
        group = groups.pop(subnet_name)
        assert group.urn in subnet.dependencies and subnet.inputs["networkSecurityGroup"]["id"]
        rules = group.inputs["securityRules"]
        allows = [r for r in rules if r["access"] == "Allow"]
        assert {r["sourceAddressPrefix"] for r in allows} == sources
        for rule in allows:
            assert (rule["direction"], rule["protocol"]) == ("Inbound", "Tcp")
            assert rule["destinationAddressPrefix"] == subnet.inputs["addressPrefix"]
            assert rule["destinationPortRange"] == port
        [deny] = [r for r in rules if r["access"] == "Deny"]
        assert (deny["direction"], deny["sourceAddressPrefix"], deny["protocol"]) == ("Inbound", vnet, "*")
        assert all(deny["priority"] > rule["priority"] for rule in allows)
    assert groups == {}
    # A private endpoint obeys its subnet's security group only when the subnet says so.
    endpoints = plan.one(SUBNET, "endpoints").inputs
    assert endpoints["privateEndpointNetworkPolicies"] == "NetworkSecurityGroupEnabled"
    assert plan.one("azure-native:network:PrivateEndpoint").inputs["subnet"]["id"]


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


@pytest.mark.parametrize(
    ("profile", "sku", "ha"), [("dev", "Balanced_B0", "Disabled"), ("prod", "Balanced_B1", "Enabled")]
)
def test_redis_is_azure_managed_redis_tls_only_private_and_replicated_in_prod(plan_for, profile, sku, ha):
    plan = plan_for("azure", profile)
    cluster = plan.one(REDIS).inputs
    assert cluster["minimumTlsVersion"] == "1.2"
    assert cluster["publicNetworkAccess"] == "Disabled"
    assert cluster["sku"] == {"name": sku}
    assert cluster["highAvailability"] == ha
    database = plan.one(REDIS_DATABASE)
    assert database.parent == plan.one(REDIS).urn
    assert database.inputs["databaseName"] == "default"
    assert (database.inputs["clientProtocol"], database.inputs["port"]) == ("Encrypted", 10000)
    # A single proxied endpoint: the service's client is not cluster-aware.
    assert database.inputs["clusteringPolicy"] == "EnterpriseCluster"
    assert not plan.of_type("azure-native:redis:Redis")


@pytest.mark.parametrize("profile", PROFILES)
def test_redis_is_reached_through_a_private_endpoint_and_private_dns(plan_for, profile):
    plan = plan_for("azure", profile)
    endpoint = plan.one("azure-native:network:PrivateEndpoint")
    (connection,) = endpoint.inputs["privateLinkServiceConnections"]
    assert connection["groupIds"] == ["redisEnterprise"]
    assert plan.one(REDIS).urn in endpoint.dependencies
    zone = plan.one(PRIVATE_ZONE, "redis")
    assert zone.inputs["privateZoneName"] == "privatelink.redis.azure.net"
    group = plan.one("azure-native:network:PrivateDnsZoneGroup")
    assert zone.urn in group.dependencies


def test_redis_size_comes_from_config(plan_for):
    assert plan_for("azure", "dev", redisSize="MemoryOptimized_M10").one(REDIS).inputs["sku"] == {
        "name": "MemoryOptimized_M10"
    }


@pytest.mark.parametrize("size", ["Premium_P1", "Balanced", "Balanced_Bx"])
def test_a_size_that_is_not_azure_managed_redis_is_refused(size):
    with pytest.raises(Exception, match=r"^platform:redisSize must be an Azure Managed Redis size"):
        run_plan("dev", cloud="azure", overrides={"redisSize": size})


@pytest.mark.parametrize("profile", PROFILES)
def test_service_reaches_redis_on_its_tls_port_with_a_secret_access_key(plan_for, profile):
    plan = plan_for("azure", profile)
    host = plan.one(REDIS).outputs["hostName"]
    assert host.endswith(".westeurope.redis.azure.net")
    credentials = next(s for s in plan.objects("Secret", "products") if s.name == "credentials")
    assert credentials.is_secret(("stringData", "REDIS_URL"))
    url = credentials.inputs["stringData"]["REDIS_URL"]
    assert url.startswith("rediss://:offline-primary-key-") and url.endswith(f"@{host}:10000/0")
    assert plan.outputs["redis_endpoint"] == f"{host}:10000"


def test_burstable_postgres_is_refused_when_highly_available():
    with pytest.raises(
        Exception, match=r"^platform:dbSize must be a General Purpose or Memory Optimized size"
    ):
        run_plan("dev", cloud="azure", overrides={"highAvailability": True})


def test_kubeconfig_comes_from_the_cluster_user_credentials_and_is_secret(plan_for):
    provider = plan_for("azure", "prod").one("pulumi:providers:kubernetes")
    assert provider.is_secret(("kubeconfig",))
    assert yaml.safe_load(provider.inputs["kubeconfig"])["clusters"][0]["cluster"]["server"]


def _kubelogin_args(plan) -> list[str]:
    (user,) = yaml.safe_load(plan.one("pulumi:providers:kubernetes").inputs["kubeconfig"])["users"]
    return user["user"]["exec"]["args"]


def test_user_kubeconfig_login_is_switched_from_device_code_to_the_given_login():
    exec_user = {
        "exec": {
            "command": "kubelogin",
            "args": ["get-token", "--login", "devicecode", "--server-id", "6dae42f8", "--client-id", "x"],
        }
    }
    kubeconfig = {"users": [{"name": "clusterUser", "user": exec_user}]}
    converted = yaml.safe_load(
        _kubelogin_as_deployer(
            base64.b64encode(yaml.safe_dump(kubeconfig).encode()).decode(), ["--login", "azurecli"]
        )
    )
    assert converted["users"][0]["user"]["exec"]["args"] == [
        "get-token",
        "--login",
        "azurecli",
        "--server-id",
        "6dae42f8",
    ]


def test_kubelogin_uses_the_azure_cli_account_when_the_provider_does(plan_for):
    assert _kubelogin_args(plan_for("azure", "prod"))[:3] == ["get-token", "--login", "azurecli"]


def test_kubelogin_signs_in_as_the_providers_service_principal_without_its_secret(plan_for):
    plan = plan_for(
        "azure",
        "dev",
        **{
            "azure-native:clientId": "1111",
            "azure-native:tenantId": "2222",
            "azure-native:clientSecret": "s3cr3t",
        },
    )
    args = _kubelogin_args(plan)
    assert args[:7] == ["get-token", "--login", "spn", "--client-id", "1111", "--tenant-id", "2222"]
    assert "s3cr3t" not in plan.one("pulumi:providers:kubernetes").inputs["kubeconfig"]


def test_kubelogin_uses_the_managed_identity_the_provider_uses(plan_for):
    plan = plan_for("azure", "dev", **{"azure-native:useMsi": "true", "azure-native:clientId": "3333"})
    assert _kubelogin_args(plan)[:5] == ["get-token", "--login", "msi", "--client-id", "3333"]


@pytest.mark.parametrize("profile", PROFILES)
def test_service_verifies_flexible_server_against_azures_roots(plan_for, profile):
    plan = plan_for("azure", profile)
    ca = next(c for c in plan.objects("ConfigMap", "products") if c.name == "postgres-ca")
    bundle = ca.inputs["data"]["ca.crt"]
    assert bundle.count("-----BEGIN CERTIFICATE-----") == 3
    assert "DigiCert_Global_Root_G2" in bundle and "Microsoft_RSA_Root_Certificate_Authority_2017" in bundle
    credentials = next(s for s in plan.objects("Secret", "products") if s.name == "credentials")
    url = credentials.inputs["stringData"]["DATABASE_URL"]
    assert url.endswith("?sslmode=verify-full&sslrootcert=/etc/platform/postgres-ca/ca.crt")
    assert f"@{plan.one(POSTGRES).outputs['fullyQualifiedDomainName']}:5432/" in url


def test_kubelogin_uses_the_federated_token_file_the_provider_signs_in_with(monkeypatch):
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", "/var/run/secrets/azure/tokens/azure-identity-token")
    plan = run_plan(
        "dev",
        cloud="azure",
        overrides={
            "azure-native:useOidc": "true",
            "azure-native:clientId": "4444",
            "azure-native:tenantId": "5555",
        },
    )
    assert _kubelogin_args(plan)[:7] == [
        "get-token",
        "--login",
        "workloadidentity",
        "--client-id",
        "4444",
        "--tenant-id",
        "5555",
    ]
