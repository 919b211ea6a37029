"""gunicorn's production configuration: `gunicorn -c python:product_service.gunicorn_conf ...`.

The image uses `service/gunicorn.conf.py`, which is this module. Environment variables:
`PORT` (8080), `WEB_CONCURRENCY` (workers, 8 threads each; default one per CPU as the cgroup quota allows),
`LOG_LEVEL` (info), `PROMETHEUS_MULTIPROC_DIR` (a fresh temporary directory when unset),
`FORWARDED_ALLOW_IPS` (the proxies trusted with X-Forwarded-*; 127.0.0.1,::1), and every
variable of `product_service.settings`, validated before any worker starts. Command-line options
(e.g. `--bind 127.0.0.1:9000`, `--workers 2`) override these values.
"""

import gc
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

# prometheus_client picks its multiprocess storage when first imported, so the directory must be in the
# environment before anything imports it; the workers inherit it.
_OWN_METRICS_DIR = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _OWN_METRICS_DIR:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="product-service-metrics-")

from gunicorn.http import wsgi  # noqa: E402
from prometheus_client import multiprocess  # noqa: E402

# The application's modules (and the tracing ones, when tracing is on, below) are imported once here, in
# the master, so that every worker, including each one max_requests recycles, inherits them instead of
# importing them again. Importing opens nothing: the app, its pool and its Redis client are still
# created in each worker, after fork (product_service.wsgi).
import product_service.app  # noqa: E402, F401
from product_service.logs import JsonAccessLogger, logging_config  # noqa: E402
from product_service.proxies import DEFAULT_FORWARDED_ALLOW_IPS  # noqa: E402
from product_service.settings import SettingsError, load_settings  # noqa: E402
from product_service.tracing import (  # noqa: E402
    import_tracing_modules,
    start_tracing,
    stop_tracing,
    tracing_enabled,
)

if tracing_enabled(os.environ):
    import_tracing_modules()


def available_cpus() -> int:
    """CPUs this container may use: the cgroup v2 quota when there is one, else the affinity mask."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return len(os.sched_getaffinity(0))


# A container must listen on every interface for the Service to reach it.
bind = [f"0.0.0.0:{os.environ.get('PORT', '8080')}"]
# Threads so that a slow client or a stalled dependency holds one thread, not a whole process; one
# process per CPU for the CPU-bound part (the GIL). See product_service.worker and docs/service.md.
workers = int(os.environ.get("WEB_CONCURRENCY") or available_cpus())
worker_class = "product_service.worker.ProductServiceWorker"
threads = 8
# The app holds sockets and threads (pool, exporter) that must not cross fork(): load it in each worker.
preload_app = False
# A request stuck longer than this is killed; the pool (5 s) and Redis (0.1 s) timeouts are far below.
timeout = 30
# Below Kubernetes' default 30 s termination grace period, so in-flight requests finish before SIGKILL.
graceful_timeout = 25
keepalive = 5
# Recycle workers now and then to bound slow leaks; jitter keeps them from restarting together.
max_requests = 5000
max_requests_jitter = 2500
# Kubernetes manages the workers; the control socket would need a writable $HOME.
control_socket_disable = True
accesslog = "-"
logger_class = JsonAccessLogger
# The proxies whose X-Forwarded-* headers count: the access log's `client_addr` and the request's scheme.
# Kubernetes sets `*` (infra/app: only the ingress controller and Prometheus reach the pods).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", DEFAULT_FORWARDED_ALLOW_IPS)
# What such a proxy may set, and no more. The scheme by X-Forwarded-Proto alone, which Traefik overwrites on
# every request (gunicorn's default also reads X-Forwarded-Ssl and X-Forwarded-Protocol, which Traefik
# passes on from the client). No SCRIPT_NAME or PATH_INFO header (gunicorn's default forwarder_headers):
# Traefik passes a client's `SCRIPT_NAME: /api` on, and gunicorn would then serve /api/metrics as /metrics,
# which the Ingress keeps inside the cluster.
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}
forwarder_headers = ""
loglevel = os.environ.get("LOG_LEVEL", "info")
logconfig_dict = logging_config(loglevel.upper())


def _without_server_banner(default_headers: Any) -> Any:
    def headers(response: Any) -> list[str]:
        return [line for line in default_headers(response) if not line.startswith("Server:")]

    return headers


# gunicorn has no setting for it: every response it writes starts with `Server: gunicorn`, which tells a
# scanner what to try. (A test through a real gunicorn fails if an upgrade changes how it is written.)
wsgi.Response.default_headers = _without_server_banner(wsgi.Response.default_headers)


def on_starting(server: Any) -> None:
    """In the master, before any worker: fail fast on bad configuration, start metrics afresh."""
    try:
        load_settings(os.environ)
    except SettingsError as error:
        server.log.error("cannot start: %s", error)
        sys.exit(1)
    # Files left by a previous run would be summed into this run's metrics.
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)


def when_ready(server: Any) -> None:
    """In the master, once everything is imported and before the first worker forks."""
    # Workers inherit the master's objects as shared pages, but a full collection in a worker writes to
    # each tracked object's header and so copies every such page into the worker. Frozen objects are
    # never collected, so they stay shared (and a worker's full collection skips them); see gc.freeze.
    gc.collect()
    gc.freeze()


def post_fork(server: Any, worker: Any) -> None:
    # The exporter's batch thread must live in the worker: threads do not survive fork().
    start_tracing(os.environ)


def worker_exit(server: Any, worker: Any) -> None:
    from product_service.app import close_app

    app = getattr(worker, "wsgi", None)
    if app is not None:
        close_app(app)
    stop_tracing()


def child_exit(server: Any, worker: Any) -> None:
    # Drop the dead worker's live gauges (pool connections) from the sums.
    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    if _OWN_METRICS_DIR:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
