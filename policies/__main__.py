"""Entry point Pulumi runs for `--policy-pack policies`: serves the pack to the engine.

Constructing `PolicyPack` starts a gRPC server and never returns, so nothing imports this file
(the offline gate imports `pack` directly). Pulumi runs this directory as a script, with the
directory itself on sys.path; its parent goes there too so the rule modules import as a package.
"""

import importlib
import sys
from pathlib import Path

from pulumi_policy import EnforcementLevel, PolicyPack

PACK_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(PACK_DIR.parent))
pack = importlib.import_module(f"{PACK_DIR.name}.pack")

PolicyPack(
    name=pack.PACK_NAME,
    policies=pack.POLICIES,
    enforcement_level=EnforcementLevel.ADVISORY,
    description="Guardrails for the platform on Kubernetes, AWS, GCP and Azure (see docs/policies.md).",
)
