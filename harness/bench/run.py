"""The product service's benchmark (`make bench-service`): a script, not a test.

It starts embedded Postgres and Valkey, migrates, seeds products through the API, then serves the
service with the production gunicorn config (2 threaded workers, Prometheus multiprocess metrics, tracing
exported over OTLP to a loopback sink, sampled at 10 % as the prod profile deploys it) next to a bare
Flask app with the same gunicorn settings, and drives both from a loopback load generator at 32
connections. A second instance of the service traces every request, for the cached GET's target with
full tracing. Beside them, the gRPC server
(`python -m product_service grpc`, same settings) answers GetProduct from the same cache, driven at 32
concurrent calls. It prints RPS, p50/p99 latency, the ratio to bare Flask (and gRPC's to REST's cached
GET) and the resident memory of gunicorn master + workers, and writes build/bench/results.json.
Everything listens on 127.0.0.1 and every load run is bounded in time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import resource
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import grpc
import jwt
import psutil
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_load import drive_get_product
from load import HOST, Request, Result, choose_generator, drive, generator_name, keep_alive
from otlp_sink import OtlpSink
from product_service.devservers import embedded_servers, stop_child
from profiling import py_spy, record, summarise

REPO = Path(__file__).resolve().parents[2]
BENCH = Path(__file__).resolve().parent
OUT = REPO / "build" / "bench"
PRODUCTION_CONFIG = REPO / "service" / "gunicorn.conf.py"
SERVICE_APP = "product_service.wsgi:app"
WORKERS = 2
CONNECTIONS = 32
BATCH_SIZE = 50
MIB = 1024 * 1024

# Sampling as the prod profile deploys it (platform:traceSampleRatio 0.1), and every request traced.
PROD_SAMPLING = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}
EVERY_REQUEST_TRACED = {"OTEL_TRACES_SAMPLER": "parentbased_always_on"}
CACHED_GET = "cached GET by id"
CACHED_GET_ALL_TRACED = "cached GET, all traced"
GRPC_SCENARIO = "gRPC GetProduct (cached)"
# The performance targets: RPS as a fraction of bare Flask's in the same pairs of runs, the cached GET's p99
# against bare Flask's p99 in the same pairs.
RATIO_TARGETS = {
    CACHED_GET: 0.6,
    "uncached GET by id": 0.4,
    "list 20 (offset < 1000)": 0.35,
    "batch get 50 ids": 0.35,
    CACHED_GET_ALL_TRACED: 0.45,
}
P99_TARGET_TIMES_BARE = 2.0
# The REST container's memory request (infra/app); with its CPU limit of 1, a pod runs one worker.
POD_MEMORY_REQUEST_MIB = 256.0
# Which ids, offsets and batches the runs use: seeded, so two runs send the same requests.
SHUFFLE = random.Random()  # noqa: S311 (load shapes, not secrets)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    SHUFFLE.seed(args.seed)
    choose_generator(args.generator, keep_alive=args.keep_alive)
    secret = secrets.token_urlsafe(32)
    with ExitStack() as stack:
        progress("starting embedded Postgres and Valkey, applying migrations")
        servers = stack.enter_context(embedded_servers(OUT / "data"))
        sink = stack.enter_context(OtlpSink())
        env = service_environment(servers.database_url, servers.redis_url, secret, sink.endpoint)
        service_env = env | PROD_SAMPLING | dict(item.split("=", 1) for item in args.set)
        service = stack.enter_context(
            Gunicorn(
                "product-service", SERVICE_APP, PRODUCTION_CONFIG, service_env, "/health", options=args.option
            )
        )
        all_traced = stack.enter_context(
            Gunicorn(
                "product-service-all-traced",
                SERVICE_APP,
                PRODUCTION_CONFIG,
                service_env | EVERY_REQUEST_TRACED,
                "/health",
                options=args.option,
            )
        )
        bare_env = env | {"BENCH_PRODUCTION_GUNICORN_CONFIG": str(PRODUCTION_CONFIG)}
        bare_config = BENCH / "bare_gunicorn.conf.py"
        bare = stack.enter_context(
            Gunicorn("bare-flask", "bare_app:app", bare_config, bare_env, "/bare", BENCH)
        )
        grpc_server = stack.enter_context(GrpcServer(service_env))
        cache = redis.Redis.from_url(servers.redis_url)
        ids = seed(service.port, args.products, secret, cache)
        report = measure(service, all_traced, bare, grpc_server, cache, ids, args)
        report["spans_exported"] = sink.spans
        report["overrides"] = {"environment": args.set, "gunicorn_options": args.option}
    print_report(report)
    (OUT / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    progress(f"results written to {(OUT / 'results.json').relative_to(REPO)}")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each measured run")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per scenario; the report gives the median of each figure"
    )
    parser.add_argument("--products", type=int, default=10_000, help="products to seed")
    parser.add_argument("--seed", type=int, default=42, help="seed of the request shuffles")
    parser.add_argument(
        "--generator",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="load generator: wrk when installed (auto), or the Python one, which competes for the same CPUs",
    )
    parser.add_argument(
        "--keep-alive",
        action="store_true",
        help="wrk keeps its connections open between requests (by default each request asks the server "
        "to close the connection, as a client without connection reuse does)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for the service only, to measure a variation (e.g. OTEL_SDK_DISABLED=true)",
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="OPTION",
        help="a gunicorn option for the service only, after the config (e.g. --option=--max-requests=0)",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="WORDS",
        help="run only the scenarios whose name contains WORDS (repeatable), e.g. --only list",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after the measured runs, run each scenario again under py-spy and print where workers spend time",
    )
    return parser.parse_args(argv)


# --- the measurements -----------------------------------------------------------------------------------


def measure(
    service: Gunicorn,
    all_traced: Gunicorn,
    bare: Gunicorn,
    grpc_server: GrpcServer,
    cache: redis.Redis,
    ids: list[str],
    args: argparse.Namespace,
) -> dict:
    """Every scenario (or those `args.only` names) in pairs with bare Flask, `args.repeat` times."""
    seconds, repeat, profile, only = args.seconds, args.repeat, args.profile, args.only
    load_at_start = os.getloadavg()[0]
    cpu_at_start = machine_cpu_seconds()
    meter = CpuMeter(grpc_server)
    bare_requests = [Request("GET", "/bare")]
    gets = [Request("GET", f"/api/v1/products/{i}") for i in ids]

    def steady(server: Gunicorn, requests: list[Request]) -> tuple[Result, dict[str, float]]:
        return meter.during(
            lambda: drive(server.port, requests, connections=CONNECTIONS, seconds=seconds), server
        )

    def on_service(requests: list[Request], server: Gunicorn = service) -> Callable[[], tuple[Result, dict]]:
        def run() -> tuple[Result, dict]:
            result, cpu = steady(server, requests)
            return result, {"cpu_ms_per_request": cpu}

        return run

    def warm_cache() -> None:
        warm(service.port, ids)

    def grpc_gets() -> tuple[Result, dict]:
        def run() -> Result:
            order = SHUFFLE.sample(ids, len(ids))
            return drive_get_product(grpc_server.port, order, connections=CONNECTIONS, seconds=seconds)

        result, cpu = meter.during(run, service)
        return result, {"cpu_ms_per_request": cpu}

    uncached = UncachedGets(service, cache, gets, seconds, meter)
    scenarios = [
        Scenario(CACHED_GET, warm_cache, on_service(shuffled(gets)), service.pid),
        Scenario(CACHED_GET_ALL_TRACED, warm_cache, on_service(shuffled(gets), all_traced), all_traced.pid),
        Scenario("uncached GET by id", uncached.prepare, uncached.measure, service.pid),
        Scenario("list 20 (offset < 1000)", lambda: None, on_service(list_requests()), service.pid),
        Scenario("batch get 50 ids", warm_cache, on_service(batch_requests(ids)), service.pid),
        Scenario(GRPC_SCENARIO, warm_cache, grpc_gets, grpc_server.pid),
    ]
    if only:
        scenarios = [s for s in scenarios if any(words in s.name for words in only)]
        if not scenarios:
            raise SystemExit(f"no scenario's name contains any of {only}")
    progress(f"warming up both servers ({generator_name()} load generator)")
    drive(bare.port, bare_requests, connections=CONNECTIONS, seconds=2)
    warm_cache()
    drive(service.port, gets, connections=CONNECTIONS, seconds=2)
    drive(all_traced.port, gets, connections=CONNECTIONS, seconds=2)
    drive_get_product(grpc_server.port, ids, connections=CONNECTIONS, seconds=2)

    rows = []
    for scenario in scenarios:
        cpu_before = machine_cpu_seconds()
        pairs = []
        for attempt in range(1, repeat + 1):
            # The scenario right after a bare Flask run of the same length: both see the same machine state.
            progress(f"bare Flask, then {scenario.name} ({attempt}/{repeat})")
            baseline, bare_cpu = steady(bare, bare_requests)
            scenario.prepare()
            result, notes = scenario.measure()
            pairs.append(
                {
                    "service": asdict(result) | {"rps": result.rps},
                    "bare": asdict(baseline) | {"rps": baseline.rps},
                    "ratio": result.rps / baseline.rps if baseline.rps else 0.0,
                    "bare_cpu_ms_per_request": bare_cpu,
                    "service_memory_mib": service.memory(),
                    **notes,
                }
            )
        stolen = stolen_percent(cpu_before, machine_cpu_seconds())
        rows.append({"scenario": scenario.name, **medians(pairs), "stolen_percent": stolen, "runs": pairs})
    memory = {
        "service": service.memory(),
        "service, all traced": all_traced.memory(),
        "bare": bare.memory(),
        "grpc": grpc_server.memory(),
    }
    by_name = {row["scenario"]: row for row in rows}
    profiles = {scenario.name: profiled(scenario, seconds) for scenario in scenarios} if profile else {}
    return {
        "generator": generator_name(),
        "keep_alive": keep_alive(),
        "connections": CONNECTIONS,
        "workers": len(service.pids()) - 1,
        "seconds_per_run": seconds,
        "runs_per_scenario": repeat,
        "products": len(ids),
        "cpus": os.cpu_count(),
        # Anything else running on the machine takes CPU from both servers and the load generator.
        "load_average_1m_at_start": load_at_start,
        "load_average_1m_at_end": os.getloadavg()[0],
        # So does the hypervisor, for its other guests: the share of the CPUs this machine did not get.
        "stolen_percent": stolen_percent(cpu_at_start, machine_cpu_seconds()),
        "scenarios": rows,
        "grpc_vs_rest_cached_get": grpc_versus_rest(by_name),
        "bare": medians([run for row in rows for run in row["runs"]])["bare"],
        "memory_mib": memory,
        "peak_service_rss_mib": max(run["service_memory_mib"]["rss"] for row in rows for run in row["runs"]),
        "targets": targets(by_name, memory["service"]),
        "profiles": profiles,
    }


def grpc_versus_rest(by_name: dict[str, dict]) -> dict[str, float] | None:
    if GRPC_SCENARIO not in by_name or CACHED_GET not in by_name:
        return None
    rest, over_grpc = by_name[CACHED_GET]["service"], by_name[GRPC_SCENARIO]["service"]
    return {
        "grpc_rps": over_grpc["rps"],
        "rest_rps": rest["rps"],
        "ratio": over_grpc["rps"] / rest["rps"] if rest["rps"] else 0.0,
    }


def targets(by_name: dict[str, dict], memory: dict[str, Any]) -> list[dict[str, Any]]:
    """Each performance target (docs/performance.md) of the scenarios run: its figure, and whether it is met."""
    found = [
        {
            "target": f"{name}: RPS >= {target} x bare Flask",
            "value": f"{by_name[name]['ratio']:.2f}",
            "met": by_name[name]["ratio"] >= target,
        }
        for name, target in RATIO_TARGETS.items()
        if name in by_name
    ]
    cached = by_name.get(CACHED_GET)
    if cached is not None:
        limit = P99_TARGET_TIMES_BARE * cached["bare"]["p99_ms"]
        found.append(
            {
                "target": f"{CACHED_GET}: p99 <= {P99_TARGET_TIMES_BARE:.0f} x bare Flask's p99 ({limit:.1f} ms)",
                "value": f"{cached['service']['p99_ms']:.1f} ms",
                "met": cached["service"]["p99_ms"] <= limit,
            }
        )
    pod = memory["pod_pss"]
    found.append(
        {
            "target": f"a pod's memory (master + 1 worker, PSS) well under its request of "
            f"{POD_MEMORY_REQUEST_MIB:.0f} MiB (here: at most half)",
            "value": f"{pod:.0f} MiB",
            "met": pod <= POD_MEMORY_REQUEST_MIB / 2,
        }
    )
    return found


def profiled(scenario: Scenario, seconds: float) -> dict[str, float]:
    """The scenario again, sampled by py-spy; its figures are not reported (py-spy takes CPU too)."""
    if py_spy() is None:
        raise SystemExit("--profile needs py-spy: `make setup` installs it (requirements-dev.txt)")
    progress(f"profiling {scenario.name}")
    output = OUT / f"profile-{re.sub(r'[^a-z0-9]+', '-', scenario.name.lower()).strip('-')}.txt"
    scenario.prepare()
    sampler = record(scenario.server_pid, seconds, output)
    scenario.measure()
    sampler.wait(timeout=seconds + 60)
    return dict(summarise(output, workers=scenario.name != GRPC_SCENARIO))


def medians(pairs: list[dict]) -> dict:
    """Each figure's median over the repeated runs (counts are summed): robust to a noisy neighbour."""

    def median_of(side: str) -> dict:
        figures = {key: statistics.median(p[side][key] for p in pairs) for key in ("rps", "p50_ms", "p99_ms")}
        return figures | {key: sum(p[side][key] for p in pairs) for key in ("requests", "errors")}

    cpu_keys = pairs[0]["cpu_ms_per_request"]
    return {
        "service": median_of("service"),
        "bare": median_of("bare")
        | {
            "cpu_ms_per_request": {
                key: statistics.median(p["bare_cpu_ms_per_request"][key] for p in pairs)
                for key in pairs[0]["bare_cpu_ms_per_request"]
            }
        },
        "ratio": statistics.median(p["ratio"] for p in pairs),
        "cpu_ms_per_request": {
            key: statistics.median(p["cpu_ms_per_request"][key] for p in pairs) for key in cpu_keys
        },
        # Only the uncached scenario counts Valkey's hits; bare Flask's medians span every scenario's pairs.
        **{
            key: sum(p[key] for p in pairs)
            for key in ("redis_hits", "redis_misses")
            if all(key in p for p in pairs)
        },
    }


