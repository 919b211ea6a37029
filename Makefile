# Product Platform: every command a user types. `make help` lists them.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CHECKOV_VENV := .venv-checkov
TOOLS := .tools/bin
UV_VERSION := 0.13.8
ACTIONLINT_VERSION := v1.7.7
STACK ?= dev
CLOUD ?=
PYTEST_ARGS ?=

REQUIREMENTS := requirements.txt service/requirements.txt policies/requirements.txt requirements-dev.txt
PROTOS := $(shell find proto -name '*.proto')
GENERATED := service/src/product_service/grpc/generated/.stamp

.PHONY: help setup generate test lint fmt test-service test-infra test-policies test-repo run plan policy \
        preview up destroy bench-service lock clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-15s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: $(VENV)/.installed $(GENERATED) $(CHECKOV_VENV)/.installed $(TOOLS)/actionlint $(TOOLS)/buf ## create the virtual environments and install every pinned dependency

# One environment for the Pulumi program, the service, the policy pack and the dev tools: they share
# pins (constraints.txt), so what the tests import is exactly what Pulumi and the image run.
$(VENV)/.installed: $(REQUIREMENTS) constraints.txt service/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c constraints.txt $(addprefix -r ,$(REQUIREMENTS))
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e service
	touch $@

$(CHECKOV_VENV)/.installed: tools/checkov/requirements.txt tools/checkov/constraints.txt $(VENV)/.installed
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(BIN)/uv pip install --quiet --python $(CHECKOV_VENV)/bin/python -c tools/checkov/constraints.txt \
		-r tools/checkov/requirements.txt
	touch $@

# actionlint ships as a Go module; `go install` builds the pinned version.
$(TOOLS)/actionlint:
	@command -v go >/dev/null || { echo "actionlint is built with Go: install Go 1.22+ (https://go.dev/dl/)"; exit 1; }
	GOBIN=$(CURDIR)/$(TOOLS) go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)

# The gRPC code is generated from proto/ with the pinned grpcio-tools, never committed (git-ignored).
generate: $(GENERATED) ## generate the gRPC Python code from proto/ (make does it when a .proto changes)

$(GENERATED): $(PROTOS) service/generate_grpc.py $(VENV)/.installed
	$(BIN)/python service/generate_grpc.py
	touch $@

# buf (proto lint, breaking-change check) is built from the pinned module in tools/go/buf, again
# whenever its go.mod or go.sum changes.
$(TOOLS)/buf: tools/go/buf/go.mod tools/go/buf/go.sum
	@command -v go >/dev/null || { echo "buf is built with Go: install Go 1.26+ (https://go.dev/dl/)"; exit 1; }
	cd tools/go/buf && go build -o $(CURDIR)/$(TOOLS)/buf github.com/bufbuild/buf/cmd/buf

test: setup lint ## install everything, lint, run the whole test suite
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed $(GENERATED) $(TOOLS)/buf ## buf lint of proto/, ruff (lint + format check) and mypy
	$(TOOLS)/buf lint proto
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy infra
	$(BIN)/mypy service/src
	$(BIN)/mypy policies

fmt: $(VENV)/.installed ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test-service: setup ## only the service's tests (real Postgres and Redis)
	$(BIN)/pytest tests/service $(PYTEST_ARGS)

test-infra: setup ## only the Pulumi program's tests (under mocks)
	$(BIN)/pytest tests/infra $(PYTEST_ARGS)

test-policies: setup ## only the policy pack's tests
	$(BIN)/pytest tests/policies $(PYTEST_ARGS)

test-repo: setup ## only the repository checks (workflows, Dockerfile, README)
	$(BIN)/pytest tests/repo $(PYTEST_ARGS)

run: $(VENV)/.installed $(GENERATED) ## the service on http://127.0.0.1:8080 and gRPC on 127.0.0.1:50051 (PORT, GRPC_PORT override)
	$(BIN)/python -m product_service dev

plan: $(VENV)/.installed ## offline plan of STACK (CLOUD overrides its cloud) into build/plan/
	$(BIN)/python infra/plan.py $(STACK) $(if $(CLOUD),--cloud $(CLOUD))

policy: $(VENV)/.installed ## the offline policy gate for every committed stack on every cloud
	$(BIN)/python infra/plan.py --all

preview: $(VENV)/.installed ## pulumi preview of STACK with the policy pack (needs the Pulumi CLI)
	tools/pulumi-stack.sh preview $(STACK)

up: $(VENV)/.installed ## pulumi up of STACK (default dev: your local Kubernetes context)
	tools/pulumi-stack.sh up $(STACK)

destroy: $(VENV)/.installed ## pulumi destroy of STACK
	tools/pulumi-stack.sh destroy $(STACK)

bench-service: $(VENV)/.installed $(GENERATED) ## load-test the service on loopback and print RPS, latency, RSS
	$(BIN)/python service/bench/run.py

lock: $(VENV)/.installed ## re-pin every transitive dependency (constraints.txt, tools/checkov/constraints.txt)
	$(BIN)/uv pip compile --quiet --python $(BIN)/python --universal --no-header \
		$(REQUIREMENTS) -o constraints.txt
	$(BIN)/uv pip compile --quiet --python $(BIN)/python --universal --no-header \
		tools/checkov/requirements.txt -o tools/checkov/constraints.txt

clean: ## remove virtual environments, tools and build output
	rm -rf $(VENV) $(CHECKOV_VENV) .tools build .pytest_cache .mypy_cache .ruff_cache
