"""The e2e control plane itself: a real API server, and every process it starts stops by PID."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import node
from config import KUBERNETES_VERSION
from control_plane import CONTEXT, Cluster
from e2e_stack import REPO, get

LAUNCHER = REPO / "harness" / "e2e" / "control_plane.py"


def test_the_api_server_is_real_it_rejects_an_invalid_object(cluster: Cluster) -> None:
    invalid = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Not_A_DNS_Name"}}
    refused = subprocess.run(
        [str(REPO / ".tools" / "bin" / "kubectl"), "apply", "-f", "-"],
        input=json.dumps(invalid),
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0
    assert "Invalid value" in refused.stderr


def test_the_cluster_runs_the_pinned_kubernetes_minor_that_the_program_defaults_to(cluster: Cluster) -> None:
    server = json.loads(cluster.kubectl("version", "-o", "json").stdout)["serverVersion"]
    assert f"{server['major']}.{server['minor']}" == KUBERNETES_VERSION


def test_two_fake_nodes_are_ready_and_named_as_fakes(cluster: Cluster) -> None:
    nodes = get(cluster, "nodes")["items"]
    assert [n["metadata"]["annotations"]["kwok.x-k8s.io/node"] for n in nodes] == ["fake", "fake"]
    assert json.loads(cluster.kubeconfig.read_text())["current-context"] == CONTEXT


def test_make_cluster_down_stops_every_process_make_cluster_started(tmp_path: Path) -> None:
    state = tmp_path / "cluster"
    subprocess.run([sys.executable, str(LAUNCHER), "up", "--state", str(state)], check=True, timeout=180)
    pids = [int(p.read_text()) for p in (state / "pids").glob("*.pid")]
    assert len(pids) == 5 and all(_alive(pid) for pid in pids)
    subprocess.run([sys.executable, str(LAUNCHER), "down", "--state", str(state)], check=True, timeout=120)
    assert not any(_alive(pid) for pid in pids)
    assert not state.exists()


def test_a_killed_test_run_takes_its_control_plane_with_it(tmp_path: Path) -> None:
    state = tmp_path / "cluster"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_A_CLUSTER, str(LAUNCHER.parent), str(state)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        pids = [int(p.read_text()) for p in (state / "pids").glob("*.pid")]
        assert len(pids) == 5
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        _wait_until(lambda: not any(_alive(pid) for pid in pids), "the components to die with their parent")
    finally:
        holder.kill()
        for pid in [int(p.read_text()) for p in (state / "pids").glob("*.pid")] if state.exists() else []:
            _kill(pid)


def test_a_killed_test_run_leaves_nothing_of_its_real_node_behind(tmp_path: Path) -> None:
    """Its watchdog stops the containers too, and undoes every change the node made to the machine."""
    state = tmp_path / "cluster"
    before = _machine()
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_A_CLUSTER, str(LAUNCHER.parent), str(state), "real"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        pids = [int(p.read_text()) for p in (state / "pids").glob("*.pid")]
        assert len(pids) == 8
        cluster = Cluster(state, node="real")
        cluster.kubectl("run", "held", f"--image={node.PAUSE_IMAGE}", "--image-pull-policy=Never")
        cluster.kubectl("wait", "--for=condition=Ready", "pod/held", "--timeout=60s")
        during = _machine()
        assert during["netns"] == [*before["netns"], node.NETNS]
        assert during["cgroups"], "the pod runs under the kubelet's cgroup root"
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        _wait_until(lambda: not state.exists(), "the watchdog to stop the cluster", timeout=90)
        assert not any(_alive(pid) for pid in pids)
        assert _machine() == before
    finally:
        holder.kill()
        if state.exists():
            Cluster(state, node="real").stop()


def _machine() -> dict[str, object]:
    """What a real node changes on this machine: routes, namespaces, links, mounts, cgroups, sysctls."""

    def lines(*command: str) -> list[str]:
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()

    return {
        "routes": sorted(lines("ip", "-4", "route", "show", "table", "all")),
        "netns": [line.split()[0] for line in lines("ip", "netns", "list")],
        "links": sorted(line.split(":")[1] for line in lines("ip", "-o", "link")),
        "mounts": sorted(line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()),
        "cgroups": sorted(str(p) for p in Path("/sys/fs/cgroup").glob(f"*/{node.CGROUP_ROOT}")),
        "sysctls": [Path("/proc/sys", s).read_text() for s in node.KERNEL_SETTINGS],
        "folders": [Path(f).exists() for f in (*node.WRITTEN_ANYWAY, "/run/containerd")],
    }


# A stand-in for a test run: starts a cluster (kwok, or `real`), says so, and waits to be killed.
_HOLD_A_CLUSTER = """
import sys, threading
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from control_plane import Cluster
cluster = Cluster(Path(sys.argv[2]), *sys.argv[3:])
cluster.start(detached=False)
print("ready", flush=True)
threading.Event().wait(300)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; only its parent's wait is missing.
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def _kill(pid: int) -> None:
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_the_real_node_refuses_a_disk_on_which_the_kubelet_would_schedule_nothing() -> None:
    gib = 1 << 30
    # A 100 GiB disk and 3 GiB of images: 6 for the images twice, 1 for the pods, 1 the kubelet keeps free.
    assert node.disk_shortfall(free=5 * gib, total=100 * gib, images=3 * gib) == 3 * gib
    assert node.disk_shortfall(free=8 * gib, total=100 * gib, images=3 * gib) == 0


def test_a_layer_that_two_images_share_is_counted_once(tmp_path: Path) -> None:
    def archive(name: str, layers: dict[str, int]) -> Path:
        path = tmp_path / f"{name}.tar"
        with tarfile.open(path, "w") as out:
            for layer, size in layers.items():
                member = tarfile.TarInfo(f"{layer}.tar")
                member.size = size
                out.addfile(member, io.BytesIO(bytes(size)))
            link = tarfile.TarInfo(f"{name}-id/layer.tar")  # `docker save`'s legacy link to the layer
            link.type, link.linkname = tarfile.SYMTYPE, f"../{next(iter(layers))}.tar"
            out.addfile(link)
            config = tarfile.TarInfo("config.json")
            config.size = 2
            out.addfile(config, io.BytesIO(b"{}"))
        return path

    base, service, cache = {"base": 3000}, {"base": 3000, "app": 500}, {"base": 3000, "cache": 200}
    assert node.layer_bytes([archive("service", service), archive("cache", cache)]) == 3700
    assert node.layer_bytes([archive("base", base)]) == 3000
