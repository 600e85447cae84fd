# The verbs a person types. Most targets need root (network namespaces, iptables).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
NEXTEST_PROFILE ?= default

.PHONY: all build release test lint fmt crds crds-check bench deploy undeploy help

all: build

help: ## List the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  %-16s %s\n", $$1, $$2}'

build: ## Build every crate and binary (debug)
	$(CARGO) build --workspace --all-targets --locked

release: ## Build the release binaries (LTO, stripped)
	$(CARGO) build --workspace --release --locked

test: ## Run every test, as root: unit, API, kernel (netns) and cluster-in-a-box; fails if any test is skipped
	@test "$$(id -u)" = 0 || { echo "make test needs root: the kernel tests create network namespaces" >&2; exit 2; }
	mkdir -p target
	$(CARGO) nextest run --workspace --locked --profile $(NEXTEST_PROFILE) --run-ignored all --no-tests fail 2>&1 | tee target/nextest.log
	@if grep -E '^ *Summary .* [1-9][0-9]* skipped' target/nextest.log; then echo "some tests were skipped: every test must run" >&2; exit 1; fi
	$(CARGO) test --workspace --locked --doc

lint: ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

crds: ## Regenerate config/crd from the Rust types, and the policy reference from the CRD
	$(CARGO) run --locked -q -p netheal-crds --bin crdgen -- --out-dir config/crd
	python3 hack/gen-policy-reference.py

crds-check: ## Fail when config/crd drifted from the Rust types
	$(CARGO) run --locked -q -p netheal-crds --bin crdgen -- --check config/crd

deploy: ## Install netheal (CRDs, RBAC, operator, node-fixer, dry-run policy) into the current kubectl context
	kubectl apply -k config/default

undeploy: ## Remove netheal from the current kubectl context
	kubectl delete -k config/default --ignore-not-found

.PHONY: docs manifests-check images lint-docker e2e-kind

docs: ## Regenerate docs/policy-reference.md from the CRD
	python3 hack/gen-policy-reference.py

manifests-check: ## Render config/default and every component, validate them offline, lint the Dockerfile and scripts
	hack/validate-manifests.sh

images: ## Build the operator and node-fixer images (needs Docker)
	hack/build-images.sh

lint-docker: ## Lint the Dockerfile with hadolint
	hadolint Dockerfile

e2e-kind: ## The end-to-end run on a real kind cluster (needs Docker and kind; not run in CI)
	e2e/kind/run.sh

# Cluster-in-a-box (root): network-namespace nodes with a flannel-style overlay.
# `make cluster-up CLUSTER_APISERVER=1` keeps the loopback API stand-in in the foreground.
CLUSTER_NAME ?= demo
CLUSTER_NODES ?= 3
CLUSTER_POD_STYLE ?= calico
CLUSTER_APISERVER ?=
.PHONY: cluster-up cluster-down

cluster-up: ## Bring up a cluster-in-a-box (CLUSTER_NAME, CLUSTER_NODES, CLUSTER_POD_STYLE=bridge|calico, CLUSTER_APISERVER=1)
	$(CARGO) run --locked -q -p netheal-e2e --bin netheal-cluster -- up --name $(CLUSTER_NAME) --nodes $(CLUSTER_NODES) --pod-style $(CLUSTER_POD_STYLE) $(if $(CLUSTER_APISERVER),--with-apiserver)

cluster-down: ## Remove the cluster-in-a-box CLUSTER_NAME (also the leftovers of a killed run)
	$(CARGO) run --locked -q -p netheal-e2e --bin netheal-cluster -- down --name $(CLUSTER_NAME)
