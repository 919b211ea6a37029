"""Releases as canaries, where the argo-rollouts add-on runs (cluster/rollouts.py): each workload is an
Argo Rollout instead of a Deployment, with the same pod template.

A new version gets a share of the pods at each step of platform:profile's canary (config.CANARY_STEPS);
the Service sends to canary and stable pods alike, so its share of the traffic follows. At each step an
AnalysisRun measures the new version's own answers in Prometheus, told apart by the pod-template hash the
ServiceMonitor copies onto its series (`rollouts_pod_template_hash`):
- its error ratio (5xx, or gRPC's server-side codes, over all answers) against platform:canaryMaxErrorRatio;
- its p99 latency against platform:canaryMaxP99Seconds.
A measurement without answers to judge passes: a canary that no one calls is promoted. A failed one beyond
the profile's limit aborts the release, and the controller scales the stable version back to every pod.

Where Pulumi delivers the workloads, `RolloutOutcome` makes `pulumi up` wait for the release's end and
fail when it was rolled back.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, cast

import pulumi
from cluster.rollouts import PROMETHEUS_URL
from config import Canary
from kube import SKIP_AWAIT

ROLLOUTS_API = "argoproj.io/v1alpha1"
# The label Argo Rollouts puts on each version's pods, and its name on their series in Prometheus.
HASH_LABEL = "rollouts-pod-template-hash"
HASH_SERIES_LABEL = HASH_LABEL.replace("-", "_")
# The provider's own waits cannot read a Rollout: kstatus refuses its string observedGeneration, and
# pulumi-kubernetes v4.25.0 then dereferences the missing result and crashes
# (pkg/await/condition/deleted.go). RolloutOutcome waits for a release instead. skipAwait ends the wait
# on creation and update; on deletion the provider honours it for built-in kinds only
# (pkg/metadata/overrides.go), so a Rollout is deleted in the background: the API server removes it at
# once and its ReplicaSets after it, and the provider finds it gone without reading its status.
ROLLOUT_AWAIT = {**SKIP_AWAIT, "pulumi.com/deletionPropagationPolicy": "background"}
# The window of each rate: two scrapes of the ServiceMonitors' 30 s interval.
RATE_WINDOW = "1m"
# gRPC's codes that say the server failed (as HTTP's 5xx do); the others are the caller's doing.
GRPC_SERVER_ERRORS = "Unknown|DeadlineExceeded|Unimplemented|Internal|Unavailable|DataLoss"


@dataclass(frozen=True)
class Signals:
    """A workload's metrics that judge a release: its answers' counter, the selector of its failures among
    them, and its latency histogram's buckets."""

    answers: str
    failures: str
    duration_buckets: str


HTTP_SIGNALS = Signals(
    "http_server_requests_total", 'status=~"5.."', "http_server_request_duration_seconds_bucket"
)
GRPC_SIGNALS = Signals(
    "grpc_server_handled_total", f'grpc_code=~"{GRPC_SERVER_ERRORS}"', "grpc_server_handling_seconds_bucket"
)


def canary_strategy(template: str, canary: Canary) -> dict[str, Any]:
    """The Rollout's strategy: at each weight, the AnalysisTemplate `template` on the new version's pods.
    A canary whose pods never become ready aborts too, after the progress deadline (the Rollout's)."""
    judged = {
        "analysis": {
            "templates": [{"templateName": template}],
            "args": [{"name": "canary-hash", "valueFrom": {"podTemplateHashValue": "Latest"}}],
        }
    }
    steps: list[dict[str, Any]] = []
    for weight in canary.weights:
        steps += [{"setWeight": weight}, judged]
    # As the Deployment's rolling update: no pod fewer than asked for, a quarter more while it changes.
    return {"canary": {"maxSurge": "25%", "maxUnavailable": 0, "steps": steps}}


