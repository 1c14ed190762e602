#!/usr/bin/env bash
# Builds kube-apiserver, etcd and helm from the Go modules pinned beside this script
# (kube-apiserver/, etcd/, helm/: one module each, because their dependency graphs
# differ) into a cache outside the checkout, keyed by the three versions:
#
#   ${PACER_CACHE:-/var/cache/pacer}/controlplane/<k8s>-<etcd>-<helm>/bin/{kube-apiserver,etcd,helm}
#
# `build.sh --cluster` also builds kube-controller-manager and kube-scheduler (same
# module and version as kube-apiserver; the end-to-end scenarios need them so that
# Deployments really become ReplicaSets and Pods bound to a node). They are separate
# from the default set so the operator's tests never wait for them.
#
# `build.sh --node` builds those two and the real node of the end-to-end scenarios:
# kubelet and kubectl (same module and version again; most of their packages come from
# the Go build cache) and `pause`, the pod sandbox's process (pause/, a static Go program;
# there is no registry to pull the usual pause image from).
#
# The Go build and module caches live under ${PACER_CACHE} too, so a rerun takes
# seconds. Idempotent: when the three binaries exist nothing is built. The last line
# printed on stdout is always the bin directory (the Rust harness reads it); progress
# goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${PACER_CACHE:-/var/cache/pacer}"

export GOCACHE="$cache/go/build"
export GOMODCACHE="$cache/go/mod"
export CGO_ENABLED=0
# go.mod and go.sum are committed: a build must never rewrite them. No VCS stamping:
# the binaries are keyed by module versions, not by this repository's commit.
export GOFLAGS="-mod=readonly -trimpath -buildvcs=false"
# Every module here builds with the machine's Go (>= 1.26); never fetch another one.
export GOTOOLCHAIN=local

command -v go >/dev/null || { echo "build.sh: go is not installed" >&2; exit 1; }

# The version of module $2 as resolved in the module in folder $1.
modver() { (cd "$here/$1" && go list -m -f '{{.Version}}' "$2"); }

k8s="$(modver kube-apiserver k8s.io/kubernetes)"
etcd="$(modver etcd go.etcd.io/etcd/server/v3)"
helm="$(modver helm helm.sh/helm/v3)"
bin="$cache/controlplane/$k8s-$etcd-$helm/bin"

cluster=false
node=false
case "${1:-}" in
  --cluster) cluster=true ;;
  --node) cluster=true; node=true ;;
  "") ;;
  *) echo "build.sh: unknown argument $1 (want --cluster or --node)" >&2; exit 64 ;;
esac

have_all() { [[ -x "$bin/kube-apiserver" && -x "$bin/etcd" && -x "$bin/helm" ]]; }
have_cluster() { ! $cluster || [[ -x "$bin/kube-controller-manager" && -x "$bin/kube-scheduler" ]]; }
# pause is this repository's own code, not a pinned version: key it by its source.
pause_key="$(cat "$here/pause/go.mod" "$here/pause/main.go" | sha256sum | cut -c1-16)"
have_node() { ! $node || [[ -x "$bin/kubelet" && -x "$bin/kubectl" && -x "$bin/pause-$pause_key" ]]; }

if ! have_all || ! have_cluster || ! have_node; then
  mkdir -p "$bin"
  # Tests running in parallel processes may all call this script; one builds.
  exec 9>"$bin/../.lock"
  flock 9
fi

if ! have_all; then
  start=$SECONDS
  tmp="$(mktemp -d "$bin/../.build.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT

  # What kube-apiserver reports on /version (and uses as its compatibility version).
  minor="${k8s#v1.}"; minor="${minor%%.*}"
  kv=""
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    kv+=" -X $pkg.gitVersion=$k8s -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  echo "build.sh: building kube-apiserver $k8s" >&2
  (cd "$here/kube-apiserver" &&
    go build -ldflags "-s -w$kv" -o "$tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver)

  echo "build.sh: building etcd $etcd" >&2
  (cd "$here/etcd" && go build -ldflags "-s -w" -o "$tmp/etcd" .)

  # Without these helm reports itself as "v3" and templates against Kubernetes 1.20.
  hk="$(modver helm k8s.io/client-go)"; hk="${hk#v0.}"; hk="${hk%%.*}"
  hv="-X helm.sh/helm/v3/internal/version.version=$helm -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    hv+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$hk"
  done
  echo "build.sh: building helm $helm" >&2
  (cd "$here/helm" && go build -ldflags "-s -w $hv" -o "$tmp/helm" helm.sh/helm/v3/cmd/helm)

  # Move into place only when all three are built, so an interrupted build is redone.
  mv "$tmp/kube-apiserver" "$tmp/etcd" "$tmp/helm" "$bin/"
  echo "build.sh: built in $((SECONDS - start)) s" >&2
fi

if ! have_cluster; then
  start=$SECONDS
  tmp="$(mktemp -d "$bin/../.build.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  minor="${k8s#v1.}"; minor="${minor%%.*}"
  kv=""
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    kv+=" -X $pkg.gitVersion=$k8s -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  # Most of their packages are kube-apiserver's too, so the Go build cache does the rest.
  for cmd in kube-controller-manager kube-scheduler; do
    echo "build.sh: building $cmd $k8s" >&2
    (cd "$here/kube-apiserver" &&
      go build -ldflags "-s -w$kv" -o "$tmp/$cmd" "k8s.io/kubernetes/cmd/$cmd")
  done
  mv "$tmp/kube-controller-manager" "$tmp/kube-scheduler" "$bin/"
  echo "build.sh: built the controller-manager and scheduler in $((SECONDS - start)) s" >&2
fi

if ! have_node; then
  start=$SECONDS
  tmp="$(mktemp -d "$bin/../.build.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  minor="${k8s#v1.}"; minor="${minor%%.*}"
  kv=""
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    kv+=" -X $pkg.gitVersion=$k8s -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  for cmd in kubelet kubectl; do
    [[ -x "$bin/$cmd" ]] && continue
    echo "build.sh: building $cmd $k8s" >&2
    (cd "$here/kube-apiserver" &&
      go build -ldflags "-s -w$kv" -o "$tmp/$cmd" "k8s.io/kubernetes/cmd/$cmd")
  done
  echo "build.sh: building pause" >&2
  (cd "$here/pause" && go build -ldflags "-s -w" -o "$tmp/pause-$pause_key" .)
  for cmd in kubelet kubectl; do [[ -f "$tmp/$cmd" ]] && mv "$tmp/$cmd" "$bin/"; done
  mv "$tmp/pause-$pause_key" "$bin/"
  ln -sfn "pause-$pause_key" "$bin/pause"
  echo "build.sh: built kubelet, kubectl and pause in $((SECONDS - start)) s" >&2
fi

echo "$bin"
