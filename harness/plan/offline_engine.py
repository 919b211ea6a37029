"""A stand-in for the Pulumi engine and providers, so the program runs offline (see `plan.py`).

Pulumi's stock `MockMonitor` is more lenient than the engine in two ways that matter here: it
unwraps secret inputs before the mocks see them, and it ignores `additionalSecretOutputs`, so a
generated password comes back as a plain value and everything built from it looks harmless. This
monitor reads the wire format itself, records which input paths were secret, and returns outputs
with the secretness the engine would give them:

- properties named in `additionalSecretOutputs` (e.g. `RandomPassword.result`) are secret;
- an output whose input of the same name contained a secret is secret (the engine's rule).

It also plays the providers' part where the program depends on it: Kubernetes auto-names, Helm
release status, generated passwords, endpoints and ids of cloud resources, and the data sources
(invokes) the cloud modules call.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import empty_pb2, struct_pb2
from google.protobuf.json_format import MessageToDict
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor, Mocks
from pulumi.runtime.proto import resource_pb2

Path = tuple[str | int, ...]

SECRET_SIG = rpc._special_secret_sig
RESOURCE_SIG = rpc._special_resource_sig
SIG_KEY = rpc._special_sig_key
UNKNOWN = rpc.UNKNOWN


@dataclass
class Registration:
    """One resource as the engine saw it: inputs in wire shape (camelCase), secrets unwrapped."""

    type: str
    name: str
    urn: str
    parent: str
    custom: bool
    provider: str
    inputs: dict[str, Any]
    secret_paths: list[Path]
    dependencies: list[str]
    outputs: dict[str, Any] = field(default_factory=dict)


class RecordingMonitor(MockMonitor):
    """Records every registration with its secret paths; answers like the engine would."""

    def __init__(self, stack: str, project: str, config: dict[str, str] | None = None) -> None:
        super().__init__(_NoMocks())
        self.stack = stack
        self.project = project
        self.config = config or {}
        self.registrations: list[Registration] = []
        self.stack_outputs: dict[str, Any] = {}
        self.stack_output_secrets: list[Path] = []
        self.invokes: list[str] = []

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        if parent:
            type_ = parent.split("::")[2] + "$" + type_
        return f"urn:pulumi:{self.stack}::{self.project}::{type_}::{name}"

    def RegisterResource(self, request: Any) -> Any:
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == "pulumi:pulumi:Stack":
            return resource_pb2.RegisterResourceResponse(urn=urn)

        inputs, secret_paths = unwrap(_struct_to_python(request.object))
        inputs = provider_checked_inputs(request.type, request.name, urn, inputs)
        registration = Registration(
            type=request.type,
            name=request.name,
            urn=urn,
            parent=request.parent,
            custom=bool(request.custom),
            provider=request.provider,
            inputs=inputs,
            secret_paths=secret_paths,
            dependencies=list(request.dependencies),
        )
        resource_id = ""
        state: dict[str, Any] = {}
        if request.custom:
            resource_id, computed = computed_outputs(request.type, request.name, urn, inputs, self.config)
            state = {**inputs, **computed}
            registration.outputs = state
        self.registrations.append(registration)
        self.resources[urn] = MockMonitor.ResourceRegistration(urn, resource_id, state)

        secret_outputs = set(request.additionalSecretOutputs)
        secret_inputs = [p for p in secret_paths if p]
        wire = _python_to_struct(_mark_secrets(state, secret_outputs, secret_inputs))
        return resource_pb2.RegisterResourceResponse(urn=urn, id=resource_id, object=wire)

    def RegisterResourceOutputs(self, request: Any) -> Any:
        if request.urn.split("::")[2] == "pulumi:pulumi:Stack":
            self.stack_outputs, self.stack_output_secrets = unwrap(_struct_to_python(request.outputs))
        return empty_pb2.Empty()

    def Invoke(self, request: Any) -> Any:
        args, _ = unwrap(_struct_to_python(request.args))
        self.invokes.append(request.tok)
        api = GCP_INVOKE_APIS.get(request.tok)
        if api and not self._enabled(api):
            # A fresh project has only billing: Google refuses a data source whose API is still off.
            raise RuntimeError(
                f"googleapi: Error 403: {api} has not been used in this project, accessNotConfigured"
            )
        result = invoke_result(request.tok, {**args, "__config": self.config})
        marked = _mark_secrets(result, INVOKE_SECRETS.get(request.tok, set()), [])
        fields = {"return": _python_to_struct(marked)}  # `return` is a Python keyword
        return resource_pb2.ResourceInvokeResponse(**fields)

    def _enabled(self, api: str) -> bool:
        return any(
            r.type == "gcp:projects/service:Service" and r.inputs.get("service") == api
            for r in self.registrations
        )

    def ReadResource(self, request: Any) -> Any:
        urn = self.make_urn(request.parent, request.type, request.name)
        state, _ = unwrap(_struct_to_python(request.properties))
        _, computed = computed_outputs(request.type, request.name, urn, state, self.config)
        return resource_pb2.ReadResourceResponse(urn=urn, properties=_python_to_struct({**state, **computed}))


class _NoMocks(Mocks):
    """The base monitor wants a Mocks object; this monitor answers every call itself."""

    def new_resource(self, args: Any) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def call(self, args: Any) -> tuple[dict[str, Any], None]:
        raise NotImplementedError


# --- the wire format ---------------------------------------------------------------------------


def unwrap(value: Any, path: Path = ()) -> tuple[Any, list[Path]]:
    """Strip secret wrappers from a wire value; return it with the paths that were secret."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            inner, nested = unwrap(value.get("value"), path)
            return inner, [path, *nested]
        if value.get(SIG_KEY) == RESOURCE_SIG:
            return {"urn": value.get("urn"), "id": value.get("id")}, []
        out: dict[str, Any] = {}
        secrets: list[Path] = []
        for key, item in value.items():
            out[key], nested = unwrap(item, (*path, key))
            secrets.extend(nested)
        return out, secrets
    if isinstance(value, list):
        items = []
        secrets = []
        for index, item in enumerate(value):
            plain, nested = unwrap(item, (*path, index))
            items.append(plain)
            secrets.extend(nested)
        return items, secrets
    return value, []


