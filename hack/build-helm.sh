#!/usr/bin/env bash
# Builds the real `helm` from its Go module (helm.sh/helm/v4, pinned in hack/helm/go.mod as a
# `tool`) into a cache folder keyed by the module's files, so a rebuild happens only when go.mod
# or go.sum change. Prints the binary on its last line as `helm: PATH`.
#
#   NETHEAL_HELM=/path/to/helm     use a helm you already have; nothing is built
#   NETHEAL_HELM_CACHE=DIR         where built binaries are kept (default ~/.cache/netheal/helm)
#
# Helm 4 and not 3: Helm 4 applies objects server-side, so a chart that owns its namespace
# (charts/netheal renders netheal-system with its Pod Security labels, as config/default does)
# installs with `--create-namespace`; Helm 3 creates each object and fails with
# "namespaces ... already exists" (docs/install.md).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
module="$root/hack/helm"
package=helm.sh/helm/v4/cmd/helm

if [ -n "${NETHEAL_HELM:-}" ]; then
  [ -x "$NETHEAL_HELM" ] || { echo "NETHEAL_HELM=$NETHEAL_HELM is not an executable" >&2; exit 1; }
  echo "helm version: $("$NETHEAL_HELM" version --short 2>/dev/null)"
  echo "helm: $NETHEAL_HELM"
  exit 0
fi

command -v go >/dev/null || { echo "building helm needs Go (or set NETHEAL_HELM)" >&2; exit 1; }
version=$(awk '$1 == "helm.sh/helm/v4" {print $2; exit}' "$module/go.mod")
[ -n "$version" ] || { echo "hack/helm/go.mod does not require helm.sh/helm/v4" >&2; exit 1; }
key=$(cat "$module/go.mod" "$module/go.sum" | sha256sum | cut -c1-16)
cache=${NETHEAL_HELM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/netheal/helm}
out="$cache/$version-$key"

if [ -x "$out/helm" ]; then
  echo "helm $version is cached ($out)"
else
  export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly
  # The variable `helm version` reports (helm.sh/helm/v4/internal/version).
  ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$version -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
  echo "building helm $version with $(go version | cut -d' ' -f3) into $out"
  start=$(date +%s)
  rm -rf "$out.tmp"; mkdir -p "$out.tmp"
  (cd "$module" && go build -trimpath -ldflags "$ldflags" -o "$out.tmp/helm" "$package")
  echo "  built helm in $(( $(date +%s) - start )) s"
  rm -rf "$out"; mv "$out.tmp" "$out"
fi
ln -sfn "$out" "$cache/current"
echo "helm version: $("$out/helm" version --short)"
echo "helm: $out/helm"
