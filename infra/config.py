"""Typed, validated stack configuration (namespace `platform:`).

A stack picks a cloud and a profile; the profile supplies every default, and any single key
can be overridden in `Pulumi.<stack>.yaml`. Every value is checked here, before any resource is
declared, and a wrong one stops the program with one sentence naming the key and what is allowed.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

import pulumi

CLOUDS = ("aws", "gcp", "azure", "local")
# In standard support on EKS, GKE and AKS (docs/clouds.md, "Kubernetes version"); the EKS
# cluster-autoscaler chart follows this minor.
KUBERNETES_VERSION = "1.36"
# The local target's data services: the official images, unless platform:postgresImage / redisImage say.
# By digest (the tags' multi-architecture index digests, as public repositories pinning the same tags
# record them; the registry cannot be reached from where this was written), so the prod profile's
# digest rule holds for them too; the tag stays for people to read.
LOCAL_POSTGRES_IMAGE = (
    "postgres:17.6-bookworm@sha256:f3bd19c606e442c3d7bdfa8002e03fe260a1023351e0ea4598032022b68dd6e3"
)
LOCAL_REDIS_IMAGE = (
    "redis:7.4.5-bookworm@sha256:90e7a336d044f1abc9e9dbc05d65566850896d11453bbd1dd0fb7e5059f0e8fb"
)
PROFILES = ("dev", "prod")
DELIVERY_MODES = ("direct", "argocd")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# The retention periods CloudWatch Logs accepts (PutRetentionPolicy), in days.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827)
ALERT_RECEIVERS = ("webhook", "slack")
# The add-ons a stack may leave out (platform:addons), by their charts' names: a team that brings its own
# Prometheus, tracing backend, GitOps, canary controller or ingress controller. metrics-server and
# cluster-autoscaler are not among them: they follow the cloud (installed only where it lacks them).
ADDONS = ("kube-prometheus-stack", "jaeger", "argo-cd", "argo-rollouts", "traefik")
# Passwords a stack may supply as config secrets instead of having them generated (infra/passwords.py),
# with their minimum length.
# ACME directories (letsencrypt.org/docs/acme-protocol-updates, /docs/staging-environment): production for
# the prod profile; the staging one for the others, whose rate limits are far higher and whose certificates
# browsers do not trust, so a dev stack's redeploys never spend production's weekly limit.
LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
LETS_ENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
# With platform:domain (or platform:localTls), the kubernetes.io/tls Secret cert-manager writes for each
# published host's Ingress.
MANAGED_CERTIFICATE = "platform-tls"
SUPPLIABLE_SECRETS = {
    "jwtSecret": 32,
    "postgresPassword": 16,
    "redisPassword": 16,
    "grafanaAdminPassword": 16,
}

# Profile defaults: sizes and safety. Cloud-specific sizes (machine types, database tiers) default
# inside each cloud module, per profile, and are overridden by `nodeSize`, `dbSize`, `redisSize`.
PROFILE_DEFAULTS: dict[str, dict[str, Any]] = {
    "dev": {
        "zoneCount": 1,
        "nodeMinCount": 1,
        "nodeMaxCount": 3,
        "highAvailability": False,
        "deletionProtection": False,
        "backupRetentionDays": 7,
        "dbStorageGb": 20,
        "hpaMinReplicas": 1,
        "hpaMaxReplicas": 3,
        "logLevel": "INFO",
        "traceSampleRatio": "1",
        "logRetentionDays": 30,
        # Per client address, route and Traefik replica (docs/clouds.md, "Edge limits"). Dev runs one pod,
        # about 800 cached GETs a second (docs/performance.md): 20 a second is more than a person or a
        # test script sends and under 3 % of that pod; a load test sets platform:apiRateLimit.
        "apiRateLimit": 20,
        # Twice the rate: a page load's fan-out or a client's retry wave of two seconds passes at once.
        "apiRateBurst": 40,
        # Requests held at once. A request waiting on a stalled Postgres holds a gunicorn thread for up to
        # its 3 s budget, and dev's one pod has 8: one client may hold half of them.
        "apiInFlightLimit": 4,
        # A release's canary (argo-rollouts): the new version gets half the pods, is judged on its own
        # metrics, then takes all of them. Dev's bar is loose; a change that fails it is plainly broken.
        "canaryMaxErrorRatio": "0.05",
        "canaryMaxP99Seconds": "1",
    },
    "prod": {
        "zoneCount": 3,
        "nodeMinCount": 3,
        "nodeMaxCount": 9,
        "highAvailability": True,
        "deletionProtection": True,
        "backupRetentionDays": 30,
        "dbStorageGb": 100,
        "hpaMinReplicas": 3,
        "hpaMaxReplicas": 10,
        "logLevel": "INFO",
        # Every request traced would fill Jaeger's storage at production rates; 10% stays representative.
        "traceSampleRatio": "0.1",
        # A year of control-plane audit and database logs: what incident reviews and audits ask for.
        "logRetentionDays": 365,
        # Prod starts at 3 pods (about 2,400 cached GETs a second): 50 a second through each of the 2
        # Traefik replicas is about 4 % of that for one client, and still 4 million requests a day (batch
        # get reads 100 products a request) for a legitimate integration.
        "apiRateLimit": 50,
        "apiRateBurst": 100,
        # 6 through each Traefik replica: at most 12 of the 24 threads of the 3 smallest pods, so a client
        # whose requests stall cannot hold them all; at normal latency (a few ms) 6 in flight carry far
        # more than the rate limit.
        "apiInFlightLimit": 6,
        # 1 % of the new version's answers may be 5xx, and its p99 may reach 500 ms (docs/performance.md:
        # a cached GET's p99 is a few ms, an uncached write's tens).
        "canaryMaxErrorRatio": "0.01",
        "canaryMaxP99Seconds": "0.5",
    },
}


# How a canary proceeds, per profile: the share of the pods the new version gets at each step (judged at
# each), then how its analysis measures: after `delay_seconds` (two scrapes, so a rate has two samples),
# `measurements` of them every `interval_seconds`, and how many may fail before the release is rolled back.
CANARY_STEPS: dict[str, dict[str, Any]] = {
    "dev": {
        "weights": (50,),
        "delay_seconds": 60,
        "interval_seconds": 30,
        "measurements": 3,
        "failure_limit": 0,
    },
    "prod": {
        "weights": (10, 25, 50),
        "delay_seconds": 60,
        "interval_seconds": 60,
        "measurements": 5,
        "failure_limit": 1,
    },
}


@dataclass(frozen=True)
class DnsServer:
    """Local target: a DNS server authoritative for platform:domain that takes RFC 2136 updates signed with a
    TSIG key (platform:dnsServer and platform:dnsTsig*), which external-dns and cert-manager write to as they
    write a cloud's DNS service; and the address its records point at (platform:ingressAddress)."""

    address: str  # IPv4
    port: int
    tsig_key_name: str
    tsig_algorithm: str  # one of TSIG_ALGORITHMS
    tsig_secret: pulumi.Output[str]  # base64, a Pulumi secret
    ingress_address: str  # IPv4 where clients reach Traefik (kind's port mapping: 127.0.0.1)


