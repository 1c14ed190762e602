#!/usr/bin/env bash
# Proves what can be proven here about the release binaries and the image:
#  1. `pacer` and `pacer-operator` are statically linked (no ELF interpreter, no NEEDED
#     libraries);
#  2. they run in an empty root (a chroot holding only the binary: no libc, no /etc, no
#     shell);
#  3. if buildah and podman work on this machine, the final stage of the Dockerfile
#     builds from these binaries and `podman run` starts them as the non-root user.
# Usage: e2e/image/check.sh DIR_WITH_RELEASE_BINARIES [--image]
set -euo pipefail

bin_dir="$1"
want_image="${2:-}"
fail() { echo "image check: $*" >&2; exit 1; }

bins=(pacer)
[[ -x "$bin_dir/pacer-operator" ]] && bins+=(pacer-operator)

for b in "${bins[@]}"; do
  f="$bin_dir/$b"
  [[ -x "$f" ]] || fail "$f missing (run make release)"
  if readelf -l "$f" | grep -q 'Requesting program interpreter'; then
    fail "$b has an ELF interpreter: it is dynamically linked"
  fi
  if readelf -d "$f" 2>/dev/null | grep -q '(NEEDED)'; then
    fail "$b needs shared libraries: $(readelf -d "$f" | grep NEEDED | tr -s ' ')"
  fi
  echo "ok: $b is statically linked ($(du -h "$f" | cut -f1))"

  root="$(mktemp -d)"
  trap 'rm -rf "$root"' EXIT
  cp "$f" "$root/$b"
  out="$(chroot "$root" "/$b" --version 2>&1)" || fail "$b does not run in an empty root: $out"
  echo "ok: $b runs in an empty root: $out"
  rm -rf "$root"
  trap - EXIT
done

if [[ "$want_image" != "--image" ]]; then
  exit 0
fi
command -v buildah >/dev/null && command -v podman >/dev/null || fail "buildah/podman not installed"

ctx="$(mktemp -d)"
conf="$(mktemp)"
trap 'rm -rf "$ctx" "$conf"' EXIT
# The Dockerfile itself, its prebuilt stage fed with the binaries at hand (the compile
# stage, FROM rust:…, is skipped: there is no registry to pull it from here).
for b in "${bins[@]}"; do cp "$bin_dir/$b" "$ctx/"; done
[[ -f "$ctx/pacer-operator" ]] || cp "$bin_dir/pacer" "$ctx/pacer-operator"
cp /etc/ssl/certs/ca-certificates.crt "$ctx/"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
printf '[containers]\ndefault_ulimits = ["nofile=1024:1024","nproc=1024:1024"]\n[engine]\nruntime = "runc"\n' > "$conf"
export CONTAINERS_CONF="$conf"
buildah bud --quiet --build-arg BINARIES=prebuilt -t localhost/pacer:check -f "$repo/Dockerfile" "$ctx" >/dev/null
echo "ok: image built from the Dockerfile (prebuilt stage)"
user="$(podman image inspect localhost/pacer:check --format '{{.Config.User}}')"
[[ "$user" == "65532:65532" ]] || fail "image user is '$user', want 65532:65532"
out="$(podman run --rm --network none --entrypoint /pacer localhost/pacer:check version)"
echo "ok: podman run /pacer version → $out"
id="$(podman run --rm --network none --entrypoint /pacer localhost/pacer:check config check -c /nonexistent.yaml 2>&1 || true)"
echo "ok: in the image, a missing config says: $id"
podman rmi -f localhost/pacer:check >/dev/null
