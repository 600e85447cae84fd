# syntax=docker/dockerfile:1.7
# netheal images, one multi-stage file:
#   docker build --target operator   -t ghcr.io/netheal/netheal-operator:0.1.0 .
#   docker build --target node-fixer -t ghcr.io/netheal/netheal-node-fixer:0.1.0 .
# `make images` (hack/build-images.sh) runs the same with podman or Docker. Where no registry is
# reachable it first makes both base images locally from Debian packages (debootstrap) and passes
# them as RUST_IMAGE and DEBIAN_IMAGE; nothing below changes.
#
# Both run-time images are `FROM scratch` plus the files of the Debian 12 packages their binary
# needs (images/rootfs.sh): no shell, no package manager. Their glibc matches the builder's.

ARG RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
# Marks the intermediate images, so that `make images` prunes its own dangling ones only.
LABEL io.netheal.stage="build"
WORKDIR /src
# The whole workspace: cargo needs every member's manifest to resolve the lock file, even when
# building two of them. .dockerignore keeps target/, .git and the docs out of the context.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p netheal-operator -p node-fixer \
        --bin netheal-operator --bin node-fixer \
 && mkdir -p /out \
 && cp target/release/netheal-operator target/release/node-fixer /out/

# The run-time root filesystems, from Debian 12 packages:
# - operator: glibc and libgcc (the binary is Rust with rustls: no OpenSSL, no CA bundle; the
#   cluster CA comes with the ServiceAccount), and a passwd entry for uid 65532;
# - node-fixer: the same plus iptables (iptables-{nft,legacy}-{save,restore}) and nftables (nft,
#   for nftables' own tables such as firewalld's), the only programs node-fixer runs (netlink and
#   sysctls are native), their libraries, and netbase (/etc/protocols, which iptables reads to
#   name protocols).
FROM ${DEBIAN_IMAGE} AS rootfs
LABEL io.netheal.stage="rootfs"
SHELL ["/bin/sh", "-eu", "-c"]
RUN if ! dpkg-query -W iptables nftables >/dev/null 2>&1; then \
        apt-get update; \
        apt-get install -y --no-install-recommends iptables nftables; \
        rm -rf /var/lib/apt/lists/*; \
    fi
COPY images/rootfs.sh /usr/local/bin/rootfs.sh
RUN rootfs.sh /rootfs/operator libc6 libgcc-s1 \
 && printf 'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > /rootfs/operator/etc/passwd \
 && printf 'nonroot:x:65532:\n' > /rootfs/operator/etc/group \
 && rootfs.sh /rootfs/node-fixer iptables nftables netbase \
 && printf 'root:x:0:0:root:/root:/sbin/nologin\n' > /rootfs/node-fixer/etc/passwd \
 && printf 'root:x:0:\n' > /rootfs/node-fixer/etc/group

# The operator only talks to the API server: no shell, uid 65532.
FROM scratch AS operator
LABEL org.opencontainers.image.title="netheal-operator" \
      org.opencontainers.image.description="netheal operator: approves, orders and records node network fixes" \
      org.opencontainers.image.source="https://github.com/netheal/netheal" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=rootfs /rootfs/operator/ /
COPY --from=build /out/netheal-operator /usr/local/bin/netheal-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/netheal-operator"]

# node-fixer runs as uid 0 with only the capabilities config/node-fixer/daemonset.yaml grants, so
# no USER here.
FROM scratch AS node-fixer
LABEL org.opencontainers.image.title="netheal-node-fixer" \
      org.opencontainers.image.description="netheal node agent: finds and fixes node network faults" \
      org.opencontainers.image.source="https://github.com/netheal/netheal" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=rootfs /rootfs/node-fixer/ /
COPY --from=build /out/node-fixer /usr/local/bin/node-fixer
EXPOSE 9750
ENTRYPOINT ["/usr/local/bin/node-fixer"]
CMD ["agent"]