def _mark_secrets(
    state: dict[str, Any], secret_outputs: set[str], secret_inputs: list[Path]
) -> dict[str, Any]:
    """The engine marks outputs secret by name (additionalSecretOutputs) and by matching secret inputs."""
    secret_keys = secret_outputs | {str(p[0]) for p in secret_inputs}
    return {k: ({SIG_KEY: SECRET_SIG, "value": v} if k in secret_keys else v) for k, v in state.items()}


def _struct_to_python(struct: struct_pb2.Struct) -> dict[str, Any]:
    return _integral(MessageToDict(struct))


def _integral(value: Any) -> Any:
    """Protobuf carries every number as a double; give whole numbers back as ints, as YAML has them."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


def _python_to_struct(value: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(value)
    return struct


# --- what the providers would add ----------------------------------------------------------------


def suffix(urn: str, length: int = 7) -> str:
    """Stable stand-in for a provider's random auto-name suffix (stable so plans diff cleanly)."""
    return hashlib.sha256(urn.encode()).hexdigest()[:length]


def provider_checked_inputs(type_: str, name: str, urn: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """The provider's Check step: the Kubernetes provider auto-names objects without metadata.name.

    The engine records these checked inputs, and the policy pack sees them, so the plan does too.
    """
    if not type_.startswith("kubernetes:") or type_.startswith("kubernetes:helm.sh"):
        return inputs
    if "kind" not in inputs or type_.endswith("List"):
        return inputs
    metadata = dict(inputs.get("metadata") or {})
    if not metadata.get("name"):
        # The Kubernetes provider appends a random 8-character suffix to the logical name.
        metadata["name"] = f"{name}-{suffix(urn, 8)}"
        annotations = dict(metadata.get("annotations") or {})
        annotations["pulumi.com/autonamed"] = "true"
        metadata["annotations"] = annotations
    return {**inputs, "metadata": metadata}


@dataclass(frozen=True)
class Site:
    """Where the stack's providers point (their own config keys), for endpoints that name it."""

    aws_region: str
    gcp_project: str
    gcp_region: str
    azure_location: str

    @classmethod
    def of(cls, config: dict[str, str]) -> Site:
        return cls(
            aws_region=config.get("aws:region", "us-east-1"),
            gcp_project=config.get("gcp:project", "example-project"),
            gcp_region=config.get("gcp:region", "europe-west1"),
            azure_location=config.get("azure-native:location", "westeurope").replace(" ", "").lower(),
        )

    @property
    def aws_short(self) -> str:
        """ElastiCache's short region in endpoints: eu-west-1 -> euw1."""
        area, direction, number = [*self.aws_region.split("-"), "", "", ""][:3]
        return f"{area}{direction[:1]}{number}"


ComputedFn = Callable[[str, str, dict[str, Any], "Site"], dict[str, Any]]


def computed_outputs(
    type_: str, name: str, urn: str, inputs: dict[str, Any], config: dict[str, str] | None = None
) -> tuple[str, dict[str, Any]]:
    """The resource id and the outputs a provider computes for a resource of this type."""
    if type_.startswith("pulumi:providers:"):
        return f"{name}-provider-id", {}
    site = Site.of(config or {})
    resource_id = f"{name}-{suffix(urn)}"
    computed: dict[str, Any] = {}
    package = type_.split(":", 1)[0]
    for generic in _GENERIC.get(package, ()):
        computed.update(generic(name, urn, inputs, site))
    specific = COMPUTED.get(type_)
    if specific is not None:
        computed.update(specific(name, urn, inputs, site))
    return str(computed.pop("id", resource_id)), computed


def _random_text(urn: str, length: int, alphabet: str) -> str:
    digest = hashlib.sha256(("secret:" + urn).encode()).digest() * (length // 32 + 1)
    return "".join(alphabet[b % len(alphabet)] for b in digest[:length])


_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _random_password(name: str, urn: str, inputs: dict[str, Any], site: Site) -> dict[str, Any]:
    result = _random_text(urn, int(inputs.get("length", 16)), _ALNUM)
    return {"id": "none", "result": result, "bcryptHash": "$2a$10$" + _random_text(urn + "b", 53, _ALNUM)}


def _random_id(name: str, urn: str, inputs: dict[str, Any], site: Site) -> dict[str, Any]:
    raw = hashlib.sha256(urn.encode()).digest()[: int(inputs.get("byteLength", 8))]
    return {"hex": raw.hex(), "b64Url": base64.urlsafe_b64encode(raw).decode().rstrip("="), "dec": "1"}


def _kubernetes_object(name: str, urn: str, inputs: dict[str, Any], site: Site) -> dict[str, Any]:
    if inputs.get("kind") == "Service" and (inputs.get("spec") or {}).get("type") == "LoadBalancer":
        return {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}}
    if inputs.get("kind") == "Ingress":
        return {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}}
    return {}


