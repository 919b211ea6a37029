"""Clients that run inside the real node's network namespace, as another pod would: every request of the
real-node tests goes from there to a Service's cluster IP (kube-proxy's rules) or to a pod."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import node

# An HTTP exchange, printed as JSON: method, URL, headers (JSON), body.
HTTP_CLIENT = """
import json, sys, urllib.request, urllib.error
method, url, headers, body = sys.argv[1:5]
request = urllib.request.Request(url, method=method, data=body.encode() or None,
    headers={"Content-Type": "application/json", **json.loads(headers)})
try:
    with urllib.request.urlopen(request, timeout=10) as response:
        print(json.dumps({"status": response.status, "body": response.read().decode()}))
except urllib.error.HTTPError as error:
    print(json.dumps({"status": error.code, "body": error.read().decode()}))
"""

# One HTTPS GET of https://HOST/PATH sent to ADDRESS:443, trusting the CAs in CA_FILE and no other; prints
# the status, headers and body. A certificate that does not verify for HOST fails it.
HTTPS_CLIENT = """
import http.client, json, socket, ssl, sys
address, host, path, ca_file = sys.argv[1:5]
context = ssl.create_default_context(cafile=ca_file)
connection = http.client.HTTPSConnection(host, 443, context=context, timeout=10)
connection.sock = context.wrap_socket(socket.create_connection((address, 443), timeout=10), server_hostname=host)
connection.request("GET", path)
response = connection.getresponse()
print(json.dumps({"status": response.status, "headers": dict(response.getheaders()), "body": response.read().decode()}))
"""

# One gRPC call of the product API through `target` (host:port), with `authority` as the :authority a
# client of the published name sends; prints the answer's code and, when OK, the product ids listed.
GRPC_CLIENT = """
import json, sys, grpc
from product_service.grpc.generated.product.v1 import product_pb2, product_pb2_grpc
target, authority = sys.argv[1:3]
with grpc.insecure_channel(target, options=[("grpc.default_authority", authority)]) as channel:
    stub = product_pb2_grpc.ProductServiceStub(channel)
    try:
        answer = stub.ListProducts(product_pb2.ListProductsRequest(page_size=5), timeout=10)
        print(json.dumps({"code": "OK", "ids": [p.id for p in answer.products]}))
    except grpc.RpcError as error:
        print(json.dumps({"code": error.code().name, "details": error.details()}))
"""

# A bounded load: THREADS clients sending GETs to URL (with HOST) until SECONDS have passed or SIGTERM
# comes, printing the count of answers by status when they stop. With RECONNECT each request opens its own
# connection, so kube-proxy spreads them over the pods as they come and go (a kept connection stays on
# its pod).
LOAD = """
import collections, http.client, json, signal, sys, threading, time, urllib.parse
url, host, threads, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
reconnect = sys.argv[5] == "reconnect"
parsed = urllib.parse.urlsplit(url)
counts, lock, stop = collections.Counter(), threading.Lock(), time.monotonic() + seconds
def finish(*_):
    global stop
    stop = 0.0
signal.signal(signal.SIGTERM, finish)
def client():
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port or 80, timeout=10)
    while time.monotonic() < stop:
        try:
            connection.request("GET", parsed.path + "?" + parsed.query, headers={"Host": host})
            response = connection.getresponse()
            response.read()
            status = response.status
            if reconnect:
                connection.close()
        except OSError:
            connection.close()
            connection = http.client.HTTPConnection(parsed.hostname, parsed.port or 80, timeout=10)
            status = "error"
        with lock:
            counts[str(status)] += 1
workers = [threading.Thread(target=client) for _ in range(threads)]
for worker in workers:
    worker.start()
for worker in workers:
    worker.join()
print(json.dumps(counts))
"""


def in_node(*command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nsenter", f"--net={node.NETNS_DIR / node.NETNS}", *command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )


def start_in_node(*command: str) -> subprocess.Popen[str]:
    """A process in the node's network namespace that the caller waits for (or stops by its PID)."""
    return subprocess.Popen(
        ["nsenter", f"--net={node.NETNS_DIR / node.NETNS}", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def http(
    method: str, url: str, token: str = "", body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    sent = json.dumps(body) if body is not None else ""
    headers = {**(headers or {}), **({"Authorization": f"Bearer {token}"} if token else {})}
    answer = json.loads(
        in_node(sys.executable, "-c", HTTP_CLIENT, method, url, json.dumps(headers), sent).stdout
    )
    text = answer["body"]
    return answer["status"], json.loads(text) if text.startswith(("{", "[")) else text


def https_get(address: str, host: str, path: str, ca_file: str) -> dict[str, Any]:
    return dict(json.loads(in_node(sys.executable, "-c", HTTPS_CLIENT, address, host, path, ca_file).stdout))


def grpc_list(target: str, authority: str) -> dict[str, Any]:
    return json.loads(in_node(sys.executable, "-c", GRPC_CLIENT, target, authority).stdout)


def load(url: str, host: str, threads: int, seconds: float, reconnect: bool = False) -> subprocess.Popen[str]:
    return start_in_node(
        sys.executable,
        "-c",
        LOAD,
        url,
        host,
        str(threads),
        str(seconds),
        "reconnect" if reconnect else "keep",
    )
