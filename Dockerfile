# Pacer image: the static `pacer` and `pacer-operator` binaries and nothing else.
#
# * `/pacer` is what the operator's init container copies into each app pod
#   (`/pacer-operator install --from /pacer --to /pacer-install/pacer`: the image has no
#   shell and no `cp`); users who build their own app image can instead
#   `COPY --from=<this image> /pacer /usr/local/bin/pacer` and set `sidecar.inject: false`.
# * `/pacer-operator` is the default entrypoint (the operator Deployment of the chart).
#
# Build: docker build -t pacer .   (the first stage compiles; the final stage is FROM scratch)
# Without a Docker engine, e2e/image/build.sh builds the final stage from `make release`
# output with buildah and checks it runs.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# crt-static only for the target, never for build scripts and proc-macros.
RUN RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked --target x86_64-unknown-linux-gnu -p pacer -p pacer-operator --bins \
 && mkdir /out \
 && cp target/x86_64-unknown-linux-gnu/release/pacer target/x86_64-unknown-linux-gnu/release/pacer-operator /out/

FROM scratch
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="pacer" \
      org.opencontainers.image.description="Kubernetes-native PHP application server (pacer) and its operator (pacer-operator)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="https://example.invalid/pacer"
COPY --from=build /out/pacer /pacer
COPY --from=build /out/pacer-operator /pacer-operator
# Non-root (the conventional "nonroot" uid); the binaries need no file system writes.
USER 65532:65532
ENTRYPOINT ["/pacer-operator"]
