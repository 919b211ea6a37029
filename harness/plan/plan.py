"""The offline plan: the real program under a stand-in engine, with no CLI and no credentials.

    python harness/plan/plan.py <stack> [--cloud aws|gcp|azure|local] [--set key=value ...] [--out build/plan]
    python harness/plan/plan.py --all        # every committed stack on every cloud (the CI gate)

It reads `Pulumi.yaml` and `Pulumi.<stack>.yaml` the way the CLI would (project defaults, then the
stack's values; `--cloud` overrides `platform:cloud`), runs `infra/__main__.py` exactly as the
Pulumi language host does, and records every resource through `offline_engine.RecordingMonitor`.
Then it writes `build/plan/<stack>-<cloud>/`:

- `resources.json`: one object per resource (type, name, urn, parent, inputs; secrets "[secret]");
- `manifests/*.yaml`: every Kubernetes object (secret data masked) and `helm-releases.yaml`;
- `policy-report.json`: the policy pack's verdict (`policies/gate.py`), when the pack is present;

prints a summary (resources per type and the facts a reviewer looks for) and exits non-zero when the
program fails or a mandatory policy is violated. `run_plan()` is the same thing as a function; the
tests use it through `tests/infra/conftest.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import importlib
import importlib.util
import json
import logging
import runpy
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

import yaml
from offline_engine import Path, RecordingMonitor, Registration
from pulumi.runtime import config as runtime_config
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.mocks import MockEngine, MockSettings
from pulumi.runtime.stack import run_in_stack
from pulumi.runtime.sync_await import _sync_await

REPO_DIR = FsPath(__file__).resolve().parents[2]
INFRA_DIR = REPO_DIR / "infra"
# The program's modules import each other by bare name, as Pulumi runs them from infra/.
if str(INFRA_DIR) not in sys.path:
    sys.path.insert(0, str(INFRA_DIR))

from config import KUBERNETES_VERSION  # noqa: E402 (the program's own default)

CLOUDS = ("aws", "gcp", "azure", "local")
MASK = "[secret]"
# Stand-in for `secure:` stack values, which only the CLI can decrypt; the key stays a secret.
OFFLINE_SECRET = "offline-placeholder-secret-value"  # noqa: S105 (a placeholder, not a credential)


class PlanError(Exception):
    """The plan could not start (no such stack, unreadable stack file)."""


@dataclass(frozen=True)
class PlannedResource:
    """One resource as the engine would record it. `inputs` hold secret values in the clear (for
    in-memory checks); `secret_paths` says which of them the engine would keep encrypted."""

    type: str
    name: str
    urn: str
    parent: str
    inputs: dict[str, Any]
    secret_paths: tuple[Path, ...] = ()
    custom: bool = True
    provider: str = ""
    dependencies: tuple[str, ...] = ()
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def is_kubernetes_object(self) -> bool:
        return self.type.startswith("kubernetes:") and "kind" in self.inputs and "apiVersion" in self.inputs

    @property
    def kind(self) -> str | None:
        return self.inputs.get("kind")

    @property
    def metadata(self) -> dict[str, Any]:
        return self.inputs.get("metadata") or {}

    def is_secret(self, path: Path) -> bool:
        """True when the value at `path`, or anything containing it, is a secret."""
        return any(path[: len(secret)] == secret for secret in self.secret_paths)

    def masked_inputs(self) -> dict[str, Any]:
        return mask(self.inputs, self.secret_paths)

    def manifest(self) -> dict[str, Any]:
        """The object as `kubectl apply` would get it, with every secret value masked."""
        body = self.masked_inputs()
        if self.kind == "Secret":
            # Secret data is masked even where it is not a Pulumi secret: manifests get shared.
            for key in ("stringData", "data"):
                masked = MASK if key == "stringData" else base64.b64encode(MASK.encode()).decode()
                if isinstance(self.inputs.get(key), dict):
                    body[key] = dict.fromkeys(self.inputs[key], masked)
        return body


@dataclass
class Plan:
    stack: str
    cloud: str
    config: dict[str, str]
    resources: list[PlannedResource]
    outputs: dict[str, Any]
    output_secret_paths: list[Path]
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def of_type(self, type_: str) -> list[PlannedResource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str | None = None) -> PlannedResource:
        """The single resource of this type (and logical name, if given); fails if there is not exactly one."""
        found = [r for r in self.of_type(type_) if name is None or r.name == name]
        if len(found) != 1:
            raise KeyError(f"expected one {type_} {name or ''}, found {len(found)}")
        return found[0]

    def kubernetes_objects(self) -> list[PlannedResource]:
        return [r for r in self.resources if r.is_kubernetes_object]

    def objects(self, kind: str, namespace: str | None = None) -> list[PlannedResource]:
        return [
            r
            for r in self.kubernetes_objects()
            if r.kind == kind and (namespace is None or r.metadata.get("namespace") == namespace)
        ]

    def object(self, kind: str, name: str) -> PlannedResource:
        """The Kubernetes object of this kind with this logical (Pulumi) name or metadata.name."""
        found = [r for r in self.objects(kind) if name in (r.name, r.metadata.get("name"))]
        if len(found) != 1:
            raise KeyError(f"{len(found)} {kind} objects named {name!r}")
        return found[0]

    def by_urn(self, urn: str) -> PlannedResource:
        return next(r for r in self.resources if r.urn == urn)

    def output_is_secret(self, name: str) -> bool:
        return any(path[:1] == (name,) for path in self.output_secret_paths)

    def masked_outputs(self) -> dict[str, Any]:
        return mask(self.outputs, self.output_secret_paths)


def run_plan(stack: str, cloud: str | None = None, overrides: dict[str, Any] | None = None) -> Plan:
    """Run the program for `stack` (its committed config, `cloud` overriding platform:cloud, then
    `overrides` by key: "platform:x" or plain "x"; None removes a key). Raises the program's error."""
    config, secret_keys = stack_config(stack, cloud, overrides)
    monitor = RecordingMonitor(stack, project_name(), config)
    warnings: list[str] = []
    started = time.perf_counter()
    with _fresh_runtime(monitor, stack, config, secret_keys, warnings):
        _sync_await(run_in_stack(_run_program))
    return Plan(
        stack=stack,
        cloud=config.get("platform:cloud", ""),
        config=config,
        resources=sorted((_planned(r) for r in monitor.registrations), key=lambda r: r.urn),
        outputs=monitor.stack_outputs,
        output_secret_paths=monitor.stack_output_secrets,
        warnings=warnings,
        seconds=time.perf_counter() - started,
    )


