#!/usr/bin/env bash
# Runs a command of the real node: in its cgroup (CGROUP/system in every v1 hierarchy,
# so teardown.sh finds it and everything it forks) and in its network and mount
# namespaces. Usage: run-in.sh ROOT CGROUP COMMAND [ARGS…]
set -euo pipefail
root="$1"
cg="$2"
shift 2
for procs in /sys/fs/cgroup/*/"$cg"/system/cgroup.procs; do
  echo $$ > "$procs"
done
exec nsenter --net="$root/ns/net" --mount="$root/ns/mnt" -- "$@"