def _helm_release(name: str, urn: str, inputs: dict[str, Any], site: Site) -> dict[str, Any]:
    release_name = inputs.get("name") or f"{name}-{suffix(urn, 8)}"
    return {
        "name": release_name,
        "status": {
            "name": release_name,
            "namespace": inputs.get("namespace", "default"),
            "chart": inputs.get("chart"),
            "version": inputs.get("version"),
            "status": "deployed",
            "revision": 1,
        },
    }


def _aws_generic(name: str, urn: str, inputs: dict[str, Any], site: Site) -> dict[str, Any]:
    type_ = urn.split("::")[2].split("$")[-1]
    service = type_.split(":")[1].split("/")[0]
    return {
        "arn": f"arn:aws:{service}:{site.aws_region}:123456789012:{name}",
        "tagsAll": inputs.get("tags", {}),
        # Auto-naming: the engine names a resource that has no `name` before preview, and other
        # resources read it (RDS reads its parameter and subnet groups' names).
        "name": inputs.get("name") or f"{name}-{suffix(urn)}",
    }


def _gcp_generic(name: str, urn: str, inputs: dict[str, Any], site: Site) -> dict[str, Any]:
    return {
        "selfLink": f"https://example.invalid/gcp/{name}",
        "project": inputs.get("project", site.gcp_project),
        "name": inputs.get("name") or f"{name}-{suffix(urn)}",  # auto-naming, as on AWS
    }


