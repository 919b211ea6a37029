"""Where a gunicorn worker's time goes under load: py-spy samples, summarised per library.

py-spy samples master and workers from outside (no change to the service), and only the thread that
holds the GIL (`--gil`): with 8 threads per worker, sampling every thread would mostly show threads
parked in the poller or a socket call. What it samples is where the Python code's CPU time goes; the
few samples caught in a socket call are charged to "waiting" below, the rest to the libraries. Each sample is charged to the innermost frame of
a known library; standard-library frames count for the library that called them (json.dumps called by
Flask is Flask's time), and imports (a worker booting after max_requests) are counted apart.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

# (label, path fragments), checked in order against frames from the leaf outwards.
LIBRARIES = [
    ("imports (worker boot after max_requests)", ("<frozen importlib._bootstrap>",)),
    ("JSON logs (product_service.logs)", ("/product_service/logs.py",)),
    (
        "metrics (prometheus_client, product_service.metrics)",
        ("/prometheus_client/", "/product_service/metrics.py"),
    ),
    ("product_service (other own code)", ("/product_service/",)),
    ("OpenTelemetry (spans, instrumentation, OTLP export thread)", ("/opentelemetry/",)),
    ("psycopg + pool (Postgres)", ("/psycopg/", "/psycopg_pool/", "/psycopg_binary/")),
    ("redis client (Valkey)", ("/redis/",)),
    ("pydantic (validation, JSON)", ("/pydantic/", "/pydantic_core/")),
    ("PyJWT", ("/jwt/",)),
    ("Flask + Werkzeug", ("/flask/", "/werkzeug/")),
    ("gunicorn (HTTP parsing, socket writes, access log)", ("/gunicorn/",)),
]


# Leaf frames where a worker sits in a socket call. py-spy counts them as active, but the worker's kernel
# time is small (about a tenth of its CPU time here): it is waiting for the peer (Valkey, Postgres, the
# client's close), or for a CPU after waking that peer on two busy cores.
WAITING = "waiting in socket calls (peer, or CPU after waking it)"
WAITING_CALLS = (
    "AbstractConnection.send_packed_command ",
    "SocketBuffer._read_from_socket ",
    "Connection.wait ",
    "BasePipeline._communicate_gen ",
    "write ",
    "close_graceful ",
    "SyncWorker.wait ",
    "socket.accept ",
)


def py_spy() -> str | None:
    return shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")


def record(pid: int, seconds: float, output: Path) -> subprocess.Popen[bytes]:
    """Start sampling `pid` and its workers for `seconds`; wait on the returned process."""
    command = [
        py_spy() or "py-spy",
        "record",
        "--pid",
        str(pid),
        "--subprocesses",
        "--full-filenames",
        "--gil",
        "--nonblocking",
        "--rate",
        "200",
        "--duration",
        str(max(1, round(seconds))),
        "--format",
        "raw",
        "--output",
        str(output),
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarise(raw: Path, workers: bool = True) -> list[tuple[str, float]]:
    """(library, share of the workers' samples) in decreasing order, from py-spy's raw (collapsed) output.

    `workers=False` counts the samples of the sampled process itself (the gRPC server has no workers).
    """
    charged: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        all_frames = stack.split(";")
        frames = [f for f in all_frames if not f.startswith("process ")]
        if (workers and len(all_frames) - len(frames) < 2) or not frames:
            continue  # the master (a worker's samples start with the master's process, then its own)
        charged[charge(frames)] += int(count)
    total = sum(charged.values()) or 1
    return [(label, n / total) for label, n in charged.most_common()]


def charge(frames: list[str]) -> str:
    if any("<frozen importlib._bootstrap>" in frame for frame in frames):
        return LIBRARIES[0][0]
    if frames[-1].startswith(WAITING_CALLS):
        return WAITING
    for frame in reversed(frames):
        for label, fragments in LIBRARIES:
            if any(fragment in frame for fragment in fragments):
                return label
    return "other"
