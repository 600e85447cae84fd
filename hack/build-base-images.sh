#!/usr/bin/env bash
# Make, without any registry, the one base image the Dockerfile's build and rootfs stages need:
# a Debian 12 (bookworm) root filesystem from debootstrap (minbase: dpkg, no apt lists) with
#   iptables, nftables   the packages the node-fixer image's files are taken from (images/rootfs.sh),
#   gcc, libc6-dev, ca-certificates   what cargo needs to link and to reach crates.io,
# and this machine's Rust toolchain (the Dockerfile's RUST_VERSION) in /usr/local/rust. The
# certificate authorities this machine adds (/usr/local/share/ca-certificates, e.g. a proxy's)
# are trusted in it too, so that cargo reaches crates.io the way this machine does.
# Imported into podman (or docker) as $BASE_IMAGE; prints that name as its last line.
# The root filesystem is cached in ~/.cache/netheal/images/ (keyed by release, packages, Rust).
#   DEBIAN_MIRROR=http://deb.debian.org/debian  ENGINE=podman|docker
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENGINE="${ENGINE:-podman}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
suite=bookworm
packages=iptables,nftables,gcc,libc6-dev,ca-certificates

fail() { echo "build-base-images: $*" >&2; exit 1; }
command -v debootstrap >/dev/null 2>&1 || fail "debootstrap is not installed (apt-get install debootstrap)"
command -v "$ENGINE" >/dev/null 2>&1 || fail "$ENGINE is not installed"
[ "$(id -u)" = 0 ] || fail "debootstrap needs root"

want_rust="$(sed -n 's/^ARG RUST_IMAGE=.*rust:\([0-9.]*\)-.*/\1/p' "$root/Dockerfile")"
[ -n "$want_rust" ] || fail "no rust:<version> in the Dockerfile's RUST_IMAGE"
have_rust="$(rustc --version | awk '{print $2}')"
case "$have_rust" in
  "$want_rust" | "$want_rust".*) ;;
  *) fail "the Dockerfile builds with Rust $want_rust, this machine has $have_rust" ;;
esac
sysroot="$(rustc --print sysroot)"

local_cas=/usr/local/share/ca-certificates
key="$({ printf '%s\n' "$suite" "$packages" "$have_rust"; cat "${BASH_SOURCE[0]}"; find "$local_cas" -name '*.crt' -type f -exec cat {} + 2>/dev/null || true; } | sha256sum | cut -c1-16)"

# The tag carries the key: an image made from another package list is never reused.
BASE_IMAGE="${BASE_IMAGE:-localhost/netheal/build-base:$suite-rust$have_rust-$key}"
if "$ENGINE" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  echo "build-base-images: $BASE_IMAGE is there" >&2
  echo "$BASE_IMAGE"
  exit 0
fi
cache="${XDG_CACHE_HOME:-$HOME/.cache}/netheal/images"
tarball="$cache/build-base-$suite-rust$have_rust-$key.tar"
if [ ! -s "$tarball" ]; then
  mkdir -p "$cache"
  work="$(mktemp -d "$cache/rootfs.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  echo "build-base-images: debootstrap $suite ($packages) from $DEBIAN_MIRROR" >&2
  started=$SECONDS
  debootstrap --variant=minbase --include="$packages" "$suite" "$work/rootfs" "$DEBIAN_MIRROR" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; fail "debootstrap failed"; }
  if [ -d "$local_cas" ]; then
    cp -a "$local_cas/." "$work/rootfs/usr/local/share/ca-certificates/"
    chroot "$work/rootfs" update-ca-certificates >/dev/null
  fi
  echo "build-base-images: Rust $have_rust from $sysroot" >&2
  mkdir -p "$work/rootfs/usr/local/rust/bin"
  cp -a "$sysroot/bin/cargo" "$sysroot/bin/rustc" "$work/rootfs/usr/local/rust/bin/"
  cp -a "$sysroot/lib" "$work/rootfs/usr/local/rust/"
  rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb
  tar -C "$work/rootfs" -cf "$tarball.partial" .
  mv "$tarball.partial" "$tarball"
  echo "build-base-images: root filesystem made in $((SECONDS - started)) s" >&2
fi

"$ENGINE" import \
  --change 'ENV PATH=/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV CARGO_HOME=/usr/local/cargo' \
  "$tarball" "$BASE_IMAGE" >/dev/null
echo "build-base-images: imported $BASE_IMAGE" >&2
echo "$BASE_IMAGE"
