"""A wrong or missing stack value stops the program with one sentence naming the key and what is allowed."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from config import KUBERNETES_VERSION, ConfigError
from plan import REPO_DIR, run_plan


def _error(target: str = "local", **overrides: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        run_plan("dev", cloud=target, overrides=overrides)
    message = str(caught.value)
    assert "\n" not in message, "one sentence, one line"
    return message


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"cloud": "moon"}, "platform:cloud must be one of aws, gcp, azure, local (got 'moon')"),
        ({"cloud": None}, "platform:cloud must be one of aws, gcp, azure, local (it is not set)"),
        ({"profile": "huge"}, "platform:profile must be one of dev, prod (got 'huge')"),
        (
            {"hpaMinReplicas": "three"},
            "platform:hpaMinReplicas must be a whole number from 1 to 100 (got 'three')",
        ),
        (
            {"hpaMinReplicas": "4", "hpaMaxReplicas": "2"},
            "platform:hpaMaxReplicas must be a whole number from 4 to 100",
        ),
        ({"nodeMinCount": "0"}, "platform:nodeMinCount must be a whole number from 1 to 100 (got '0')"),
        ({"highAvailability": "yes"}, "platform:highAvailability must be true or false (got 'yes')"),
        ({"traceSampleRatio": "2"}, "platform:traceSampleRatio must be a number from 0 to 1 (got '2')"),
        ({"traceSampleRatio": "all"}, "platform:traceSampleRatio must be a number from 0 to 1 (got 'all')"),
        (
            {"delivery": "argocd"},
            "platform:gitopsRepoUrl must be a Git repository URL (https://, ssh:// or git@)",
        ),
        ({"delivery": "ftp"}, "platform:delivery must be one of direct, argocd (got 'ftp')"),
        ({"logLevel": "LOUD"}, "platform:logLevel must be one of DEBUG, INFO, WARNING, ERROR (got 'LOUD')"),
        ({"kubernetesVersion": "latest"}, "platform:kubernetesVersion must be a minor version like 1.36"),
        ({"logRetentionDays": "10"}, "platform:logRetentionDays must be one of 1, 3, 5, 7, 14, 30, 60, 90"),
        ({"logRetentionDays": "forever"}, "platform:logRetentionDays must be one of 1, 3, 5, 7, 14, 30"),
        ({"image": "ghcr.io/example/product-service:latest"}, "platform:image must name an image by a tag"),
        ({"image": "ghcr.io/example/product-service"}, "platform:image must name an image by a tag"),
        (
            {"profile": "prod", "image": "ghcr.io/example/product-service:1.2.3"},
            "platform:image must name the image by digest in the prod profile",
        ),
        (
            {"profile": "prod", "image": "ghcr.io/example/product-service@sha256:abc"},
            "platform:image must name the image by digest in the prod profile",
        ),
        (
            {"apiAllowedCidrs": '["0.0.0.0/0"]'},
            "platform:apiAllowedCidrs must be a list of CIDRs narrower than /0",
        ),
        ({"apiAllowedCidrs": "10.0.0.0/8"}, "platform:apiAllowedCidrs must be a list of CIDRs"),
    ],
)
def test_a_bad_value_fails_with_one_sentence_naming_the_key(overrides: dict[str, Any], expected: str) -> None:
    assert expected in _error(**overrides)


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_a_cloud_stack_without_api_cidrs_fails_before_declaring_anything(cloud: str) -> None:
    message = _error(target=cloud, apiAllowedCidrs=None)
    assert message.startswith(f"platform:apiAllowedCidrs is required for cloud '{cloud}'")


def test_a_local_stack_needs_no_api_cidrs() -> None:
    plan = run_plan("dev", cloud="local", overrides={"apiAllowedCidrs": None})
    assert plan.objects("Rollout")


def test_an_unknown_stack_names_the_committed_ones() -> None:
    from plan import PlanError

    with pytest.raises(PlanError, match=r"there is no Pulumi\.nope\.yaml; committed stacks: .*dev.*prod"):
        run_plan("nope")


def test_profile_defaults_apply_and_any_single_value_overrides_them() -> None:
    prod = run_plan("prod", cloud="local", overrides={"hpaMaxReplicas": "12"})
    spec = prod.object("HorizontalPodAutoscaler", "product-service").inputs["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (3, 12)


def test_the_default_kubernetes_version_is_1_36_in_the_program_and_the_project_file() -> None:
    assert KUBERNETES_VERSION == "1.36"
    project = yaml.safe_load((REPO_DIR / "Pulumi.yaml").read_text())
    assert project["config"]["platform:kubernetesVersion"]["default"] == KUBERNETES_VERSION


def test_the_docs_state_what_each_cloud_offers_of_the_default_version_and_how_to_choose() -> None:
    # A default bumped without its facts is a guess: the version section names it, each provider's
    # status with a source, the autoscaler tag EKS gets for it, and the key that chooses another.
    clouds = (REPO_DIR / "docs" / "clouds.md").read_text()
    section = clouds.split("## Kubernetes version", 1)[1].split("\n## ", 1)[0]
    assert f"The default is **{KUBERNETES_VERSION}**" in section
    rows = {line.split("|")[1].strip(): line for line in section.splitlines() if line.startswith("| ")}
    for row in (
        "upstream",
        "EKS",
        "GKE, Regular channel",
        "AKS",
        f"cluster-autoscaler `v{KUBERNETES_VERSION}.0`",
    ):
        assert "](https://" in rows[row], f"{row}: no source"
    assert "`platform:kubernetesVersion`" in section


def test_the_eks_cluster_autoscaler_image_follows_the_configured_minor() -> None:
    plan = run_plan("dev", cloud="aws", overrides={"kubernetesVersion": "1.35"})
    [release] = [r for r in plan.of_type("kubernetes:helm.sh/v3:Release") if r.name == "cluster-autoscaler"]
    assert release.inputs["values"]["image"]["tag"] == "v1.35.0"
    assert plan.one("aws:eks/cluster:Cluster").inputs["version"] == "1.35"


def test_the_local_data_images_follow_the_image_rule():
    assert _error(postgresImage="postgres") == (
        "platform:postgresImage must name an image by a tag other than latest or by digest (got 'postgres')"
    )
    assert "platform:redisImage" in _error(redisImage="mirror.example/redis:latest")


DOMAIN = {"domain": "shop.example.com", "acmeEmail": "ops@example.com", "host": None, "tlsSecretName": None}


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"domain": "Shop_Example"},
            "platform:domain must be a DNS zone name like shop.example.com (got 'Shop_Example')",
        ),
        ({"acmeEmail": None}, "platform:acmeEmail must be the e-mail address of the ACME account"),
        ({"acmeEmail": "ops"}, "platform:acmeEmail must be the e-mail address of the ACME account"),
        (
            {"acmeServer": "http://acme.example.com"},
            "platform:acmeServer must be an ACME directory URL starting with https://",
        ),
        (
            {"host": "api.other.com"},
            "platform:host must be a name in platform:domain 'shop.example.com' (got 'api.other.com')",
        ),
        ({"tlsSecretName": "own-tls"}, "platform:tlsSecretName cannot be set with platform:domain"),
        ({"addons": ["jaeger"]}, "platform:domain needs the traefik add-on"),
    ],
)
def test_a_bad_domain_setting_fails_with_one_sentence_naming_the_key(
    overrides: dict[str, Any], expected: str
) -> None:
    assert expected in _error(target="aws", **{**DOMAIN, **overrides})


@pytest.mark.parametrize(("profile", "server"), [("prod", "acme-v02"), ("dev", "acme-staging-v02")])
def test_the_domain_names_every_host_and_the_profile_picks_lets_encrypts_directory(
    profile: str, server: str
) -> None:
    from config import read

    image = "ghcr.io/example/product-service@sha256:" + "0" * 64
    values = {
        "cloud": "aws",
        "profile": profile,
        "image": image,
        "apiAllowedCidrs": '["203.0.113.0/24"]',
        **DOMAIN,
    }
    cfg = read(_Config({k: v for k, v in values.items() if v is not None}), "dev")
    assert (cfg.host, cfg.tls_secret_name) == ("api.shop.example.com", "platform-tls")
    assert cfg.acme_server == f"https://{server}.api.letsencrypt.org/directory"
    assert cfg.acme_email == "ops@example.com"


class _Config:
    """Just enough of pulumi.Config for `read`: plain keys, no secrets."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def get_secret(self, key: str) -> None:
        return None

    def get_object(self, key: str, default: Any = None) -> Any:
        return yaml.safe_load(self.values[key]) if key in self.values else default