def _run_program() -> None:
    """`infra/__main__.py`, run the way Pulumi's Python language host runs a program directory."""
    runpy.run_path(str(INFRA_DIR), run_name="__main__")


# --- stack configuration, as the CLI assembles it ------------------------------------------------


def project_name() -> str:
    return str(_read_yaml(REPO_DIR / "Pulumi.yaml")["name"])


def committed_stacks() -> list[str]:
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in REPO_DIR.glob("Pulumi.*.yaml"))


def stack_config(
    stack: str, cloud: str | None = None, overrides: dict[str, Any] | None = None
) -> tuple[dict[str, str], list[str]]:
    """The stack's config as the engine hands it to the program: {"ns:key": string}, secret keys."""
    stack_file = REPO_DIR / f"Pulumi.{stack}.yaml"
    if not stack_file.is_file():
        raise PlanError(f"there is no Pulumi.{stack}.yaml; committed stacks: {', '.join(committed_stacks())}")
    project = _read_yaml(REPO_DIR / "Pulumi.yaml")
    namespace = str(project["name"])
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, spec in (project.get("config") or {}).items():
        # Project-level entries: a bare value, {value: ...}, or a schema with an optional default.
        if not isinstance(spec, dict):
            config[_qualified(key, namespace)] = _as_config_text(spec)
        elif "value" in spec or "default" in spec:
            config[_qualified(key, namespace)] = _as_config_text(spec.get("value", spec.get("default")))
    for key, value in (_read_yaml(stack_file).get("config") or {}).items():
        name = _qualified(key, namespace)
        if isinstance(value, dict) and set(value) == {"secure"}:
            config[name] = OFFLINE_SECRET
            secret_keys.append(name)
        else:
            config[name] = _as_config_text(value)
    if cloud is not None:
        config[f"{namespace}:cloud"] = cloud
    for key, value in (overrides or {}).items():
        name = _qualified(key, namespace)
        if value is None:
            config.pop(name, None)
        else:
            config[name] = _as_config_text(value)
    return config, secret_keys


def _qualified(key: str, namespace: str) -> str:
    return key if ":" in key else f"{namespace}:{key}"


