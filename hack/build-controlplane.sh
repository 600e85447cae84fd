#!/usr/bin/env bash
# Builds the real control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl) from the Go module in e2e/controlplane into a cache folder keyed by the module's
# files, so a rebuild happens only when go.mod, go.sum or a wrapper changes. Prints the folder
# on its last line as `controlplane: DIR`.
#
#   NETHEAL_CONTROLPLANE_BIN=DIR   use binaries you already have (for example the folder
#                                  setup-envtest fills); nothing is built
#   NETHEAL_CONTROLPLANE_CACHE=DIR where built binaries are kept (default ~/.cache/netheal/controlplane)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
module="$root/e2e/controlplane"
components=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl)

print_versions() {
  local dir=$1
  echo "etcd:                    $("$dir/etcd" --version 2>/dev/null | head -1)"
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    printf '%-24s %s\n' "$c:" "$("$dir/$c" --version 2>/dev/null | head -1)"
  done
  echo "kubectl:                 $("$dir/kubectl" version --client 2>/dev/null | head -1)"
}

if [ -n "${NETHEAL_CONTROLPLANE_BIN:-}" ]; then
  for c in "${components[@]}"; do
    [ -x "$NETHEAL_CONTROLPLANE_BIN/$c" ] || { echo "NETHEAL_CONTROLPLANE_BIN=$NETHEAL_CONTROLPLANE_BIN has no executable $c" >&2; exit 1; }
  done
  print_versions "$NETHEAL_CONTROLPLANE_BIN"
  echo "controlplane: $NETHEAL_CONTROLPLANE_BIN"
  exit 0
fi

command -v go >/dev/null || { echo "building the control plane needs Go (or set NETHEAL_CONTROLPLANE_BIN)" >&2; exit 1; }
release=$(awk '$1 == "k8s.io/kubernetes" {print $2; exit}' "$module/go.mod")
[ -n "$release" ] || { echo "e2e/controlplane/go.mod does not require k8s.io/kubernetes" >&2; exit 1; }
key=$(cd "$module" && { cat go.mod go.sum; find cmd -name '*.go' -print0 | sort -z | xargs -0 cat; } | sha256sum | cut -c1-16)
cache=${NETHEAL_CONTROLPLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/netheal/controlplane}
out="$cache/$release-$key"

if [ -f "$out/.complete" ]; then
  echo "control plane $release is cached ($out)"
else
  export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly
  minor=${release#v1.}; minor=${minor%%.*}
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$release -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
  echo "building the control plane $release with $(go version | cut -d' ' -f3) into $out (a cold build takes about 20 minutes on 2 cores)"
  (cd "$module" && go mod download -x 2>&1 | grep -c '^# get' | sed 's/^/modules downloaded: /') || true
  rm -rf "$out.tmp"; mkdir -p "$out.tmp"
  for c in "${components[@]}"; do
    start=$(date +%s)
    echo "  go build $c ..."
    (cd "$module" && go build -trimpath -ldflags "$ldflags" -o "$out.tmp/$c" "./cmd/$c")
    echo "  built $c in $(( $(date +%s) - start )) s"
  done
  touch "$out.tmp/.complete"
  rm -rf "$out"; mv "$out.tmp" "$out"
fi
ln -sfn "$out" "$cache/current"
print_versions "$out"
echo "controlplane: $out"
