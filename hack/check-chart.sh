#!/usr/bin/env bash
# charts/netheal is a second way to install what config/ installs, and config/ stays the one
# source of truth. This script fails when the chart and config/ disagree:
#   - Chart.yaml's version and appVersion are the workspace version of Cargo.toml;
#   - charts/netheal/crds/ holds byte-for-byte copies of config/crd/*.yaml (Helm installs
#     crds/ as they are), and charts/netheal/files/ copies of config/prometheus/rules.yaml and
#     config/components/openreports/openreports.io_clusterreports.yaml;
#   - for each setting, `kubectl kustomize` of config/default plus the matching component(s)
#     equals `helm template --include-crds` of the chart with the matching values, object by
#     object (sorted by apiVersion, kind, namespace, name; compared as parsed YAML, so key
#     order, quoting and comments do not count, and numbers count by value: kustomize
#     re-emits the CRDs' `minimum: 0.0` as `0`). The only thing ignored is the set of
#     Helm-only labels in HELM_LABELS below, on the objects' own metadata (the chart adds them;
#     pod templates and selectors carry none); a labels map left empty by that is dropped.
#     A difference fails with a unified diff;
#   - the values that have no component (images, resources, tolerations, namespace.create,
#     metrics.labels) change exactly the fields they name;
#   - `helm lint --strict` passes with the defaults and with every setting;
#   - every helm render validates like the kustomize renders of hack/validate-manifests.sh
#     (hack/validate-rendered.py, Kubernetes 1.30 and 1.33), and the default render keeps the
#     deployment contract (hack/check-contract.py).
# helm comes from hack/build-helm.sh (NETHEAL_HELM=/path/to/helm uses yours); kubectl from
# NETHEAL_KUBECTL, else the control plane's (make controlplane), else PATH.
# Quiet on success but for one line per setting; writes nothing in the repository.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=hack/kustomization.sh
source "$root/hack/kustomization.sh"
chart="$root/charts/netheal"
namespace=netheal-system
versions=(1.30 1.33)

fail() { echo "check-chart: $*" >&2; exit 1; }

helm=$("$root/hack/build-helm.sh" | tail -1)
helm=${helm#helm: }
[ -x "$helm" ] || fail "no helm ($helm): run make helm"
cache_kubectl="${XDG_CACHE_HOME:-$HOME/.cache}/netheal/controlplane/current/kubectl"
if [ -n "${NETHEAL_KUBECTL:-}" ]; then
  kubectl=$NETHEAL_KUBECTL
elif [ -x "$cache_kubectl" ]; then
  kubectl=$cache_kubectl
else
  kubectl=$(command -v kubectl) || fail "kubectl is required (make controlplane, or NETHEAL_KUBECTL)"
fi
"$root/hack/install-tools.sh"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# 1. The chart's versions follow the workspace's, and the copies are copies.
workspace=$(awk '/^\[workspace.package\]/ {p=1; next} /^\[/ {p=0} p && $1 == "version" {gsub(/"/, "", $3); print $3; exit}' Cargo.toml)
for field in version appVersion; do
  have=$(awk -v f="$field:" '$1 == f {gsub(/"/, "", $2); print $2; exit}' "$chart/Chart.yaml")
  [ "$have" = "$workspace" ] || fail "charts/netheal/Chart.yaml $field is ${have:-missing}, the workspace version (Cargo.toml) is $workspace"
done
copies=()
for f in config/crd/*.yaml; do
  case "$f" in */kustomization.yaml) continue ;; esac
  copies+=("$f:charts/netheal/crds/$(basename "$f")")
