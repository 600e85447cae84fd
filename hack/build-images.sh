#!/usr/bin/env bash
# Build both images from the Dockerfile (make images).
#   hack/build-images.sh                       ghcr.io/netheal/netheal-{operator,node-fixer}:<version>
#   REGISTRY=registry.example/netheal TAG=dev hack/build-images.sh
#   PUSH=1 hack/build-images.sh                 also push them
# Needs docker with BuildKit (or set DOCKER=podman).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

DOCKER="${DOCKER:-docker}"
REGISTRY="${REGISTRY:-ghcr.io/netheal}"
if [ -z "${TAG:-}" ]; then
  # The workspace version (`version = "x.y.z"` under [workspace.package]).
  TAG="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -1)"
fi
[ -n "$TAG" ] || { echo "build-images: no TAG and no version in Cargo.toml" >&2; exit 1; }
command -v "$DOCKER" >/dev/null 2>&1 || { echo "build-images: $DOCKER is not installed" >&2; exit 1; }

for target in operator node-fixer; do
  image="$REGISTRY/netheal-$target:$TAG"
  echo "== $image" >&2
  DOCKER_BUILDKIT=1 "$DOCKER" build --target "$target" -t "$image" .
  if [ "${PUSH:-0}" = 1 ]; then
    "$DOCKER" push "$image"
  fi
done
