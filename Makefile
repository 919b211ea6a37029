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
# The Kubernetes provider's Go module is served only at the commit of this release (harness/go/pulumi-kubernetes).
PULUMI_KUBERNETES_VERSION := 4.25.0
STACK ?= dev
CLOUD ?=
PYTEST_ARGS ?=
DATA_DIR ?= .data
ARGS ?=

REQUIREMENTS := requirements.txt service/requirements.txt policies/requirements.txt requirements-dev.txt
PROTOS := $(shell find proto -name '*.proto')
GENERATED := service/src/product_service/grpc/generated/.stamp

.PHONY: help setup generate check python-lint need-root test lint fmt test-service test-infra test-policies test-repo run plan policy \
        preview up destroy bench-service lock clean tools need-go cluster cluster-down e2e node-packages images charts
# The image rules below name each image's own inputs through its stem (a second expansion).
.SECONDEXPANSION:

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
	touch $@

$(CHECKOV_VENV)/.installed: tools/checkov/requirements.txt tools/checkov/constraints.txt $(VENV)/.installed
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(BIN)/uv pip install --quiet --python $(CHECKOV_VENV)/bin/python -c tools/checkov/constraints.txt \
		-r tools/checkov/requirements.txt
	touch $@

# actionlint ships as a Go module; `go install` builds the pinned version.
$(TOOLS)/actionlint: | need-go
	GOBIN=$(CURDIR)/$(TOOLS) go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)

# The gRPC code is generated from proto/ with the pinned grpcio-tools, never committed (git-ignored).
generate: $(GENERATED) ## generate the gRPC Python code from proto/ (make does it when a .proto changes)

$(GENERATED): $(PROTOS) service/generate_grpc.py $(VENV)/.installed
	$(BIN)/python service/generate_grpc.py
	touch $@

# buf (proto lint, breaking-change check) is built from the pinned module in harness/go/buf, again
# whenever its go.mod or go.sum changes.
$(TOOLS)/buf: harness/go/buf/go.mod harness/go/buf/go.sum | need-go
	go -C harness/go/buf build -trimpath -o $(CURDIR)/$@ github.com/bufbuild/buf/cmd/buf

