"""Stack-wide rules: secrets appear only where secrets are kept, and clients verify the managed
data services they talk to.

A policy cannot see which values are Pulumi secrets: the engine hands analyzers every property
with secrets unwrapped, and the offline gate does the same. So the rule reasons about *where*
values live instead. It collects the stack's credentials from the places that hold them by design
(generated passwords, Kubernetes Secret data, the password/token inputs of databases and caches)
and reports any other property of any resource that contains one of them: an env `value`, a
ConfigMap, an annotation, Helm values, a command-line argument. Both the engine (resource outputs
during stack analysis) and the offline gate (the plan's recorded outputs) see the same values.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..framework import Findings, dig, dotted, stack_rule, walk
from ..secrets import looks_like_secret_key

# Where each resource type keeps credentials by design (top-level property names).
SECRET_HOLDERS: dict[str, frozenset[str]] = {
    "random:index/randomPassword:RandomPassword": frozenset({"result", "bcryptHash"}),
    "kubernetes:core/v1:Secret": frozenset({"data", "stringData"}),
    "aws:rds/instance:Instance": frozenset({"password", "passwordWo"}),
    "aws:rds/cluster:Cluster": frozenset({"masterPassword", "masterPasswordWo"}),
    "aws:elasticache/replicationGroup:ReplicationGroup": frozenset({"authToken", "authTokenWo"}),
    "gcp:sql/user:User": frozenset({"password", "passwordWo"}),
    "gcp:redis/instance:Instance": frozenset({"authString"}),
    "azure-native:dbforpostgresql:Server": frozenset({"administratorLoginPassword"}),
}
# Shorter values collide with ordinary words and ids; generated credentials are longer.
MIN_SECRET_LENGTH = 12


# why: a credential copied into a plain property is readable by anyone who can read that object.
@stack_rule(
    "no-plaintext-secrets",
    "A credential (generated password, Secret data, database or cache password) appears only where "
    "credentials are kept, never inside another resource's inputs such as env values, ConfigMaps, "
    "annotations, Helm values or container arguments, where anyone who can read the object sees it.",
)
def no_plaintext_secrets(resources: Sequence[Any], findings: Findings, prod: bool) -> None:
    secrets = _collect_secrets(resources, findings)
    if not secrets:
        return
    for r in resources:
        if str(r.resource_type).startswith("pulumi:providers:"):
            continue  # provider credentials (kubeconfig, tokens) are secret in the provider schema
        holders = SECRET_HOLDERS.get(str(r.resource_type), frozenset())
        with findings.verifying():
            for key in r.props:
                if key in holders:
                    continue
                with findings.verifying():
                    for path, value in walk(r.props[key], (key,)):
                        if isinstance(value, str) and any(secret in value for secret in secrets):
                            findings.violation(
                                f"{r.name}: {dotted(path)} contains a credential in plain text; "
                                "reference a Secret (secretKeyRef) instead",
                                r.urn,
                            )


def _collect_secrets(resources: Sequence[Any], findings: Findings) -> set[str]:
    secrets: set[str] = set()
    for r in resources:
        holders = SECRET_HOLDERS.get(str(r.resource_type))
        if not holders:
            continue
        is_kubernetes_secret = r.resource_type == "kubernetes:core/v1:Secret"
        for key in holders:
            with findings.verifying():
                value = dig(r.props, key)
                if is_kubernetes_secret:
                    secrets.update(_kubernetes_secret_values(value, decode=key == "data"))
                else:
                    secrets.update(v for _, v in walk(value) if isinstance(v, str))
    return {s for s in secrets if len(s) >= MIN_SECRET_LENGTH}


def _kubernetes_secret_values(data: Any, decode: bool) -> list[str]:
    """Credential-named entries of a Secret (a Secret also holds user names, hosts, ports)."""
    if not isinstance(data, Mapping):
        return []
    values = []
    for key in data:
        if looks_like_secret_key(str(key)) or str(key).lower().endswith(("url", "uri", "dsn")):
            value = data[key]
            if isinstance(value, str):
                values.append(_b64decode(value) if decode else value)
    return values


def _b64decode(value: str) -> str:
    try:
        return base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return value


# Managed Postgres and Redis: reached over networks the stack does not own, so clients must
# authenticate the server, not only encrypt.
MANAGED_POSTGRES = frozenset(
    {
        "aws:rds/instance:Instance",
        "aws:rds/cluster:Cluster",
        "gcp:sql/databaseInstance:DatabaseInstance",
        "azure-native:dbforpostgresql:Server",
    }
)
MANAGED_REDIS = frozenset(
    {
        "aws:elasticache/replicationGroup:ReplicationGroup",
        "gcp:redis/instance:Instance",
        "azure-native:redisenterprise:RedisEnterprise",
    }
)
VERIFYING_SSLMODES = frozenset({"verify-full"})


# why: TLS without verifying the server encrypts the password straight to whoever answers.
@stack_rule(
    "data-clients-verify-tls",
    "Where the stack runs managed Postgres or Redis, the connection URLs it hands its workloads "
    "verify the server: Postgres with sslmode=verify-full, Redis over rediss:// without "
    "ssl_cert_reqs=none. Encryption alone (sslmode=require) sends the password to whoever answers.",
)
def data_clients_verify_tls(resources: Sequence[Any], findings: Findings, prod: bool) -> None:
    types = {str(r.resource_type) for r in resources}
    postgres, redis = bool(types & MANAGED_POSTGRES), bool(types & MANAGED_REDIS)
    if not (postgres or redis):
        return
    for r in resources:
        if r.resource_type != "kubernetes:core/v1:Secret":
            continue
        with findings.verifying():
            for key, url in _secret_entries(r.props):
                scheme = urlsplit(url).scheme
                problem = None
                if postgres and scheme in ("postgres", "postgresql"):
                    problem = _postgres_problem(url)
                elif redis and scheme in ("redis", "rediss"):
                    problem = _redis_problem(url)
                if problem:
                    findings.violation(f"{r.name}: {key} {problem}", r.urn)


def _postgres_problem(url: str) -> str | None:
    query = parse_qs(urlsplit(url).query)
    mode = (query.get("sslmode") or ["prefer"])[-1]
    if mode not in VERIFYING_SSLMODES:
        return f"connects with sslmode={mode}; use verify-full"
    return None


def _redis_problem(url: str) -> str | None:
    if urlsplit(url).scheme != "rediss":
        return "connects without TLS; use rediss://"
    if (parse_qs(urlsplit(url).query).get("ssl_cert_reqs") or ["required"])[-1].lower() == "none":
        return "turns certificate verification off (ssl_cert_reqs=none)"
    return None


def _secret_entries(props: Mapping[str, Any]) -> list[tuple[str, str]]:
    entries = []
    for field, decode in (("stringData", False), ("data", True)):
        data = dig(props, field)
        if isinstance(data, Mapping):
            for key in data:
                value = data[key]
                if isinstance(value, str):
                    entries.append((str(key), _b64decode(value) if decode else value))
    return entries


POLICIES = [no_plaintext_secrets, data_clients_verify_tls]