# TSIG algorithms both external-dns's rfc2136 provider (provider/rfc2136, v0.21.0) and cert-manager's rfc2136
# solver (pkg/issuer/acme/dns/rfc2136, v1.21.1) sign with; both take SHA-1 too, which RFC 8945 deprecates.
TSIG_ALGORITHMS = ("hmac-sha256", "hmac-sha512")


@dataclass(frozen=True)
class Canary:
    """How a release is judged where argo-rollouts runs it (app/rollout.py): CANARY_STEPS of the profile,
    and the bars of platform:canaryMaxErrorRatio (5xx answers / answers) and platform:canaryMaxP99Seconds."""

    weights: tuple[int, ...]
    delay_seconds: int
    interval_seconds: int
    measurements: int
    failure_limit: int
    max_error_ratio: float
    max_p99_seconds: float


class ConfigError(pulumi.RunError):
    """A wrong or missing stack config value; RunError makes Pulumi print just the sentence."""


@dataclass(frozen=True)
class PlatformConfig:
    stack: str
    cloud: str
    profile: str
    kubernetes_version: str
    zone_count: int
    node_size: str | None  # None: the cloud module's default for the profile
    node_min_count: int
    node_max_count: int
    high_availability: bool
    deletion_protection: bool
    backup_retention_days: int
    log_retention_days: int  # cloud log groups of the cluster's control plane and the database
    db_size: str | None  # None: the cloud module's default for the profile
    db_storage_gb: int
    redis_size: str | None  # None: the cloud module's default for the profile
    api_allowed_cidrs: list[str]  # who may reach the Kubernetes API endpoint of a cloud cluster
    image: str
    hpa_min_replicas: int
    hpa_max_replicas: int
    host: str
    # The Ingresses' TLS Secret: the team's own (platform:tlsSecretName), MANAGED_CERTIFICATE with
    # platform:domain or platform:localTls (cert-manager writes it), or None (plain HTTP).
    tls_secret_name: str | None
    delivery: str
    kube_context: str | None  # local only: kubeconfig context, None for the current one
    # local only: the data StatefulSets' images (a company mirror, or images built for a test cluster)
    postgres_image: str
    redis_image: str
    log_level: str
    db_pool_min: int
    db_pool_max: int
    cache_ttl_seconds: int
    trace_sample_ratio: float  # share of new traces recorded (parent-based: a sampled caller wins)
    # Per client address at the ingress, on each API route (infra/app/edge.py): requests a second, the
    # burst allowed at once, and requests in flight.
    api_rate_limit: int
    api_rate_burst: int
    api_in_flight_limit: int
    # secrets the stack supplies with `pulumi config set --secret` (infra/secrets.py); others are generated
    supplied_secrets: dict[str, pulumi.Output[str]]
    # delivery=argocd: where an Argo CD Application finds the service's manifests (a Kustomize dir,
    # by default deploy/<stack>, which `make deploy-manifests` writes)
    gitops_repo_url: str | None = None
    gitops_path: str = ""
    gitops_revision: str = "HEAD"
    # One Helm repository (https://) or OCI registry (oci://) serving every chart under its upstream
    # name and version (a company mirror, an air-gapped cluster); None: each chart's own repository.
    chart_repository: str | None = None
    # Who may open Grafana and Argo CD through the ingress; empty: not published (port-forward).
    admin_allowed_cidrs: list[str] = field(default_factory=list)
    # Where Alertmanager sends alerts: a webhook URL (a Pulumi secret); None keeps the null receiver.
    alert_receiver: str = "webhook"
    alert_webhook_url: pulumi.Output[str] | None = None
    # The add-ons this stack installs (platform:addons; default every one of ADDONS).
    addons: frozenset[str] = frozenset(ADDONS)
    # The public DNS zone the stack owns and writes (platform:domain, on a cloud): external-dns publishes the
    # hosts in it and cert-manager gets their certificates from `acme_server` by DNS-01. None: neither is
    # installed (on the local target the domain names the hosts only).
    domain: str | None = None
    acme_email: str | None = None
    acme_server: str = LETS_ENCRYPT_STAGING
    # PEM of the CA behind a private ACME server's own HTTPS certificate (platform:acmeCaBundle); None: the
    # server's certificate chains to a public root, as Let's Encrypt's does.
    acme_ca_bundle: str | None = None
    # Local target with platform:dnsServer: the zone's server; None on a cloud (its DNS service) and without.
    dns_server: DnsServer | None = None
    canary: Canary = Canary((50,), 60, 30, 3, 0, 0.05, 1.0)
    # Local target only (platform:localTls): cert-manager signs the hosts' certificates with a CA it makes
    # in the cluster, which `make local-ca` exports for clients to trust.
    local_ca: bool = False

    @property
    def is_prod(self) -> bool:
        return self.profile == "prod"


