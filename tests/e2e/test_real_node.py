"""`make up STACK=dev` on a real node: the service, its migration Job, Postgres and Redis run as containers.

The node (harness/e2e/node.py) runs containerd, kubelet, kube-proxy and CoreDNS in a network namespace of
its own; every request below is sent from inside it, to the Service's cluster IP (kube-proxy's rules) or
to a pod, exactly as another pod would. The images are built here (`make images`): the service from the
repository's Dockerfile on a STAND-IN Python base, Postgres and Redis as STAND-INS from Debian's
packages. The add-on charts are still PLACEHOLDERS (their images cannot be had), so no Traefik runs and
the Ingress is not exercised: requests go through the Service.

The tests run in file order as one user's session: up, the migration, the API, the metrics, a killed
pod, the destroy.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import subprocess
import sys
import time
from typing import Any

import node
import pytest
from control_plane import TEST_RANGE, Cluster
from e2e_stack import PLATFORM_NAMESPACES, Checkout, get, namespaces

UP = ("up", "STACK=dev", "ARGS=--yes")
APP_NAMESPACE = "products"
APP = "product-service"
# Run inside the node's network namespace: an HTTP exchange, printed as JSON.
HTTP_CLIENT = """
import json, sys, urllib.request, urllib.error
method, url, token, body = sys.argv[1:5]
request = urllib.request.Request(url, method=method, data=body.encode() or None,
    headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})})
try:
    with urllib.request.urlopen(request, timeout=10) as response:
        print(json.dumps({"status": response.status, "body": response.read().decode()}))
except urllib.error.HTTPError as error:
    print(json.dumps({"status": error.code, "body": error.read().decode()}))
"""


def in_node(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nsenter", f"--net={node.NETNS_DIR / node.NETNS}", *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def http(method: str, url: str, token: str = "", body: Any = None) -> tuple[int, Any]:
    sent = json.dumps(body) if body is not None else ""
    answer = json.loads(in_node(sys.executable, "-c", HTTP_CLIENT, method, url, token, sent).stdout)
    text = answer["body"]
    return answer["status"], json.loads(text) if text.startswith(("{", "[")) else text


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
    deadline = time.monotonic() + 60
    answer: tuple[int | None, Any] = (None, "no answer yet")
    while time.monotonic() < deadline:
        try:
            answer = http("GET", f"http://{address}/health")
        except subprocess.CalledProcessError as refused:
            answer = (None, refused.stderr.strip()[-300:])
        if answer[0] == 200:
            return f"http://{address}/api/v1"
        time.sleep(0.5)
    raise AssertionError(f"{APP}'s Service did not answer /health with 200 within 60 s: {answer}")


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


def test_make_up_runs_every_platform_pod_as_a_container_with_the_add_on_charts_as_placeholders(
    deployed: str, real_cluster: Cluster
) -> None:
    pods = get(real_cluster, "pods", "--all-namespaces")["items"]
    running = {
        p["metadata"]["name"]: p["status"].get("containerStatuses", [])
        for p in pods
        if p["metadata"]["namespace"] in PLATFORM_NAMESPACES and p["status"]["phase"] == "Running"
    }
    assert any(name.startswith("postgres-") for name in running)
    assert any(name.startswith("redis-") for name in running)
    assert any(name.startswith(f"{APP}-") for name in running)
    for name, statuses in running.items():
        # A real runtime's container IDs (kwok reports none).
        assert all(s["containerID"].startswith("containerd://") and s["ready"] for s in statuses), name


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
    pods = get(cluster, "pods", "-n", APP_NAMESPACE, "-l", f"app.kubernetes.io/name={APP}")["items"]
    return [p["status"]["podIP"] for p in pods if p["status"]["phase"] == "Running"]


def test_a_killed_service_pod_is_replaced_and_the_api_answers_again(api: str, real_cluster: Cluster) -> None:
    before = {
        p["metadata"]["uid"]
        for p in get(real_cluster, "pods", "-n", APP_NAMESPACE, "-l", f"app.kubernetes.io/name={APP}")[
            "items"
        ]
    }
    real_cluster.kubectl(
        "delete", "pod", "-n", APP_NAMESPACE, "-l", f"app.kubernetes.io/name={APP}", "--wait=false"
    )
    real_cluster.kubectl("rollout", "status", "deployment", APP, "-n", APP_NAMESPACE, "--timeout=120s")
    after = {
        p["metadata"]["uid"]
        for p in get(real_cluster, "pods", "-n", APP_NAMESPACE, "-l", f"app.kubernetes.io/name={APP}")[
            "items"
        ]
        if "deletionTimestamp" not in p["metadata"]
    }
    assert after and not after & before
    assert http("GET", f"{api}/products?limit=1")[0] == 200


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
