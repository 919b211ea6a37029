"""Pulumi.yaml documents every key the program reads, and the committed stacks are complete."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from config import SUPPLIABLE_SECRETS
from plan import committed_stacks

REPO = Path(__file__).resolve().parents[2]


def _keys_read_by_the_program() -> set[str]:
    source = (REPO / "infra" / "config.py").read_text()
    readers = r'(?:_choice|_int|_bool|_text|_image|_cidrs|_ratio|_chart_repository|_secret_url|_local_tls|_domain|_dns_server|_acme_email|_acme_server|_certificates|number|flag)\(\s*(?:cfg,\s*)?"(\w+)"'
    getters = r'cfg\.get(?:_secret|_object)?\("(\w+)"'
    return set(re.findall(readers, source)) | set(re.findall(getters, source)) | set(SUPPLIABLE_SECRETS)


def test_every_config_key_is_documented_in_the_project_file() -> None:
    text = (REPO / "Pulumi.yaml").read_text()
    keys = _keys_read_by_the_program()
    assert {"cloud", "profile", "hpaMinReplicas", "apiAllowedCidrs", "jwtSecret"} <= keys
    missing = sorted(k for k in keys if f"platform:{k}" not in text)
    assert not missing, f"undocumented in Pulumi.yaml: {missing}"


def test_the_project_runs_infra_with_the_repositorys_virtualenv() -> None:
    project = yaml.safe_load((REPO / "Pulumi.yaml").read_text())
    assert project["name"] == "platform"
    assert project["main"] == "infra/"
    assert project["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": ".venv"}}
    for key, spec in project["config"].items():
        assert key.startswith("platform:") and {"type", "description"} <= set(spec), key


def test_committed_stacks_name_a_cloud_and_every_clouds_location() -> None:
    assert {"dev", "prod"} <= set(committed_stacks())
    for stack in committed_stacks():
        config = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())["config"]
        assert config["platform:cloud"] in ("aws", "gcp", "azure", "local"), stack
        # `make policy` plans every stack on every cloud, and a cloud plan needs these.
        assert {"aws:region", "gcp:project", "gcp:region", "azure-native:location"} <= set(config), stack
        assert config["platform:apiAllowedCidrs"], stack
        assert not any("password" in key.lower() for key in config), "secrets belong in `config set --secret`"
