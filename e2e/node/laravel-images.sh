#!/usr/bin/env bash
# Builds the images examples/kubernetes/laravel.yaml runs on the real node, with buildah,
# as docker-archive files for `ctr -n k8s.io images import`:
#
#   laravel.tar  localhost/pacer-laravel:1   Debian's PHP CLI, php-laravel-framework (8.83) and
#                                            SQLite + examples/laravel in /app, laid out as a
#                                            Composer install would be: pacer's PHP library
#                                            (php/) in /app/vendor/pacer/worker
#   busybox.tar  localhost/busybox:1.35      Debian's busybox-static (the log-shipper sidecar's
#                                            `tail`)
#
# No registry here: the root file systems are made by mmdebstrap from Debian's packages and
# cached under $PACER_CACHE/node/rootfs/ keyed by the packages' candidate versions; the
# archives under $PACER_CACHE/node/images/, keyed by those and the app's files. A warm run
# only prints the cached archives.
#
# Usage: laravel-images.sh OUT_DIR        Prints one line per archive: FILE IMAGE
set -euo pipefail

out="$1"
mkdir -p "$out"
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The app and the library as git sees them (tracked and new files, not the ignored ones
# such as a local database/database.sqlite or .env copies).
app_files() {
  (cd "$repo" && git ls-files -co --exclude-standard -- examples/laravel php/autoload.php php/src php/bin |
    grep -v '^examples/laravel/\.env$')
}

base="$(rootfs essential php8.2-cli php-laravel-framework php8.2-sqlite3)"
key="$(
  { rootfs_id "$base"; app_files | (cd "$repo" && xargs sha256sum); } | sha256sum | cut -c1-16
)"
laravel="$cache/images/laravel-$key.tar"
if [[ ! -s "$laravel" ]]; then
  buildah_storage "$out"
  c="$(ctx)"
  ln "$base" "$c/rootfs.tar" 2>/dev/null || cp "$base" "$c/rootfs.tar"
  (cd "$repo" && app_files | tar -cf - -T -) | tar -xf - -C "$c"
  mv "$c/examples/laravel" "$c/app"
  mkdir -p "$c/app/vendor/pacer"
  mv "$c/php" "$c/app/vendor/pacer/worker"
  # The example's vendor/autoload.php stands in for Composer's and loads pacer/worker from
  # PACER_PHP_AUTOLOAD; its .env stays out: the Secret (envFrom) provides the environment.
  cat > "$c/Containerfile" <<'EOT'
FROM scratch
ADD rootfs.tar /
COPY app /app
ENV PACER_PHP_AUTOLOAD=/app/vendor/pacer/worker/autoload.php
WORKDIR /app
USER 33:33
CMD ["php", "artisan", "--version"]
EOT
  bah bud --quiet -f "$c/Containerfile" -t localhost/pacer-laravel:1 "$c" >/dev/null
  tmp="$(mktemp "$cache/images/.tmp.XXXXXX")"
  rm -f "$tmp"
  bah push --quiet localhost/pacer-laravel:1 "docker-archive:$tmp:localhost/pacer-laravel:1"
  mv "$tmp" "$laravel"
fi
echo "$laravel localhost/pacer-laravel:1"

# busybox: only the static binary and the two applets the sidecar uses.
bb="$(rootfs extract busybox-static)"
bb_key="$(rootfs_id "$bb" | sha256sum | cut -c1-16)"
busybox="$cache/images/busybox-$bb_key.tar"
if [[ ! -s "$busybox" ]]; then
  [[ -n "${storage:-}" ]] || buildah_storage "$out"
  c="$(ctx)"
  mkdir -p "$c/bin"
  tar -xf "$bb" -C "$c" ./bin/busybox
  ln -s busybox "$c/bin/sh"
  ln -s busybox "$c/bin/tail"
  printf 'FROM scratch\nCOPY bin /bin\nUSER 65534:65534\nCMD ["sh"]\n' > "$c/Containerfile"
  bah bud --quiet -f "$c/Containerfile" -t localhost/busybox:1.35 "$c" >/dev/null
  tmp="$(mktemp "$cache/images/.tmp.XXXXXX")"
  rm -f "$tmp"
  bah push --quiet localhost/busybox:1.35 "docker-archive:$tmp:localhost/busybox:1.35"
  mv "$tmp" "$busybox"
fi
echo "$busybox localhost/busybox:1.35"
