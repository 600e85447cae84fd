#!/usr/bin/env bash
# Check everything that ships besides the Rust code, offline:
#   - `kubectl kustomize` renders config/default, config/default with each component, with all
#     components at once, and config/grafana;
#   - every rendered object validates: built-in kinds against the Kubernetes OpenAPI schemas
#     (kubernetes-validate, strict) of 1.30 (the admission policy's minimum) and 1.33,
#     netheal.io kinds against our CRDs, Prometheus Operator kinds structurally
#     (hack/validate-rendered.py);
#   - the deployment contract of docs/architecture.md: privileges, probes, exact RBAC rules
#     (hack/check-contract.py);
#   - hadolint on the Dockerfile, shellcheck (and bash -n) on every shell script;
#   - docs/policy-reference.md has not drifted from the CRD (hack/gen-policy-reference.py --check);
#   - relative links and anchors in docs/ resolve (hack/check-doc-links.py).
# Quiet on success, exits non-zero on the first failing step. Writes nothing in the repository.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=hack/kustomization.sh
source "$root/hack/kustomization.sh"

versions=(1.30 1.33)
components=(enforce calico flannel metrics node-pool no-admission-policy openreports)

command -v kubectl >/dev/null 2>&1 || { echo "validate-manifests: kubectl is required" >&2; exit 1; }
"$root/hack/install-tools.sh"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

fail() { echo "validate-manifests: $*" >&2; exit 1; }

# render NAME COMPONENT... : config/default plus the components, into $work/NAME.yaml.
# The kustomization lives in a scratch directory; kustomize wants relative paths to the bases.
render() {
  local name="$1"; shift
  local dir="$work/kustomize/$name"
  write_kustomization "$dir" "$root/config" "$@"
  kubectl kustomize "$dir" >"$work/$name.yaml" 2>"$work/$name.err" \
    || { cat "$work/$name.err" >&2; fail "kustomize failed for $name"; }
}

# 1. Render.
render default
for c in "${components[@]}"; do
  [ -f "config/components/$c/kustomization.yaml" ] || fail "component $c has no kustomization.yaml"
  render "with-$c" "$c"
done
# calico and flannel are alternatives (the later one wins); rendering them together only
# checks that every component composes with the others.
render all-components "${components[@]}"
for c in config/components/*/; do
  c="$(basename "$c")"
  case " ${components[*]} " in *" $c "*) ;; *) fail "component $c is not in the list this script renders" ;; esac
done
kubectl kustomize config/grafana >"$work/grafana.yaml" 2>"$work/grafana.err" \
  || { cat "$work/grafana.err" >&2; fail "kustomize failed for config/grafana"; }
kubectl kustomize config/default >/dev/null || fail "kubectl kustomize config/default failed"

# Each component must change something (a component that renders to nothing is a mistake).
for c in "${components[@]}"; do
  if cmp -s "$work/default.yaml" "$work/with-$c.yaml"; then fail "component $c changes nothing"; fi
done

# 2. Validate every rendered object.
for v in "${versions[@]}"; do
  python3 hack/validate-rendered.py --kubernetes-version "$v" "$work"/*.yaml \
    || fail "rendered manifests do not validate against Kubernetes $v"
done

# The deployment contract (privileges, probes, RBAC) holds with and without the components.
for f in "$work"/default.yaml "$work"/with-*.yaml "$work"/all-components.yaml; do
  python3 hack/check-contract.py "$f" || fail "$(basename "$f"): the deployment contract is broken"
done

# 3. Dockerfile.
hadolint --config .hadolint.yaml Dockerfile || fail "hadolint found problems in Dockerfile"

# 4. Shell scripts.
mapfile -t scripts < <(find hack images e2e/kind -name '*.sh' -type f | sort)
for s in "${scripts[@]}"; do bash -n "$s" || fail "bash -n $s"; done
shellcheck --severity=style "${scripts[@]}" || fail "shellcheck found problems"

# 5. The policy reference matches the CRD.
python3 hack/gen-policy-reference.py --check || fail "docs/policy-reference.md drifted"

# 6. Relative links and anchors in the docs resolve.
python3 hack/check-doc-links.py || fail "broken links in docs/"
