"""`make up STACK=dev` on a real node: the service, its data stores and the add-ons run as containers.

The node (harness/e2e/node.py) runs containerd, kubelet, kube-proxy and CoreDNS in a network namespace of
its own; every request below is sent from inside it (node_client.py), to a Service's cluster IP
(kube-proxy's rules) or to a pod, exactly as another pod would. The images are built here (`make images`):
the service from the repository's Dockerfile on a STAND-IN Python base, Postgres and Redis as STAND-INS
from Debian's packages, and Traefik, Jaeger, metrics-server, the Prometheus operator, Prometheus and the
Argo Rollouts controller as the real programs, built from their pinned Go modules and tagged as the
charts' default images (two differ from their tags: Traefik is v3.6.12 under v3.6.0, Jaeger v2.14.0
under 2.14.1; images.ADDONS). Those add-ons come from STAND-IN charts (harness/e2e/standin_charts.py:
the real charts' names, Services and ports, our own templates), or with E2E_CHARTS from the real
Traefik, Jaeger, metrics-server and Argo Rollouts charts; Argo CD's chart is a placeholder, added by the
GitOps test, whose application controller and repo server run beside the API server; the parts of
kube-prometheus-stack the stand-in does not run are left out. Two more builds of the service are
releases for the canaries: 0.2.0 serves, 0.3.0-faulty (a FAULTY stand-in) answers 500 on /api.

The tests run in file order as one user's session: up, the migration, the API, the front door, traces,
metrics, scaling, a release promoted by its canary, a release rolled back by its canary, a killed pod,
GitOps delivery and back, the API at an HTTPS name in a zone of the stack's own, the destroy.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import images
import node
import node_client
import outside
import pytest
import yaml
from control_plane import TEST_RANGE, TOOLS, Cluster
from e2e_stack import (
    PLATFORM_NAMESPACES,
    Checkout,
    argo_cd_controllers,
    cert_manager_controllers,
    get,
    namespaces,
)
from node_client import grpc_list, http, in_node

UP = ("up", "STACK=dev", "ARGS=--yes")
APP_NAMESPACE = "products"
APP = "product-service"
APPLICATION = ("application", APP, "-n", "argocd")  # the Argo CD Application of the GitOps test
# The pods of the platform and of the add-ons this tier runs (conftest.py's real_checkout leaves Argo CD
# out), by their names' prefixes.
RUNNING_PODS = (
    "postgres-", "redis-", f"{APP}-", f"{APP}-grpc-",
    "traefik-", "jaeger-", "metrics-server-", "kube-prometheus-stack-operator-",
    "prometheus-kube-prometheus-stack-prometheus-", "argo-rollouts-",
)  # fmt: skip


def secret_value(cluster: Cluster, namespace: str, name: str, key: str) -> str:
    secret = get(cluster, "secret", name, "-n", namespace)
    return base64.b64decode(secret["data"][key]).decode()


@pytest.fixture(scope="module")
def deployed(real_checkout: Checkout) -> str:
    return real_checkout.make(*UP).stdout


@pytest.fixture(scope="module")
def api(deployed: str, real_cluster: Cluster) -> str:
    service = get(real_cluster, "service", APP, "-n", APP_NAMESPACE)
    address = service["spec"]["clusterIP"]
    # `up` returns once the pods are ready; kube-proxy writes the Service's rules on its own time after
    # that (until then the address refuses connections), so the first request waits for them, bounded.
    answer = _wait_for_answer(f"http://{address}/health", {}, 200, 60)
    assert answer[0] == 200, f"{APP}'s Service did not answer /health with 200 within 60 s: {answer}"
    return f"http://{address}/api/v1"


@pytest.fixture(scope="module")
def write_token(deployed: str, real_cluster: Cluster) -> str:
    """A write token minted from the JWT secret the stack put in the cluster, as an operator would."""
    from product_service.auth import mint_token  # the service's own minting (the `token` command)

    (secret,) = get(real_cluster, "secrets", "-n", APP_NAMESPACE, "-l", f"app.kubernetes.io/name={APP}")[
        "items"
    ]
    key = base64.b64decode(secret["data"]["JWT_SECRET"]).decode()
    return mint_token(key, subject="e2e", ttl_seconds=600, audience=APP, issuer="product-platform/dev")


def test_the_test_range_is_routed_only_to_the_node_or_nowhere(real_cluster: Cluster) -> None:
    listed = subprocess.run(
        ["ip", "-4", "-j", "route", "show", "table", "all"], capture_output=True, text=True, check=True
    )
    test_range = ipaddress.ip_network(TEST_RANGE)
    inside = [
        r
        for r in json.loads(listed.stdout)
        if r.get("dst", "default") != "default" and ipaddress.ip_network(r["dst"]).subnet_of(test_range)
    ]
    assert any(r.get("type") == "blackhole" and r["dst"] == TEST_RANGE for r in inside)
    assert {r.get("dev") for r in inside if r.get("type") != "blackhole"} <= {node.HOST_VETH}
    node_routes = json.loads(in_node("ip", "-j", "route").stdout)
    assert all(r["dst"] != "default" for r in node_routes), "the node must have no default route"


def test_make_up_runs_every_platform_pod_and_the_add_ons_as_containers(
    deployed: str, real_cluster: Cluster
) -> None:
    # `up` waits for what it creates, but not for the pods others create after it (the operator's
    # Prometheus), nor for Traefik where no load balancer gives its Service an address: wait for those
    # as a user would, within 120 s.
    deadline = time.monotonic() + 120
    while True:
        pods = get(real_cluster, "pods", "--all-namespaces")["items"]
        statuses = {
            p["metadata"]["name"]: p["status"].get("containerStatuses", [])
            for p in pods
            if p["metadata"]["namespace"] in (*PLATFORM_NAMESPACES, "kube-system")
            and p["status"]["phase"] == "Running"
        }
        missing = [prefix for prefix in RUNNING_PODS if not any(name.startswith(prefix) for name in statuses)]
        # A real runtime's container IDs (kwok reports none), every container ready.
        unready = [
            name
            for name, containers in statuses.items()
            if not all(c["containerID"].startswith("containerd://") and c["ready"] for c in containers)
        ]
        if (not missing and not unready) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not missing, f"no running pod named {', '.join(p + '*' for p in missing)}"
    assert not unready, f"not ready within 120 s: {unready}"


def test_the_migration_job_ran_and_created_the_products_table(deployed: str, real_cluster: Cluster) -> None:
    jobs = get(real_cluster, "jobs", "-n", APP_NAMESPACE)["items"]
    assert [j["status"].get("succeeded") for j in jobs] == [1]
    postgres = get(real_cluster, "service", "postgres", "-n", "platform-data")
    password = secret_value(real_cluster, "platform-data", "data-credentials", "POSTGRES_PASSWORD")
    address = postgres["spec"]["clusterIP"]
    query = (
        "import psycopg, sys\n"
        "with psycopg.connect(sys.argv[1]) as db:\n"
        "    print(db.execute(\"select to_regclass('public.products'), (select version_num from alembic_version)\").fetchone())"
    )
    found = in_node(sys.executable, "-c", query, f"postgresql://products:{password}@{address}:5432/products")
    assert found.stdout.startswith("('products', '")


def test_the_api_creates_reads_updates_batch_gets_and_deletes_a_product(api: str, write_token: str) -> None:
    status, created = http("POST", f"{api}/products", write_token, {"name": "Kettle", "price": "24.50"})
    assert status == 201, created
    product = f"{api}/products/{created['id']}"
    assert http("GET", product) == (200, created)
    status, replaced = http("PUT", product, write_token, {"name": "Kettle 2", "price": "26.00"})
    assert (status, replaced["name"]) == (200, "Kettle 2")
    assert http("GET", product)[1]["name"] == "Kettle 2", "the cache must not serve the old product"
    status, batch = http("POST", f"{api}/products:batchGet", "", {"ids": [created["id"]]})
    assert status == 200 and [p["id"] for p in batch["products"]] == [created["id"]], batch
    assert http("POST", f"{api}/products", "", {"name": "x", "price": "1"})[0] == 401
    assert http("DELETE", product, write_token)[0] == 204
    assert http("GET", product)[0] == 404


def test_a_pods_metrics_count_the_requests_it_served(api: str, real_cluster: Cluster) -> None:
    for _ in range(3):
        http("GET", f"{api}/products?limit=1")
    totals = 0.0
    for address in _pod_ips(real_cluster):
        metrics = in_node(
            sys.executable,
            "-c",
            "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())",
            f"http://{address}:8080/metrics",
        ).stdout
        totals += sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("http_server_requests_total{") and 'method="GET"' in line
        )
    assert totals >= 3


def _pod_ips(cluster: Cluster) -> list[str]:
    return [p["status"]["podIP"] for p in _running_pods(cluster)]


def _pod_names(cluster: Cluster) -> list[str]:
    return [p["metadata"]["name"] for p in _running_pods(cluster)]


def _running_pods(cluster: Cluster) -> list[dict[str, Any]]:
    pods = get(cluster, "pods", "-n", APP_NAMESPACE, "-l", f"app.kubernetes.io/name={APP}")["items"]
    return [p for p in pods if p["status"]["phase"] == "Running"]


# --- through the front door: Traefik, the platform's entry point --------------------------------------


@pytest.fixture(scope="module")
def api_host(deployed: str, real_checkout: Checkout) -> str:
    outputs = json.loads(real_checkout.pulumi("stack", "output", "--json").stdout)
    return str(urlsplit(outputs["api_url"]).hostname)


@pytest.fixture(scope="module")
def front_door(api_host: str, real_cluster: Cluster) -> str:
    """The Traefik Service's address, once Traefik routes the API's Ingress (it reads Ingresses on its
    own time after `up`: until then it answers 404), waited for within 60 s."""
    address = get(real_cluster, "service", "traefik", "-n", "ingress")["spec"]["clusterIP"]
    answer = _wait_for_answer(f"http://{address}/api/v1/products?limit=1", {"Host": api_host}, 200, 60)
    assert answer[0] == 200, f"Traefik did not route the API within 60 s: {answer}"
    return f"http://{address}"


def test_through_traefik_a_product_is_created_read_listed_and_deleted(
    front_door: str, api_host: str, write_token: str
) -> None:
    host = {"Host": api_host}
    status, created = http(
        "POST", f"{front_door}/api/v1/products", write_token, {"name": "Lamp", "price": "9.90"}, host
    )
    assert status == 201, created
    product = f"{front_door}/api/v1/products/{created['id']}"
    assert http("GET", product, headers=host) == (200, created)
    status, listed = http("GET", f"{front_door}/api/v1/products?limit=100", headers=host)
    assert status == 200 and created["id"] in [p["id"] for p in listed["items"]], listed
    assert http("DELETE", product, write_token, headers=host)[0] == 204
    assert http("GET", product, headers=host)[0] == 404


def test_a_grpc_call_answers_through_traefiks_grpc_route(front_door: str, api_host: str) -> None:
    answer = grpc_list(f"{urlsplit(front_door).hostname}:80", api_host)
    assert answer["code"] == "OK", answer


def test_traefik_serves_only_what_the_ingress_publishes(front_door: str, api_host: str) -> None:
    for unpublished in ("/metrics", "/health", "/ready", "/"):
        assert http("GET", f"{front_door}{unpublished}", headers={"Host": api_host})[0] == 404, unpublished
    assert http("GET", f"{front_door}/api/v1/products", headers={"Host": "unknown.example"})[0] == 404


# --- traces in Jaeger ----------------------------------------------------------------------------------


def test_a_requests_trace_reaches_jaeger_with_its_postgres_and_redis_spans(
    front_door: str, api_host: str, write_token: str, real_cluster: Cluster
) -> None:
    host = {"Host": api_host}
    created = http(
        "POST", f"{front_door}/api/v1/products", write_token, {"name": "Trace", "price": "1.00"}, host
    )[1]
    # The caller starts a sampled trace (W3C traceparent); the service's parent-based sampler follows it.
    trace_id = os.urandom(16).hex()
    traceparent = {"traceparent": f"00-{trace_id}-{os.urandom(8).hex()}-01"}
    # A read after a write misses the cache: Redis is asked, then Postgres.
    assert (
        http("GET", f"{front_door}/api/v1/products/{created['id']}", headers={**host, **traceparent})[0]
        == 200
    )
    jaeger = get(real_cluster, "service", "jaeger", "-n", "tracing")["spec"]["clusterIP"]
    # The service's batch exporter sends within its schedule delay; Jaeger answers 404 until then.
    status, found = _wait_for_answer(f"http://{jaeger}:16686/api/traces/{trace_id}", {}, 200, 30)
    assert status == 200, found
    (trace,) = found["data"]
    spans = [
        {**{t["key"]: t["value"] for t in span["tags"]}, "operation": span["operationName"]}
        for span in trace["spans"]
    ]
    assert any(s.get("span.kind") == "server" and "/api/v1/products" in s["operation"] for s in spans), spans
    assert any(s.get("db.system") in ("postgresql", "postgres") for s in spans), spans
    assert any(s.get("db.system") == "redis" for s in spans), spans
    assert {p["serviceName"] for p in trace["processes"].values()} == {APP}


# --- metrics: the metrics API, the HPA, Prometheus -----------------------------------------------------


def test_kubectl_top_reports_the_service_pods_and_the_hpa_reads_their_cpu(
    front_door: str, real_cluster: Cluster
) -> None:
    # metrics-server scrapes the kubelets every 15 s, and the HPA controller reads it every 15 s.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        top = real_cluster.kubectl("top", "pods", "-n", APP_NAMESPACE, "--no-headers", check=False)
        reported = [line.split()[0] for line in top.stdout.splitlines()]
        utilization = _hpa_cpu(real_cluster)
        if any(name.startswith(f"{APP}-") for name in reported) and utilization is not None:
            return
        time.sleep(2)
    raise AssertionError(
        f"within 120 s: kubectl top said {top.stdout or top.stderr!r}, the HPA's CPU {utilization}"
    )


def test_prometheus_scrapes_the_service_through_its_servicemonitor_and_loads_its_alert_rules(
    front_door: str, real_cluster: Cluster
) -> None:
    prometheus = get(real_cluster, "service", "kube-prometheus-stack-prometheus", "-n", "monitoring")
    url = f"http://{prometheus['spec']['clusterIP']}:9090/api/v1"
    pods = set(_pod_names(real_cluster))
    # The operator writes the scrape configuration, the reloader applies it, the first scrape follows.
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        status, targets = http("GET", f"{url}/targets?state=active")
        healthy = {
            t["labels"].get("pod")
            for t in (targets["data"]["activeTargets"] if status == 200 else [])
            if t["scrapePool"].startswith(f"serviceMonitor/{APP_NAMESPACE}/") and t["health"] == "up"
        }
        if pods <= healthy:
            break
        time.sleep(2)
    assert pods <= healthy, f"the service's pods {pods} are not all healthy targets: {healthy}"
    groups = http("GET", f"{url}/rules?type=alert")[1]["data"]["groups"]
    alerts = {rule["name"] for group in groups for rule in group["rules"]}
    assert {"ProductServiceHighErrorRate", "ProductServiceHighLatency"} <= alerts, alerts


# --- scaling ---------------------------------------------------------------------------------------------


def test_one_client_beyond_its_rate_gets_429_from_traefik(front_door: str, api_host: str) -> None:
    # 4 clients from one address (the node's) for 5 s: the API's per-client limits hold them.
    load = node_client.load(f"{front_door}/api/v1/products?limit=1", api_host, threads=4, seconds=5)
    answers = json.loads(load.communicate(timeout=60)[0])
    assert answers.get("200") and answers.get("429"), answers


def test_under_load_the_hpa_scales_the_api_and_the_new_pods_serve(api: str, real_cluster: Cluster) -> None:
    minimum = get(real_cluster, "hpa", APP, "-n", APP_NAMESPACE)["spec"]["minReplicas"]
    before = set(_pod_ips(real_cluster))
    # 8 clients for at most 150 s, from the node's namespace to the Service (through Traefik, one client
    # address is held to its rate, see above); the load stops by itself.
    started = time.monotonic()
    load = node_client.load(f"{api}/products?limit=20", urlsplit(api).hostname or "", threads=8, seconds=150)
    ready = minimum
    try:
        while load.poll() is None and ready <= minimum:
            time.sleep(1)
            ready = get(real_cluster, "rollout", APP, "-n", APP_NAMESPACE)["status"].get("readyReplicas", 0)
        scaled_after = time.monotonic() - started
    finally:
        load.terminate()  # by its PID, whether it stopped by itself or not
        answers = load.communicate(timeout=30)[0]
    print(f"{ready} ready replicas {scaled_after:.0f} s into the load (8 clients); answers: {answers}")
    assert ready > minimum, f"no replica above {minimum} within 150 s of load (answers: {answers})"
    new = set(_pod_ips(real_cluster)) - before
    assert new, "the Rollout has more ready replicas, but no new pod address"
    for address in new:
        assert http("GET", f"http://{address}:8080/api/v1/products?limit=1")[0] == 200, address


def _hpa_cpu(cluster: Cluster) -> int | None:
    metrics = get(cluster, "hpa", APP, "-n", APP_NAMESPACE)["status"].get("currentMetrics") or []
    return next(
        (m["resource"]["current"].get("averageUtilization") for m in metrics if m.get("resource")), None
    )


def _wait_for_answer(
    url: str, headers: dict[str, str], status: int, seconds: float
) -> tuple[int | None, Any]:
    """GET `url` until it answers `status`, for at most `seconds`; the last answer."""
    deadline = time.monotonic() + seconds
    answer: tuple[int | None, Any] = (None, "no answer yet")
    while time.monotonic() < deadline:
        try:
            answer = http("GET", url, headers=headers)
        except subprocess.CalledProcessError as refused:
            answer = (None, refused.stderr.strip()[-300:])
        if answer[0] == status:
            break
        time.sleep(0.5)
    return answer


def _release(
    user: Checkout, api: str, image: str
) -> tuple[subprocess.CompletedProcess[str], float, dict[str, int]]:
    """`make up` of `image` while 4 clients call the API through its Service, a new connection for each
    request (so the canary's pods get their share as they come); what `up` said, how long it took, and
    the answers by status."""
    user.pulumi("config", "set", "platform:image", image)
    load = node_client.load(
        f"{api}/products?limit=5", urlsplit(api).hostname or "", threads=4, seconds=420, reconnect=True
    )
    started = time.monotonic()
    try:
        result = user.make(*UP, check=False)
        took = time.monotonic() - started
    finally:
        load.terminate()  # by its PID, whether it stopped by itself or not
        answers: dict[str, int] = json.loads(load.communicate(timeout=30)[0])
    return result, took, answers


def _app_pod_images(cluster: Cluster) -> set[str]:
    return {
        c["image"]
        for p in get(cluster, "pods", "-n", APP_NAMESPACE, "-l", "app.kubernetes.io/component=api")["items"]
        if "deletionTimestamp" not in p["metadata"]
        for c in p["spec"]["containers"]
    }


def _analysis_runs(cluster: Cluster) -> list[dict[str, Any]]:
    runs = get(cluster, "analysisruns", "-n", APP_NAMESPACE, "-l", "rollouts-pod-template-hash")["items"]
    return sorted(runs, key=lambda r: r["metadata"]["creationTimestamp"])


def test_a_release_that_serves_is_promoted_by_its_canary_and_up_waits_for_it(
    real_checkout: Checkout, real_cluster: Cluster, api: str
) -> None:
    result, took, answers = _release(real_checkout, api, images.IMAGES["product-service-next"])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    status = get(real_cluster, "rollout", APP, "-n", APP_NAMESPACE)["status"]
    assert status["phase"] == "Healthy" and status["stableRS"] == status["currentPodHash"], status
    assert _app_pod_images(real_cluster) == {images.IMAGES["product-service-next"]}
    [*_, run] = [r for r in _analysis_runs(real_cluster) if r["metadata"]["name"].startswith(f"{APP}-")]
    measured = {
        m["name"]: [x.get("value") for x in m.get("measurements", [])] for m in run["status"]["metricResults"]
    }
    print(f"promoted: `up` took {took:.0f} s; the canary's analysis measured {measured}; answers {answers}")
    assert run["status"]["phase"] == "Successful", run["status"]
    # The analysis judged the new version's own answers, not an empty result.
    assert any(value not in (None, "[]", "[NaN]") for value in measured["error-ratio"]), measured
    assert not [status for status in answers if status.startswith("5") or status == "error"], answers


def test_a_release_that_answers_5xx_is_rolled_back_by_its_canary_and_up_fails(
    real_checkout: Checkout, real_cluster: Cluster, api: str
) -> None:
    stable = images.IMAGES["product-service-next"]
    result, took, answers = _release(real_checkout, api, images.IMAGES["product-service-faulty"])
    said = result.stdout + result.stderr
    assert (
        result.returncode != 0 and f"the release of Rollout {APP_NAMESPACE}/{APP} was rolled back" in said
    ), said[-3000:]
    status = get(real_cluster, "rollout", APP, "-n", APP_NAMESPACE)["status"]
    assert status.get("abort") is True, status
    # The stable version takes every pod back; the faulty one never had more than its canary's share.
    deadline = time.monotonic() + 60
    while (running := _app_pod_images(real_cluster)) != {stable} and time.monotonic() < deadline:
        time.sleep(1)
    assert running == {stable}
    [*_, run] = [r for r in _analysis_runs(real_cluster) if r["metadata"]["name"].startswith(f"{APP}-")]
    assert run["status"]["phase"] == "Failed", run["status"]
    [errors] = [m for m in run["status"]["metricResults"] if m["name"] == "error-ratio"]
    failed = [m for m in errors["measurements"] if m["phase"] == "Failed"]
    started = run["status"]["startedAt"]
    total = sum(answers.values())
    print(
        f"rolled back: `up` failed after {took:.0f} s; analysis started {started}, first failed measurement "
        f"{failed[0]['finishedAt']} (error ratio {failed[0]['value']}); answers during the release {answers} "
        f"({answers.get('500', 0) / max(total, 1):.0%} were 500)"
    )
    assert answers.get("500", 0) < 0.75 * total, "the faulty version answered nearly everything"
    assert http("GET", f"{api}/products?limit=1")[0] == 200


def test_a_killed_service_pod_is_replaced_and_the_api_answers_again(api: str, real_cluster: Cluster) -> None:
    selector = ("-n", APP_NAMESPACE, "-l", "app.kubernetes.io/component=api")
    before = {p["metadata"]["uid"] for p in get(real_cluster, "pods", *selector)["items"]}
    real_cluster.kubectl("delete", "pod", *selector, "--wait=false")
    # The Rollout's ReplicaSet makes new pods; wait for one to be ready, within 120 s.
    deadline = time.monotonic() + 120
    after: set[str] = set()
    while not after and time.monotonic() < deadline:
        after = {
            p["metadata"]["uid"]
            for p in get(real_cluster, "pods", *selector)["items"]
            if "deletionTimestamp" not in p["metadata"]
            and p["metadata"]["uid"] not in before
            and all(c.get("ready") for c in p["status"].get("containerStatuses", [{}]))
        }
        time.sleep(0.5)
    assert after, "no new ready pod within 120 s"
    assert _wait_for_answer(f"{api}/products?limit=1", {}, 200, 60)[0] == 200


# --- GitOps: the stack hands its workloads to what Argo CD syncs, and takes them back ---------------------


def test_argo_cd_syncs_a_live_stack_from_git_heals_prunes_and_reverts_and_hands_it_back(
    real_checkout: Checkout, real_cluster: Cluster, api: str, tmp_path: Path
) -> None:
    """The switch docs/delivery.md describes, with Argo CD's own application controller and repo server
    (beside the API server: e2e_stack.argo_cd_controllers) syncing the stack's folder from a Git repository
    served over HTTPS on the node's link: the first sync (its PreSync migration first), a hand edit undone, a
    file removed in Git pruned, a revert that brings it back; then back to direct delivery."""
    # The image the pods run (after the release its canary rolled back, the stack still names the faulty one).
    [running] = _app_pod_images(real_cluster)
    with (
        outside.GitServer(tmp_path / "git", "platform", node.HOST_ADDRESS) as git,
        contextlib.ExitStack() as running_argo_cd,
    ):
        shutil.copytree(real_checkout.root / "deploy", git.work / "deploy")
        git.publish("The product service's manifests, as make deploy-manifests writes them")
        real_checkout.pulumi("config", "set", "platform:image", running)
        settings = {"delivery": "argocd", "gitopsRepoUrl": git.url}
        for key, value in settings.items():
            real_checkout.pulumi("config", "set", f"platform:{key}", value)
        real_checkout.pulumi("config", "set", "--path", "platform:addons[4]", "argo-cd")
        try:
            real_checkout.make(*UP)
            assert get(real_cluster, "rollouts", "-n", APP_NAMESPACE)["items"] == [], (
                "Pulumi kept its Rollouts"
            )
            running_argo_cd.enter_context(
                argo_cd_controllers(real_cluster, tmp_path / "argo-cd", node.HOST_ADDRESS, git.ca_file)
            )
            started = time.monotonic()
            _wait_for(real_cluster, APPLICATION, "{.status.sync.status}", "Synced", 300)
            for name in (APP, f"{APP}-grpc"):  # as Argo Rollouts sees them, not Argo CD's last look
                _wait_for(
                    real_cluster, ("rollout", name, "-n", APP_NAMESPACE), "{.status.phase}", "Healthy", 240
                )
            _wait_for(real_cluster, APPLICATION, "{.status.health.status}", "Healthy", 120)
            figures = {"first sync, healthy (s)": round(time.monotonic() - started, 1)}
            in_git = yaml.safe_load((git.work / "deploy" / "dev" / f"rollout-{APP}.yaml").read_text())
            assert _app_pod_images(real_cluster) == {
                in_git["spec"]["template"]["spec"]["containers"][0]["image"]
            }
            assert _wait_for_answer(f"{api}/products?limit=1", {}, 200, 60)[0] == 200
            # The migration ran as the sync's PreSync hook, before the servers.
            migration = get(real_cluster, "job", f"{APP}-migrate", "-n", APP_NAMESPACE)
            assert migration["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PreSync"
            assert migration["status"]["succeeded"] == 1

            # A hand edit of a synced object is undone (selfHeal).
            hpa = ("hpa", APP, "-n", APP_NAMESPACE)
            replicas = get(real_cluster, *hpa)["spec"]["maxReplicas"]
            started = time.monotonic()
            real_cluster.kubectl(
                "patch", *hpa, "--type=merge", f'--patch={{"spec":{{"maxReplicas":{replicas + 7}}}}}'
            )
            _wait_for(real_cluster, hpa, "{.spec.maxReplicas}", str(replicas), 180)
            figures["hand edit undone (s)"] = round(time.monotonic() - started, 1)

            # A manifest removed in Git is pruned; its revert brings it back (a rollback is a revert).
            budget = f"poddisruptionbudget-{APP}-grpc.yaml"
            kustomization = git.work / "deploy" / "dev" / "kustomization.yaml"
            kustomization.write_text(kustomization.read_text().replace(f"- {budget}\n", ""))
            (git.work / "deploy" / "dev" / budget).unlink()
            started = time.monotonic()
            _refresh(real_cluster, git.publish("Remove the gRPC server's disruption budget"))
            real_cluster.kubectl("wait", "--for=delete", f"pdb/{APP}-grpc", "-n", APP_NAMESPACE,
                                 "--timeout=180s", timeout=190)  # fmt: skip
            figures["removed in Git, pruned (s)"] = round(time.monotonic() - started, 1)
            git.git("revert", "--no-edit", "HEAD")
            started = time.monotonic()
            _refresh(real_cluster, git.push())
            real_cluster.kubectl("wait", "--for=create", f"pdb/{APP}-grpc", "-n", APP_NAMESPACE,
                                 "--timeout=180s", timeout=190)  # fmt: skip
            figures["reverted, back (s)"] = round(time.monotonic() - started, 1)
            print(f"Argo CD on the real node: {figures}")
        finally:
            # Back to direct with Argo CD still running (docs/delivery.md): its automated sync off first, or it
            # would put Git's servers back over Pulumi's until the `up` deletes the Application, at its end.
            automated_sync_off = '--patch=[{"op": "remove", "path": "/spec/syncPolicy/automated"}]'
            real_cluster.kubectl("patch", *APPLICATION, "--type=json", automated_sync_off, check=False)
            for key in settings:
                real_checkout.pulumi("config", "rm", f"platform:{key}")
            real_checkout.pulumi("config", "rm", "--path", "platform:addons[4]")
            # docs/delivery.md: the last migration Job Argo CD ran is deleted by hand.
            real_cluster.kubectl("delete", "job", f"{APP}-migrate", "-n", APP_NAMESPACE, "--ignore-not-found")
            back = real_checkout.make(*UP, check=False)
    assert back.returncode == 0, back.stdout[-3000:] + back.stderr[-3000:]
    assert real_cluster.kubectl("get", *APPLICATION, check=False).returncode != 0, (
        "the Application is still there"
    )
    assert _app_pod_images(real_cluster) == {running}
    assert _wait_for_answer(f"{api}/products?limit=1", {}, 200, 60)[0] == 200


def _wait_for(cluster: Cluster, what: tuple[str, ...], path: str, value: str, seconds: int) -> None:
    """Until the field at jsonpath `path` of `what` is `value`, for at most `seconds`."""
    cluster.kubectl(
        "wait", f"--for=jsonpath={path}={value}", *what, f"--timeout={seconds}s", timeout=seconds + 10
    )


def _refresh(cluster: Cluster, revision: str) -> None:
    """What Git's webhook (or `argocd app get --refresh`) does after a push: Argo CD looks at Git now rather
    than at its next poll; then until the Application is synced to `revision`."""
    cluster.kubectl("annotate", "--overwrite", *APPLICATION, "argocd.argoproj.io/refresh=normal")
    _wait_for(cluster, APPLICATION, "{.status.sync.revision}", revision, 180)
    _wait_for(cluster, APPLICATION, "{.status.sync.status}", "Synced", 180)


# --- the API at an HTTPS name: its record and certificate written by the platform ------------------------

ZONE = "shop.test"  # RFC 6761's reserved .test: never a real zone


def _release_values(state: dict[str, Any], chart: str) -> dict[str, Any]:
    """The values the program gave `chart`'s release, as the exported state holds them."""
    [release] = [
        r
        for r in state["deployment"]["resources"]
        if r["type"] == "kubernetes:helm.sh/v3:Release" and r["inputs"]["chart"] == chart
    ]
    return dict(release["inputs"]["values"])


def _external_dns_args(values: dict[str, Any]) -> list[str]:
    """The arguments external-dns chart 1.21.1 renders from the values the program sets
    (templates/deployment.yaml): its sources, policy, registry, owner, domain filters, provider, extraArgs."""
    return [
        *(f"--source={source}" for source in values["sources"]),
        f"--policy={values['policy']}",
        f"--registry={values['registry']}",
        f"--txt-owner-id={values['txtOwnerId']}",
        *(f"--domain-filter={domain}" for domain in values["domainFilters"]),
        f"--provider={values['provider']['name']}",
        *values["extraArgs"],
    ]


def test_the_api_answers_at_an_https_name_whose_record_and_certificate_the_platform_wrote(
    real_checkout: Checkout, real_cluster: Cluster, front_door: str, tmp_path: Path
) -> None:
    """A zone on a DNS server outside the cluster (Knot, RFC 2136) and an ACME server (Pebble, standing in
    for Let's Encrypt), named by stack config alone. external-dns and cert-manager are the real programs,
    run beside the API server with the arguments their charts give them from the program's values: the
    node runs neither (docs/e2e.md, "The HTTPS name")."""
    address = str(urlsplit(front_door).hostname)  # Traefik's Service: where the records must point
    host = f"api.{ZONE}"
    with (
        outside.DnsZone(tmp_path / "dns", ZONE, node.HOST_ADDRESS) as dns,
        outside.AcmeServer(tmp_path / "acme", node.HOST_ADDRESS, dns.endpoint) as acme,
    ):
        settings = {
            "domain": ZONE,
            "acmeEmail": f"ops@{ZONE}",
            "acmeServer": acme.directory,
            "dnsServer": dns.endpoint,
            "dnsTsigKeyName": outside.TSIG_KEY,
            "ingressAddress": address,
        }
        # The image the pods run: after the release its canary rolled back, the stack still names the faulty
        # one, and `up` would report that rollback again (docs/delivery.md, "Rolling back or forward by hand").
        [running] = _app_pod_images(real_cluster)
        settings["image"] = running
        for key, value in settings.items():
            real_checkout.pulumi("config", "set", f"platform:{key}", value)
        # From standard input: a PEM's first line reads as a flag, and a secret stays out of argv and the log.
        real_checkout.pulumi("config", "set", "platform:acmeCaBundle", stdin=acme.ca_file.read_text())
        real_checkout.pulumi("config", "set", "--secret", "platform:dnsTsigSecret", stdin=dns.tsig_secret)
        real_checkout.make(*UP)
        state = real_checkout.state()
        assert dns.tsig_secret not in json.dumps(state)
        cert_manager, external_dns = (
            _release_values(state, chart) for chart in ("cert-manager", "external-dns")
        )
        flags = (
            f"--dns01-recursive-nameservers={cert_manager['dns01RecursiveNameservers']}",
            "--dns01-recursive-nameservers-only",
            "--dns01-check-retry-period=2s",
        )
        with cert_manager_controllers(real_cluster, tmp_path / "cert-manager.log", *flags):
            # Traefik publishes platform:ingressAddress in the Ingress's status; external-dns reads it there.
            deadline = time.monotonic() + 60
            while (published := _published(real_cluster)) != [address] and time.monotonic() < deadline:
                time.sleep(0.5)
            assert published == [address], published
            [key] = [e for e in external_dns["env"] if e["name"] == "EXTERNAL_DNS_RFC2136_TSIG_SECRET"]
            reference = key["valueFrom"]["secretKeyRef"]
            tsig = secret_value(real_cluster, "external-dns", reference["name"], reference["key"])
            subprocess.run(
                [str(TOOLS / "external-dns"), f"--kubeconfig={real_cluster.kubeconfig}", "--once",
                 *_external_dns_args(external_dns)],
                env={**os.environ, "EXTERNAL_DNS_RFC2136_TSIG_SECRET": tsig},
                capture_output=True, text=True, timeout=120, check=True,
            )  # fmt: skip
            assert dns.query(host) == [address]
            assert dns.query(f"mail.{ZONE}") == ["192.0.2.25"], (
                "a record external-dns does not own was changed"
            )

            # The first certificate: cert-manager waits 60 s once the challenge's record is served.
            started = time.monotonic()
            ready = real_cluster.kubectl(
                "wait", "--for=condition=Ready", "certificate", "--all", "-A", "--timeout=240s",
                check=False, timeout=250,
            )  # fmt: skip
            issued = time.monotonic() - started
            # The challenges are solved and removed (each holds a finalizer until cert-manager cleans its record).
            deadline = time.monotonic() + 60
            while get(real_cluster, "challenges", "-A")["items"] and time.monotonic() < deadline:
                time.sleep(0.5)
        assert ready.returncode == 0, ready.stderr + (tmp_path / "cert-manager.log").read_text()[-3000:]
        assert not get(real_cluster, "challenges", "-A")["items"]

        root = tmp_path / "acme-root.crt"
        root.write_text(acme.root_certificate())
        [resolved] = dns.query(host)
        answer = node_client.https_get(resolved, host, "/api/v1/products?limit=1", str(root))
        print(
            f"HTTPS name: {host} -> {resolved}; the certificates were issued {issued:.0f} s after the record"
        )
        assert answer["status"] == 200, answer
        assert "max-age=" in answer["headers"].get("Strict-Transport-Security", ""), answer["headers"]


def _published(cluster: Cluster) -> list[str]:
    [ingress] = [
        i
        for i in get(cluster, "ingress", "-n", APP_NAMESPACE)["items"]
        if "grpc" not in i["metadata"]["name"]
    ]
    return [a.get("ip") for a in ingress.get("status", {}).get("loadBalancer", {}).get("ingress", [])]


def test_make_destroy_leaves_no_platform_namespace_and_no_container(
    real_checkout: Checkout, real_cluster: Cluster, deployed: str
) -> None:
    real_checkout.make("destroy", "STACK=dev", "ARGS=--yes")
    assert not namespaces(real_cluster) & set(PLATFORM_NAMESPACES)
    runtime = node.RealNode(real_cluster.state)
    # The namespaces are gone once their pods are; the kubelet then removes the containers.
    deadline = time.monotonic() + 60
    while (
        containers := runtime.ctr("containers", "list", "--quiet").stdout.split()
    ) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert containers == []