def load() -> PlatformConfig:
    """Read and validate `platform:*` for the current stack."""
    return read(pulumi.Config("platform"), pulumi.get_stack())


def read(cfg: pulumi.Config, stack: str) -> PlatformConfig:
    cloud = _choice(cfg, "cloud", CLOUDS, default=None)
    profile = _choice(cfg, "profile", PROFILES, default="dev")
    defaults = PROFILE_DEFAULTS[profile]

    def number(key: str, minimum: int, maximum: int, default: int | None = None) -> int:
        return _int(cfg, key, minimum, maximum, defaults[key] if default is None else default)

    def flag(key: str) -> bool:
        return _bool(cfg, key, defaults[key])

    node_min = number("nodeMinCount", 1, 100)
    hpa_min = number("hpaMinReplicas", 1, 100)
    pool_min = number("dbPoolMin", 1, 50, default=1)
    cidrs = _cidrs(cfg, "apiAllowedCidrs")
    delivery = _choice(cfg, "delivery", DELIVERY_MODES, default="direct")
    gitops_repo = cfg.get("gitopsRepoUrl")
    if delivery == "argocd" and not (gitops_repo and re.match(r"(https://|ssh://|git@)", gitops_repo)):
        raise ConfigError(
            "platform:gitopsRepoUrl must be a Git repository URL (https://, ssh:// or git@) when "
            f"platform:delivery is argocd (got '{gitops_repo or ''}')"
        )
    addons = _addons(cfg, "addons")
    _needs_addon(addons, "argo-cd", "delivery", delivery == "argocd")
    admin_cidrs = _cidrs(cfg, "adminAllowedCidrs")
    _needs_addon(addons, "traefik", "adminAllowedCidrs", bool(admin_cidrs))
    _needs_addon(addons, "traefik", "tlsSecretName", bool(cfg.get("tlsSecretName")))
    _needs_addon(
        addons, "kube-prometheus-stack", "alertWebhookUrl", cfg.get_secret("alertWebhookUrl") is not None
    )
    if "argo-rollouts" in addons and "kube-prometheus-stack" not in addons:
        raise ConfigError(
            "platform:addons lists argo-rollouts without kube-prometheus-stack: a canary is judged on the "
            "service's metrics in that Prometheus (list both, or leave out argo-rollouts)"
        )
    domain = _domain(cfg, "domain", cloud)
    dns_server = _dns_server(cfg, "dnsServer", cloud, domain)
    # Records and certificates come from the cloud's DNS service; on the local target from a DNS server the
    # stack names, and without one platform:domain names the hosts only.
    managed = domain is not None and (cloud != "local" or dns_server is not None)
    _needs_addon(addons, "traefik", "domain", domain is not None)
    local_ca = _local_tls(cfg, "localTls", cloud)
    if local_ca and dns_server:
        raise ConfigError(
            "platform:localTls cannot be set with platform:dnsServer, which has cert-manager get the "
            "certificates from the ACME server: leave out one of them"
        )
    _needs_addon(addons, "traefik", "localTls", local_ca)
    host_default = f"api.{domain}" if domain else f"api.{stack}.localtest.me"
    host = _text(cfg, "host", host_default, r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?", "a DNS name")
    if domain and not host.endswith(f".{domain}"):
        raise ConfigError(f"platform:host must be a name in platform:domain '{domain}' (got '{host}')")
    if managed and cfg.get("tlsSecretName"):
        raise ConfigError(
            "platform:tlsSecretName cannot be set with platform:domain, which has cert-manager write the "
            "certificates: leave out tlsSecretName, or domain to bring your own certificate"
        )
    if local_ca and cfg.get("tlsSecretName"):
        raise ConfigError(
            "platform:tlsSecretName cannot be set with platform:localTls, which has cert-manager sign the "
            "certificates with the platform's CA: leave out tlsSecretName, or localTls to bring your own certificate"
        )
    if cloud != "local" and not cidrs:
        raise ConfigError(
            f"platform:apiAllowedCidrs is required for cloud '{cloud}': a list of CIDRs allowed "
            'to reach the Kubernetes API, e.g. ["203.0.113.0/24"] (0.0.0.0/0 is not allowed)'
        )
    return PlatformConfig(
        stack=stack,
        cloud=cloud,
        profile=profile,
        kubernetes_version=_text(
            cfg,
            "kubernetesVersion",
            KUBERNETES_VERSION,
            r"1\.\d{2}",
            f"a minor version like {KUBERNETES_VERSION}",
        ),
        zone_count=number("zoneCount", 1, 3),
        node_size=cfg.get("nodeSize"),
        node_min_count=node_min,
        node_max_count=number("nodeMaxCount", node_min, 100),
        high_availability=flag("highAvailability"),
        deletion_protection=flag("deletionProtection"),
        backup_retention_days=number("backupRetentionDays", 1, 35),
        log_retention_days=_log_retention(cfg, "logRetentionDays", defaults["logRetentionDays"]),
        db_size=cfg.get("dbSize"),
        db_storage_gb=number("dbStorageGb", 20, 16384),
        redis_size=cfg.get("redisSize"),
        api_allowed_cidrs=cidrs,
        image=_image(cfg, "image", "ghcr.io/example/product-service:0.1.0", profile),
        hpa_min_replicas=hpa_min,
        hpa_max_replicas=number("hpaMaxReplicas", hpa_min, 100),
        host=host,
        tls_secret_name=MANAGED_CERTIFICATE if managed or local_ca else cfg.get("tlsSecretName"),
        delivery=delivery,
        kube_context=cfg.get("kubeContext"),
        postgres_image=_image(cfg, "postgresImage", LOCAL_POSTGRES_IMAGE, profile),
        redis_image=_image(cfg, "redisImage", LOCAL_REDIS_IMAGE, profile),
        log_level=_choice(cfg, "logLevel", LOG_LEVELS, default=defaults["logLevel"]),
        db_pool_min=pool_min,
        db_pool_max=_int(cfg, "dbPoolMax", pool_min, 100, 10),
        cache_ttl_seconds=_int(cfg, "cacheTtlSeconds", 1, 86400, 300),
        trace_sample_ratio=_ratio(cfg, "traceSampleRatio", defaults["traceSampleRatio"]),
        api_rate_limit=number("apiRateLimit", 1, 100_000),
        api_rate_burst=number("apiRateBurst", 1, 100_000),
        api_in_flight_limit=number("apiInFlightLimit", 1, 10_000),
        supplied_secrets=_supplied_secrets(cfg),
        gitops_repo_url=gitops_repo,
        gitops_path=cfg.get("gitopsPath") or f"deploy/{stack}",
        gitops_revision=cfg.get("gitopsRevision") or "HEAD",
        chart_repository=_chart_repository(cfg, "chartRepository"),
        admin_allowed_cidrs=admin_cidrs,
        alert_receiver=_choice(cfg, "alertReceiver", ALERT_RECEIVERS, default="webhook"),
        alert_webhook_url=_secret_url(cfg, "alertWebhookUrl"),
        addons=addons,
        domain=domain if managed else None,
        acme_email=_acme_email(cfg, "acmeEmail") if managed else None,
        acme_server=_acme_server(
            cfg, "acmeServer", LETS_ENCRYPT if profile == "prod" else LETS_ENCRYPT_STAGING
        ),
        acme_ca_bundle=_certificates(cfg, "acmeCaBundle") if managed else None,
        dns_server=dns_server,
        canary=Canary(
            **CANARY_STEPS[profile],
            max_error_ratio=_ratio(cfg, "canaryMaxErrorRatio", defaults["canaryMaxErrorRatio"]),
            max_p99_seconds=_seconds(cfg, "canaryMaxP99Seconds", defaults["canaryMaxP99Seconds"]),
        ),
        local_ca=local_ca,
    )


# --- one reader per kind of value; each failure is one sentence naming the key -----------------


def _choice(cfg: pulumi.Config, key: str, allowed: tuple[str, ...], default: str | None) -> str:
    value = cfg.get(key, default)
    if value not in allowed:
        got = "it is not set" if value is None else f"got '{value}'"
        raise ConfigError(f"platform:{key} must be one of {', '.join(allowed)} ({got})")
    return value


def _int(cfg: pulumi.Config, key: str, minimum: int, maximum: int, default: int) -> int:
    raw = cfg.get(key)
    if raw is None:
        return default
    if not re.fullmatch(r"\d+", raw.strip()) or not minimum <= int(raw) <= maximum:
        raise ConfigError(f"platform:{key} must be a whole number from {minimum} to {maximum} (got '{raw}')")
    return int(raw)


def _log_retention(cfg: pulumi.Config, key: str, default: int) -> int:
    raw = cfg.get(key)
    if raw is None:
        return default
    if not raw.strip().isdigit() or int(raw) not in LOG_RETENTION_DAYS:
        allowed = ", ".join(str(days) for days in LOG_RETENTION_DAYS)
        raise ConfigError(f"platform:{key} must be one of {allowed} (got '{raw}')")
    return int(raw)


def _bool(cfg: pulumi.Config, key: str, default: bool) -> bool:
    raw = cfg.get(key)
    if raw is None:
        return default
    if raw.lower() not in ("true", "false"):
        raise ConfigError(f"platform:{key} must be true or false (got '{raw}')")
    return raw.lower() == "true"


def _ratio(cfg: pulumi.Config, key: str, default: str) -> float:
    return _number(cfg, key, default, 0, 1, "a number")


def _seconds(cfg: pulumi.Config, key: str, default: str) -> float:
    return _number(cfg, key, default, 0.001, 60, "a number of seconds")


def _number(cfg: pulumi.Config, key: str, default: str, low: float, high: float, what: str) -> float:
    raw = cfg.get(key, default)
    try:
        value = float(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ConfigError(f"platform:{key} must be {what} from {low:g} to {high:g} (got '{raw}')")
    return value


def _text(cfg: pulumi.Config, key: str, default: str, pattern: str, what: str) -> str:
    value = cfg.get(key, default)
    if not re.fullmatch(pattern, value):
        raise ConfigError(f"platform:{key} must be {what} (got '{value}')")
    return value


DNS_NAME = r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"


def _domain(cfg: pulumi.Config, key: str, cloud: str) -> str | None:
    value = cfg.get(key)
    if value is None:
        return None
    if not re.fullmatch(DNS_NAME, value):
        raise ConfigError(f"platform:{key} must be a DNS zone name like shop.example.com (got '{value}')")
    if cloud == "local" and cfg.get("dnsServer") is None:
        pulumi.log.warn(
            f"platform:{key} names the hosts only on the local target without platform:dnsServer: no DNS "
            "records are managed, and the API is plain HTTP unless platform:localTls or platform:tlsSecretName is set"
        )
    return value


def _dns_server(cfg: pulumi.Config, key: str, cloud: str, domain: str | None) -> DnsServer | None:
    """platform:dnsServer (`IPv4[:port]`) and what writing to it takes, on the local target only: a cloud
    stack keeps the key (the dev stack plans on every cloud) and writes to the cloud's DNS service."""
    value = cfg.get(key)
    if value is None:
        return None
    if cloud != "local":
        pulumi.log.warn(
            f"platform:{key} applies to the local target only: on {cloud} the zone is the cloud's"
        )
        return None
    if domain is None:
        raise ConfigError(f"platform:{key} needs platform:domain, the zone that server is authoritative for")
    address, _, port = value.partition(":")
    if not (_is_ipv4(address) and (port == "" or (port.isdigit() and 0 < int(port) < 65536))):
        raise ConfigError(
            f"platform:{key} must be an IPv4 address with an optional port, like 192.0.2.53:53 (got '{value}')"
        )
    secret = cfg.get_secret("dnsTsigSecret")
    plain = pulumi.runtime.get_config("platform:dnsTsigSecret") or ""
    if secret is None or not re.fullmatch(r"[A-Za-z0-9+/]{16,}={0,2}", plain):
        raise ConfigError(
            f"platform:dnsTsigSecret must be the base64 TSIG secret that {value} accepts updates of "
            f"{domain} with, set with pulumi config set --secret, when platform:{key} is set"
        )
    ingress = cfg.get("ingressAddress") or ""
    if not _is_ipv4(ingress):
        raise ConfigError(
            f"platform:ingressAddress must be the IPv4 address clients reach the ingress at (127.0.0.1 with "
            f"kind's port mapping), which the records in {domain} point at, when platform:{key} is set (got '{ingress}')"
        )
    return DnsServer(
        address=address,
        port=int(port or 53),
        tsig_key_name=_text(
            cfg,
            "dnsTsigKeyName",
            "",
            r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?",
            "the TSIG key's name, like platform-dev",
        ),
        tsig_algorithm=_choice(cfg, "dnsTsigAlgorithm", TSIG_ALGORITHMS, default="hmac-sha256"),
        tsig_secret=secret,
        ingress_address=ingress,
    )


def _is_ipv4(value: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(value), ipaddress.IPv4Address)
    except ValueError:
        return False


def _certificates(cfg: pulumi.Config, key: str) -> str | None:
    value = cfg.get(key)
    if value is None:
        return None
    if not re.fullmatch(
        r"(\s*-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----\s*)+", value
    ):
        raise ConfigError(f"platform:{key} must be PEM certificates (-----BEGIN CERTIFICATE----- ...)")
    return value


def _local_tls(cfg: pulumi.Config, key: str, cloud: str) -> bool:
    """platform:localTls, on the local target only; a cloud stack keeps the key (the dev stack plans on every
    cloud) and gets its certificates from platform:domain instead."""
    wanted = _bool(cfg, key, False)
    if wanted and cloud != "local":
        pulumi.log.warn(
            f"platform:{key} applies to the local target only: on {cloud} the certificates come from "
            "platform:domain (ACME), so it is ignored"
        )
    return wanted and cloud == "local"


def _acme_email(cfg: pulumi.Config, key: str) -> str:
    value = cfg.get(key)
    if value is None or not re.fullmatch(r"[^@\s]+@" + DNS_NAME, value):
        got = "it is not set" if value is None else f"got '{value}'"
        raise ConfigError(
            f"platform:{key} must be the e-mail address of the ACME account, where expiry notices go, "
            f"when platform:domain is set ({got})"
        )
    return value


def _acme_server(cfg: pulumi.Config, key: str, default: str) -> str:
    value = cfg.get(key, default)
    if not re.fullmatch(r"https://[^\s/]+(/\S*)?", value):
        raise ConfigError(
            f"platform:{key} must be an ACME directory URL starting with https:// (got '{value}')"
        )
    return value


def _supplied_secrets(cfg: pulumi.Config) -> dict[str, pulumi.Output[str]]:
    """The SUPPLIABLE_SECRETS this stack sets, their shape checked without the value leaving the secret."""
    supplied = {}
    for key, minimum in SUPPLIABLE_SECRETS.items():
        value = cfg.get_secret(key)
        if value is None:
            continue
        plain = pulumi.runtime.get_config(f"platform:{key}") or ""
        if not re.fullmatch(rf"[A-Za-z0-9]{{{minimum},}}", plain):
            raise ConfigError(f"platform:{key} must be {minimum} or more letters and digits")
        supplied[key] = value
    return supplied


def _addons(cfg: pulumi.Config, key: str) -> frozenset[str]:
    value = _parsed(cfg, key, list, f"a list of add-ons from {', '.join(ADDONS)}", list(ADDONS))
    if unknown := [name for name in value if name not in ADDONS]:
        raise ConfigError(f"platform:{key} must list add-ons from {', '.join(ADDONS)} (got '{unknown[0]}')")
    return frozenset(value)


def _needs_addon(addons: frozenset[str], addon: str, key: str, is_set: bool) -> None:
    if is_set and addon not in addons:
        raise ConfigError(f"platform:{key} needs the {addon} add-on, which platform:addons leaves out")


def _chart_repository(cfg: pulumi.Config, key: str) -> str | None:
    value = cfg.get(key)
    if value is None:
        return None
    if not re.fullmatch(r"(https?|oci)://[A-Za-z0-9.-]+(:\d+)?(/[A-Za-z0-9._~-]+)*/?", value):
        raise ConfigError(
            f"platform:{key} must be a Helm repository URL (https:// or http://) or an OCI registry "
            f"(oci://host/path) serving every chart the platform installs (got '{value}')"
        )
    return value.rstrip("/")


def _secret_url(cfg: pulumi.Config, key: str) -> pulumi.Output[str] | None:
    """An https URL held as a secret; its shape is checked without the value entering the message."""
    value = cfg.get_secret(key)
    if value is None:
        return None
    plain = pulumi.runtime.get_config(f"platform:{key}") or ""
    if not re.fullmatch(r"https://[^\s/]+(/\S*)?", plain):
        raise ConfigError(f"platform:{key} must be an https:// URL, set with pulumi config set --secret")
    return value


DIGEST = re.compile(r"[^@\s]+@sha256:[0-9a-f]{64}")


def _image(cfg: pulumi.Config, key: str, default: str, profile: str) -> str:
    """An image pinned by a tag other than latest, or by digest; in prod by digest, as the deploy
    workflow sets the service's: a tag can be moved to other code after review, a digest cannot."""
    value = cfg.get(key, default)
    pinned = "@sha256:" in value or (":" in value.rsplit("/", 1)[-1] and not value.endswith(":latest"))
    if not pinned:
        raise ConfigError(
            f"platform:{key} must name an image by a tag other than latest or by digest (got '{value}')"
        )
    if not DIGEST.fullmatch(value):
        if profile == "prod":
            raise ConfigError(
                f"platform:{key} must name the image by digest in the prod profile "
                f"(repository@sha256:<64 hex digits>, got '{value}')"
            )
        pulumi.log.warn(f"platform:{key} '{value}' is a tag; the prod profile requires a digest")
    return value


def _cidrs(cfg: pulumi.Config, key: str) -> list[str]:
    value = _parsed(cfg, key, list, "a list of CIDRs", [])
    for cidr in value:
        if not _is_network(cidr) or cidr.endswith("/0"):
            raise ConfigError(
                f"platform:{key} must be a list of CIDRs narrower than /0, e.g. [\"203.0.113.0/24\"] (got '{cidr}')"
            )
    return [str(c) for c in value]


def _parsed(cfg: pulumi.Config, key: str, kind: type, what: str, default: Any) -> Any:
    try:
        value = cfg.get_object(key, default)
    except Exception:  # pulumi raises a plain JSON error for malformed structured values
        value = None
    if not isinstance(value, kind):
        raise ConfigError(f"platform:{key} must be {what} (got '{cfg.get(key)}')")
    return value


def _is_network(value: Any) -> bool:
    try:
        ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        return False
    return "/" in str(value)
