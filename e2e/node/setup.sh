#!/usr/bin/env bash
# The isolation of the real node: a network namespace and a mount namespace, kept by
# files (ROOT/ns/net, ROOT/ns/mnt: `nsenter --net=… --mount=…` runs a process inside),
# and a cgroup CGROUP in every cgroup v1 hierarchy (the kubelet's cgroupRoot; the node's
# own processes go into CGROUP/system, so teardown.sh finds every one of them).
#
# Inside the network namespace: loopback up, the node's address NODE_IP and the API
# server's Service address SERVICE_IP on it (there is no kube-proxy: the `kubernetes`
# Service's ClusterIP is an address of the node itself, see e2e/README.md). No route
# leads out of it. Inside the mount namespace, /run, /var/log and /var/lib/cni are
# directories of ROOT, so containerd's shim sockets, the pods' network namespaces, the
# kubelet's log links and CNI's caches never reach the host's.
#
# Usage: setup.sh ROOT CGROUP NODE_IP SERVICE_IP    (tears down leftovers first)
set -euo pipefail

root="$1"
cg="$2"
node_ip="$3"
service_ip="$4"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

"$here/teardown.sh" "$root" "$cg" || { echo "setup.sh: leftovers of an earlier run could not be removed" >&2; exit 1; }

mkdir -p "$root"/{ns,run,log,cni}
# A namespace file must not sit on a shared mount: make its directory a private mount.
mount --bind "$root/ns" "$root/ns"
mount --make-private "$root/ns"
touch "$root/ns/net" "$root/ns/mnt"
# The mount point of the private CNI cache (what a CNI installation creates anyway).
mkdir -p /var/lib/cni

unshare --net="$root/ns/net" --mount="$root/ns/mnt" --propagation private \
  bash -euc '
    mount --bind "$1/run" /run
    mount --bind "$1/log" /var/log
    mount --bind "$1/cni" /var/lib/cni
    # The kubelet sets vm.overcommit_memory, kernel.panic and kernel.panic_on_oops to
    # its liking at start; those are the whole machine'"'"'s, not the namespace'"'"'s. It sees
    # files holding the values it wants instead, and leaves the host'"'"'s alone.
    for kv in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1; do
      f="$1/sysctl/${kv%%=*}"
      mkdir -p "$(dirname "$f")"
      echo "${kv#*=}" > "$f"
      mount --bind "$f" "/proc/sys/${kv%%=*}"
    done
    ip link set lo up
    ip addr add "$2/32" dev lo
    ip addr add "$3/32" dev lo
  ' setup "$root" "$node_ip" "$service_ip"

for h in /sys/fs/cgroup/*/; do
  h="${h%/}"
  [[ "$(basename "$h")" == unified ]] && continue
  mkdir -p "$h/$cg/system"
  if [[ -f "$h/cpuset.cpus" ]]; then
    for d in "$h/$cg" "$h/$cg/system"; do
      cat "$h/cpuset.cpus" > "$d/cpuset.cpus"
      cat "$h/cpuset.mems" > "$d/cpuset.mems"
    done
  fi
done