@dataclass(frozen=True)
class Scenario:
    name: str
    prepare: Callable[[], None]
    measure: Callable[[], tuple[Result, dict]]
    server_pid: int  # the process (and its workers) that serves it, for the profile


class UncachedGets:
    """GET by ids that are not in the cache: each request misses Redis, reads Postgres and back-fills.

    The cache is flushed and each id asked once. wrk cycles through its list for a fixed time, so a
    short probe estimates the rate and the run stops before the ids run out; Redis's own hit counter
    during the run shows whether any request was served from the cache after all.
    """

    def __init__(
        self, service: Gunicorn, cache: redis.Redis, gets: list[Request], seconds: float, meter: CpuMeter
    ):
        self.service, self.cache, self.gets, self.seconds, self.meter = service, cache, gets, seconds, meter
        self.port = service.port
        self.duration = seconds

    def prepare(self) -> None:
        self.cache.flushdb()
        probe = drive(self.port, shuffled(self.gets), connections=CONNECTIONS, seconds=2)
        budget = 0.8 * len(self.gets) / max(probe.rps, 1.0)
        self.duration = max(1.0, min(self.seconds, float(int(budget))))
        self.cache.flushdb()

    def measure(self) -> tuple[Result, dict]:
        requests = shuffled(self.gets)
        before = self.cache.info("stats")
        result, cpu = self.meter.during(
            lambda: drive(self.port, requests, connections=CONNECTIONS, seconds=self.duration), self.service
        )
        after = self.cache.info("stats")
        hits = after["keyspace_hits"] - before["keyspace_hits"]
        misses = after["keyspace_misses"] - before["keyspace_misses"]
        return result, {"cpu_ms_per_request": cpu, "redis_hits": hits, "redis_misses": misses}


