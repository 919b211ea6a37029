# Product Platform: every command a user types. `make help` lists them, those of harness/harness.mk too.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CHECKOV_VENV := .venv-checkov
TOOLS := .tools/bin
UV_VERSION := 0.13.8
STACK ?= dev
CLOUD ?=
PYTEST_ARGS ?=
DATA_DIR ?= .data
ARGS ?=

REQUIREMENTS := requirements.txt service/requirements.txt policies/requirements.txt requirements-dev.txt
PROTOS := $(shell find proto -name '*.proto')
GENERATED := service/src/product_service/grpc/generated/.stamp

.PHONY: help setup generate check python-lint need-root test lint fmt test-service test-infra test-policies test-repo run plan policy \
        deploy-manifests promote preview drift up destroy local-ca lock clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z0-9-]+:.*## / {printf "  make %-15s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: $(VENV)/.installed $(GENERATED) $(CHECKOV_VENV)/.installed $(TOOLS)/actionlint $(TOOLS)/buf ## create the virtual environments and install every pinned dependency

# One environment for the Pulumi program, the service, the policy pack and the dev tools: they share
# pins (constraints.txt), so what the tests import is exactly what Pulumi and the image run.
$(VENV)/.installed: $(REQUIREMENTS) constraints.txt service/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c constraints.txt $(addprefix -r ,$(REQUIREMENTS))
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e service
	ln -sfn ../.venv infra/.venv  # the same environment for the program's dynamic providers (tools/pulumi-stack.sh)
	touch $@

$(CHECKOV_VENV)/.installed: tools/checkov/requirements.txt tools/checkov/constraints.txt $(VENV)/.installed
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(BIN)/uv pip install --quiet --python $(CHECKOV_VENV)/bin/python -c tools/checkov/constraints.txt \
		-r tools/checkov/requirements.txt
	touch $@

# The gRPC code is generated from proto/ with the pinned grpcio-tools, never committed (git-ignored).
generate: $(GENERATED) ## generate the gRPC Python code from proto/ (make does it when a .proto changes)

$(GENERATED): $(PROTOS) service/generate_grpc.py $(VENV)/.installed
	$(BIN)/python service/generate_grpc.py
	touch $@

# The fast door: no Go, no root. Tests that run a Go-built tool are marked `go_tool` (pyproject.toml).
check: python-lint $(CHECKOV_VENV)/.installed ## the fast door: lint and every test that needs neither Go nor root
	$(FAST_TESTS) --ignore=tests/e2e

test: need-root setup lint tools $(TOOLS)/helm node-packages images ## everything: `make check`, the Go-built tools' tests and the e2e tier (Go 1.26+, root)
	$(BIN)/pytest $(PYTEST_ARGS)

need-root:
	@[ "$$(id -u)" = 0 ] || { echo "make test runs the e2e tier's real node (containerd, network namespaces, cgroups), which needs root: run it as root, or \`make check\` for lint and every test that needs neither root nor Go"; exit 1; }

lint: python-lint $(TOOLS)/buf ## buf lint of proto/, ruff (lint + format check) and mypy
	$(TOOLS)/buf lint proto

python-lint: $(VENV)/.installed $(GENERATED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy infra harness/plan harness/chart_audit.py
	$(BIN)/mypy service/src
	$(BIN)/mypy policies
	$(BIN)/mypy harness/bench

fmt: $(VENV)/.installed ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# One part of `make check` each (`PYTEST_ARGS=-k name` narrows it); neither Go nor root.
FAST_TESTS = $(BIN)/pytest -m "not go_tool" $(PYTEST_ARGS)

test-service: $(VENV)/.installed $(GENERATED) ## only the service's tests (real Postgres and Redis)
	$(FAST_TESTS) tests/service

test-infra: $(VENV)/.installed ## only the Pulumi program's tests (under mocks)
	$(FAST_TESTS) tests/infra

test-policies: $(VENV)/.installed $(CHECKOV_VENV)/.installed ## only the policy pack's tests
	$(FAST_TESTS) tests/policies

test-repo: $(VENV)/.installed ## only the repository checks (workflows, Dockerfile, README)
	$(FAST_TESTS) tests/repo

run: $(VENV)/.installed $(GENERATED) ## the service on http://127.0.0.1:8080 and gRPC on 127.0.0.1:50051 (PORT, GRPC_PORT, DATA_DIR override)
	$(BIN)/python -m product_service dev --data-dir $(DATA_DIR)

plan: $(VENV)/.installed ## offline plan of STACK (CLOUD overrides its cloud) into build/plan/
	$(BIN)/python harness/plan/plan.py $(STACK) $(if $(CLOUD),--cloud $(CLOUD))

policy: $(VENV)/.installed ## the offline policy gate for every committed stack on every cloud
	$(BIN)/python harness/plan/plan.py --all

deploy-manifests: $(VENV)/.installed ## write deploy/<stack>/, what Argo CD syncs, from the program (every committed stack)
	$(BIN)/python harness/plan/deploy_manifests.py

promote: $(VENV)/.installed ## release IMAGE (by digest) to STACK: its platform:image and deploy/STACK, to commit together
	$(if $(IMAGE),,$(error IMAGE is missing: make promote STACK=<stack> IMAGE=<repository>@sha256:<digest>))
	$(BIN)/python harness/plan/deploy_manifests.py --image '$(IMAGE)' $(STACK)

preview: $(VENV)/.installed ## pulumi preview of STACK with the policy pack (needs the Pulumi CLI)
	tools/pulumi-stack.sh preview $(STACK) $(ARGS)

drift: $(VENV)/.installed ## fail and show the diff when the live STACK differs from its program and config (pulumi preview --refresh)
	tools/pulumi-stack.sh drift $(STACK) $(ARGS)

up: $(VENV)/.installed ## pulumi up of STACK (default dev: your local Kubernetes context)
	tools/pulumi-stack.sh up $(STACK) $(ARGS)

destroy: $(VENV)/.installed ## pulumi destroy of STACK
	tools/pulumi-stack.sh destroy $(STACK) $(ARGS)

local-ca: ## the certificate of local STACK's CA (platform:localTls) into build/STACK-ca.crt, for curl --cacert
	tools/local-ca.sh $(STACK)

lock: $(VENV)/.installed ## re-pin every transitive dependency (constraints.txt, tools/checkov/constraints.txt)
	$(BIN)/uv pip compile --quiet --python $(BIN)/python --universal --no-header \
		$(REQUIREMENTS) -o constraints.txt
	$(BIN)/uv pip compile --quiet --python $(BIN)/python --universal --no-header \
		tools/checkov/requirements.txt -o tools/checkov/constraints.txt

clean: ## remove virtual environments, tools and build output
	rm -rf $(VENV) $(CHECKOV_VENV) .tools build .pytest_cache .mypy_cache .ruff_cache

# The harness's targets: the Go-built tools, the e2e tier and its images, the chart audit, the bench.
include harness/harness.mk
