# syntax=docker/dockerfile:1
# The product service's image: gunicorn serving product_service on port 8080; the gRPC Deployment runs
# `python -m product_service grpc` (port 50051) from the same image.
#
# The base is pinned to an exact Python patch release on Debian bookworm. It is not pinned by digest
# because no digest could be checked against the registry from where this file was written; pin one
# (tag@sha256:...) with a tool that can read the registry's index, for example Renovate's Docker manager.
FROM python:3.11.17-slim-bookworm AS python-base

# Build stage: the service and its pinned runtime dependencies, installed into a virtual environment
# that the final stage copies as a whole. constraints.txt pins every transitive dependency, so the
# image runs exactly the versions the tests ran.
FROM python-base AS build
# A package mirror, or an offline wheelhouse (PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels): build arguments of
# this stage only, so they never reach the final image.
ARG PIP_INDEX_URL PIP_NO_INDEX PIP_FIND_LINKS
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY constraints.txt ./
COPY service/requirements.txt service/requirements.txt
RUN pip install --no-cache-dir -c constraints.txt -r service/requirements.txt
# The gRPC code is generated here from proto/, with the pinned grpcio-tools in a virtual environment of
# its own that the final stage never sees.
COPY proto proto
COPY service/generate_grpc.py service/generate_grpc.py
RUN python -m venv /opt/codegen \
    && /opt/codegen/bin/pip install --no-cache-dir -c constraints.txt grpcio-tools
COPY service/pyproject.toml service/pyproject.toml
COPY service/src service/src
# Nothing runs pip or setuptools at run time (no package imports them): they leave the environment here.
RUN /opt/codegen/bin/python service/generate_grpc.py --proto proto --out service/src \
    && pip install --no-cache-dir --no-deps ./service \
    && python -m pip uninstall --yes pip setuptools \
    && python -m compileall -q /opt/venv

# Final stage: the interpreter, the virtual environment and the gunicorn configuration; no compilers,
# no installers, no pip caches, no sources. The root filesystem can be read-only: bytecode is compiled
# above, and the only writes go to /dev/shm and /tmp (metrics files; Kubernetes mounts an emptyDir there,
# `docker run --read-only` needs `--tmpfs /tmp`).
FROM python-base AS runtime
# Before the environment comes first on PATH, the base's own Python loses pip, setuptools and wheel (the
# e2e tier's stand-in base has none), and dpkg purges apt with its library and state, so its database
# still lists exactly what the image holds: the service installs nothing at run time, and an installer is
# a tool for an intruder and findings for a scanner. Files of the base's layers are hidden, not freed.
# (apt ends its command: checkov's CKV_DOCKER_9 takes " apt " anywhere in a command for the apt CLI.)
# A passwd entry for the numeric user: libpq looks the user up (home directory, default user name).
RUN if python -m pip --version >/dev/null 2>&1; then python -m pip uninstall --yes pip setuptools wheel; fi \
    && dpkg --purge libapt-pkg6.0 apt && rm -rf /var/lib/apt /var/cache/apt /var/log/apt /etc/apt \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=8080 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus-multiproc
COPY --from=build /opt/venv /opt/venv
COPY service/gunicorn.conf.py /etc/product-service/gunicorn.conf.py
USER 10001:10001
EXPOSE 8080 50051
# Kubernetes uses the Deployments' probes and ignores this; it serves `docker run` and Compose users. It
# asks the server the container runs (PID 1's command line): gunicorn GET /health on PORT, `python -m
# product_service grpc` grpc.health.v1 Check("") on GRPC_PORT.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-m", "product_service.healthcheck"]
# Worker heartbeat files on tmpfs: gunicorn must not need a writable root filesystem.
ENTRYPOINT ["gunicorn", "--config", "/etc/product-service/gunicorn.conf.py", "--worker-tmp-dir", "/dev/shm", "product_service.wsgi:app"]