done
copies+=("config/prometheus/rules.yaml:charts/netheal/files/prometheus-rules.yaml")
copies+=("config/components/openreports/openreports.io_clusterreports.yaml:charts/netheal/files/openreports.io_clusterreports.yaml")
for pair in "${copies[@]}"; do
  src=${pair%%:*} dst=${pair#*:}
  diff -u "$dst" "$src" >"$work/copy.diff" 2>&1 || {
    cat "$work/copy.diff" >&2
    fail "$dst is not a copy of $src: cp $src $dst (CRDs: then kubectl apply --server-side -f charts/netheal/crds/ before helm upgrade)"
  }
done
for f in charts/netheal/crds/*; do
  [ -f "config/crd/$(basename "$f")" ] || fail "$f has no source in config/crd/"
done

# The normaliser: every object of the files, Helm-only labels dropped, sorted, one YAML
# document each with sorted keys.
HELM_LABELS="helm.sh/chart app.kubernetes.io/managed-by app.kubernetes.io/instance"
normalise() {
  HELM_LABELS="$HELM_LABELS" python3 - "$@" <<'PY'
import os, sys, yaml
helm_labels = os.environ["HELM_LABELS"].split()
out, docs = sys.argv[1], []
for path in sys.argv[2:]:
    with open(path) as f:
        for doc in yaml.safe_load_all(f):
            if not doc:
                continue
            meta = doc.get("metadata") or {}
            labels = meta.get("labels")
            if isinstance(labels, dict):
                for key in helm_labels:
                    labels.pop(key, None)
                if not labels:
                    del meta["labels"]
            docs.append(doc)
def numbers(v):
    # kustomize re-emits 0.0 as 0: numbers count by value.
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, dict):
        return {k: numbers(x) for k, x in v.items()}
    if isinstance(v, list):
        return [numbers(x) for x in v]
    return v
docs = [numbers(d) for d in docs]
def key(d):
    m = d.get("metadata") or {}
    return (d.get("apiVersion", ""), d.get("kind", ""), m.get("namespace") or "", m.get("name", ""))
docs.sort(key=key)
seen = set()
for d in docs:
    if key(d) in seen:
        sys.exit("%s: %s twice" % (path, "/".join(key(d))))
    seen.add(key(d))
with open(out, "w") as f:
    f.write("".join("--- # %s\n%s" % (" ".join(key(d)), yaml.safe_dump(d, sort_keys=True, default_flow_style=False)) for d in docs))
PY
}

# kustomize NAME COMPONENT... : config/default plus the components (a throwaway kustomization in
# $work), into $work/NAME.kustomize.yaml.
kustomize() {
  local name=$1; shift
  local dir="$work/kustomize/$name"
  write_kustomization "$dir" "$root/config" "$@"
  "$kubectl" kustomize "$dir" >"$work/$name.kustomize.yaml" 2>"$work/$name.err" \
    || { cat "$work/$name.err" >&2; fail "kubectl kustomize failed for $name"; }
}

# helm_render NAME HELM-ARGS... : the chart with those values, CRDs included, into $work/NAME.helm.yaml.
helm_render() {
  local name=$1; shift
  "$helm" lint --strict "$chart" --namespace "$namespace" "$@" >"$work/$name.lint" 2>&1 \
    || { cat "$work/$name.lint" >&2; fail "helm lint --strict failed for $name"; }
  "$helm" template netheal "$chart" --namespace "$namespace" --include-crds "$@" \
    >"$work/$name.helm.yaml" 2>"$work/$name.err" \
    || { cat "$work/$name.err" >&2; fail "helm template failed for $name"; }
}

# compare NAME "COMPONENTS" HELM-ARGS...
compare() {
  local name=$1 components=$2; shift 2
  local -a comps=()
  read -r -a comps <<<"$components"
  kustomize "$name" "${comps[@]}"
  helm_render "$name" "$@"
  normalise "$work/$name.kustomize.norm" "$work/$name.kustomize.yaml"
  normalise "$work/$name.helm.norm" "$work/$name.helm.yaml"
  local what="config/default${components:+ + components $components}"
  if ! diff -u --label "kubectl kustomize ($what)" --label "helm template netheal charts/netheal $*" \
      "$work/$name.kustomize.norm" "$work/$name.helm.norm" >"$work/$name.diff"; then
    cat "$work/$name.diff" >&2
    fail "setting $name: the chart renders something else than $what (diff above: - kustomize, + helm)"
  fi
  echo "check-chart: $name: $(grep -c '^--- #' "$work/$name.helm.norm") objects equal ($what)"
}

pool='{"netheal.io/pool":"enabled"}'

# 2. Each setting against its component(s).
compare default ""
compare enforce "enforce" --set policy.mode=Enforce
compare metrics "metrics" --set metrics.enabled=true
compare vap-false "no-admission-policy" --set vap.enabled=false
compare node-pool "node-pool" --set-json "nodeFixer.nodeSelector=$pool" \
  --set-json "policy.nodeSelector={\"matchLabels\":$pool}"
compare openreports "openreports" --set openreports.enabled=true
compare all "enforce metrics no-admission-policy node-pool openreports" \
  --set policy.mode=Enforce --set metrics.enabled=true --set vap.enabled=false \
  --set-json "nodeFixer.nodeSelector=$pool" --set-json "policy.nodeSelector={\"matchLabels\":$pool}" \
  --set openreports.enabled=true

# 3. The values without a component change what they name, and nothing else.
helm_render values \
  --set operator.image.repository=registry.example/op --set operator.image.tag=9.9.9 \
  --set nodeFixer.image.repository=registry.example/nf --set nodeFixer.image.tag=8.8.8 \
  --set-json 'operator.resources={"requests":{"cpu":"1m"}}' \
  --set-json 'nodeFixer.resources={"limits":{"memory":"1Gi"}}' \
  --set-json 'nodeFixer.tolerations=[{"key":"dedicated","operator":"Equal","value":"net","effect":"NoSchedule"}]' \
  --set namespace.create=false --set metrics.enabled=true --set-json 'metrics.labels={"release":"kps"}'
normalise "$work/values.helm.norm" "$work/values.helm.yaml"
python3 - "$work/default.helm.norm" "$work/values.helm.norm" <<'PY' || fail "a value does not change what it names (above)"
import copy, sys, yaml
def load(p):
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(open(p)) if d}
base, got = load(sys.argv[1]), load(sys.argv[2])
want = copy.deepcopy(base)
del want[("Namespace", "netheal-system")]
op = want[("Deployment", "netheal-operator")]["spec"]["template"]["spec"]["containers"][0]
op["image"] = "registry.example/op:9.9.9"
op["resources"]["requests"]["cpu"] = "1m"  # Helm merges a map value into the default
nf_pod = want[("DaemonSet", "netheal-node-fixer")]["spec"]["template"]["spec"]
nf_pod["containers"][0]["image"] = "registry.example/nf:8.8.8"
nf_pod["containers"][0]["resources"]["limits"]["memory"] = "1Gi"
nf_pod["tolerations"] = [{"key": "dedicated", "operator": "Equal", "value": "net", "effect": "NoSchedule"}]
for kind in ("ServiceMonitor", "PrometheusRule"):
    obj = got.get((kind, "netheal"))
    if obj is None or obj["metadata"]["labels"].get("release") != "kps":
        sys.exit("metrics.labels: %s netheal has no label release=kps" % kind)
    want[(kind, "netheal")] = obj
if got != want:
    for k in sorted(set(got) | set(want)):
        if got.get(k) != want.get(k):
            print("differs: %s %s\n want: %s\n got:  %s" % (k[0], k[1], want.get(k), got.get(k)), file=sys.stderr)
    sys.exit(1)
PY
echo "check-chart: values: images, resources, tolerations, namespace.create, metrics.labels change only their fields"

# 4. Every helm render validates as the kustomize renders do.
for v in "${versions[@]}"; do
  python3 hack/validate-rendered.py --kubernetes-version "$v" "$work"/*.helm.yaml \
    || fail "a helm render does not validate against Kubernetes $v"
done
python3 hack/check-contract.py "$work/default.helm.yaml" || fail "the chart's default render breaks the deployment contract"
echo "check-chart: helm lint --strict, Kubernetes ${versions[*]} schemas and the deployment contract pass"