def test_on_the_local_target_the_domain_names_the_hosts_and_manages_nothing() -> None:
    plan = run_plan("dev", cloud="local", overrides={"domain": "shop.example.com"})
    [ingress] = [i for i in plan.objects("Ingress") if "grpc" not in i.name]
    assert ingress.inputs["spec"]["rules"][0]["host"] == "api.shop.example.com"
    assert "tls" not in ingress.inputs["spec"]
    assert not plan.objects("Certificate")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"localTls": "yes"}, "platform:localTls must be true or false (got 'yes')"),
        (
            {"localTls": "true", "tlsSecretName": "own-tls"},
            "platform:tlsSecretName cannot be set with platform:localTls",
        ),
        (
            {"localTls": "true", "addons": ["jaeger"]},
            "platform:localTls needs the traefik add-on, which platform:addons leaves out",
        ),
    ],
)
def test_a_bad_local_tls_setting_fails_with_one_sentence_naming_the_key(
    overrides: dict[str, Any], expected: str
) -> None:
    assert expected in _error(**overrides)


LOCAL_ZONE = {
    "domain": "shop.test",
    "acmeEmail": "ops@shop.test",
    "dnsServer": "192.0.2.53",
    "dnsTsigKeyName": "platform-dev",
    "dnsTsigSecret": "c2VjcmV0LWtleS1vZi10aGUtem9uZQ==",
    "ingressAddress": "127.0.0.1",
}


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"dnsServer": "dns.shop.test:53"},
            "platform:dnsServer must be an IPv4 address with an optional port, like 192.0.2.53:53 (got 'dns.shop.test:53')",
        ),
        ({"dnsServer": "192.0.2.53:0"}, "platform:dnsServer must be an IPv4 address with an optional port"),
        (
            {"domain": None},
            "platform:dnsServer needs platform:domain, the zone that server is authoritative for",
        ),
        (
            {"dnsTsigSecret": None},
            "platform:dnsTsigSecret must be the base64 TSIG secret that 192.0.2.53 accepts",
        ),
        ({"dnsTsigSecret": "not base64!"}, "platform:dnsTsigSecret must be the base64 TSIG secret"),
        (
            {"dnsTsigKeyName": None},
            "platform:dnsTsigKeyName must be the TSIG key's name, like platform-dev (got '')",
        ),
        (
            {"dnsTsigAlgorithm": "hmac-md5"},
            "platform:dnsTsigAlgorithm must be one of hmac-sha256, hmac-sha512 (got 'hmac-md5')",
        ),
        (
            {"ingressAddress": None},
            "platform:ingressAddress must be the IPv4 address clients reach the ingress at",
        ),
        ({"localTls": "true"}, "platform:localTls cannot be set with platform:dnsServer"),
        ({"acmeEmail": None}, "platform:acmeEmail must be the e-mail address of the ACME account"),
        ({"acmeCaBundle": "a CA"}, "platform:acmeCaBundle must be PEM certificates"),
    ],
)
def test_a_bad_local_zone_setting_fails_with_one_sentence_naming_the_key(
    overrides: dict[str, Any], expected: str
) -> None:
    assert expected in _error(**{**LOCAL_ZONE, **overrides})


def test_a_team_certificate_still_serves_the_local_target_without_local_tls() -> None:
    plan = run_plan("dev", cloud="local", overrides={"tlsSecretName": "own-tls"})
    [ingress] = [i for i in plan.objects("Ingress") if "grpc" not in i.name]
    assert ingress.inputs["spec"]["tls"] == [{"hosts": ["api.dev.localtest.me"], "secretName": "own-tls"}]
    assert not plan.objects("Certificate")
