# syntax=docker/dockerfile:1.7
# netheal images, one multi-stage file:
#   docker build --target operator   -t ghcr.io/netheal/netheal-operator:0.1.0 .
#   docker build --target node-fixer -t ghcr.io/netheal/netheal-node-fixer:0.1.0 .
# Both binaries come from one `cargo build --release --locked` in a Debian 12 (bookworm) builder,
# so their glibc matches the Debian 12 runtime images below.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
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

# The operator only talks to the API server: no shell, no package manager, uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot AS operator
LABEL org.opencontainers.image.title="netheal-operator" \
      org.opencontainers.image.description="netheal operator: approves, orders and records node network fixes" \
      org.opencontainers.image.source="https://github.com/netheal/netheal" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/netheal-operator /usr/local/bin/netheal-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/netheal-operator"]

# node-fixer shells out to iptables-save/iptables (both the nft and the legacy backends, chosen
# per host the way kube-proxy does) and uses `ip` for diagnosis. It runs as uid 0 with only
# NET_ADMIN, NET_RAW and SYS_ADMIN (see config/node-fixer/daemonset.yaml), so no USER here.
FROM docker.io/library/debian:bookworm-slim AS node-fixer
LABEL org.opencontainers.image.title="netheal-node-fixer" \
      org.opencontainers.image.description="netheal node agent: finds and fixes node network faults" \
      org.opencontainers.image.source="https://github.com/netheal/netheal" \
      org.opencontainers.image.licenses="Apache-2.0"
# Debian's iptables package ships iptables-nft and iptables-legacy (and their -save/-restore).
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables iproute2 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/node-fixer /usr/local/bin/node-fixer
EXPOSE 9750
ENTRYPOINT ["/usr/local/bin/node-fixer"]
CMD ["agent"]