def _azure_generic(name: str, urn: str, inputs: dict[str, Any], site: Site) -> dict[str, Any]:
    group = inputs.get("resourceGroupName", "rg")
    return {
        "id": f"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/{group}/providers/x/{name}",
        "name": inputs.get(_azure_name_key(inputs)) or f"{name}{suffix(urn, 8)}",
    }


def _azure_name_key(inputs: dict[str, Any]) -> str:
    keys = [k for k in inputs if k.endswith("Name") and k != "resourceGroupName"]
    return keys[0] if len(keys) == 1 else "name"


_FAKE_CA_PEM = "-----BEGIN CERTIFICATE-----\noffline\n-----END CERTIFICATE-----\n"

_FAKE_CA = base64.b64encode(_FAKE_CA_PEM.encode()).decode()  # kubeconfig certificate-authority-data


def _cloud_sql_instance(name: str, urn: str, inputs: dict[str, Any], site: Site) -> dict[str, Any]:
    """An instance reports a DNS name (with the DNS root's dot) only under a CAS-based server CA."""
    mode = (((inputs.get("settings") or {}).get("ipConfiguration") or {}).get("serverCaMode")) or ""
    dns_name = f"{suffix(urn, 12)}.{suffix(urn + 'psa', 12)}.{site.gcp_region}.sql.goog."
    cas = mode in ("GOOGLE_MANAGED_CAS_CA", "CUSTOMER_MANAGED_CAS_CA")
    return {
        "name": inputs.get("name") or f"{name}-{suffix(urn)}",
        "privateIpAddress": "10.30.0.3",  # in the range reserved for private services access
        "publicIpAddress": None,
        "connectionName": f"{site.gcp_project}:{site.gcp_region}:{name}",
        "serverCaCerts": [{"cert": _FAKE_CA_PEM}],
        "dnsName": dns_name if cas else "",
        "dnsNames": (
            [{"name": dns_name, "connectionType": "PRIVATE_SERVICES_ACCESS", "dnsScope": "INSTANCE"}]
            if cas
            else []
        ),
    }


_GENERIC: dict[str, tuple[ComputedFn, ...]] = {
    "kubernetes": (_kubernetes_object,),
    "aws": (_aws_generic,),
    "gcp": (_gcp_generic,),
    "azure-native": (_azure_generic,),
}

