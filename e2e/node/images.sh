#!/usr/bin/env bash
# Builds the three images the real node runs, with buildah (no registry, no Docker
# engine), as docker-archive files for `ctr -n k8s.io images import`:
#
#   pause.tar  localhost/pause:pacer-e2e        the pod sandbox: build.sh --node's static `pause`
#   pacer.tar  localhost/pacer:VERSION          the Dockerfile's final stage, from `make release`
#                                               binaries (--build-arg BINARIES=prebuilt)
#   app.tar    localhost/pacer-hello:1, :2      PHP CLI from Debian + examples/hello + php/
#                                               (two tags of one image: a rolling update
#                                               changes the tag)
#
# The app image's root file system is made by mmdebstrap from Debian's packages (php8.2-cli,
# Nyholm PSR-7 and the PSR interfaces the example needs) and cached under
# $PACER_CACHE/node/rootfs/, keyed by the packages' candidate versions; its archive is
# cached keyed by that and the app's files. Only pause and pacer are rebuilt every run.
#
# Usage: images.sh OUT_DIR RELEASE_DIR PAUSE_BINARY VERSION
# Prints one line per archive: FILE IMAGE…
set -euo pipefail

out="$1"
release="$2"
pause="$3"
version="$4"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache="${PACER_CACHE:-/var/cache/pacer}/node"
mkdir -p "$out" "$cache/rootfs" "$cache/images"

# Private buildah storage (vfs: no mounts), never the machine's /var/lib/containers.
storage="$(mktemp -d "$out/.buildah.XXXXXX")"
trap 'buildah --root "$storage/root" --runroot "$storage/run" --storage-driver vfs rm --all >/dev/null 2>&1; rm -rf "$storage"' EXIT
bah() { buildah --root "$storage/root" --runroot "$storage/run" --storage-driver vfs "$@"; }
ctx() { mktemp -d "$storage/ctx.XXXXXX"; }

# pause
c="$(ctx)"
cp "$pause" "$c/pause"
printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' > "$c/Containerfile"
bah bud --quiet -f "$c/Containerfile" -t localhost/pause:pacer-e2e "$c" >/dev/null
rm -f "$out/pause.tar"
bah push --quiet localhost/pause:pacer-e2e "docker-archive:$out/pause.tar:localhost/pause:pacer-e2e"
echo "$out/pause.tar localhost/pause:pacer-e2e"

# pacer: the real Dockerfile, its prebuilt stage fed with the release binaries.
c="$(ctx)"
cp "$release/pacer" "$release/pacer-operator" /etc/ssl/certs/ca-certificates.crt "$c/"
bah bud --quiet --build-arg BINARIES=prebuilt --build-arg VERSION="$version" \
  -f "$repo/Dockerfile" -t "localhost/pacer:$version" "$c" >/dev/null
rm -f "$out/pacer.tar"
bah push --quiet "localhost/pacer:$version" "docker-archive:$out/pacer.tar:localhost/pacer:$version"
echo "$out/pacer.tar localhost/pacer:$version"

# app: Debian's PHP, cached.
packages=(php8.2-cli php-nyholm-psr7 php-psr-http-message php-psr-http-factory)
versions="$(apt-cache policy "${packages[@]}" | awk '/^[^ ]/ {p=$1} /Candidate:/ {print p, $2}')"
[[ "$versions" != *"(none)"* && -n "$versions" ]] || {
  echo "images.sh: apt knows no candidate for ${packages[*]} (run apt-get update): $versions" >&2
  exit 1
}
rootfs_key="$(printf 'bookworm essential\n%s\n' "$versions" | sha256sum | cut -c1-16)"
rootfs="$cache/rootfs/$rootfs_key.tar"
if [[ ! -s "$rootfs" ]]; then
  echo "images.sh: making the app's root file system (mmdebstrap, ${packages[*]})" >&2
  start=$SECONDS
  tmp="$(mktemp "$cache/rootfs/.tmp.XXXXXX")"
  mmdebstrap --quiet --variant=essential --include="$(IFS=,; echo "${packages[*]}")" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    bookworm "$tmp" >&2
  mv "$tmp" "$rootfs"
  printf '%s\n' "$versions" > "$cache/rootfs/$rootfs_key.versions"
  echo "images.sh: root file system made in $((SECONDS - start)) s" >&2
fi
app_key="$(
  { echo "$rootfs_key"; cd "$repo" && find examples/hello php/autoload.php php/src -type f | sort | xargs sha256sum; } |
    sha256sum | cut -c1-16
)"
app="$cache/images/app-$app_key.tar"
if [[ ! -s "$app" ]]; then
  c="$(ctx)"
  ln "$rootfs" "$c/rootfs.tar" 2>/dev/null || cp "$rootfs" "$c/rootfs.tar"
  cp -r "$repo/examples/hello" "$c/app"
  mkdir -p "$c/php"
  cp -r "$repo/php/autoload.php" "$repo/php/src" "$c/php/"
  # worker.php loads the library from ../../php (the repository's layout): /php here.
  cat > "$c/Containerfile" <<'EOT'
FROM scratch
ADD rootfs.tar /
COPY php /php
COPY app /app
WORKDIR /app
USER 1000:1000
CMD ["php", "worker.php"]
EOT
  bah bud --quiet -f "$c/Containerfile" -t localhost/pacer-hello:1 "$c" >/dev/null
  tmp="$(mktemp "$cache/images/.tmp.XXXXXX")"
  rm -f "$tmp"
  bah push --quiet localhost/pacer-hello:1 "docker-archive:$tmp:localhost/pacer-hello:1"
  mv "$tmp" "$app"
fi
echo "$app localhost/pacer-hello:1"