def list_requests() -> list[Request]:
    return [
        Request("GET", f"/api/v1/products?limit=20&offset={20 * SHUFFLE.randrange(50)}") for _ in range(500)
    ]


def batch_requests(ids: list[str]) -> list[Request]:
    bodies = [json.dumps({"ids": SHUFFLE.sample(ids, BATCH_SIZE)}).encode() for _ in range(500)]
    return [Request("POST", "/api/v1/products:batchGet", body) for body in bodies]


def shuffled(items: list[Request]) -> list[Request]:
    return SHUFFLE.sample(items, len(items))


# --- seeding --------------------------------------------------------------------------------------------


def seed(port: int, count: int, secret: str, cache: redis.Redis) -> list[str]:
    """Create `count` products through the API (the real write path) and return their ids."""
    existing = list_ids(port)
    if len(existing) < count:
        progress(f"seeding {count - len(existing)} products")
        token = jwt.encode(
            {"scope": "products:write", "sub": "bench", "exp": int(time.time()) + 3600}, secret
        )
        headers = (("Authorization", f"Bearer {token}"),)
        creates = [
            Request("POST", "/api/v1/products", json.dumps(product(n)).encode(), headers)
            for n in range(len(existing), count)
        ]
        result = drive(port, creates, connections=8, seconds=600, once=True)
        if result.errors:
            raise SystemExit(f"seeding failed: {result.errors} of {result.requests} creates were not 2xx")
        existing = list_ids(port)
    cache.flushdb()
    return existing[:count]


