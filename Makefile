# The verbs a person types. Most targets need root (network namespaces, iptables).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
NEXTEST_PROFILE ?= default

.PHONY: all build release test lint fmt crds crds-check deploy undeploy help

all: build

help: ## List the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  %-16s %s\n", $$1, $$2}'

build: ## Build every crate and binary (debug)
	$(CARGO) build --workspace --all-targets --locked

release: ## Build the release binaries (LTO, stripped)
	$(CARGO) build --workspace --release --locked

test: controlplane images helm ## Run every test, as root: unit, API, kernel (netns), the images under podman and cluster-in-a-box on a real control plane; fails if any test is skipped
	@test "$$(id -u)" = 0 || { echo "make test needs root: the kernel tests create network namespaces" >&2; exit 2; }
	mkdir -p target
	# The binaries the end-to-end harness runs, built the way it builds them (once, up front).
	$(CARGO) build --locked -q -p node-fixer -p netheal-operator --bins
	$(CARGO) nextest run --workspace --locked --profile $(NEXTEST_PROFILE) --run-ignored all --no-tests fail 2>&1 | tee target/nextest.log
	@if grep -E '^ *Summary .* [1-9][0-9]* skipped' target/nextest.log; then echo "some tests were skipped: every test must run" >&2; exit 1; fi
	$(CARGO) test --workspace --locked --doc

lint: ## rustfmt and clippy, warnings are errors (the workspace and the fuzz targets)
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml --all -- --check
	$(CARGO) clippy --manifest-path fuzz/Cargo.toml --all-targets --locked -- -D warnings

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

.PHONY: docs manifests-check prometheus-rules-check images lint-docker e2e-kind

docs: ## Regenerate docs/policy-reference.md from the CRD
	python3 hack/gen-policy-reference.py

prometheus-rules-check: ## promtool check rules and promtool test rules on config/prometheus (every alert fires on its bad series, silent on healthy ones)
	hack/check-prometheus-rules.sh

manifests-check: ## Render config/default and every component, validate them offline, lint the Dockerfile and scripts
	hack/validate-manifests.sh

images: ## Build the operator and node-fixer images with podman (or Docker), base images made locally by debootstrap
	hack/build-images.sh

lint-docker: ## Lint the Dockerfile with hadolint
	hadolint Dockerfile

e2e-kind: ## The end-to-end run on a real kind cluster (needs Docker and kind; not run in CI)
	e2e/kind/run.sh

.PHONY: controlplane helm chart-check

helm: ## Build helm (helm.sh/helm/v4, pinned in hack/helm/go.mod) from its Go module into ~/.cache/netheal/helm; NETHEAL_HELM=PATH uses yours
	hack/build-helm.sh

chart-check: helm ## Fail when charts/netheal differs from config/ (each setting against its component), helm lint --strict, validate its renders offline
	hack/check-chart.sh

controlplane: ## Build the real control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl) from e2e/controlplane into a cache; NETHEAL_CONTROLPLANE_BIN=DIR uses yours
	hack/build-controlplane.sh

# Cluster-in-a-box (root): network-namespace nodes with a flannel-style overlay, registered in a
# real control plane.
CLUSTER_NAME ?= demo
CLUSTER_NODES ?= 3
.PHONY: cluster-up cluster-down

NETHEAL ?=
DUAL_STACK ?=
CLUSTER_OVERLAY ?=
UP_LOG = target/e2e-logs/$(CLUSTER_NAME)-up.log

cluster-up: controlplane ## Bring up a cluster-in-a-box on a real control plane (CLUSTER_NAME, CLUSTER_NODES) in the background until `make cluster-down`; NETHEAL=1 also runs the operator and one agent per node; DUAL_STACK=1, CLUSTER_OVERLAY=calico-vxlan
	$(CARGO) build --locked -q -p netheal-e2e --bins -p node-fixer -p netheal-operator
	mkdir -p target/e2e-logs
	nohup target/debug/netheal-demo up --name $(CLUSTER_NAME) --nodes $(CLUSTER_NODES) $(if $(filter 1,$(NETHEAL)),--policy,--no-netheal) $(if $(filter 1,$(DUAL_STACK)),--dual-stack) $(if $(CLUSTER_OVERLAY),--overlay $(CLUSTER_OVERLAY)) >$(UP_LOG) 2>&1 &
	@for _ in $$(seq 180); do grep -q '^cluster is running' $(UP_LOG) 2>/dev/null && break; sleep 1; done
	@grep -q '^cluster is running' $(UP_LOG) || { cat $(UP_LOG) >&2; echo "cluster-up: the cluster did not start (log: $(UP_LOG))" >&2; exit 1; }
	@cat $(UP_LOG)

cluster-down: ## Stop a cluster-up (control plane, netheal) and remove the cluster-in-a-box CLUSTER_NAME (also the leftovers of a killed run)
	$(CARGO) build --locked -q -p netheal-e2e --bins
	target/debug/netheal-demo down --name $(CLUSTER_NAME)
	target/debug/netheal-cluster down --name $(CLUSTER_NAME)

.PHONY: demo bench bench-e2e bench-scale fuzz

demo: ## The demo (root): a 3-node cluster-in-a-box on a real control plane, the seed faults, the dry-run report, then Enforce and the healing, live; tears down at the end
	$(CARGO) build --locked -q -p netheal-e2e --bins -p node-fixer -p netheal-operator
	target/debug/netheal-demo run --name $(CLUSTER_NAME)

bench: ## Benchmarks: node-fixer scan cost and memory, agent detection latency and idle cost, operator decision pass (root)
	$(CARGO) bench --locked -p node-fixer --bench scan
	$(CARGO) bench --locked -p node-fixer --bench agent_latency
	$(CARGO) bench --locked -p netheal-operator --bench decide

fuzz: ## Fuzz the parsers of outside input (iptables-save, policies, sysctls, orders), FUZZ_SECONDS each (60); corpus in fuzz/corpus
	hack/fuzz.sh

bench-scale: controlplane ## The release operator against 5,000 Nodes, 150,000 pods and 5,000 reports x 10 findings on the real API server: first pass, steady pass, RSS, requests and writes (NETHEAL_SCALE_NODES, NETHEAL_SCALE_PODS)
	$(CARGO) build --locked -q --release -p netheal-operator
	$(CARGO) bench --locked -p netheal-e2e --bench scale

bench-e2e: ## Time to repair on the cluster-in-a-box: injection to working ping, p50/p95 per check (root)
	$(CARGO) build --locked -q -p node-fixer -p netheal-operator
	$(CARGO) bench --locked -p netheal-e2e --bench time_to_repair