def analysis_template(job: str, namespace: str, signals: Signals, canary: Canary) -> dict[str, Any]:
    """The AnalysisTemplate's spec: the error ratio and the p99 of the version whose pod-template hash is
    the `canary-hash` argument, among the series of `job` (the workload's Service) in `namespace`."""
    version = f'namespace="{namespace}", job="{job}", {HASH_SERIES_LABEL}="{{{{args.canary-hash}}}}"'
    answers = f"sum(rate({signals.answers}{{{version}}}[{RATE_WINDOW}]))"
    failures = f"sum(rate({signals.answers}{{{version}, {signals.failures}}}[{RATE_WINDOW}]))"
    # `or vector(0)`: no failure yet is a ratio of 0, not no ratio; no answer at all stays no result.
    error_ratio = f"({failures} or vector(0)) / {answers}"
    p99 = (
        f"histogram_quantile(0.99, sum by (le) "
        f"(rate({signals.duration_buckets}{{{version}}}[{RATE_WINDOW}])))"
    )

    def metric(name: str, query: str, bar: float) -> dict[str, Any]:
        return {
            "name": name,
            "initialDelay": f"{canary.delay_seconds}s",
            "interval": f"{canary.interval_seconds}s",
            "count": canary.measurements,
            "failureLimit": canary.failure_limit,
            # No answers to judge (an empty result, or NaN from empty buckets) passes.
            "successCondition": f"len(result) == 0 || isNaN(result[0]) || result[0] <= {bar}",
            "provider": {"prometheus": {"address": PROMETHEUS_URL, "query": query}},
        }

    return {
        "args": [{"name": "canary-hash"}],
        "metrics": [
            metric("error-ratio", error_ratio, canary.max_error_ratio),
            metric("p99-latency", p99, canary.max_p99_seconds),
        ],
    }


def outcome_timeout_seconds(canary: Canary) -> int:
    """How long `pulumi up` waits for a release: every step's analysis, and ten minutes for the pods."""
    per_step = canary.delay_seconds + canary.interval_seconds * canary.measurements
    return len(canary.weights) * per_step + 600


def _provider() -> pulumi.dynamic.ResourceProvider:
    """The provider behind RolloutOutcome. Pulumi pickles a dynamic provider and runs it in a process of
    its own, where this program's modules are not importable: the class is defined here, inside a
    function, so that it is pickled whole, and it imports what it uses when it runs."""

    class RolloutOutcomeProvider(pulumi.dynamic.ResourceProvider):
        def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
            self._wait(props)
            return pulumi.dynamic.CreateResult(f"{props['namespace']}/{props['name']}", props)

        def update(
            self, _id: str, _olds: dict[str, Any], news: dict[str, Any]
        ) -> pulumi.dynamic.UpdateResult:
            self._wait(news)
            return pulumi.dynamic.UpdateResult(news)

        def _wait(self, props: dict[str, Any]) -> None:
            import time

            import yaml
            from kubernetes import client, config

            if props["kubeconfig"]:
                api_client = config.new_client_from_config_dict(yaml.safe_load(props["kubeconfig"]))
            else:  # the local target: the user's kubeconfig, as the Kubernetes provider reads it
                api_client = config.new_client_from_config(context=props["context"] or None)
            rollouts = client.CustomObjectsApi(api_client)
            namespace, name = props["namespace"], props["name"]
            deadline = time.monotonic() + props["timeout_seconds"]
            phase, message = "not yet observed", ""
            while time.monotonic() < deadline:
                rollout = cast(
                    dict[str, Any],
                    rollouts.get_namespaced_custom_object(
                        "argoproj.io", "v1alpha1", namespace, "rollouts", name
                    ),
                )
                status = rollout.get("status", {})
                # Until the controller has seen this spec, its status speaks of the one before.
                if status.get("observedGeneration") == str(rollout["metadata"]["generation"]):
                    phase, message = status.get("phase", ""), status.get("message", "")
                    if phase == "Healthy" and status.get("stableRS") == status.get("currentPodHash"):
                        return
                    if status.get("abort") or phase == "Degraded":
                        raise RuntimeError(
                            f"the release of Rollout {namespace}/{name} was rolled back: {message} "
                            f"(kubectl -n {namespace} get analysisruns shows each measurement)"
                        )
                time.sleep(5)  # a release takes minutes; a status read every 5 s costs the API nothing
            raise RuntimeError(
                f"Rollout {namespace}/{name} did not finish within {props['timeout_seconds']} s "
                f"(phase {phase}: {message})"
            )

    return RolloutOutcomeProvider()


class RolloutOutcome(pulumi.dynamic.Resource, module="rollouts", name="RolloutOutcome"):
    """Waits for the release of Rollout `namespace/name` whose pod template is `template`: done when the
    new version is the stable one, failed when it was rolled back. A stack whose release failed stays
    failed on each `up` until its template changes (a fix, or the previous image)."""

    def __init__(
        self,
        resource_name: str,
        namespace: str,
        name: str,
        template: Any,
        canary: Canary,
        kubeconfig: pulumi.Input[str],
        context: str | None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            _provider(),
            resource_name,
            {
                "namespace": namespace,
                "name": name,
                # What makes a new release: a change of the template makes this resource wait again.
                "template": pulumi.Output.from_input(template).apply(_digest),
                "timeout_seconds": outcome_timeout_seconds(canary),
                "kubeconfig": pulumi.Output.secret(kubeconfig),
                "context": context or "",
            },
            opts,
        )


def _digest(template: Any) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
