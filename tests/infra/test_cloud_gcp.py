"""The GCP foundation under the offline engine: what `pulumi up` would ask GCP for, per profile."""

from __future__ import annotations

import ipaddress
import json
import re
from types import SimpleNamespace

import pytest
from clouds.shared import dns_label
from google.protobuf import struct_pb2
from offline_engine import RecordingMonitor
from plan import run_plan

PROFILES = ("dev", "prod")

GKE = "gcp:container/cluster:Cluster"
NODE_POOL = "gcp:container/nodePool:NodePool"
SQL = "gcp:sql/databaseInstance:DatabaseInstance"
REDIS = "gcp:redis/instance:Instance"


@pytest.mark.parametrize("profile", PROFILES)
def test_program_builds_gke_cloud_sql_and_memorystore_inside_one_component(plan_for, profile):
    plan = plan_for("gcp", profile)
    component = plan.one("platform:gcp:Foundation")
    for type_ in (GKE, NODE_POOL, SQL, REDIS, "gcp:compute/network:Network"):
        assert plan.one(type_).parent == component.urn


@pytest.mark.parametrize("profile", PROFILES)
def test_network_is_vpc_native_with_pod_and_service_ranges_and_nat_egress(plan_for, profile):
    plan = plan_for("gcp", profile)
    assert plan.one("gcp:compute/network:Network").inputs["autoCreateSubnetworks"] is False
    subnet = plan.one("gcp:compute/subnetwork:Subnetwork").inputs
    assert subnet["privateIpGoogleAccess"] is True
    assert {r["rangeName"] for r in subnet["secondaryIpRanges"]} == {"pods", "services"}
    policy = plan.one(GKE).inputs["ipAllocationPolicy"]
    assert (policy["clusterSecondaryRangeName"], policy["servicesSecondaryRangeName"]) == ("pods", "services")
    nat = plan.one("gcp:compute/routerNat:RouterNat").inputs
    assert nat["sourceSubnetworkIpRangesToNat"] == "ALL_SUBNETWORKS_ALL_IP_RANGES"


@pytest.mark.parametrize("profile", PROFILES)
def test_gke_nodes_are_private_and_hardened(plan_for, profile):
    cluster = plan_for("gcp", profile).one(GKE).inputs
    assert cluster["privateClusterConfig"]["enablePrivateNodes"] is True
    assert cluster["enableShieldedNodes"] is True
    assert cluster["enableLegacyAbac"] is False
    assert cluster["workloadIdentityConfig"]["workloadPool"] == "example-project.svc.id.goog"
    assert cluster["releaseChannel"]["channel"] in {"RAPID", "REGULAR", "STABLE"}
    assert cluster["removeDefaultNodePool"] is True
    # One way to enforce NetworkPolicy, not two: Dataplane V2 and no Calico add-on.
    assert cluster["datapathProvider"] == "ADVANCED_DATAPATH"
    assert not (cluster.get("networkPolicy") or {}).get("enabled")


def test_gke_api_accepts_only_the_configured_cidrs(plan_for):
    cidrs = ["198.51.100.0/24", "192.0.2.16/28"]
    config = plan_for("gcp", "prod", apiAllowedCidrs=cidrs).one(GKE).inputs["masterAuthorizedNetworksConfig"]
    assert [block["cidrBlock"] for block in config["cidrBlocks"]] == cidrs
    assert config.get("gcpPublicCidrsAccessEnabled") is False


@pytest.mark.parametrize(("profile", "location"), [("dev", "europe-west1-b"), ("prod", "europe-west1")])
def test_gke_is_regional_in_prod_and_zonal_in_dev(plan_for, profile, location):
    plan = plan_for("gcp", profile)
    assert plan.one(GKE).inputs["location"] == location
    assert plan.one(NODE_POOL).inputs["location"] == location


@pytest.mark.parametrize(("profile", "protected"), [("dev", False), ("prod", True)])
def test_gke_deletion_protection_only_in_prod(plan_for, profile, protected):
    assert plan_for("gcp", profile).one(GKE).inputs["deletionProtection"] is protected


def test_node_pool_autoscales_between_configured_totals(plan_for):
    plan = plan_for("gcp", "prod", nodeMinCount=4, nodeMaxCount=12, nodeSize="n2-standard-8")
    pool = plan.one(NODE_POOL).inputs
    assert pool["autoscaling"]["totalMinNodeCount"] == 4
    assert pool["autoscaling"]["totalMaxNodeCount"] == 12
    assert pool["nodeConfig"]["machineType"] == "n2-standard-8"


@pytest.mark.parametrize("profile", PROFILES)
def test_node_pool_uses_shielded_vms_and_the_gke_metadata_server(plan_for, profile):
    node_config = plan_for("gcp", profile).one(NODE_POOL).inputs["nodeConfig"]
    assert node_config["shieldedInstanceConfig"] == {
        "enableSecureBoot": True,
        "enableIntegrityMonitoring": True,
    }
    assert node_config["workloadMetadataConfig"]["mode"] == "GKE_METADATA"


