"""The e2e tier's Kubernetes: a real control plane, with kwok's two fake nodes or one real node.

    python harness/e2e/control_plane.py up   [--state build/cluster] [--node kwok|real]   # start; print the kubeconfig
    python harness/e2e/control_plane.py down [--state build/cluster]   # stop everything it started, by PID

etcd, kube-apiserver, kube-controller-manager and kube-scheduler are the real programs, built from
pinned modules into .tools/bin (`make tools`). kwok (also real) takes the kubelet's part for two fake
nodes: Pods are scheduled, become Running and Ready, Jobs complete and PersistentVolumeClaims bind
(its stages in harness/e2e/stages/), but no container runs. The kubeconfig's context is
`kwok-e2e`, so it is never mistaken for a real cluster. All state stays in the state folder.

Addresses: everything listens on 127.0.0.1. Kubernetes needs a non-loopback advertise address and
ranges for Service and Pod IPs; they come from 198.18.0.0/15 (reserved for benchmarking), and as
root the launcher adds a blackhole route for that range, so a packet sent there never leaves the
machine (nothing here sends one: no container runs and no webhook is registered).

`--node real` (root only) replaces kwok with a node that runs containers (harness/e2e/node.py): the API
server then listens on 198.18.0.1, the host's end of the node's veth, and the blackhole route is
required, not just added. In tests (not detached) a watchdog process undoes everything if the process
that started the cluster dies, however it dies.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import node as real_node

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / ".tools" / "bin"
STAGES = Path(__file__).resolve().parent / "stages"
CONTEXT = "kwok-e2e"
REAL_NODE_CONTEXT = "e2e-real-node"
NODES = ("kwok-node-0", "kwok-node-1")
TEST_RANGE = "198.18.0.0/15"
ADVERTISE_ADDRESS = real_node.HOST_ADDRESS  # the host end of the real node's veth
SERVICE_RANGE = "198.18.128.0/17"
POD_RANGE = "198.19.0.0/16"
CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
START_TIMEOUT = 60.0


class ClusterError(RuntimeError):
    pass


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=("up", "down", "watch"))
    parser.add_argument("--state", type=Path, default=REPO / "build" / "cluster")
    parser.add_argument("--node", choices=("kwok", "real"), default="kwok")
    parser.add_argument("--owner", type=int, help="watch: the PID whose end stops the cluster")
    args = parser.parse_args()
    cluster = Cluster(args.state, args.node)
    if args.command == "watch":
        _watch(cluster, args.owner)
        return
    if args.command == "down":
        cluster.stop()
        print(f"stopped; removed {args.state}")
        return
    try:
        cluster.start(detached=True)
    except (ClusterError, real_node.NodeError) as error:
        cluster.stop()
        sys.exit(f"cluster: {error}")
    print(
        f"control plane up: export KUBECONFIG={cluster.kubeconfig}  (context {cluster.context}); `make cluster-down` stops it"
    )


class Cluster:
    """One control plane in `state`. `start` then `stop`, or use it as a context manager."""

    def __init__(self, state: Path, node: str = "kwok") -> None:
        self.state = state.resolve()
        self.node = real_node.RealNode(self.state) if node == "real" else None
        self.components = CONTROL_PLANE + (real_node.COMPONENTS if self.node else ("kwok",))
        self.address = real_node.HOST_ADDRESS if self.node else "127.0.0.1"
        self.context = REAL_NODE_CONTEXT if self.node else CONTEXT
        self.kubeconfig = self.state / "kubeconfig"
        self.pki = self.state / "pki"
        self.logs = self.state / "logs"
        self.pids = self.state / "pids"

    def __enter__(self) -> Cluster:
        try:
            self.start(detached=False)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def env(self) -> dict[str, str]:
        """The environment for clients of this cluster (kubectl, pulumi): nothing is written under $HOME."""
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "KUBECACHEDIR": str(self.state / "kube-cache"),
        }

    def kubectl(
        self, *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(TOOLS / "kubectl"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def start(self, detached: bool) -> None:
        """Start every component and return once the cluster accepts workloads. `detached`: the
        processes outlive this one (make cluster); otherwise they die with it (tests)."""
        missing = [name for name in self.components if name != "containerd" and not (TOOLS / name).exists()]
        if missing or not (TOOLS / "kubectl").exists():
            raise ClusterError(
                f"missing {', '.join(missing or ['kubectl'])} in {TOOLS}: run `make tools` (needs Go)"
            )
        if self.pids.exists() and any(_alive(pid) for pid in self._recorded_pids()):
            raise ClusterError(
                f"a control plane is already running from {self.state}: `make cluster-down` first"
            )
        shutil.rmtree(self.state, ignore_errors=True)
        for folder in (self.pki, self.logs, self.pids):
            folder.mkdir(parents=True)
        _isolate_test_range(self.state)
        if self.node:
            if not detached:
                self._start_watchdog()
            self.node.prepare(TEST_RANGE)
        ports = dict(zip(("etcd", "etcd-peer", "apiserver"), _free_ports(3), strict=True))
        tokens = self._write_credentials(ports["apiserver"])
        for name, command in self._commands(ports, tokens).items():
            self._launch(name, command, detached)
            if name == "etcd":
                _wait_for(lambda: _port_open(ports["etcd"]), "etcd to listen", self._log("etcd"))
            if name == "kube-apiserver":
                _wait_for(self._api_ready, "kube-apiserver to be ready", self._log("kube-apiserver"))
            if name == "containerd":
                assert self.node
                _wait_for(self.node.runtime_ready, "containerd to answer", self._log("containerd"))
                self.node.import_images()
        self._seed()

    def stop(self) -> None:
        """Stop every recorded process (SIGTERM, then SIGKILL), undo the node's changes and the route,
        remove the state."""
        watchdog = self.state / "watchdog.pid"
        if watchdog.exists() and int(watchdog.read_text()) != os.getpid():
            terminate(int(watchdog.read_text()), grace=2)
        if self.node or (self.state / "node").exists():
            real_node.RealNode(self.state).stop(self._recorded_pids(), terminate)
        for pid in reversed(self._recorded_pids()):
            terminate(pid)
        _restore_test_range(self.state)
        shutil.rmtree(self.state, ignore_errors=True)

    # --- what start runs ------------------------------------------------------------------------

    def _commands(self, ports: dict[str, int], tokens: dict[str, str]) -> dict[str, list[str]]:
        s, pki = self.state, self.pki
        etcd_url = f"http://127.0.0.1:{ports['etcd']}"
        peer_url = f"http://127.0.0.1:{ports['etcd-peer']}"
        stage_files = [arg for stage in sorted(STAGES.glob("*.yaml")) for arg in ("--config", str(stage))]
        commands = {
            "etcd": [
                "etcd",
                "--name=e2e",
                f"--data-dir={s / 'etcd'}",
                "--unsafe-no-fsync",
                "--log-level=warn",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=e2e={peer_url}",
            ],
            "kube-apiserver": [
                "kube-apiserver",
                f"--etcd-servers={etcd_url}",
                f"--bind-address={self.address}",
                f"--secure-port={ports['apiserver']}",
                f"--advertise-address={ADVERTISE_ADDRESS}",
                f"--service-cluster-ip-range={SERVICE_RANGE}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--token-auth-file={pki / 'tokens.csv'}",
                "--authorization-mode=Node,RBAC",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                # How it reaches a kubelet (logs, exec, port-forward): by address, never a name lookup.
                "--kubelet-preferred-address-types=InternalIP",
                f"--kubelet-client-certificate={pki / 'kubelet-client.crt'}",
                f"--kubelet-client-key={pki / 'kubelet-client.key'}",
                # Aggregated APIs (metrics-server's metrics.k8s.io): the API server proxies to them as
                # front-proxy-client, naming the user in headers they trust for that certificate alone, and
                # dials the backing pod itself (this host is no node: it routes pod addresses, not Services).
                f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
                f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
                f"--requestheader-client-ca-file={pki / 'ca.crt'}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                "--enable-aggregator-routing=true",
            ],
            "kube-controller-manager": [
                "kube-controller-manager",
                f"--kubeconfig={self._client_config('controller-manager', tokens)}",
                "--secure-port=0",
                "--leader-elect=false",
                "--use-service-account-credentials",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--flex-volume-plugin-dir={s / 'flexvolume'}",
                # No cloud, no node IPAM: kwok hands out Pod IPs itself.
                "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller",
            ],
            "kube-scheduler": [
                "kube-scheduler",
                f"--kubeconfig={self._client_config('scheduler', tokens)}",
                "--secure-port=0",
                "--leader-elect=false",
            ],
        }
        if self.node:
            credentials = {c: self._client_config(c, tokens) for c in ("kubelet", "kube-proxy", "coredns")}
            return commands | self.node.commands(credentials, pki / "ca.crt")
        return commands | {
            "kwok": [
                "kwok",
                f"--kubeconfig={self._client_config('kwok', tokens)}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                f"--cidr={POD_RANGE}",
                "--node-ip=198.18.0.2",
                "--node-lease-duration-seconds=40",
                *stage_files,
            ],
        }

    def _write_credentials(self, port: int) -> dict[str, str]:
        """A CA, the API server's certificates (serving, to kubelets, to aggregated APIs), the service-account
        key pair and one token per client."""
        pki = self.pki

        def openssl(*args: str) -> None:
            subprocess.run(["openssl", *args], cwd=pki, check=True, capture_output=True, timeout=60)

        openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=kwok-e2e-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        )
        sans = f"IP:127.0.0.1,DNS:localhost,IP:{ADVERTISE_ADDRESS},IP:198.18.128.1,DNS:kubernetes.default.svc"
        openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=kube-apiserver",
            "-keyout",
            "apiserver.key",
            "-out",
            "apiserver.csr",
        )
        (pki / "san.ext").write_text(f"subjectAltName={sans}\n")
        openssl(
            "x509",
            "-req",
            "-in",
            "apiserver.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            "apiserver.crt",
            "-extfile",
            "san.ext",
        )
        # The API server's client certificates: for kubelets (system:masters may read logs, exec), and for
        # aggregated APIs (the name they trust to pass the user on in headers).
        for stem, subject in (
            ("kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client"),
            ("front-proxy-client", "/CN=front-proxy-client"),
        ):
            openssl(
                "req", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
                "-keyout", f"{stem}.key", "-out", f"{stem}.csr",
            )  # fmt: skip
            openssl(
                "x509", "-req", "-in", f"{stem}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-out", f"{stem}.crt",
            )  # fmt: skip
        openssl("genrsa", "-out", "sa.key", "2048")
        openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub")
        users = {
            "admin": ("kwok-e2e-admin", "system:masters"),
            "controller-manager": ("system:kube-controller-manager", ""),
            "scheduler": ("system:kube-scheduler", ""),
            "kwok": ("kwok-controller", "system:masters"),
            # The real node's programs: the Node authorizer's and the default RBAC's names for them.
            "kubelet": (f"system:node:{real_node.NODE_NAME}", "system:nodes"),
            "kube-proxy": ("system:kube-proxy", ""),
            # CoreDNS only reads Services, EndpointSlices, Pods and Namespaces; test clusters keep it short.
            "coredns": ("platform-e2e:coredns", "system:masters"),
        }
        tokens = {client: os.urandom(24).hex() for client in users}
        (pki / "tokens.csv").write_text(
            "".join(f'{tokens[c]},{user},{user},"{group}"\n' for c, (user, group) in users.items())
        )
        self.server = f"https://{self.address}:{port}"
        self.kubeconfig.write_text(self._kubeconfig(tokens["admin"]))
        return tokens

    def _client_config(self, client: str, tokens: dict[str, str]) -> Path:
        path = self.pki / f"{client}.kubeconfig"
        if not path.exists():
            path.write_text(self._kubeconfig(tokens[client]))
        return path

    def _kubeconfig(self, token: str) -> str:
        return json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": self.context,
                        "cluster": {"server": self.server, "certificate-authority": str(self.pki / "ca.crt")},
                    }
                ],
                "users": [{"name": self.context, "user": {"token": token}}],
                "contexts": [
                    {"name": self.context, "context": {"cluster": self.context, "user": self.context}}
                ],
                "current-context": self.context,
            },
            indent=2,
        )

    def _launch(self, name: str, command: list[str], detached: bool) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        program = TOOLS / command[0]
        process = subprocess.Popen(
            [str(program) if program.exists() else command[0], *command[1:]],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd=self.state,
            env={**self.env, "HOME": str(self.state), "PATH": f"{os.environ['PATH']}:/usr/sbin:/sbin"},
            start_new_session=detached,
            preexec_fn=None if detached else die_with_parent,
        )
        (self.pids / f"{self.components.index(name)}-{name}.pid").write_text(str(process.pid))

    def _seed(self) -> None:
        """kwok: two fake nodes, and the default StorageClass its volume stages serve. Real: the node's
        StorageClass and volumes."""
        _wait_for(
            lambda: self.kubectl("get", "serviceaccount", "default", check=False).returncode == 0,
            "the default service account",
            self._log("kube-controller-manager"),
        )
        manifests = (
            self.node.seed()
            if self.node
            else [_node(name) for name in NODES]
            + [
                {
                    "apiVersion": "storage.k8s.io/v1",
                    "kind": "StorageClass",
                    "metadata": {
                        "name": "kwok-volume",
                        "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                    },
                    "provisioner": "kwok.x-k8s.io/volume",
                    "reclaimPolicy": "Delete",
                    "volumeBindingMode": "Immediate",
                }
            ]
        )
        applied = subprocess.run(
            [str(TOOLS / "kubectl"), "apply", "-f", "-"],
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if applied.returncode:
            raise ClusterError(f"seeding nodes failed: {applied.stderr.strip()}")
        if self.node:
            _wait_for(lambda: self._nodes_ready(1), "the real node to be Ready", self._log("kubelet"))
        else:
            _wait_for(lambda: self._nodes_ready(len(NODES)), "the fake nodes to be Ready", self._log("kwok"))

    # --- checks ---------------------------------------------------------------------------------

    def _api_ready(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        token = (self.pki / "tokens.csv").read_text().split(",", 1)[0]
        request = urllib.request.Request(  # noqa: S310 (an https URL built here)
            f"{self.server}/readyz", headers={"Authorization": f"Bearer {token}"}
        )
        try:
            with urllib.request.urlopen(request, context=context, timeout=2) as response:  # noqa: S310
                return response.status == 200
        except OSError:
            return False

    def _nodes_ready(self, count: int) -> bool:
        nodes = self.kubectl("get", "nodes", "-o", "json", check=False)
        if nodes.returncode:
            return False
        ready = [
            node
            for node in json.loads(nodes.stdout)["items"]
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in node.get("status", {}).get("conditions", [])
            )
        ]
        return len(ready) == count

    def _recorded_pids(self) -> list[int]:
        return [int(p.read_text()) for p in sorted(self.pids.glob("*.pid"))] if self.pids.exists() else []

    def _log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def _start_watchdog(self) -> None:
        watchdog = subprocess.Popen(
            [sys.executable, __file__, "watch", f"--state={self.state}", f"--owner={os.getpid()}"],
            stdin=subprocess.DEVNULL,
            stdout=(self.logs / "watchdog.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        (self.state / "watchdog.pid").write_text(str(watchdog.pid))


def _watch(cluster: Cluster, owner: int) -> None:
    """Wait for `owner` to end (a pidfd, no polling), then stop the cluster it started."""
    with contextlib.suppress(ProcessLookupError):
        descriptor = os.pidfd_open(owner)
        select.select([descriptor], [], [])
    cluster.stop()


def _node(name: str) -> dict[str, object]:
    """A Node that kwok manages (its annotation); tainted nowhere, sized like a small real node."""
    capacity = {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "status": {"capacity": capacity, "allocatable": capacity},
    }


# --- processes and addresses ---------------------------------------------------------------------


def die_with_parent() -> None:
    """In the child before exec: SIGKILL when the process that started us dies, however it dies."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def terminate(pid: int, grace: float = 10.0) -> None:
    """SIGTERM, and SIGKILL if `pid` is still there after `grace` seconds; a child of ours is reaped."""
    if not _alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    try:
        _wait_for(lambda: not _alive(pid), f"pid {pid} to exit", None, timeout=grace)
    except ClusterError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return False  # our child, now reaped
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_for(
    condition: Callable[[], bool], what: str, log: Path | None, timeout: float = START_TIMEOUT
) -> None:
    """Poll `condition` until it holds; on timeout, fail with the end of the component's log."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            tail = (
                "\n".join(log.read_text(errors="replace").splitlines()[-15:]) if log and log.exists() else ""
            )
            raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}")
        time.sleep(0.2)


def _free_ports(count: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _isolate_test_range(state: Path) -> None:
    """As root, make the test range a blackhole on this machine, so nothing sent there leaves it."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        return
    routes = subprocess.run(["ip", "route", "show", TEST_RANGE], capture_output=True, text=True, check=True)
    if not routes.stdout.strip():
        subprocess.run(["ip", "route", "add", "blackhole", TEST_RANGE], check=True)
        (state / "route-added").touch()


def _restore_test_range(state: Path) -> None:
    """Remove the blackhole route if this cluster added it."""
    if (state / "route-added").exists():
        subprocess.run(["ip", "route", "del", "blackhole", TEST_RANGE], check=False)


if __name__ == "__main__":
    main()
