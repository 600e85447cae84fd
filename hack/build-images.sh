#!/usr/bin/env bash
# Build both images from the Dockerfile (make images), with podman or Docker.
#   hack/build-images.sh                       ghcr.io/netheal/netheal-{operator,node-fixer}:<version>
#   REGISTRY=registry.example/netheal TAG=dev hack/build-images.sh
#   PUSH=1 hack/build-images.sh                 also push them
#   ENGINE=docker hack/build-images.sh          Docker (BuildKit) instead of podman
#   BASE_IMAGES=registry hack/build-images.sh   pull the Dockerfile's rust and debian images
#                                               instead of making them with debootstrap
# BASE_IMAGES defaults to `local` where debootstrap is installed (hack/build-base-images.sh),
# else `registry`. Prints each image's size and the build time.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

fail() { echo "build-images: $*" >&2; exit 1; }

if [ -z "${ENGINE:-}" ]; then
  if command -v podman >/dev/null 2>&1; then ENGINE=podman; else ENGINE=docker; fi
fi
command -v "$ENGINE" >/dev/null 2>&1 || fail "neither podman nor docker is installed"
export ENGINE
REGISTRY="${REGISTRY:-ghcr.io/netheal}"
if [ -z "${TAG:-}" ]; then
  # The workspace version (`version = "x.y.z"` under [workspace.package]).
  TAG="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -1)"
fi
[ -n "$TAG" ] || fail "no TAG and no version in Cargo.toml"
if [ -z "${BASE_IMAGES:-}" ]; then
  if command -v debootstrap >/dev/null 2>&1; then BASE_IMAGES=local; else BASE_IMAGES=registry; fi
fi

flags=(--network host)
case "$BASE_IMAGES" in
  local)
    base="$("$root/hack/build-base-images.sh" | tail -1)"
    flags+=(--build-arg "RUST_IMAGE=$base" --build-arg "DEBIAN_IMAGE=$base")
    ;;
  registry) ;;
  *) fail "BASE_IMAGES must be local or registry, not $BASE_IMAGES" ;;
esac
if [ "$ENGINE" = podman ]; then
  # Measured on Debian 12: crun (podman's default) fails with cgroups in hybrid mode, runc works;
  # podman's default ulimits exceed a hard limit below 1048576.
  if command -v runc >/dev/null 2>&1; then flags+=(--runtime runc); fi
  hard="$(ulimit -Hn)"
  if [ "$hard" != unlimited ] && [ "$hard" -lt 1048576 ]; then
    n=$((hard < 16384 ? hard : 16384))
    flags+=(--ulimit "nofile=$n:$n" --ulimit "nproc=$n:$n")
  fi
  flags+=(--layers)
else
  export DOCKER_BUILDKIT=1
fi

started=$SECONDS
for target in operator node-fixer; do
  image="$REGISTRY/netheal-$target:$TAG"
  echo "== $image ($ENGINE, base images: $BASE_IMAGES)" >&2
  "$ENGINE" build "${flags[@]}" --target "$target" -t "$image" .
  if [ "${PUSH:-0}" = 1 ]; then
    "$ENGINE" push "$image"
  fi
done
elapsed=$((SECONDS - started))
# Each build leaves the previous build stages dangling (about 1 GB each); remove those, and only
# those (the Dockerfile labels its intermediate stages).
"$ENGINE" image prune --force --filter label=io.netheal.stage >/dev/null 2>&1 || true
for target in operator node-fixer; do
  image="$REGISTRY/netheal-$target:$TAG"
  bytes="$("$ENGINE" image inspect --format '{{.Size}}' "$image")"
  echo "image: $image $((bytes / 1024 / 1024)) MiB"
  echo "figure: image.$target.size $((bytes / 1024 / 1024)) MiB"
done
echo "figure: image.build_time $elapsed s"
