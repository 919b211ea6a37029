# The harness: everything that proves the product and is never deployed. Included by the Makefile,
# whose variables (VENV, BIN, TOOLS, GENERATED, ...) it uses; `make help` lists its targets too.

ACTIONLINT_VERSION := v1.7.7
# The Kubernetes provider's Go module is served only at the commit of this release (harness/go/pulumi-kubernetes).
PULUMI_KUBERNETES_VERSION := 4.25.0

.PHONY: tools need-go charts node-packages images e2e cluster cluster-down bench-service
# The image rules below name each image's own inputs through its stem (a second expansion).
.SECONDEXPANSION:

# actionlint ships as a Go module; `go install` builds the pinned version.
$(TOOLS)/actionlint: | need-go
	GOBIN=$(CURDIR)/$(TOOLS) go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)

# buf (proto lint, breaking-change check) is built from the pinned module in harness/go/buf, again
# whenever its go.mod or go.sum changes.
$(TOOLS)/buf: harness/go/buf/go.mod harness/go/buf/go.sum | need-go
	go -C harness/go/buf build -trimpath -o $(CURDIR)/$@ github.com/bufbuild/buf/cmd/buf

# --- the e2e tier's tools, each built from a pinned Go module (harness/go/<tool>/go.mod + go.sum) -----
# A tool is rebuilt only when its pins change; Go's module and build caches make a rebuild cheap. A module
# that needs a newer Go than the one installed names it on its `toolchain` line, which `auto` fetches.
go_build = GOTOOLCHAIN=auto go -C harness/go/$(1) build -trimpath
# The version a go.mod requires of a module, whether on a `require` line or inside a require block.
required = $(shell awk '$$1 == "$(2)" {print $$2} $$1 == "require" && $$2 == "$(2)" {print $$3}' harness/go/$(1)/go.mod)
PULUMI_VERSION := $(call required,pulumi,github.com/pulumi/pulumi/pkg/v3)
KUBERNETES_VERSION := $(call required,kubernetes,k8s.io/kubernetes)
KUBE_TOOLS := $(addprefix $(TOOLS)/,kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
E2E_TOOLS := $(TOOLS)/pulumi $(TOOLS)/pulumi-language-python $(TOOLS)/pulumi-language-python-exec \
	$(TOOLS)/pulumi-resource-pulumi-python $(TOOLS)/pulumi-resource-kubernetes $(KUBE_TOOLS) $(TOOLS)/etcd $(TOOLS)/kwok $(TOOLS)/coredns \
	$(TOOLS)/cert-manager-controller $(TOOLS)/external-dns $(TOOLS)/pebble $(TOOLS)/argocd $(TOOLS)/kustomize
# Kubernetes reports the version it was built as; without these it says v0.0.0 and clients misjudge it.
KUBE_VERSION_FLAGS := $(foreach pkg,k8s.io/component-base/version k8s.io/client-go/pkg/version,\
	-X $(pkg).gitVersion=$(KUBERNETES_VERSION) -X $(pkg).gitMajor=1 \
	-X $(pkg).gitMinor=$(word 2,$(subst ., ,$(KUBERNETES_VERSION))))

tools: $(E2E_TOOLS) ## build the e2e tier's tools into .tools/bin (Pulumi CLI, Kubernetes, etcd, kwok, CoreDNS)

need-go:
	@command -v go >/dev/null || { echo "make builds its tools (Pulumi, Kubernetes, Helm, buf, actionlint) with Go 1.26+: install it (https://go.dev/dl/) and run make again, or run \`make check\` for lint and every test that needs neither Go nor root"; exit 1; }

$(TOOLS)/pulumi: harness/go/pulumi/go.mod harness/go/pulumi/go.sum | need-go
	$(call go_build,pulumi) -o $(CURDIR)/$@ \
		-ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$(PULUMI_VERSION)" \
		github.com/pulumi/pulumi/pkg/v3/cmd/pulumi

$(TOOLS)/pulumi-language-python: $(wildcard harness/go/pulumi-language-python/*) | need-go
	$(call go_build,pulumi-language-python) -o $(CURDIR)/$@ .

# The SDK's shims, from the same sdk/v3 module: the one the language host runs the program through, and the
# plugin that runs the program's dynamic providers (app/rollout.py's RolloutOutcome).
$(TOOLS)/pulumi-language-python-exec: harness/go/pulumi-language-python/go.sum | need-go
	go -C harness/go/pulumi-language-python mod download github.com/pulumi/pulumi/sdk/v3
	install -m 0755 "$$(go -C harness/go/pulumi-language-python list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)/python/cmd/pulumi-language-python-exec" $@
$(TOOLS)/pulumi-resource-pulumi-python: harness/go/pulumi-language-python/go.sum | need-go
	go -C harness/go/pulumi-language-python mod download github.com/pulumi/pulumi/sdk/v3
	install -m 0755 "$$(go -C harness/go/pulumi-language-python list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)/python/dist/pulumi-resource-pulumi-python" $@

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

$(TOOLS)/cert-manager-controller: $(wildcard harness/go/cert-manager/*) | need-go
	$(call go_build,cert-manager) -o $(CURDIR)/$@ .

# The HTTPS name's real programs (tests/e2e/test_real_node.py): external-dns at the pinned chart's appVersion,
# and Pebble, Let's Encrypt's ACME test server, standing in for Let's Encrypt.
$(TOOLS)/external-dns: $(wildcard harness/go/external-dns/*) harness/go/external-dns/vbom/go.mod | need-go
	$(call go_build,external-dns) -o $(CURDIR)/$@ sigs.k8s.io/external-dns

$(TOOLS)/pebble: harness/go/pebble/go.mod harness/go/pebble/go.sum | need-go
	$(call go_build,pebble) -o $(CURDIR)/$@ github.com/letsencrypt/pebble/v2/cmd/pebble

# GitOps delivery's real programs: Argo CD (one binary, every component: it runs as the one its
# ARGOCD_BINARY_NAME names), with the two scripts its image puts beside it (the repo server runs
# git-verify-wrapper.sh on every revision), and the kustomize its repo server runs, the version its image ships.
$(TOOLS)/argocd: harness/go/argo-cd/go.mod harness/go/argo-cd/go.sum | need-go
	$(call go_build,argo-cd) -o $(CURDIR)/$@ github.com/argoproj/argo-cd/v3/cmd
	module="$$(GOTOOLCHAIN=auto go -C harness/go/argo-cd list -m -f '{{.Dir}}' github.com/argoproj/argo-cd/v3)" && \
		install -m 0755 "$$module/hack/git-verify-wrapper.sh" "$$module/hack/gpg-wrapper.sh" $(TOOLS)/

$(TOOLS)/kustomize: harness/go/kustomize/go.mod harness/go/kustomize/go.sum | need-go
	$(call go_build,kustomize) -o $(CURDIR)/$@ sigs.k8s.io/kustomize/kustomize/v5

# Helm for the chart audit: the release the Kubernetes provider embeds, so charts render as `up` installs them.
$(TOOLS)/helm: harness/go/helm/go.mod harness/go/helm/go.sum | need-go
	$(call go_build,helm) -o $(CURDIR)/$@ helm.sh/helm/v3/cmd/helm

# --- the chart audit ------------------------------------------------------------------------------------
CHART_REPOSITORY ?=

charts: $(VENV)/.installed $(TOOLS)/helm ## audit the pinned charts from their repositories (CHART_REPOSITORY=<url>: a mirror)
	$(BIN)/python harness/chart_audit.py $(if $(CHART_REPOSITORY),--repository $(CHART_REPOSITORY))

# --- the real node (harness/e2e/node.py): Debian's container runtime, and images built here -----------
NODE_PACKAGES := containerd runc containernetworking-plugins iptables conntrack debootstrap buildah \
	knot knot-dnsutils
IMAGES := .tools/images
# The add-ons' images: each one program built from its pinned module in harness/go (the config reloader's
# is the operator's).
ADDON_IMAGES := traefik jaeger metrics-server prometheus prometheus-operator prometheus-config-reloader \
	argo-rollouts
RELEASE_IMAGES := product-service-next product-service-faulty  # the canary test's releases
IMAGE_NAMES := debian pause python postgres redis product-service $(RELEASE_IMAGES) $(ADDON_IMAGES)
addon_module = $(if $(filter prometheus-config-reloader,$(1)),prometheus-operator,$(1))
SERVICE_IMAGE_INPUTS := Dockerfile .dockerignore constraints.txt \
	$(shell git ls-files service/src service/pyproject.toml service/requirements.txt service/gunicorn.conf.py \
		service/generate_grpc.py proto 2>/dev/null)

node-packages: ## install the real node's Debian packages (containerd, runc, CNI plugins, buildah, Knot DNS; root)
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
$(addprefix $(IMAGES)/,$(addsuffix .tar,$(RELEASE_IMAGES))): $(IMAGES)/%.tar: $(IMAGES)/product-service.tar $$(wildcard harness/e2e/images/%/*)
	$(BIN)/python harness/e2e/images.py build $*
$(addprefix $(IMAGES)/,$(addsuffix .tar,$(ADDON_IMAGES))): $(IMAGES)/%.tar: $$(wildcard harness/go/$$(call addon_module,$$*)/*) | node-packages need-go
	$(BIN)/python harness/e2e/images.py build $*

# --- the e2e tier and the bench -------------------------------------------------------------------------
e2e: need-root setup tools node-packages images ## tier 3: `make up STACK=dev` with the real engine, on kwok's nodes and on a real node
	$(BIN)/pytest tests/e2e $(PYTEST_ARGS)

NODE ?= kwok
cluster: $(VENV)/.installed tools $(if $(filter real,$(NODE)),node-packages images) ## the e2e control plane on its own (NODE=real: with a real node); kubeconfig in build/cluster/
	$(BIN)/python harness/e2e/control_plane.py up --node $(NODE)

cluster-down: ## stop everything `make cluster` started
	$(PYTHON) harness/e2e/control_plane.py down

bench-service: $(VENV)/.installed $(GENERATED) ## load-test the service on loopback and print RPS, latency, RSS
	$(BIN)/python harness/bench/run.py
