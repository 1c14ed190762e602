# Shared by images.sh and laravel-images.sh (sourced): a private buildah storage and the
# cached Debian root file systems.

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache="${PACER_CACHE:-/var/cache/pacer}/node"
mkdir -p "$cache/rootfs" "$cache/images"

# Private buildah storage under OUT_DIR (vfs: no mounts), never the machine's
# /var/lib/containers; removed when the script exits.
buildah_storage() {
  storage="$(mktemp -d "$1/.buildah.XXXXXX")"
  trap 'buildah --root "$storage/root" --runroot "$storage/run" --storage-driver vfs rm --all >/dev/null 2>&1; rm -rf "$storage"' EXIT
}
bah() { buildah --root "$storage/root" --runroot "$storage/run" --storage-driver vfs "$@"; }
ctx() { mktemp -d "$storage/ctx.XXXXXX"; }

# rootfs VARIANT PACKAGE… — prints the path of a Debian 12 root file system (a tar) made by
# mmdebstrap with those packages, cached under $cache/rootfs/ keyed by the variant and the
# packages' candidate versions (a new Debian point release makes a new one).
rootfs() {
  local variant="$1"
  shift
  local versions key tar tmp start
  versions="$(apt-cache policy "$@" | awk '/^[^ ]/ {p=$1} /Candidate:/ {print p, $2}')"
  [[ "$versions" != *"(none)"* && -n "$versions" ]] || {
    echo "$(basename "$0"): apt knows no candidate for $* (run apt-get update): $versions" >&2
    return 1
  }
  key="$(printf 'bookworm %s\n%s\n' "$variant" "$versions" | sha256sum | cut -c1-16)"
  tar="$cache/rootfs/$key.tar"
  if [[ ! -s "$tar" ]]; then
    echo "$(basename "$0"): making a root file system (mmdebstrap --variant=$variant, $*)" >&2
    start=$SECONDS
    tmp="$(mktemp "$cache/rootfs/.tmp.XXXXXX")"
    # --format: mmdebstrap picks the format from the target's name otherwise, and takes a
    # name without a tar suffix for a directory ("exists and is not a directory").
    # A failure is returned, not cached: errexit does not reach into "$(rootfs …)".
    if ! mmdebstrap --quiet --format=tar --variant="$variant" --include="$(IFS=,; echo "$*")" \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' \
      bookworm "$tmp" >&2 || [[ ! -s "$tmp" ]]; then
      rm -f "$tmp"
      echo "$(basename "$0"): mmdebstrap made no root file system for $*" >&2
      return 1
    fi
    mv "$tmp" "$tar"
    printf '%s\n' "$versions" > "$cache/rootfs/$key.versions"
    echo "$(basename "$0"): root file system made in $((SECONDS - start)) s" >&2
  fi
  echo "$tar"
}

# rootfs_id TAR — what an image built from a root file system is keyed by: its name (the
# packages' versions) and its size and time, so that an image built from a broken or
# remade root file system is not reused.
rootfs_id() {
  printf '%s %s\n' "$(basename "$1" .tar)" "$(stat -c '%s %Y' "$1")"
}

# files_key PATH… — a hash of the files under the paths (relative to the repository).
files_key() {
  (cd "$repo" && find "$@" -type f | sort | xargs sha256sum) | sha256sum | cut -c1-16
}