# Outputs the program reads from specific resource types. The cloud modules add types here as they
# use their outputs; a missing entry shows up as a None where the program expected a value.
COMPUTED: dict[str, ComputedFn] = {
    "random:index/randomPassword:RandomPassword": _random_password,
    "random:index/randomString:RandomString": _random_password,
    "random:index/randomId:RandomId": _random_id,
    "kubernetes:helm.sh/v3:Release": _helm_release,
    "aws:eks/cluster:Cluster": lambda name, urn, inputs, site: {
        "name": inputs.get("name") or f"{name}-{suffix(urn)}",
        "endpoint": f"https://{suffix(urn, 32).upper()}.gr7.{site.aws_region}.eks.amazonaws.com",
        "certificateAuthority": {"data": _FAKE_CA},
        "identities": [
            {
                "oidcs": [
                    {
                        "issuer": f"https://oidc.eks.{site.aws_region}.amazonaws.com/id/{suffix(urn, 32).upper()}"
                    }
                ]
            }
        ],
        "vpcConfig": {**(inputs.get("vpcConfig") or {}), "clusterSecurityGroupId": f"sg-{suffix(urn, 17)}"},
        "version": inputs.get("version"),
    },
    "aws:rds/instance:Instance": lambda name, urn, inputs, site: {
        "address": f"{inputs.get('identifier') or name}.{suffix(urn, 12)}.{site.aws_region}.rds.amazonaws.com",
        "endpoint": f"{inputs.get('identifier') or name}.{suffix(urn, 12)}.{site.aws_region}.rds.amazonaws.com:5432",
        "port": inputs.get("port", 5432),
    },
    "aws:rds/cluster:Cluster": lambda name, urn, inputs, site: {
        "endpoint": f"{name}.cluster-{suffix(urn, 12)}.{site.aws_region}.rds.amazonaws.com",
        "readerEndpoint": f"{name}.cluster-ro-{suffix(urn, 12)}.{site.aws_region}.rds.amazonaws.com",
        "port": inputs.get("port", 5432),
    },
    "aws:elasticache/replicationGroup:ReplicationGroup": lambda name, urn, inputs, site: {
        "primaryEndpointAddress": f"master.{name}.{suffix(urn, 6)}.{site.aws_short}.cache.amazonaws.com",
        "readerEndpointAddress": f"replica.{name}.{suffix(urn, 6)}.{site.aws_short}.cache.amazonaws.com",
        "configurationEndpointAddress": f"clustercfg.{name}.{suffix(urn, 6)}.{site.aws_short}.cache.amazonaws.com",
        "port": inputs.get("port", 6379),
    },
    "gcp:container/cluster:Cluster": lambda name, urn, inputs, site: {
        "name": inputs.get("name") or f"{name}-{suffix(urn)}",
        "endpoint": "10.0.0.2",
        "masterAuth": {"clusterCaCertificate": _FAKE_CA},
        "location": inputs.get("location", site.gcp_region),
    },
    "gcp:sql/databaseInstance:DatabaseInstance": _cloud_sql_instance,
    "gcp:redis/instance:Instance": lambda name, urn, inputs, site: {
        "host": "10.30.1.4",  # in the range reserved for private services access, like Cloud SQL's
        "port": 6378 if inputs.get("transitEncryptionMode") == "SERVER_AUTHENTICATION" else 6379,
        "authString": _random_text(urn, 36, _ALNUM),
        # Memorystore lists two CAs while it rotates its server certificate's CA.
        "serverCaCerts": [{"cert": _FAKE_CA_PEM.replace("offline", "current")}, {"cert": _FAKE_CA_PEM}],
    },
    "azure-native:dbforpostgresql:Server": lambda name, urn, inputs, site: {
        "fullyQualifiedDomainName": f"{inputs.get('serverName') or name + suffix(urn, 8)}.postgres.database.azure.com",
    },
    # Azure Managed Redis names a cluster's endpoint `<cluster>.<region>.redis.azure.net`; its
    # database listens where asked (10000 by default).
    "azure-native:redisenterprise:RedisEnterprise": lambda name, urn, inputs, site: {
        "hostName": f"{inputs.get('clusterName') or name + suffix(urn, 8)}.{site.azure_location}.redis.azure.net",
    },
    "azure-native:redisenterprise:Database": lambda name, urn, inputs, site: {
        "port": inputs.get("port", 10000),
    },
    "gcp:serviceaccount/account:Account": lambda name, urn, inputs, site: {
        "email": f"{inputs['accountId']}@{inputs.get('project', site.gcp_project)}.iam.gserviceaccount.com",
        "member": f"serviceAccount:{inputs['accountId']}@{inputs.get('project', site.gcp_project)}.iam.gserviceaccount.com",
    },
    # The stack's public DNS zone (platform:domain): its id and the name servers the parent delegates to.
    "aws:route53/zone:Zone": lambda name, urn, inputs, site: {
        "zoneId": f"Z{suffix(urn, 20).upper()}",
        "nameServers": [
            f"ns-{n}.awsdns-{n:02d}.{tld}" for n, tld in ((1, "com"), (2, "net"), (3, "org"), (4, "co.uk"))
        ],
    },
    "gcp:dns/managedZone:ManagedZone": lambda name, urn, inputs, site: {
        "nameServers": [f"ns-cloud-a{n}.googledomains.com." for n in range(1, 5)],
    },
    "azure-native:dns:Zone": lambda name, urn, inputs, site: {
        "id": (
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/"
            f"{inputs.get('resourceGroupName', 'rg')}/providers/Microsoft.Network/dnszones/{inputs.get('zoneName', name)}"
        ),
        "nameServers": [
            f"ns{n}-01.azure-dns.{tld}." for n, tld in ((1, "com"), (2, "net"), (3, "org"), (4, "info"))
        ],
    },
    "azure-native:managedidentity:UserAssignedIdentity": lambda name, urn, inputs, site: {
        "clientId": str(uuid.UUID(suffix(urn + "client", 32))),
        "principalId": str(uuid.UUID(suffix(urn, 32))),
        "tenantId": "00000000-0000-0000-0000-000000000000",
    },
    "azure-native:containerservice:ManagedCluster": lambda name, urn, inputs, site: {
        "identity": {**(inputs.get("identity") or {}), "principalId": str(uuid.UUID(suffix(urn, 32)))},
        "fqdn": f"{name}-{suffix(urn, 8)}.hcp.{site.azure_location}.azmk8s.io",
        "oidcIssuerProfile": {
            "issuerURL": f"https://{site.azure_location}.oic.prod-aks.azure.com/{suffix(urn, 32)}/"
        },
    },
}


