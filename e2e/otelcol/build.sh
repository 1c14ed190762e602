#!/usr/bin/env bash
# Builds the test collector (main.go: the OpenTelemetry Collector's own OTLP receiver
# writing what it receives as OTLP JSON lines) once into a cache outside the checkout,
# keyed by the receiver's module version:
#
#   ${PACER_CACHE:-/var/cache/pacer}/otelcol/<otlpreceiver version>/otelcol
#
# The Go build and module caches live under ${PACER_CACHE} too, so a rerun is instant.
# The last line printed on stdout is the binary's path; progress goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${PACER_CACHE:-/var/cache/pacer}"

export GOCACHE="$cache/go/build"
export GOMODCACHE="$cache/go/mod"
export CGO_ENABLED=0
# go.mod and go.sum are committed: a build must never rewrite them.
export GOFLAGS="-mod=readonly -trimpath -buildvcs=false"
export GOTOOLCHAIN=local

command -v go >/dev/null || { echo "otelcol/build.sh: go is not installed" >&2; exit 1; }

version="$(cd "$here" && go list -m -f '{{.Version}}' go.opentelemetry.io/collector/receiver/otlpreceiver)"
# main.go is part of the key too: a change to it must not reuse an old binary.
sum="$(sha256sum "$here/main.go" | cut -c1-12)"
dir="$cache/otelcol/$version-$sum"
bin="$dir/otelcol"

if [[ ! -x "$bin" ]]; then
  mkdir -p "$dir"
  # Tests running in parallel may all call this script; one builds.
  exec 9>"$dir/.lock"
  flock 9
  if [[ ! -x "$bin" ]]; then
    start=$SECONDS
    echo "otelcol/build.sh: building the test collector (otlpreceiver $version)…" >&2
    (cd "$here" && go build -o "$bin.tmp" .)
    mv "$bin.tmp" "$bin"
    echo "otelcol/build.sh: built in $((SECONDS - start))s" >&2
  fi
fi
echo "$bin"
