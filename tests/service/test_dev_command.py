"""`make run` (python -m product_service dev): one command serves the API, REST and gRPC, on embedded servers."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
import pytest
from product_service.devservers import free_port
from product_service.grpc.generated.product.v1 import product_pb2 as pb
from product_service.grpc.generated.product.v1 import product_pb2_grpc as pb_grpc
from service_helpers import wait_until

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


ENV = {
    key: value
    for key, value in os.environ.items()
    if key not in ("DATABASE_URL", "REDIS_URL", "JWT_SECRET", "PROMETHEUS_MULTIPROC_DIR")
}


def start_dev(data_dir: Path, port: int, grpc_port: int, output: Path) -> subprocess.Popen[bytes]:
    with output.open("wb") as sink:
        # Its own process group, like a terminal's foreground job: Ctrl-C reaches the whole group.
        return subprocess.Popen(
            [sys.executable, "-m", "product_service", "dev", "--data-dir", str(data_dir)],
            env={
                **ENV,
                "PORT": str(port),
                "GRPC_PORT": str(grpc_port),
                "GRPC_METRICS_PORT": str(free_port()),
            },
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def descendants(pid: int) -> set[int]:
    found = set()
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        found |= {int(child), *descendants(int(child))}
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_serving(dev: subprocess.Popen[bytes], port: int, output: Path) -> None:
    wait_until(lambda: "export TOKEN=" in output.read_text() or dev.poll() is not None, 90, "the banner")
    wait_until(lambda: _ready(port) or dev.poll() is not None, 90, "/ready on the dev server")
    assert dev.poll() is None, output.read_text()


def test_dev_serves_on_embedded_servers_prints_a_token_and_ctrl_c_stops_everything(
    tmp_path: Path, server_dir: Path
) -> None:
    port, grpc_port = free_port(), free_port()
    output = tmp_path / "output.txt"
    dev = start_dev(server_dir / "data", port, grpc_port, output)
    try:
        wait_serving(dev, port, output)
        text = output.read_text()
        assert f"http://127.0.0.1:{port}" in text
        token = re.search(r"export TOKEN=(\S+)", text)
        assert token is not None, text
        servers = re.findall(r"127\.0\.0\.1:(\d+)", text)
        created = _post(port, token.group(1), {"name": "Tea", "price": "3.50"})
        assert created["price"] == "3.50"
        assert f"grpcurl -plaintext 127.0.0.1:{grpc_port} list" in text
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = pb_grpc.ProductServiceStub(channel)
            wait_until(lambda: _grpc_serves(stub, created["id"]), 30, "gRPC on the dev server")

        os.killpg(dev.pid, signal.SIGINT)

        assert dev.wait(timeout=60) == 0
    finally:
        if dev.poll() is None:
            os.killpg(dev.pid, signal.SIGKILL)
            dev.wait()
    for server_port in {int(p) for p in servers}:
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", server_port), timeout=1).close()
    assert (server_dir / "data" / "postgres" / "PG_VERSION").exists()  # data kept for the next run


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGHUP])
def test_dev_stopped_by_sigterm_or_sighup_alone_stops_everything_it_started(
    tmp_path: Path, server_dir: Path, stop_signal: signal.Signals
) -> None:
    port, grpc_port = free_port(), free_port()
    output = tmp_path / "output.txt"
    dev = start_dev(server_dir / "data", port, grpc_port, output)
    try:
        wait_serving(dev, port, output)
        started = descendants(dev.pid)
        assert len(started) >= 5  # gunicorn and its workers, the gRPC server, Postgres (own session), Valkey

        os.kill(dev.pid, stop_signal)  # the process only, not its group

        assert dev.wait(timeout=60) == 0
    finally:
        if dev.poll() is None:
            os.killpg(dev.pid, signal.SIGKILL)
            dev.wait()
    wait_until(lambda: not any(alive(pid) for pid in started), 30, "every process dev started to exit")
    assert not (server_dir / "data" / "dev-processes.json").exists()


@pytest.mark.parametrize(
    ("stop_signal", "to_group"),
    [(signal.SIGTERM, False), (signal.SIGHUP, True)],
    ids=["SIGTERM to make", "SIGHUP to the terminal's process group"],
)
def test_make_run_stopped_by_a_signal_stops_everything(
    tmp_path: Path, server_dir: Path, stop_signal: signal.Signals, to_group: bool
) -> None:
    port, grpc_port = free_port(), free_port()
    env = {
        **ENV,
        "PORT": str(port),
        "GRPC_PORT": str(grpc_port),
        "GRPC_METRICS_PORT": str(free_port()),
        "DATA_DIR": str(server_dir / "data"),
    }
    output = tmp_path / "output.txt"
    with output.open("wb") as sink:
        make = subprocess.Popen(
            ["make", "run"], cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    started: set[int] = set()
    try:
        wait_serving(make, port, output)
        started = descendants(make.pid)

        (os.killpg if to_group else os.kill)(make.pid, stop_signal)

        make.wait(timeout=60)
        wait_until(
            lambda: not any(alive(pid) for pid in started), 30, "every process make run started to exit"
        )
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait()
        for pid in started:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_second_dev_after_kill_9_of_the_first_starts_cleanly_on_the_same_port_and_data(
    tmp_path: Path, server_dir: Path
) -> None:
    port, grpc_port = free_port(), free_port()
    first = start_dev(server_dir / "data", port, grpc_port, tmp_path / "first.txt")
    second = None
    left_behind: set[int] = set()
    try:
        wait_serving(first, port, tmp_path / "first.txt")
        left_behind = descendants(first.pid)

        first.kill()
        first.wait()

        second = start_dev(server_dir / "data", port, grpc_port, tmp_path / "second.txt")
        wait_serving(second, port, tmp_path / "second.txt")
        token = re.search(r"export TOKEN=(\S+)", (tmp_path / "second.txt").read_text())
        assert token is not None
        assert _post(port, token.group(1), {"name": "Tea", "price": "1.00"})["price"] == "1.00"
        assert not any(alive(pid) for pid in left_behind)

        os.killpg(second.pid, signal.SIGINT)
        assert second.wait(timeout=60) == 0
    finally:
        for dev in (first, second):
            if dev is not None and dev.poll() is None:
                os.killpg(dev.pid, signal.SIGKILL)
                dev.wait()
        for pid in left_behind:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def _grpc_serves(stub: pb_grpc.ProductServiceStub, product_id: str) -> bool:
    try:
        return bool(stub.GetProduct(pb.GetProductRequest(id=product_id), timeout=2).price_decimal == "3.50")
    except grpc.RpcError:
        return False


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _post(port: int, token: str, body: dict[str, str]) -> dict[str, str]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/products",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.loads(response.read())  # type: ignore[no-any-return]