def _kubeconfig(server: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "offline", "cluster": {"server": server}}],
            "contexts": [{"name": "offline", "context": {"cluster": "offline", "user": "offline"}}],
            "current-context": "offline",
            "users": [{"name": "offline", "user": {"token": "offline"}}],
        }
    )


def _aks_user_kubeconfig(args: dict[str, Any]) -> str:
    """AKS with Entra ID: format=exec answers with a kubelogin device-code exec block (the server id
    is the AKS Entra server application, the same in every tenant)."""
    if args.get("format") != "exec":
        return _kubeconfig("https://aks.invalid")
    kubeconfig = json.loads(_kubeconfig("https://aks.invalid"))
    kubeconfig["users"] = [
        {
            "name": "clusterUser",
            "user": {
                "exec": {
                    "apiVersion": "client.authentication.k8s.io/v1beta1",
                    "command": "kubelogin",
                    "args": [
                        "get-token",
                        "--login",
                        "devicecode",
                        "--server-id",
                        "6dae42f8-4368-4678-94ff-3960e28e3630",
                        "--client-id",
                        "80faf920-1908-4b52-b5ef-a8e7bedfc67a",
                        "--environment",
                        "AzurePublicCloud",
                    ],
                }
            },
        }
    ]
    return json.dumps(kubeconfig)