def product(n: int) -> dict:
    return {
        "name": f"Bench product {n:05d}",
        "price": f"{n % 10_000 / 100:.2f}",
        "description": "A product as the seed writes it, so the document has the same size.",
    }


def list_ids(port: int) -> list[str]:
    ids: list[str] = []
    while True:
        page = get_json(port, f"/api/v1/products?limit=100&offset={len(ids)}")
        ids += [item["id"] for item in page["items"]]
        if not page["items"] or len(ids) >= page["total"]:
            return ids


def warm(port: int, ids: list[str]) -> None:
    """Put every product in the cache: batch get back-fills what it read from Postgres."""
    for start in range(0, len(ids), 100):
        post_json(port, "/api/v1/products:batchGet", {"ids": ids[start : start + 100]})


def get_json(port: int, path: str) -> dict:
    return http_json(port, "GET", path, None)


def post_json(port: int, path: str, body: dict) -> dict:
    return http_json(port, "POST", path, body)


def http_json(port: int, method: str, path: str, body: dict | None) -> dict:
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        connection.request(method, path, payload, {"Content-Type": "application/json"})
        response = connection.getresponse()
        data = response.read()
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:300]!r}")
        return json.loads(data)
    finally:
        connection.close()


# --- the servers ----------------------------------------------------------------------------------------


