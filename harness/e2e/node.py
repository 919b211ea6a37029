"""The e2e tier's real node: containerd, kubelet, kube-proxy and CoreDNS, running real containers.

control_plane.py starts it with `up --node real` (`make cluster NODE=real`); tests/e2e/real_node uses it.

    host: the control plane, on 198.18.0.1 (HOST_ADDRESS) ──veth── 198.18.0.2 (NODE_ADDRESS): the node
    node network namespace: containerd, kubelet, kube-proxy (its iptables rules live here only), CoreDNS
        on 198.18.0.2:53, and the pods on the CNI bridge cni0 (198.19.0.0/24). It has no default route:
        an image pull or any other packet for elsewhere fails at once instead of leaving the machine.
    node mount namespace (kept in STATE/node/ns/mnt): a private tmpfs on /run/containerd (containerd
        1.6 hard-codes /run/containerd/s), and the folders the kubelet writes whatever its flags say,
        bound from STATE/node/ (WRITTEN_ANYWAY).

Everything the node changes on the machine is written to an undo journal (STATE/node/undo.json) before
it is changed, and `stop` undoes the journal backwards: processes (by PID: the recorded ones, then every
PID left in the node's namespaces or cgroups), mounts, the namespaces and veth (and the mount of
/run/netns that a machine's first `ip netns add` makes), the host route, the kubelet's cgroups under
/platform-e2e, the sysctls the kubelet sets, folders made for mount points.

Images come from .tools/images/*.tar (`make images`, harness/e2e/images.py). Volumes are pre-made
hostPath PersistentVolumes under STATE/node/volumes behind the default StorageClass `e2e-hostpath`
(static provisioning: no provisioner runs). NetworkPolicies are stored but not enforced (the bridge
plugin has no policy engine).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / ".tools" / "bin"
IMAGES = REPO / ".tools" / "images"
NETNS = "platform-e2e-node"
NETNS_DIR = Path("/run/netns")  # where `ip netns` keeps named namespaces
HOST_VETH, NODE_VETH = "pe2e-host", "pe2e-node"
HOST_ADDRESS, NODE_ADDRESS, LINK_PREFIX = "198.18.0.1", "198.18.0.2", 30
POD_SUBNET, POD_GATEWAY = "198.19.0.0/24", "198.19.0.1"
NODE_NAME = "e2e-node"
CGROUP_ROOT = "platform-e2e"
PAUSE_IMAGE = "localhost/platform-e2e/pause:1"
# On the node's private /run/containerd: a path in the state folder can exceed a socket's 108 bytes.
SOCKET = "/run/containerd/containerd.sock"
# The archives of .tools/images that pods run (harness/e2e/images.py): the platform's, and the add-ons'.
RUNTIME_IMAGES = (
    "pause", "postgres", "redis", "product-service", "product-service-next", "product-service-faulty",
    "traefik", "jaeger", "metrics-server", "prometheus-operator", "prometheus-config-reloader", "prometheus",
    "argo-rollouts",
)  # fmt: skip
# The kubelet sets these to its liking; they are the machine's, so they are put back.
KERNEL_SETTINGS = ("vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops")
# Written by the kubelet (and libcni) whatever the flags say: bound from the state folder.
WRITTEN_ANYWAY = ("/var/lib/kubelet", "/var/lib/cni", "/var/log/containers", "/var/log/pods")
VOLUMES = 6
VOLUME_SIZE = "20Gi"
COMPONENTS = ("containerd", "kubelet", "kube-proxy", "coredns")
# Below this share of free disk the kubelet evicts and taints the node with disk-pressure (_kubelet_config).
EVICTION_FREE_PERCENT = 1
# Room for what the pods write (Postgres's and Redis's volumes, logs) besides the images.
PODS_DISK = 1 << 30


class NodeError(RuntimeError):
    pass


class RealNode:
    """One node in `state`/node: `prepare` (before the API server), `start`, then `stop`."""

    def __init__(self, state: Path) -> None:
        self.root = state / "node"
        self.journal = self.root / "undo.json"
        self.mount_ns = self.root / "ns" / "mnt"

    # --- before the control plane: the network and the namespaces --------------------------------

    def prepare(self, test_range: str) -> None:
        if os.geteuid() != 0:
            raise NodeError("the real node needs root (network namespaces, mounts, cgroups)")
        if not _blackholed(test_range):
            raise NodeError(f"refusing to start: no blackhole route for {test_range} on this machine")
        # (The Cluster has checked the programs built into .tools/bin.)
        system = "/usr/bin:/usr/sbin:/bin:/sbin"
        if missing := [
            c
            for c in ("containerd", "runc", "ctr", "iptables", "nsenter")
            if not shutil.which(c, path=system)
        ]:
            raise NodeError(f"missing {', '.join(missing)}: run `make node-packages`")
        if _run("ip", "netns", "list", check=False).stdout.split().count(NETNS):
            raise NodeError(f"network namespace {NETNS} exists: another real node runs (`make cluster-down`)")
        disk = shutil.disk_usage(next(p for p in self.root.parents if p.exists()))
        images = layer_bytes([a for a in (IMAGES / f"{n}.tar" for n in RUNTIME_IMAGES) if a.exists()])
        if short := disk_shortfall(disk.free, disk.total, images):
            raise NodeError(
                f"refusing to start: {short / (1 << 30):.1f} GiB more must be free on the disk of {self.root} "
                "(the images' layers twice, archived and unpacked, and the kubelet's eviction threshold): with less, "
                "the kubelet taints the node with disk-pressure and no pod is scheduled"
            )
        for folder in ("containerd", "cni/net.d", "cni/ipam", "volumes", "ns", *_bound_folders()):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        self._network(test_range)
        self._mount_namespace()
        for setting in KERNEL_SETTINGS:
            value = Path("/proc/sys", setting).read_text().strip()
            self._record("sysctl", setting, value)
        self._record("cgroups", CGROUP_ROOT)
        _make_cgroups(CGROUP_ROOT)

    def _network(self, test_range: str) -> None:
        link = f"{HOST_ADDRESS}/{LINK_PREFIX}"
        # The first `ip netns add` on a machine makes /run/netns (and a mount of it onto itself).
        if not NETNS_DIR.exists():
            self._record("rmdir", str(NETNS_DIR))
        if not os.path.ismount(NETNS_DIR):
            self._record("netns-dir", str(NETNS_DIR))
        self._record("netns", NETNS)
        _run("ip", "netns", "add", NETNS)
        _run("ip", "link", "add", HOST_VETH, "type", "veth", "peer", "name", NODE_VETH, "netns", NETNS)
        _run("ip", "addr", "add", link, "dev", HOST_VETH)
        _run("ip", "link", "set", HOST_VETH, "up")
        node = ("ip", "netns", "exec", NETNS)
        _run(*node, "ip", "addr", "add", f"{NODE_ADDRESS}/{LINK_PREFIX}", "dev", NODE_VETH)
        _run(*node, "ip", "link", "set", "lo", "up")
        _run(*node, "ip", "link", "set", NODE_VETH, "up")
        # The Service range (and the rest of the test range) through the host; nothing else.
        _run(*node, "ip", "route", "add", test_range, "via", HOST_ADDRESS)
        _run(*node, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.bridge.bridge-nf-call-iptables=1")
        # Replies from the API server to pods (the kubernetes Service) come back through the node.
        self._record("route", POD_SUBNET)
        _run("ip", "route", "add", POD_SUBNET, "via", NODE_ADDRESS)

    def _mount_namespace(self) -> None:
        """A mount namespace that outlives its processes (bound to a file), with the node's mounts."""
        # Mount points first, so that undoing removes them after the mounts are gone.
        for target in ("/run/containerd", *WRITTEN_ANYWAY):
            if not Path(target).exists():
                self._record("rmdir", target)
                Path(target).mkdir(parents=True)
        ns = self.mount_ns.parent
        self._record("umount", str(ns))
        _run("mount", "--bind", str(ns), str(ns))
        _run("mount", "--make-private", str(ns))
        self.mount_ns.touch()
        self._record("umount", str(self.mount_ns))
        _run("unshare", f"--mount={self.mount_ns}", "--propagation", "private", "true")
        mounts = ["mount -t tmpfs -o mode=0711 tmpfs /run/containerd"] + [
            f"mount --bind {self.root / _bound(t)} {t}" for t in WRITTEN_ANYWAY
        ]
        _run("nsenter", f"--mount={self.mount_ns}", "--", "sh", "-ec", " && ".join(mounts))

    # --- after the control plane: the node's programs -------------------------------------------

    def commands(self, credentials: dict[str, Path], ca: Path) -> dict[str, list[str]]:
        """The node's programs, each run inside its namespaces through nsenter."""
        r = self.root
        (r / "containerd.toml").write_text(_containerd_config(r))
        (r / "cni/net.d/10-platform-e2e.conflist").write_text(json.dumps(_cni_config(r), indent=2))
        (r / "kubelet.yaml").write_text(json.dumps(_kubelet_config(r, ca), indent=2))
        (r / "kube-proxy.yaml").write_text(
            json.dumps(_kube_proxy_config(credentials["kube-proxy"]), indent=2)
        )
        (r / "Corefile").write_text(_corefile(credentials["coredns"]))
        enter = ["nsenter", f"--net={NETNS_DIR / NETNS}", f"--mount={self.mount_ns}", "--"]
        return {
            "containerd": [*enter, "containerd", f"--config={r / 'containerd.toml'}"],
            "kubelet": [
                *enter, str(TOOLS / "kubelet"), f"--config={r / 'kubelet.yaml'}",
                f"--kubeconfig={credentials['kubelet']}", f"--hostname-override={NODE_NAME}",
                f"--node-ip={NODE_ADDRESS}", "--v=1",
            ],
            "kube-proxy": [*enter, str(TOOLS / "kube-proxy"), f"--config={r / 'kube-proxy.yaml'}", "--v=1"],
            "coredns": [*enter, str(TOOLS / "coredns"), "-conf", str(r / "Corefile")],
        }  # fmt: skip

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """containerd's own client, in the node's mount namespace (where its socket is)."""
        command = ["nsenter", f"--mount={self.mount_ns}", "ctr", f"--address={SOCKET}", "--namespace=k8s.io"]
        return _run(*command, *args, check=check)

    def runtime_ready(self) -> bool:
        return self.ctr("version", check=False).returncode == 0

    def import_images(self) -> None:
        """The pods' images (not the bases they were built on) into containerd's Kubernetes namespace."""
        archives = [IMAGES / f"{name}.tar" for name in RUNTIME_IMAGES]
        if missing := [a.name for a in archives if not a.exists()]:
            raise NodeError(f"no {', '.join(missing)} in {IMAGES}: run `make images`")
        for archive in archives:
            imported = self.ctr("images", "import", str(archive), check=False)
            if imported.returncode:
                raise NodeError(f"importing {archive.name} failed: {imported.stderr.strip()}")

    def seed(self) -> list[dict[str, object]]:
        """The default StorageClass and the pre-made hostPath volumes behind it."""
        volumes = []
        for index in range(VOLUMES):
            path = self.root / "volumes" / f"pv{index}"
            path.mkdir(exist_ok=True)
            os.chown(path, 999, 999)  # the data images' uid (images/postgres, images/redis)
            volumes.append(
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolume",
                    "metadata": {"name": f"e2e-hostpath-{index}"},
                    "spec": {
                        "capacity": {"storage": VOLUME_SIZE},
                        "accessModes": ["ReadWriteOnce"],
                        "persistentVolumeReclaimPolicy": "Retain",
                        "storageClassName": "e2e-hostpath",
                        "hostPath": {"path": str(path), "type": "Directory"},
                    },
                }
            )
        storage_class = {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": "e2e-hostpath",
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "WaitForFirstConsumer",
        }
        return [storage_class, *volumes]

    # --- stopping ---------------------------------------------------------------------------------

    def stop(self, recorded_pids: list[int], terminate: Callable[[int], None]) -> None:
        """Undo everything in the journal, last change first; safe to run twice or after a crash."""
        for pid in reversed(recorded_pids):
            terminate(pid)
        if not self.journal.exists():
            return
        self._kill_leftovers()
        for entry in reversed(json.loads(f"[{self.journal.read_text().rstrip().rstrip(',')}]")):
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                _undo(*entry)
        self.journal.unlink()

    def _kill_leftovers(self) -> None:
        """SIGKILL what is still in the node's namespaces or cgroups (shims, containers), until none."""
        deadline = time.monotonic() + 30
        while (pids := self._leftovers()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)

    def _leftovers(self) -> set[int]:
        # A namespace is known by its (device, inode): an unmounted file's inode alone could match one.
        namespaces = set()
        for ns in (self.mount_ns, NETNS_DIR / NETNS):
            with contextlib.suppress(OSError):
                namespaces.add(_identity(ns))
        pids = set()
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit() and int(proc.name) != os.getpid():
                with contextlib.suppress(OSError):
                    if {_identity(proc / "ns/mnt"), _identity(proc / "ns/net")} & namespaces:
                        pids.add(int(proc.name))
        for procs in Path("/sys/fs/cgroup").glob(f"*/{CGROUP_ROOT}/**/cgroup.procs"):
            with contextlib.suppress(OSError):
                pids |= {int(p) for p in procs.read_text().split()}
        return pids

    def _record(self, *entry: str) -> None:
        with self.journal.open("a") as journal:
            journal.write(json.dumps(entry) + ",\n")


