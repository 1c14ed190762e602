#!/usr/bin/env bash
# Tears down what setup.sh made and what ran inside it, also after a failed or killed
# run: every process in the node's cgroups (containerd, its shims, the containers, the
# kubelet, the control plane), the namespace files (the network and mount namespaces
# die with them, and with the mount namespace every mount made inside it: overlay
# snapshots, pod volumes, the kubelet's bind mounts), the cgroups, the state directory.
# Usage: teardown.sh ROOT CGROUP     Idempotent; touches nothing outside ROOT and CGROUP.
set -uo pipefail

root="$1"
cg="$2"
[[ "$root" == /* && "$root" != / && -n "$cg" && "$cg" != */* ]] || {
  echo "teardown.sh: bad arguments: $*" >&2
  exit 64
}

cgroups() { find /sys/fs/cgroup/*/"$cg" -maxdepth 0 -type d 2>/dev/null; }

# 1. Processes: kill all of them until none is left (a shim may fork meanwhile).
for _ in $(seq 1 100); do
  pids="$(cgroups | while read -r d; do find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null; done | sort -u)"
  [[ -z "$pids" ]] && break
  # shellcheck disable=SC2086
  kill -s KILL $pids 2>/dev/null
  sleep 0.1
done

# 2. Mounts in this (the host's) mount namespace under ROOT, deepest first: the
# namespace files and anything a crashed run left.
if [[ -d "$root" ]]; then
  awk -v r="$root" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo |
    sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
fi

# 3. Cgroups, children first (the kubelet and runc made most of them).
for d in $(cgroups); do
  find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
  [[ -d "$d" ]] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
done
left="$(cgroups)"
[[ -n "$left" ]] && echo "teardown.sh: cgroups left: $left" >&2

# 4. The state: images, snapshots, pod directories (the logs live elsewhere).
rm -rf --one-file-system "$root" 2>/dev/null || { sleep 1; rm -rf --one-file-system "$root"; }
[[ -z "$left" && ! -e "$root" ]]
