"""The image's HEALTHCHECK: `python -m product_service.healthcheck [rest|grpc]`, exit 0 when serving.

It asks the server the container runs, named by the container's main process (/proc/1/cmdline):
`python -m product_service grpc` (the gRPC Deployment's command) is asked grpc.health.v1 `Check("")` on
127.0.0.1:$GRPC_PORT; anything else (the image's gunicorn) answers GET /health on 127.0.0.1:$PORT.
Kubernetes ignores HEALTHCHECK (the Deployments have probes of their own); `docker run` and Compose use it.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from collections.abc import Sequence
from pathlib import Path

# Inside the HEALTHCHECK's --timeout=3s, leaving time for the interpreter to start.
TIMEOUT_SECONDS = 2.0


def main(argv: Sequence[str]) -> int:
    server = "?"
    try:
        server = argv[0] if argv else server_of(Path("/proc/1/cmdline").read_bytes().split(b"\0"))
        serving = grpc_serving() if server == "grpc" else rest_serving()
    except Exception as error:  # no answer, a refused connection, an error status: all mean unhealthy
        print(f"{server}: {error!r}", file=sys.stderr)
        return 1
    return 0 if serving else 1


def server_of(command: Sequence[bytes]) -> str:
    """`grpc` for `... -m product_service grpc`, also behind an init (tini, docker-init); else `rest`."""
    words = [word.decode(errors="replace") for word in command]
    grpc = any(words[i : i + 2] == ["product_service", "grpc"] for i in range(len(words)))
    return "grpc" if grpc else "rest"


def rest_serving() -> bool:
    url = f"http://127.0.0.1:{os.environ.get('PORT', '8080')}/health"
    with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
        return bool(response.status == 200)


def grpc_serving() -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{os.environ.get('GRPC_PORT', '50051')}") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT_SECONDS
        )
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
