# Pacer image: the static `pacer` and `pacer-operator` binaries and a CA bundle, nothing else.
#
# * `/pacer` is what the operator's init container copies into each app pod
#   (`/pacer-operator install --from /pacer --to /pacer-install/pacer`: the image has no
#   shell and no `cp`); users who build their own app image can instead
#   `COPY --from=<this image> /pacer /usr/local/bin/pacer` and set `sidecar.inject: false`.
# * `/pacer-operator` is the default entrypoint (the operator Deployment of the chart).
#
# Build: docker build -t pacer .   (the first stage compiles; the final stage is FROM scratch)
#
# From binaries built elsewhere (`make release`, no Rust toolchain in the build): point the
# build context at a directory holding `pacer`, `pacer-operator` and the CA bundle
# `ca-certificates.crt` (Debian's /etc/ssl/certs/ca-certificates.crt) and pick the prebuilt
# stage; the compile stage is then skipped (BuildKit, buildah and podman skip unused stages):
#   buildah bud --build-arg BINARIES=prebuilt -f Dockerfile -t pacer target/x86_64-unknown-linux-gnu/release
# `make image-check` (e2e/image/check.sh) and the end-to-end node (e2e/node/images.sh) do that.
ARG BINARIES=build

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# crt-static only for the target, never for build scripts and proc-macros.
RUN RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked --target x86_64-unknown-linux-gnu -p pacer -p pacer-operator --bins \
 && mkdir /out \
 && cp target/x86_64-unknown-linux-gnu/release/pacer target/x86_64-unknown-linux-gnu/release/pacer-operator /out/ \
 && cp /etc/ssl/certs/ca-certificates.crt /out/

FROM scratch AS prebuilt
COPY pacer pacer-operator ca-certificates.crt /out/

FROM ${BINARIES} AS binaries

FROM scratch
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="pacer" \
      org.opencontainers.image.description="Kubernetes-native PHP application server (pacer) and its operator (pacer-operator)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="https://example.invalid/pacer"
COPY --from=binaries /out/pacer /pacer
COPY --from=binaries /out/pacer-operator /pacer-operator
# The operator's HTTPS client (a Prometheus behind TLS) verifies peers with the system's
# trust store; a scratch image has none, and without one the operator cannot start.
COPY --from=binaries /out/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# Non-root (the conventional "nonroot" uid); the binaries need no file system writes.
USER 65532:65532
ENTRYPOINT ["/pacer-operator"]