# --- the e2e tier's tools, each built from a pinned Go module (harness/go/<tool>/go.mod + go.sum) -----
# A tool is rebuilt only when its pins change; Go's module and build caches make a rebuild cheap.
go_build = go -C harness/go/$(1) build -trimpath
# The version a go.mod requires of a module, whether on a `require` line or inside a require block.
required = $(shell awk '$$1 == "$(2)" {print $$2} $$1 == "require" && $$2 == "$(2)" {print $$3}' harness/go/$(1)/go.mod)
PULUMI_VERSION := $(call required,pulumi,github.com/pulumi/pulumi/pkg/v3)
KUBERNETES_VERSION := $(call required,kubernetes,k8s.io/kubernetes)
KUBE_TOOLS := $(addprefix $(TOOLS)/,kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
E2E_TOOLS := $(TOOLS)/pulumi $(TOOLS)/pulumi-language-python $(TOOLS)/pulumi-language-python-exec \
	$(TOOLS)/pulumi-resource-kubernetes $(KUBE_TOOLS) $(TOOLS)/etcd $(TOOLS)/kwok $(TOOLS)/coredns
# Kubernetes reports the version it was built as; without these it says v0.0.0 and clients misjudge it.
KUBE_VERSION_FLAGS := $(foreach pkg,k8s.io/component-base/version k8s.io/client-go/pkg/version,\
	-X $(pkg).gitVersion=$(KUBERNETES_VERSION) -X $(pkg).gitMajor=1 \
	-X $(pkg).gitMinor=$(word 2,$(subst ., ,$(KUBERNETES_VERSION))))

tools: $(E2E_TOOLS) ## build the e2e tier's tools into .tools/bin (Pulumi CLI, Kubernetes, etcd, kwok, CoreDNS)

need-go:
	@command -v go >/dev/null || { echo "make builds its tools (Pulumi, Kubernetes, Helm, buf, actionlint) with Go 1.26+: install it (https://go.dev/dl/) and run make again, or run \`make check\` for lint and every test that needs neither Go nor root"; exit 1; }

need-root:
	@[ "$$(id -u)" = 0 ] || { echo "make test runs the e2e tier's real node (containerd, network namespaces, cgroups), which needs root: run it as root, or \`make check\` for lint and every test that needs neither root nor Go"; exit 1; }

$(TOOLS)/pulumi: harness/go/pulumi/go.mod harness/go/pulumi/go.sum | need-go
	$(call go_build,pulumi) -o $(CURDIR)/$@ \
		-ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$(PULUMI_VERSION)" \
		github.com/pulumi/pulumi/pkg/v3/cmd/pulumi

$(TOOLS)/pulumi-language-python: $(wildcard harness/go/pulumi-language-python/*) | need-go
	$(call go_build,pulumi-language-python) -o $(CURDIR)/$@ .

# The SDK's shim that the language host runs the program through, from the same sdk/v3 module.
$(TOOLS)/pulumi-language-python-exec: harness/go/pulumi-language-python/go.sum | need-go
	go -C harness/go/pulumi-language-python mod download github.com/pulumi/pulumi/sdk/v3
	install -m 0755 "$$(go -C harness/go/pulumi-language-python list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)/python/cmd/pulumi-language-python-exec" $@

# The provider's cmd/ embeds its schema with the version set; write that (and the mapping) from the module.
$(TOOLS)/pulumi-resource-kubernetes: $(wildcard harness/go/pulumi-kubernetes/*.go harness/go/pulumi-kubernetes/go.*) | need-go
	go -C harness/go/pulumi-kubernetes mod download github.com/pulumi/pulumi-kubernetes/provider/v4
	$(PYTHON) harness/go/pulumi-kubernetes/embed.py \
		"$$(go -C harness/go/pulumi-kubernetes list -m -f '{{.Dir}}' github.com/pulumi/pulumi-kubernetes/provider/v4)/cmd/pulumi-resource-kubernetes" \
		$(PULUMI_KUBERNETES_VERSION) harness/go/pulumi-kubernetes
	$(call go_build,pulumi-kubernetes) -o $(CURDIR)/$@ \
		-ldflags "-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$(PULUMI_KUBERNETES_VERSION)" .

$(KUBE_TOOLS) &: harness/go/kubernetes/go.mod harness/go/kubernetes/go.sum | need-go
	$(call go_build,kubernetes) -o $(CURDIR)/$(TOOLS)/ -ldflags "$(KUBE_VERSION_FLAGS)" \
		$(addprefix k8s.io/kubernetes/cmd/,$(notdir $(KUBE_TOOLS)))

$(TOOLS)/etcd: harness/go/etcd/go.mod harness/go/etcd/go.sum | need-go
	$(call go_build,etcd) -o $(CURDIR)/$@ go.etcd.io/etcd/server/v3

$(TOOLS)/kwok: harness/go/kwok/go.mod harness/go/kwok/go.sum | need-go
	$(call go_build,kwok) -o $(CURDIR)/$@ sigs.k8s.io/kwok/cmd/kwok

$(TOOLS)/coredns: $(wildcard harness/go/coredns/*) | need-go
	$(call go_build,coredns) -o $(CURDIR)/$@ .

# Helm for the chart audit: the release the Kubernetes provider embeds, so charts render as `up` installs them.
$(TOOLS)/helm: harness/go/helm/go.mod harness/go/helm/go.sum | need-go
	$(call go_build,helm) -o $(CURDIR)/$@ helm.sh/helm/v3/cmd/helm

# --- the chart audit ------------------------------------------------------------------------------------
CHART_REPOSITORY ?=

charts: $(VENV)/.installed $(TOOLS)/helm ## audit the pinned charts from their repositories (CHART_REPOSITORY=<url>: a mirror)
	$(BIN)/python harness/chart_audit.py $(if $(CHART_REPOSITORY),--repository $(CHART_REPOSITORY))

# --- the real node (harness/e2e/node.py): Debian's container runtime, and images built here -----------
NODE_PACKAGES := containerd runc containernetworking-plugins iptables conntrack debootstrap buildah
IMAGES := .tools/images
IMAGE_NAMES := debian pause python postgres redis product-service
SERVICE_IMAGE_INPUTS := Dockerfile .dockerignore constraints.txt \
	$(shell git ls-files service/src service/pyproject.toml service/requirements.txt service/gunicorn.conf.py \
		service/generate_grpc.py proto 2>/dev/null)

node-packages: ## install the real node's Debian packages (containerd, runc, CNI plugins, buildah; root)
	@dpkg-query --show $(NODE_PACKAGES) >/dev/null 2>&1 || { \
		[ "$$(id -u)" = 0 ] || { echo "The real node needs root and Debian's $(NODE_PACKAGES)"; exit 1; }; \
		apt-get install --yes --quiet --no-install-recommends $(NODE_PACKAGES) >/dev/null \
			|| { apt-get update --quiet >/dev/null && apt-get install --yes --quiet --no-install-recommends $(NODE_PACKAGES) >/dev/null; }; }

images: $(addprefix $(IMAGES)/,$(addsuffix .tar,$(IMAGE_NAMES))) ## build the real node's images into .tools/images (buildah; root)

$(IMAGES)/debian.tar: | node-packages $(VENV)/.installed
	$(BIN)/python harness/e2e/images.py build debian
$(IMAGES)/pause.tar: $(wildcard harness/go/pause/*) | node-packages need-go
	$(BIN)/python harness/e2e/images.py build pause
$(IMAGES)/python.tar $(IMAGES)/postgres.tar $(IMAGES)/redis.tar: $(IMAGES)/%.tar: $(IMAGES)/debian.tar $$(wildcard harness/e2e/images/%/*)
	$(BIN)/python harness/e2e/images.py build $*
$(IMAGES)/product-service.tar: $(IMAGES)/python.tar $(SERVICE_IMAGE_INPUTS)
	$(BIN)/python harness/e2e/images.py build product-service

# The fast door: no Go, no root. Tests that run a Go-built tool are marked `go_tool` (pyproject.toml).
check: python-lint $(CHECKOV_VENV)/.installed ## the fast door: lint and every test that needs neither Go nor root
	$(FAST_TESTS) --ignore=tests/e2e

test: need-root setup lint tools $(TOOLS)/helm node-packages images ## everything: `make check`, the Go-built tools' tests and the e2e tier (Go 1.26+, root)
	$(BIN)/pytest $(PYTEST_ARGS)

e2e: need-root setup tools node-packages images ## tier 3: `make up STACK=dev` with the real engine, on kwok's nodes and on a real node
	$(BIN)/pytest tests/e2e $(PYTEST_ARGS)

NODE ?= kwok
cluster: $(VENV)/.installed tools $(if $(filter real,$(NODE)),node-packages images) ## the e2e control plane on its own (NODE=real: with a real node); kubeconfig in build/cluster/
	$(BIN)/python harness/e2e/control_plane.py up --node $(NODE)

cluster-down: ## stop everything `make cluster` started
	$(PYTHON) harness/e2e/control_plane.py down

lint: python-lint $(TOOLS)/buf ## buf lint of proto/, ruff (lint + format check) and mypy
	$(TOOLS)/buf lint proto

python-lint: $(VENV)/.installed $(GENERATED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy infra harness/plan harness/chart_audit.py
	$(BIN)/mypy service/src
	$(BIN)/mypy policies

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

preview: $(VENV)/.installed ## pulumi preview of STACK with the policy pack (needs the Pulumi CLI)
	tools/pulumi-stack.sh preview $(STACK) $(ARGS)

up: $(VENV)/.installed ## pulumi up of STACK (default dev: your local Kubernetes context)
	tools/pulumi-stack.sh up $(STACK) $(ARGS)

destroy: $(VENV)/.installed ## pulumi destroy of STACK
	tools/pulumi-stack.sh destroy $(STACK) $(ARGS)

bench-service: $(VENV)/.installed $(GENERATED) ## load-test the service on loopback and print RPS, latency, RSS
	$(BIN)/python harness/bench/run.py

lock: $(VENV)/.installed ## re-pin every transitive dependency (constraints.txt, tools/checkov/constraints.txt)
	$(BIN)/uv pip compile --quiet --python $(BIN)/python --universal --no-header \
		$(REQUIREMENTS) -o constraints.txt
	$(BIN)/uv pip compile --quiet --python $(BIN)/python --universal --no-header \
		tools/checkov/requirements.txt -o tools/checkov/constraints.txt

clean: ## remove virtual environments, tools and build output
	rm -rf $(VENV) $(CHECKOV_VENV) .tools build .pytest_cache .mypy_cache .ruff_cache