@pytest.mark.parametrize("profile", PROFILES)
def test_cloud_sql_has_only_a_private_address_and_requires_tls(plan_for, profile):
    plan = plan_for("gcp", profile)
    instance = plan.one(SQL)
    ip = instance.inputs["settings"]["ipConfiguration"]
    assert ip["ipv4Enabled"] is False
    assert ip["privateNetwork"] and plan.one("gcp:compute/network:Network").urn in instance.dependencies
    assert not ip.get("authorizedNetworks")
    assert ip["sslMode"] in {"ENCRYPTED_ONLY", "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"}
    assert re.fullmatch(r"POSTGRES_(1[6-9])", instance.inputs["databaseVersion"])
    # Cloud SQL's private address comes from the peered service networking range.
    connection = plan.one("gcp:servicenetworking/connection:Connection")
    assert connection.urn in instance.dependencies
    assert connection.inputs["service"] == "servicenetworking.googleapis.com"


@pytest.mark.parametrize(
    ("profile", "availability", "pitr", "protected"),
    [("dev", "ZONAL", False, False), ("prod", "REGIONAL", True, True)],
)
def test_cloud_sql_ha_pitr_and_deletion_protection_only_in_prod(
    plan_for, profile, availability, pitr, protected
):
    instance = plan_for("gcp", profile).one(SQL).inputs
    settings = instance["settings"]
    assert settings["availabilityType"] == availability
    assert settings["backupConfiguration"]["enabled"] is True
    assert settings["backupConfiguration"]["pointInTimeRecoveryEnabled"] is pitr
    assert instance["deletionProtection"] is protected
    assert settings["deletionProtectionEnabled"] is protected


@pytest.mark.parametrize(("profile", "backups"), [("dev", 7), ("prod", 30)])
def test_cloud_sql_keeps_backups_per_profile(plan_for, profile, backups):
    retention = plan_for("gcp", profile).one(SQL).inputs["settings"]["backupConfiguration"]
    assert retention["backupRetentionSettings"] == {"retainedBackups": backups, "retentionUnit": "COUNT"}


@pytest.mark.parametrize("profile", PROFILES)
def test_database_user_password_is_generated_and_secret(plan_for, profile):
    plan = plan_for("gcp", profile)
    user = plan.one("gcp:sql/user:User")
    assert user.is_secret(("password",))
    assert len(user.inputs["password"]) >= 32
    assert plan.one("gcp:sql/database:Database").inputs["name"] == "products"
    assert plan.one("pulumi:providers:kubernetes").is_secret(("kubeconfig",))


@pytest.mark.parametrize(("profile", "tier"), [("dev", "BASIC"), ("prod", "STANDARD_HA")])
def test_memorystore_requires_auth_and_tls_and_is_ha_only_in_prod(plan_for, profile, tier):
    redis = plan_for("gcp", profile).one(REDIS).inputs
    assert redis["authEnabled"] is True
    assert redis["transitEncryptionMode"] == "SERVER_AUTHENTICATION"
    assert redis["connectMode"] == "PRIVATE_SERVICE_ACCESS"
    assert redis["authorizedNetwork"]
    assert redis["tier"] == tier


def test_memorystore_size_comes_from_config(plan_for):
    assert plan_for("gcp", "dev", redisSize="3").one(REDIS).inputs["memorySizeGb"] == 3


def test_memorystore_size_must_be_whole_gigabytes():
    with pytest.raises(Exception, match=r"^platform:redisSize must be a whole number of GB"):
        run_plan("dev", cloud="gcp", overrides={"redisSize": "large"})


def test_kubeconfig_uses_the_gke_auth_plugin_not_a_stored_credential(plan_for):
    plan = plan_for("gcp", "prod")
    kubeconfig = json.loads(plan.one("pulumi:providers:kubernetes").inputs["kubeconfig"])
    (user,) = kubeconfig["users"]
    assert set(user["user"]) == {"exec"}
    assert user["user"]["exec"]["command"] == "gke-gcloud-auth-plugin"
    # The same identity as the GCP provider: Application Default Credentials, not gcloud's account.
    assert user["user"]["exec"]["args"] == ["--use_application_default_credentials"]
    assert kubeconfig["clusters"][0]["cluster"]["server"] == f"https://{plan.one(GKE).outputs['endpoint']}"


def test_missing_project_stops_the_program_naming_the_key():
    with pytest.raises(Exception, match=r"^gcp:project must be set") as raised:
        run_plan("dev", cloud="gcp", overrides={"gcp:project": None})
    assert type(raised.value).__name__ == "ConfigError"