# Data sources (invokes) by token. Unknown tokens answer {}: the program then sees None values.
INVOKES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "aws:index/getAvailabilityZones:getAvailabilityZones": lambda args: {
        "names": [f"{_aws_region(args)}{letter}" for letter in "abc"],
        "zoneIds": [f"{_aws_region(args)}-az{n}" for n in (1, 2, 3)],
        "id": _aws_region(args),
    },
    "aws:index/getCallerIdentity:getCallerIdentity": lambda args: {
        "accountId": "123456789012",
        "arn": "arn:aws:iam::123456789012:user/offline",
        "userId": "AIDAOFFLINE",
        "id": "123456789012",
    },
    "aws:index/getRegion:getRegion": lambda args: {
        "name": _aws_region(args),
        "region": _aws_region(args),
        "id": _aws_region(args),
    },
    "aws:index/getPartition:getPartition": lambda args: {"partition": "aws", "dnsSuffix": "amazonaws.com"},
    "gcp:organizations/getProject:getProject": lambda args: {
        "projectId": "example-project",
        "number": "123456789012",
        "name": "example-project",
    },
    "gcp:organizations/getClientConfig:getClientConfig": lambda args: {
        "project": "example-project",
        "region": "europe-west1",
        "accessToken": "offline",
    },
    "gcp:compute/getZones:getZones": lambda args: {
        "names": [
            f"{args.get('region') or args['__config'].get('gcp:region', 'europe-west1')}-{z}" for z in "bcd"
        ],
    },
    "azure-native:authorization:getClientConfig": lambda args: {
        "clientId": "00000000-0000-0000-0000-000000000001",
        "objectId": "00000000-0000-0000-0000-000000000002",
        "subscriptionId": "00000000-0000-0000-0000-000000000000",
        "tenantId": "00000000-0000-0000-0000-000000000003",
    },
    "azure-native:authorization:getClientToken": lambda args: {"token": _azure_token(args["__config"])},
    "azure-native:containerservice:listManagedClusterUserCredentials": lambda args: {
        "kubeconfigs": [
            {
                "name": "clusterUser",
                "value": base64.b64encode(_aks_user_kubeconfig(args).encode()).decode(),
            }
        ]
    },
    "azure-native:containerservice:listManagedClusterAdminCredentials": lambda args: {
        "kubeconfigs": [
            {
                "name": "clusterAdmin",
                "value": base64.b64encode(_kubeconfig("https://aks.invalid").encode()).decode(),
            }
        ]
    },
    "azure-native:redisenterprise:listDatabaseKeys": lambda args: {
        "primaryKey": "offline-primary-key-"
        + hashlib.sha256(str(args.get("clusterName")).encode()).hexdigest()[:24],
        "secondaryKey": "offline-secondary-key-"
        + hashlib.sha256(str(args.get("clusterName")).encode()).hexdigest()[:24],
    },
}


# Who the Azure CLI is signed in as, when the azure-native provider signs in through it (no client id,
# no managed identity in its config or ARM_* variables): a person after `az login`, or "application"
# for a service principal (CI's azure/login signs the CLI in as one).
AZURE_CLI_ACCOUNT = "user"


def _azure_token(config: dict[str, str]) -> str:
    """An unsigned stand-in for the provider's ARM access token, with the claims Entra ID puts in a user's
    (delegated scopes, `scp`) or an application's (none; `idtyp: app`) token."""
    application = (
        bool(config.get("azure-native:clientId") or os.environ.get("ARM_CLIENT_ID"))
        or config.get("azure-native:useMsi", "").lower() == "true"
        or os.environ.get("ARM_USE_MSI", "").lower() == "true"
        or AZURE_CLI_ACCOUNT == "application"
    )
    claims: dict[str, Any] = {
        "aud": "https://management.core.windows.net/",
        "oid": "00000000-0000-0000-0000-000000000002",  # getClientConfig's objectId
        "tid": "00000000-0000-0000-0000-000000000003",
        **({"idtyp": "app"} if application else {"idtyp": "user", "scp": "user_impersonation"}),
    }

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'typ': 'JWT', 'alg': 'none'})}.{part(claims)}."


# GCP data sources and the API each needs enabled in the project (the program enables them itself).
GCP_INVOKE_APIS: dict[str, str] = {
    "gcp:compute/getZones:getZones": "compute.googleapis.com",
}

# Data sources whose answers are credentials: the provider returns these properties as secrets.
INVOKE_SECRETS: dict[str, set[str]] = {
    "azure-native:redisenterprise:listDatabaseKeys": {"primaryKey", "secondaryKey"},
    "azure-native:authorization:getClientToken": {"token"},
}


def _aws_region(args: dict[str, Any]) -> str:
    """Data sources answer for the stack's own region, as the provider configured from it would."""
    return str(args["__config"].get("aws:region", "us-east-1"))


def invoke_result(token: str, args: dict[str, Any]) -> dict[str, Any]:
    answer = INVOKES.get(token)
    return answer(args) if answer else {}