def _as_config_text(value: Any) -> str:
    """The CLI hands every value to the program as a string: JSON for anything structured."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _read_yaml(path: FsPath) -> dict[str, Any]:
    try:
        return yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PlanError(f"cannot read {path.name}: {exc}") from exc


# --- a fresh runtime per run: Pulumi's runtime state is process-global ---------------------------


class _WarningLog(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record.getMessage())


@contextmanager
def _fresh_runtime(
    monitor: RecordingMonitor, stack: str, config: dict[str, str], secret_keys: list[str], warnings: list[str]
) -> Iterator[None]:
    logger = logging.getLogger(f"offline-plan.{id(monitor)}")
    logger.propagate = False
    logger.addHandler(_WarningLog(warnings))
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    runtime_settings.ROOT.set(None)
    runtime_settings.SETTINGS.outputs.clear()
    runtime_settings.configure(
        MockSettings(
            monitor=monitor,
            monitor_features=set(monitor.GetDeploymentInfo(None).supportedFeatures),
            engine=MockEngine(logger),
            project=monitor.project,
            stack=stack,
            root_directory=str(REPO_DIR),
            organization="organization",
            dry_run=False,
            callbacks=None,
        )
    )
    runtime_config.set_all_config(dict(config), list(secret_keys))
    try:
        yield
    finally:
        runtime_settings.ROOT.set(None)
        runtime_settings.SETTINGS.outputs.clear()
        runtime_config.set_all_config({}, [])
        asyncio.set_event_loop(None)
        loop.close()


def _planned(r: Registration) -> PlannedResource:
    return PlannedResource(
        type=r.type,
        name=r.name,
        urn=r.urn,
        parent=r.parent,
        inputs=r.inputs,
        secret_paths=tuple(r.secret_paths),
        custom=r.custom,
        provider=r.provider,
        dependencies=tuple(sorted(set(r.dependencies))),
        outputs=r.outputs,
    )


def mask(value: Any, secret_paths: list[Path] | tuple[Path, ...], path: Path = ()) -> Any:
    """A deep copy of `value` with every secret path replaced by "[secret]"."""
    if path in secret_paths:
        return MASK
    if isinstance(value, dict):
        return {k: mask(v, secret_paths, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v, secret_paths, (*path, i)) for i, v in enumerate(value)]
    return copy.deepcopy(value)


# --- artefacts ------------------------------------------------------------------------------------


def write_artefacts(plan: Plan, out_dir: FsPath) -> None:
    """resources.json and manifests/ under out_dir (replacing what a previous plan left there)."""
    manifests = out_dir / "manifests"
    manifests.mkdir(parents=True, exist_ok=True)
    for stale in manifests.glob("*.yaml"):
        stale.unlink()
    records = [
        {"type": r.type, "name": r.name, "urn": r.urn, "parent": r.parent, "inputs": r.masked_inputs()}
        for r in plan.resources
    ]
    (out_dir / "resources.json").write_text(json.dumps(records, indent=2, sort_keys=True) + "\n")
    for r in plan.kubernetes_objects():
        namespace = r.metadata.get("namespace") or "cluster"
        file_name = f"{namespace}.{r.kind}.{r.metadata.get('name')}.yaml".lower()
        (manifests / file_name).write_text(yaml.safe_dump(r.manifest(), sort_keys=False))
    releases = [release_listing(r) for r in plan.of_type(HELM_RELEASE)]
    header = "# Helm releases: installed by the Pulumi Kubernetes provider (not Kubernetes objects).\n"
    (manifests / "helm-releases.yaml").write_text(header + yaml.safe_dump(releases, sort_keys=False))


HELM_RELEASE = "kubernetes:helm.sh/v3:Release"


def release_listing(r: PlannedResource) -> dict[str, Any]:
    """A Helm Release as the program declares it: name, namespace, chart, version, repository, values."""
    inputs = r.masked_inputs()
    return {
        "release": inputs.get("name") or r.name,
        "namespace": inputs.get("namespace"),
        "chart": inputs.get("chart"),
        "version": inputs.get("version"),
        "repo": (inputs.get("repositoryOpts") or {}).get("repo"),
        "values": inputs.get("values") or {},
    }


# --- the terminal summary -------------------------------------------------------------------------


def summary(plan: Plan) -> str:
    lines = [
        f"Plan of stack {plan.stack} on {plan.cloud}: {len(plan.resources)} resources ({plan.seconds:.1f}s)"
    ]
    counts = Counter(r.type for r in plan.resources)
    width = max(len(t) for t in counts) if counts else 0
    lines += [f"  {count:3d}  {type_:<{width}}" for type_, count in sorted(counts.items())]
    lines.append("Key facts:")
    lines += [f"  {label}: {value}" for label, value in key_facts(plan)]
    lines.append("Stack outputs:")
    lines += [f"  {name}: {value}" for name, value in sorted(plan.masked_outputs().items())]
    lines += [f"warning: {w}" for w in plan.warnings]
    return "\n".join(lines)


def key_facts(plan: Plan) -> list[tuple[str, str]]:
    facts: list[tuple[str, str]] = [
        ("profile", plan.config.get("platform:profile", "dev")),
        ("Kubernetes version", _kubernetes_version(plan)),
    ]
    facts += _cloud_facts(plan)
    for hpa in plan.objects("HorizontalPodAutoscaler"):
        spec = hpa.inputs.get("spec", {})
        facts.append(
            (
                f"HPA {hpa.metadata.get('name')}",
                f"{spec.get('minReplicas')}-{spec.get('maxReplicas')} replicas",
            )
        )
    for pdb in plan.objects("PodDisruptionBudget"):
        spec = pdb.inputs.get("spec", {})
        bound = (
            f"minAvailable {spec['minAvailable']}"
            if "minAvailable" in spec
            else f"maxUnavailable {spec.get('maxUnavailable')}"
        )
        facts.append((f"PDB {pdb.metadata.get('name')}", bound))
    for release in plan.of_type(HELM_RELEASE):
        facts.append((f"chart {release.inputs.get('chart')}", str(release.inputs.get("version"))))
    return facts


def _kubernetes_version(plan: Plan) -> str:
    for type_, key in (
        ("aws:eks/cluster:Cluster", "version"),
        ("gcp:container/cluster:Cluster", "minMasterVersion"),
        ("azure-native:containerservice:ManagedCluster", "kubernetesVersion"),
    ):
        for r in plan.of_type(type_):
            return str(r.inputs.get(key) or r.inputs.get("releaseChannel") or "provider default")
    return (
        plan.config.get("platform:kubernetesVersion", KUBERNETES_VERSION)
        + " (the context's cluster; validated against)"
    )


def _cloud_facts(plan: Plan) -> list[tuple[str, str]]:
    facts: list[tuple[str, str]] = []

    def add(label: str, type_: str, describe: Any) -> None:
        for r in plan.of_type(type_):
            facts.append((f"{label} {r.name}", describe(r.inputs)))

    add(
        "node group",
        "aws:eks/nodeGroup:NodeGroup",
        lambda i: _nodes(i.get("instanceTypes"), i.get("scalingConfig", {}), "minSize", "maxSize"),
    )
    add(
        "node pool",
        "gcp:container/nodePool:NodePool",
        lambda i: _nodes(
            (i.get("nodeConfig") or {}).get("machineType"),
            i.get("autoscaling") or {},
            "totalMinNodeCount",
            "totalMaxNodeCount",
            "minNodeCount",
            "maxNodeCount",
        ),
    )
    add(
        "agent pool",
        "azure-native:containerservice:AgentPool",
        lambda i: _nodes(i.get("vmSize"), i, "minCount", "maxCount"),
    )
    for r in plan.of_type("azure-native:containerservice:ManagedCluster"):
        for pool in r.inputs.get("agentPoolProfiles") or []:
            facts.append(
                (f"agent pool {pool.get('name')}", _nodes(pool.get("vmSize"), pool, "minCount", "maxCount"))
            )
    add(
        "database",
        "aws:rds/instance:Instance",
        lambda i: (
            f"{i.get('instanceClass')}, Multi-AZ {i.get('multiAz', False)}, backups {i.get('backupRetentionPeriod')} days, deletion protection {i.get('deletionProtection', False)}"
        ),
    )
    add("database", "gcp:sql/databaseInstance:DatabaseInstance", lambda i: _cloud_sql(i))
    add(
        "database",
        "azure-native:dbforpostgresql:Server",
        lambda i: (
            f"{(i.get('sku') or {}).get('name')}, HA {(i.get('highAvailability') or {}).get('mode', 'Disabled')}, backups {(i.get('backup') or {}).get('backupRetentionDays')} days, geo-redundant {(i.get('backup') or {}).get('geoRedundantBackup', 'Disabled')}"
        ),
    )
    add(
        "Redis",
        "aws:elasticache/replicationGroup:ReplicationGroup",
        lambda i: (
            f"{i.get('nodeType')}, {i.get('numCacheClusters')} nodes, failover {i.get('automaticFailoverEnabled', False)}"
        ),
    )
    add("Redis", "gcp:redis/instance:Instance", lambda i: f"{i.get('tier')}, {i.get('memorySizeGb')} GB")
    add(
        "Redis",
        "azure-native:redisenterprise:RedisEnterprise",
        lambda i: f"Azure Managed Redis {(i.get('sku') or {}).get('name')}, HA {i.get('highAvailability')}",
    )
    for sts in plan.objects("StatefulSet"):
        spec = sts.inputs.get("spec", {})
        storage = [
            t.get("spec", {}).get("resources", {}).get("requests", {}).get("storage")
            for t in spec.get("volumeClaimTemplates", [])
        ]
        facts.append(
            (
                f"in-cluster {sts.metadata.get('name')}",
                f"{spec.get('replicas')} replica(s), volume {', '.join(map(str, storage))}",
            )
        )
    return facts


def _nodes(size: Any, scaling: dict[str, Any], *keys: str) -> str:
    bounds = [str(scaling[k]) for k in keys if k in scaling][:2]
    return f"{size}, {'-'.join(bounds) or '?'} nodes"


def _cloud_sql(inputs: dict[str, Any]) -> str:
    settings = inputs.get("settings") or {}
    backups = settings.get("backupConfiguration") or {}
    retention = (backups.get("backupRetentionSettings") or {}).get("retainedBackups")
    return (
        f"{settings.get('tier')}, {settings.get('availabilityType', 'ZONAL')}, backups {backups.get('enabled', False)}"
        f" (keep {retention}), PITR {backups.get('pointInTimeRecoveryEnabled', False)}, "
        f"deletion protection {inputs.get('deletionProtection', True)}"
    )


# --- the policy gate (policies/gate.py, from the policy pack's issue) ------------------------------


def policy_gate(plan: Plan, out_dir: FsPath) -> bool | None:
    """Run the pack over the plan; write policy-report.json. None when the pack is not there yet."""
    if str(REPO_DIR) not in sys.path:
        sys.path.append(str(REPO_DIR))
    if importlib.util.find_spec("policies") is None or importlib.util.find_spec("policies.gate") is None:
        return None
    gate = importlib.import_module("policies.gate")
    report = gate.evaluate(plan)
    (out_dir / "policy-report.json").write_text(json.dumps(gate.report_json(report), indent=2) + "\n")
    print(gate.table(report))
    return not gate.has_mandatory_violations(report)


# --- command line -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="plan", description="Offline plan of a stack (no CLI, no credentials)."
    )
    parser.add_argument("stack", nargs="?", help="a committed stack: " + ", ".join(committed_stacks()))
    parser.add_argument("--cloud", choices=CLOUDS, help="override the stack's platform:cloud")
    parser.add_argument("--all", action="store_true", help="every committed stack on every cloud")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config value for this plan (plain keys are platform: keys)",
    )
    parser.add_argument("--out", default=str(REPO_DIR / "build" / "plan"), help="output directory")
    args = parser.parse_args(argv)
    if args.all == bool(args.stack):
        parser.error("give a stack or --all")
    if any("=" not in item for item in args.set):
        parser.error("--set takes KEY=VALUE")
    overrides = dict(item.split("=", 1) for item in args.set)
    runs = [(s, c) for s in committed_stacks() for c in CLOUDS] if args.all else [(args.stack, args.cloud)]
    failed = [
        f"{stack}-{cloud or 'stack cloud'}"
        for stack, cloud in runs
        if not plan_one(stack, cloud, FsPath(args.out), overrides)
    ]
    if len(runs) > 1:
        print(
            f"\n{len(runs) - len(failed)}/{len(runs)} plans passed"
            + (f"; failed: {', '.join(failed)}" if failed else "")
        )
    return 1 if failed else 0


def plan_one(
    stack: str, cloud: str | None, out_root: FsPath, overrides: dict[str, str] | None = None
) -> bool:
    try:
        plan = run_plan(stack, cloud, overrides)
    except Exception as exc:
        label = f"{stack}" + (f" on {cloud}" if cloud else "")
        print(f"plan {label} failed: {_one_line(exc)}", file=sys.stderr)
        return False
    out_dir = out_root / f"{stack}-{plan.cloud}"
    write_artefacts(plan, out_dir)
    print(summary(plan))
    print(
        f"Wrote {_relative(out_dir)}/resources.json and manifests/ ({len(plan.kubernetes_objects())} objects)"
    )
    verdict = policy_gate(plan, out_dir)
    if verdict is None:
        print("Policy gate: policies/gate.py is not present; no policy-report.json written.")
        return True
    return verdict


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if type(exc).__name__ in ("ConfigError", "PlanError") else f"{type(exc).__name__}: {text}"


def _relative(path: FsPath) -> str:
    try:
        return str(path.resolve().relative_to(REPO_DIR))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