def layer_bytes(archives: list[Path]) -> int:
    """The size of the layers in image archives (`docker save` form), each counted once: the service's
    three versions, Redis and Postgres share their base layers, and containerd stores a shared layer once."""
    layers: dict[str, int] = {}
    for archive in archives:
        with tarfile.open(archive) as members:
            layers.update((m.name, m.size) for m in members if m.isfile() and m.name.endswith(".tar"))
    return sum(layers.values())


def disk_shortfall(free: int, total: int, images: int) -> int:
    """Bytes missing for a node to run its pods: containerd keeps each image's archived content and its
    unpacked snapshot, the pods write besides, and the kubelet keeps its eviction threshold free."""
    needed = 2 * images + PODS_DISK + total * EVICTION_FREE_PERCENT // 100
    return max(0, needed - free)


def _identity(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_dev, stat.st_ino


def _make_cgroups(name: str) -> None:
    """The kubelet's cgroupRoot in every v1 hierarchy (it must exist); cpuset needs its CPUs and
    memory nodes copied from the parent before a process can join it."""
    for controller in Path("/sys/fs/cgroup").iterdir():
        if controller.name == "unified" or not (controller / "cgroup.procs").exists():
            continue
        (controller / name).mkdir(exist_ok=True)
        if controller.name == "cpuset":
            for setting in ("cpuset.cpus", "cpuset.mems"):
                (controller / name / setting).write_text((controller / setting).read_text())


def _undo(kind: str, *args: str) -> None:
    if kind == "netns":
        _run("ip", "netns", "del", args[0], check=False)
    elif kind == "route":
        _run("ip", "route", "del", args[0], check=False)
    elif kind == "umount":
        _run("umount", "--lazy", args[0], check=False)
    elif kind == "netns-dir":
        if not any(Path(args[0]).iterdir()):  # another tool's namespaces would go with its mount
            _run("umount", "--lazy", args[0], check=False)
    elif kind == "rmdir":
        Path(args[0]).rmdir()
    elif kind == "sysctl":
        Path("/proc/sys", args[0]).write_text(args[1])
    elif kind == "cgroups":
        # Deepest first: a cgroup folder is removed with rmdir once it holds no process.
        for controller in Path("/sys/fs/cgroup").iterdir():
            for folder in sorted(controller.glob(f"{args[0]}/**/"), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    folder.rmdir()


# --- configuration ---------------------------------------------------------------------------------


def _containerd_config(root: Path) -> str:
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{root / "containerd/root"}"
state = "{root / "containerd/state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{SOCKET}"

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  # The VM withholds CAP_SYS_RESOURCE: without this every sandbox fails to start.
  restrict_oom_score_adj = true
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
  [{cri}.cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{root / "cni/net.d"}"
"""


def _cni_config(root: Path) -> dict[str, object]:
    return {
        "cniVersion": "1.0.0",
        "name": "platform-e2e",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "hairpinMode": True,  # a pod reaching itself through its Service
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_SUBNET, "gateway": POD_GATEWAY}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(root / "cni/ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def _kubelet_config(root: Path, ca: Path) -> dict[str, object]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # This machine has cgroup v1, which kubelet 1.35+ refuses unless told (KEP-5573).
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{CGROUP_ROOT}",
        "containerRuntimeEndpoint": f"unix://{SOCKET}",
        "address": NODE_ADDRESS,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca)},
        },
        "authorization": {"mode": "Webhook"},
        "clusterDNS": [NODE_ADDRESS],
        "clusterDomain": "cluster.local",
        "resolvConf": "",
        "failSwapOn": False,
        "protectKernelDefaults": False,
        # A shared disk: evict on nothing but a truly full one, and never collect the imported images.
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": f"{EVICTION_FREE_PERCENT}%",
            "imagefs.available": f"{EVICTION_FREE_PERCENT}%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
    }


def _kube_proxy_config(kubeconfig: Path) -> dict[str, object]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": NODE_NAME,
        "clusterCIDR": POD_SUBNET,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        # 0: leave the machine's conntrack table size as it is.
        "conntrack": {"maxPerCore": 0},
    }


def _corefile(kubeconfig: Path) -> str:
    """Cluster names only: anything else gets no answer from here (nothing to forward it to)."""
    return f""".:53 {{
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 30
}}
"""


# --- helpers ----------------------------------------------------------------------------------------


def _bound(target: str) -> str:
    return "host" + target.replace("/", "-")


def _bound_folders() -> list[str]:
    return [_bound(t) for t in WRITTEN_ANYWAY]


def _blackholed(test_range: str) -> bool:
    routes = _run("ip", "-j", "route", "show", "table", "all", "type", "blackhole", check=False).stdout
    return any(route.get("dst") == test_range for route in json.loads(routes or "[]"))


def _run(*command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    if check and result.returncode:
        raise NodeError(f"`{' '.join(command)}` failed: {result.stderr.strip()}")
    return result