def service_environment(database_url: str, redis_url: str, secret: str, otlp_endpoint: str) -> dict[str, str]:
    metrics_dir = OUT / "prometheus-multiproc"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    return os.environ | {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "JWT_SECRET": secret,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint,
        "OTEL_SERVICE_NAME": "product-service-bench",
        "WEB_CONCURRENCY": str(WORKERS),
        "PYTHONPATH": str(BENCH),
    }


class Gunicorn:
    """gunicorn serving `app` on a free loopback port, from `with` until the block ends (SIGTERM)."""

    def __init__(
        self,
        name: str,
        app: str,
        config: Path,
        env: dict[str, str],
        ready: str,
        cwd: Path = REPO,
        options: list[str] | None = None,
    ):
        self.name, self.app, self.config, self.env, self.ready, self.cwd = name, app, config, env, ready, cwd
        self.options = options or []
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Gunicorn:
        log = (OUT / f"{self.name}.log").open("wb")
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "--config",
            str(self.config),
            "--bind",
            f"{HOST}:{self.port}",
            "--workers",
            str(WORKERS),
            "--worker-tmp-dir",
            "/dev/shm",  # noqa: S108 (tmpfs, as in the image)
            *self.options,
            self.app,
        ]
        self.process = subprocess.Popen(
            command, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        self._wait_until_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            stop_child(self.process)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def pids(self) -> list[int]:
        return [self.pid, *children(self.pid)]

    def memory(self) -> dict[str, Any]:
        """Resident memory of master + workers in MiB: RSS (shared pages counted in each) and PSS (split).

        A pod runs one worker. Master + one worker's PSS would leave out the share of the master's pages
        that PSS gives the other workers here; the pod's figure is the whole PSS less the other workers'
        own pages (USS), which no other process maps."""
        pids = self.pids()
        usage = [resident_mib(pid) for pid in pids]
        rss = [process["rss"] for process in usage]
        pss = [process["pss"] for process in usage]
        uss = [process["uss"] for process in usage[1:]]
        return {
            "rss": sum(rss),
            "pss": sum(pss),
            "rss_per_process": rss,
            "pss_per_process": pss,  # the master first
            "uss_per_worker": uss,
            "pod_pss": sum(pss) - (len(uss) - 1) * statistics.mean(uss) if uss else sum(pss),
            "processes": len(pids),
        }

    def _wait_until_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(
                    f"{self.name} exited with {self.process.returncode}: see {OUT}/{self.name}.log"
                )
            try:
                get_json(self.port, self.ready)
                return
            except (OSError, RuntimeError, ValueError):
                time.sleep(0.2)
        raise SystemExit(f"{self.name} was not ready within 60 s: see {OUT}/{self.name}.log")


class GrpcServer:
    """`python -m product_service grpc` on a free loopback port, from `with` until the block ends (SIGTERM)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port, self.metrics_port = free_port(), free_port()
        self.env = env | {
            "GRPC_HOST": HOST,
            "GRPC_PORT": str(self.port),
            "GRPC_METRICS_PORT": str(self.metrics_port),
            "GRPC_DRAIN_SECONDS": "0",
        }
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> GrpcServer:
        log = (OUT / "product-service-grpc.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "product_service", "grpc"],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        with grpc.insecure_channel(f"{HOST}:{self.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise SystemExit(f"the gRPC server exited with {self.process.returncode}: see {log.name}")
                try:
                    health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    return self
                except grpc.RpcError:
                    time.sleep(0.2)
        raise SystemExit(f"the gRPC server was not serving within 60 s: see {log.name}")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            stop_child(self.process)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def memory(self) -> dict[str, Any]:
        return {"rss": resident_mib(self.pid)["rss"]}


def children(parent: int) -> list[int]:
    try:
        return [child.pid for child in psutil.Process(parent).children()]
    except psutil.NoSuchProcess:
        return []


class CpuMeter:
    """CPU time per request of each process group while a load run lasts: a figure that, unlike RPS,
    does not depend on what else the machine is running."""

    def __init__(self, grpc_server: GrpcServer) -> None:
        servers = {child.pid: child.cmdline() for child in psutil.Process().children()}
        self._groups = {
            "grpc server": grpc_server.pid,
            "postgres": next((pid for pid, argv in servers.items() if "-D" in argv), None),
            "valkey": next((pid for pid, argv in servers.items() if argv and "valkey" in argv[0]), None),
        }

    def during(self, run: Callable[[], Result], serving: Gunicorn) -> tuple[Result, dict[str, float]]:
        """`workers` are those of `serving`, the gunicorn that the run loads."""
        before = self._seconds(serving)
        result = run()
        after = self._seconds(serving)
        return result, {name: (after[name] - before[name]) * 1000 / max(result.requests, 1) for name in after}

    def _seconds(self, serving: Gunicorn) -> dict[str, float]:
        groups = self._groups | {"workers": serving.pid}
        seconds = {name: tree_cpu_seconds(pid) for name, pid in groups.items() if pid is not None}
        # wrk runs as a child that has exited by now; the Python generator and the OTLP sink run in here.
        finished = resource.getrusage(resource.RUSAGE_CHILDREN)
        itself = resource.getrusage(resource.RUSAGE_SELF)
        seconds["wrk"] = finished.ru_utime + finished.ru_stime
        seconds["bench process"] = itself.ru_utime + itself.ru_stime
        return seconds


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of `pid` and its live descendants, each with those of its exited children."""
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    return sum(cpu_seconds(process) for process in tree)


def cpu_seconds(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return times.user + times.system + times.children_user + times.children_system


def machine_cpu_seconds() -> tuple[float, float]:
    """The machine's CPU time so far: (stolen by the hypervisor, all of it). Guest time is already
    counted in user, so it is not added again."""
    times = psutil.cpu_times()
    every = (times.user, times.nice, times.system, times.idle, times.iowait, times.irq, times.softirq)
    return times.steal, sum(every) + times.steal


def stolen_percent(before: tuple[float, float], after: tuple[float, float]) -> float:
    total = after[1] - before[1]
    return 100 * (after[0] - before[0]) / total if total else 0.0


def resident_mib(pid: int) -> dict[str, float]:
    """Resident memory of one process in MiB: RSS, PSS and USS (its own pages); zeros if it has gone."""
    try:
        memory = psutil.Process(pid).memory_full_info()
    except psutil.NoSuchProcess:
        return {"rss": 0.0, "pss": 0.0, "uss": 0.0}
    return {"rss": memory.rss / MIB, "pss": memory.pss / MIB, "uss": memory.uss / MIB}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# --- the report -----------------------------------------------------------------------------------------


def print_report(report: dict) -> None:
    print()
    print(
        f"{report['workers']} gunicorn workers (the production worker class), {report['connections']} connections, {report['generator']} "
        f"load generator ({'keep-alive' if report['keep_alive'] else 'a new connection per request'}), "
        f"{report['cpus']} CPUs, {report['products']} products, "
        f"{report['runs_per_scenario']} x {report['seconds_per_run']:.0f} s per scenario (medians), "
        f"1-minute load average "
        f"{report['load_average_1m_at_start']:.1f} at the start, {report['load_average_1m_at_end']:.1f} at the end, "
        f"{report['stolen_percent']:.1f} % of the CPUs' time stolen by the hypervisor"
    )
    overrides = report["overrides"]
    if overrides["environment"] or overrides["gunicorn_options"]:
        print(f"service overrides: {' '.join(overrides['environment'] + overrides['gunicorn_options'])}")
    header = (
        f"{'scenario':<26}{'RPS':>8}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'bare RPS':>10}"
        f"{'bare p99':>10}{'ratio':>7}"
    )
    print(header)
    print("-" * len(header))
    for row in report["scenarios"]:
        service, bare = row["service"], row["bare"]
        print(
            f"{row['scenario']:<26}{service['rps']:>8.0f}{service['p50_ms']:>9.1f}{service['p99_ms']:>9.1f}"
            f"{service['errors']:>8}{bare['rps']:>10.0f}{bare['p99_ms']:>10.1f}{row['ratio']:>7.2f}"
        )
        if "redis_hits" in row:
            print(f"{'':<26}Redis during the run: {row['redis_misses']} misses, {row['redis_hits']} hits")
    bare = report["bare"]
    print(
        f"{'bare Flask':<26}{bare['rps']:>8.0f}{bare['p50_ms']:>9.1f}{bare['p99_ms']:>9.1f}{bare['errors']:>8}"
    )
    groups = ["workers", "grpc server", "postgres", "valkey", "wrk", "bench process"]
    print(
        f"\n{'CPU ms per request':<26}"
        + "".join(f"{g:>14}" for g in groups)
        + f"{'total':>8}{'stolen %':>10}"
    )
    for name, cpu, stolen in [
        ("bare Flask", report["bare"]["cpu_ms_per_request"], report["stolen_percent"])
    ] + [(row["scenario"], row["cpu_ms_per_request"], row["stolen_percent"]) for row in report["scenarios"]]:
        print(
            f"{name:<26}"
            + "".join(f"{cpu[g]:>14.2f}" for g in groups)
            + f"{sum(cpu[g] for g in groups):>8.2f}{stolen:>10.1f}"
        )
    versus = report["grpc_vs_rest_cached_get"]
    if versus is not None:
        print(
            f"\ngRPC GetProduct vs REST GET by id, both cached, same run: {versus['grpc_rps']:.0f} vs "
            f"{versus['rest_rps']:.0f} RPS, ratio {versus['ratio']:.2f} (one gRPC process vs "
            f"{report['workers']} gunicorn workers)"
        )
    peak = report["peak_service_rss_mib"]
    memory = report["memory_mib"]
    for name in ("service", "service, all traced", "bare"):
        pss = memory[name]["pss_per_process"]
        print(
            f"\n{name}: gunicorn master + {len(pss) - 1} workers at the end: PSS {sum(pss):.0f} MiB = "
            f"{sum(pss) / (len(pss) - 1):.0f} MiB per worker (master {pss[0]:.0f}, workers "
            f"{', '.join(f'{p:.0f}' for p in pss[1:])}), RSS {memory[name]['rss']:.0f} MiB; "
            f"a pod's (master + 1 worker) PSS {memory[name]['pod_pss']:.0f} MiB",
            end="",
        )
    print(f"\nservice RSS at peak: {peak:.0f} MiB")
    print(f"gRPC server: RSS {memory['grpc']['rss']:.0f} MiB at the end")
    print(f"spans exported to the loopback OTLP sink: {report['spans_exported']}")
    print("\nthe targets (docs/performance.md), this run:")
    for target in report["targets"]:
        print(f"  {'met   ' if target['met'] else 'MISSED'}  {target['target']}: {target['value']}")
    for name, shares in report["profiles"].items():
        print(f"\nwhere the CPU time of the Python code goes, {name} (py-spy --gil, by library):")
        for library, share in shares.items():
            if share >= 0.01:
                print(f"  {share:>6.1%}  {library}")


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
