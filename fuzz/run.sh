#!/usr/bin/env bash
# Builds the fuzz targets once, then runs each named target for FUZZ_SECONDS (default 60)
# and prints a table of executions/s, coverage and features. Exits non-zero when any
# target crashed, leaked, ran out of memory or timed out; its log is printed and the
# input is in fuzz/artifacts/<target>/.
#
# Called by `make fuzz` and `make fuzz-smoke`; runs on its own too:
#   FUZZ_SECONDS=30 fuzz/run.sh frame_decoder static_path
#
# Environment:
#   FUZZ_SECONDS     seconds per target (default 60)
#   PACER_CACHE      where cargo-fuzz is installed when it is not on PATH
#                    (default /var/cache/pacer; the binary goes to $PACER_CACHE/cargo-fuzz)
#   CARGO_TARGET_DIR build output; the fuzz build goes to its `fuzz/` subdirectory, the
#                    growing corpora to `fuzz/corpus/<target>` and logs to `fuzz/logs`
#   FUZZ_ARGS        extra libFuzzer flags, e.g. "-jobs=2 -workers=2"
set -euo pipefail

fuzz_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$fuzz_dir")"
seconds="${FUZZ_SECONDS:-60}"
cache="${PACER_CACHE:-/var/cache/pacer}"
out="${CARGO_TARGET_DIR:-$root/target}/fuzz"
# cargo-fuzz gets the directory as --target-dir; an inherited CARGO_TARGET_DIR would
# make cargo build somewhere else than where cargo-fuzz looks.
unset CARGO_TARGET_DIR

if (($# == 0)); then
  echo "usage: $0 TARGET..." >&2
  exit 64
fi

# cargo-fuzz: on PATH, else in the cache, else installed into the cache (about 2 minutes).
if ! command -v cargo-fuzz >/dev/null; then
  export PATH="$cache/cargo-fuzz/bin:$PATH"
  if ! command -v cargo-fuzz >/dev/null; then
    echo "fuzz: installing cargo-fuzz into $cache/cargo-fuzz"
    (cd / && cargo install --locked --quiet cargo-fuzz --root "$cache/cargo-fuzz")
  fi
fi
# libFuzzer's instrumentation needs nightly; the workspace's pinned toolchain is stable.
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz: installing the nightly toolchain"
  rustup toolchain install nightly --profile minimal
fi

cd "$fuzz_dir"
mkdir -p "$out/logs"
echo "fuzz: building the targets"
cargo +nightly fuzz build --target-dir "$out" 2>&1 |
  { grep -Ev '^\s+(Compiling|Downloaded|Downloading)' || true; }

failed=()
rows=()
for target in "$@"; do
  corpus="$out/corpus/$target"
  mkdir -p "$corpus"
  # The first directory receives new inputs; the committed seeds and regressions are
  # read (and so replayed) at start-up but never written.
  dirs=("$corpus" "corpus/$target")
  [[ -d "regressions/$target" ]] && dirs+=("regressions/$target")
  flags=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
  [[ -f "dict/$target.dict" ]] && flags+=(-dict="dict/$target.dict")
  log="$out/logs/$target.log"
  echo "fuzz: $target for ${seconds}s (log: $log)"
  # shellcheck disable=SC2086  # FUZZ_ARGS is a list of flags
  if cargo +nightly fuzz run --target-dir "$out" "$target" "${dirs[@]}" -- \
    "${flags[@]}" ${FUZZ_ARGS:-} >"$log" 2>&1; then
    status=ok
  else
    status=FAILED
    failed+=("$target")
    tail -n 60 "$log" >&2
  fi
  # The last status line ("#N DONE cov: C ft: F corp: …") and the final stats.
  last="$(grep -E '^#[0-9]+' "$log" | tail -n1 || true)"
  cov="$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")"
  ft="$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")"
  corp="$(sed -nE 's/.* corp: ([0-9]+).*/\1/p' <<<"$last")"
  execs="$(sed -nE 's/^stat::number_of_executed_units:\s+([0-9]+)/\1/p' "$log" | tail -n1)"
  rate="$(sed -nE 's/^stat::average_exec_per_sec:\s+([0-9]+)/\1/p' "$log" | tail -n1)"
  rss="$(sed -nE 's/^stat::peak_rss_mb:\s+([0-9]+)/\1/p' "$log" | tail -n1)"
  rows+=("$(printf '%-20s %-7s %10s %9s %7s %7s %7s %7s' "$target" "$status" \
    "${execs:--}" "${rate:--}" "${cov:--}" "${ft:--}" "${corp:--}" "${rss:--}")")
done

printf '\n%-20s %-7s %10s %9s %7s %7s %7s %7s\n' target status execs exec/s cov ft corpus rss_mb
printf '%s\n' "${rows[@]}"
if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]} (inputs in $fuzz_dir/artifacts/)" >&2
  exit 1
fi
