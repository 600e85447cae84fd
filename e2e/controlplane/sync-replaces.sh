#!/usr/bin/env bash
# Regenerates go.mod's replace block from the pinned Kubernetes release: k8s.io/kubernetes
# requires its staging modules at v0.0.0 (replaced by relative paths a dependent module does not
# inherit), so every k8s.io/<staging> module it lists is replaced here by its v0.<minor>.<patch>
# release. Usage: ./sync-replaces.sh v1.36.3 (then `go mod tidy`).
set -euo pipefail
cd "$(dirname "$0")"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod
release=${1:?usage: $0 vMAJOR.MINOR.PATCH}
staging=v0.${release#v1.}
gomod=$(go mod download -json "k8s.io/kubernetes@$release" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
[ -n "$gomod" ] || { echo "no go.mod for k8s.io/kubernetes@$release" >&2; exit 1; }
modules=$(awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print $1}' "$gomod" | sort -u)
[ -n "$modules" ] || { echo "no staging replaces in $gomod" >&2; exit 1; }
go mod edit -require="k8s.io/kubernetes@$release"
for m in $modules; do
  go mod edit -replace="$m=$m@$staging"
done
echo "replaced $(wc -w <<<"$modules") staging modules with $staging"
