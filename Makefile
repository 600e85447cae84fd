# The verbs a person types. Most targets need root (network namespaces, iptables).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
NEXTEST_PROFILE ?= default

.PHONY: all build release test lint fmt crds crds-check bench deploy undeploy help

all: build

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  %-16s %s\n", $$1, $$2}'

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

crds: ## Regenerate config/crd from the Rust types
	$(CARGO) run --locked -q -p netheal-crds --bin crdgen -- --out-dir config/crd

crds-check: ## Fail when config/crd drifted from the Rust types
	$(CARGO) run --locked -q -p netheal-crds --bin crdgen -- --check config/crd

deploy: ## Install netheal (CRDs, RBAC, operator, node-fixer, dry-run policy) into the current kubectl context
	kubectl apply -k config/default

undeploy: ## Remove netheal from the current kubectl context
	kubectl delete -k config/default --ignore-not-found
