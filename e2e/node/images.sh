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
# (laravel-images.sh builds the Laravel example's images the same way.)
#
# Usage: images.sh OUT_DIR RELEASE_DIR PAUSE_BINARY VERSION
# Prints one line per archive: FILE IMAGE…
set -euo pipefail

out="$1"
release="$2"
pause="$3"
version="$4"
mkdir -p "$out"
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
buildah_storage "$out"

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
rootfs="$(rootfs essential php8.2-cli php-nyholm-psr7 php-psr-http-message php-psr-http-factory)"
app_key="$(
  { rootfs_id "$rootfs"; cd "$repo" && find examples/hello php/autoload.php php/src -type f | sort | xargs sha256sum; } |
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