@pytest.mark.parametrize("profile", PROFILES)
def test_nodes_run_as_their_own_service_account_with_a_valid_id(plan_for, profile):
    plan = plan_for("gcp", profile)
    account = plan.one("gcp:serviceaccount/account:Account", "gke-nodes")
    assert re.fullmatch(r"[a-z][-a-z0-9]{4,28}[a-z0-9]", account.inputs["accountId"])
    assert account.urn in plan.one(NODE_POOL).dependencies
    assert dns_label("Very_Long.Stack") == "very-long-stack"


def test_project_apis_are_enabled_before_the_services_that_need_them(plan_for):
    plan = plan_for("gcp", "dev")
    apis = {a.inputs["service"]: a for a in plan.of_type("gcp:projects/service:Service")}
    assert all(a.inputs["disableOnDestroy"] is False for a in apis.values())
    for type_, api in ((GKE, "container"), (SQL, "sqladmin"), (REDIS, "redis")):
        assert apis[f"{api}.googleapis.com"].urn in plan.one(type_).dependencies


def test_service_pods_verify_memorystore_tls_against_every_ca_of_the_instance(plan_for):
    plan = plan_for("gcp", "dev")
    ca = next(c for c in plan.objects("ConfigMap", "products") if c.name == "redis-ca")
    # The instance lists two CAs while it rotates; trusting both keeps connections up across it.
    listed = [c["cert"] for c in plan.one(REDIS).outputs["serverCaCerts"]]
    assert len(listed) == 2 and ca.inputs["data"]["ca.crt"] == "".join(listed)
    credentials = next(s for s in plan.objects("Secret", "products") if s.name == "credentials")
    assert credentials.inputs["stringData"]["REDIS_URL"].startswith("rediss://")
    # The certificate names the instance IP only in its CN, which TLS name checks ignore: the chain is
    # verified against the instance's own CAs, the name check is what is left out.
    assert credentials.inputs["stringData"]["REDIS_URL"].endswith(
        "?ssl_ca_certs=/etc/platform/redis-ca/ca.crt&ssl_check_hostname=false"
    )
    assert "ssl_cert_reqs" not in credentials.inputs["stringData"]["REDIS_URL"]
    for workload in (plan.object("Rollout", "product-service"), *plan.objects("Job", "products")):
        pod = workload.inputs["spec"]["template"]["spec"]
        assert {"name": "redis-ca", "configMap": {"name": ca.metadata["name"]}} in pod["volumes"]
        mounts = pod["containers"][0]["volumeMounts"]
        assert {"name": "redis-ca", "mountPath": "/etc/platform/redis-ca", "readOnly": True} in mounts


@pytest.mark.parametrize("cloud", ["aws", "local"])
def test_clouds_with_publicly_rooted_redis_certificates_mount_no_ca(plan_for, cloud):
    plan = plan_for(cloud, "dev")
    assert not [c for c in plan.objects("ConfigMap", "products") if c.name == "redis-ca"]
    credentials = next(s for s in plan.objects("Secret", "products") if s.name == "credentials")
    assert "ssl_ca_certs" not in credentials.inputs["stringData"]["REDIS_URL"]


@pytest.mark.parametrize(("days", "log_days"), [(2, 1), (7, 6), (8, 7), (30, 7), (35, 7)])
def test_cloud_sql_keeps_more_backups_than_days_of_transaction_log(plan_for, days, log_days):
    backups = (
        plan_for("gcp", "prod", backupRetentionDays=days).one(SQL).inputs["settings"]["backupConfiguration"]
    )
    assert backups["backupRetentionSettings"]["retainedBackups"] == days
    assert backups["transactionLogRetentionDays"] == log_days


def test_one_retained_backup_is_refused_on_gcp():
    with pytest.raises(Exception, match=r"^platform:backupRetentionDays must be from 2 to 35 on gcp"):
        run_plan("dev", cloud="gcp", overrides={"backupRetentionDays": 1})


@pytest.mark.parametrize("profile", PROFILES)
def test_service_verifies_cloud_sql_chain_and_name_against_its_server_cas(plan_for, profile):
    plan = plan_for("gcp", profile)
    instance = plan.one(SQL)
    assert instance.inputs["settings"]["ipConfiguration"]["serverCaMode"] == "GOOGLE_MANAGED_CAS_CA"
    ca = next(c for c in plan.objects("ConfigMap", "products") if c.name == "postgres-ca")
    assert ca.inputs["data"]["ca.crt"] == "".join(c["cert"] for c in instance.outputs["serverCaCerts"])
    credentials = next(s for s in plan.objects("Secret", "products") if s.name == "credentials")
    url = credentials.inputs["stringData"]["DATABASE_URL"]
    assert url.endswith("?sslmode=verify-full&sslrootcert=/etc/platform/postgres-ca/ca.crt")
    for workload in (plan.object("Rollout", "product-service"), *plan.objects("Job", "products")):
        mounts = workload.inputs["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
        assert {"name": "postgres-ca", "mountPath": "/etc/platform/postgres-ca", "readOnly": True} in mounts


@pytest.mark.parametrize("profile", PROFILES)
def test_pods_connect_to_cloud_sql_by_the_dns_name_its_certificate_carries(plan_for, profile):
    # verify-full checks the dialled name against the certificate: by IP it would need the IP named there,
    # which nothing says Cloud SQL does. The shared CA's instances report a DNS name to verify instead.
    plan = plan_for("gcp", profile)
    instance = plan.one(SQL)
    [psa] = [n for n in instance.outputs["dnsNames"] if n["connectionType"] == "PRIVATE_SERVICES_ACCESS"]
    name = psa["name"].rstrip(".")
    url = next(s for s in plan.objects("Secret", "products") if s.name == "credentials").inputs["stringData"]
    assert f"@{name}:5432/products?sslmode=verify-full&" in url["DATABASE_URL"]
    assert instance.outputs["privateIpAddress"] not in url["DATABASE_URL"]
    # Nothing resolves that name but a private zone of the VPC, with the instance's private IP in it.
    zone = plan.one("gcp:dns/managedZone:ManagedZone", "postgres")
    assert zone.inputs["dnsName"] == f"{name}."
    assert zone.inputs["visibility"] == "private"
    networks = zone.inputs["privateVisibilityConfig"]["networks"]
    assert networks == [{"networkUrl": plan.one(GKE).inputs["network"]}]  # the cluster's VPC
    record = plan.one("gcp:dns/recordSet:RecordSet", "postgres")
    assert (record.inputs["name"], record.inputs["type"]) == (f"{name}.", "A")
    assert record.inputs["rrdatas"] == [instance.outputs["privateIpAddress"]]
    assert record.inputs["managedZone"] == zone.outputs["name"]
    apis = {a.inputs["service"]: a.urn for a in plan.of_type("gcp:projects/service:Service")}
    assert apis["dns.googleapis.com"] in zone.dependencies


@pytest.mark.parametrize("profile", PROFILES)
def test_only_the_cluster_nodes_reach_cloud_sql_and_memorystore_on_their_ports(plan_for, profile):
    plan = plan_for("gcp", profile)
    rules = {f.name: f.inputs for f in plan.of_type("gcp:compute/firewall:Firewall")}
    nodes = next(a for a in plan.of_type("gcp:serviceaccount/account:Account") if a.name == "gke-nodes")
    servers = {
        "postgres-from-nodes": (plan.one(SQL).outputs["privateIpAddress"], "5432"),
        "redis-from-nodes": (plan.one(REDIS).outputs["host"], str(plan.one(REDIS).outputs["port"])),
    }
    reserved = ipaddress.ip_network("10.30.0.0/16")  # the private services range
    for name, (address, port) in servers.items():
        rule = rules.pop(name)
        assert ipaddress.ip_address(address) in reserved
        assert (rule["direction"], rule["destinationRanges"]) == ("EGRESS", [f"{address}/32"])
        assert rule["targetServiceAccounts"] == [nodes.outputs["email"]]
        assert rule["allows"] == [{"protocol": "tcp", "ports": [port]}]
    # Everything else in the VPC, nodes included on other addresses and ports, is denied the range.
    deny = rules.pop("private-services-deny")
    assert (deny["direction"], deny["destinationRanges"]) == ("EGRESS", [str(reserved)])
    assert deny["denies"] == [{"protocol": "all"}]
    assert "targetServiceAccounts" not in deny and "targetTags" not in deny
    assert all(
        deny["priority"] > plan.one("gcp:compute/firewall:Firewall", n).inputs["priority"] for n in servers
    )
    assert rules == {}


def test_zones_are_asked_for_only_after_the_program_enables_the_compute_api(plan_for):
    # The offline engine answers getZones like a fresh project: 403 until compute.googleapis.com is
    # enabled (an api-compute Service registered), so the plan exists only if the order is right.
    plan = plan_for("gcp", "prod")
    assert plan.one(GKE).inputs["nodeLocations"] == ["europe-west1-b", "europe-west1-c", "europe-west1-d"]
    monitor = RecordingMonitor("prod", "platform")
    request = SimpleNamespace(tok="gcp:compute/getZones:getZones", args=struct_pb2.Struct())
    with pytest.raises(RuntimeError, match="accessNotConfigured"):
        monitor.Invoke(request)


@pytest.mark.parametrize("profile", PROFILES)
def test_destroy_abandons_the_private_services_peering(plan_for, profile):
    connection = plan_for("gcp", profile).one("gcp:servicenetworking/connection:Connection")
    assert connection.inputs["deletionPolicy"] == "ABANDON"
