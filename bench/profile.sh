#!/usr/bin/env bash
# Where pacer spends its time per request, with two tools:
#
#   bench/profile.sh callgrind [PATH] [LUA]   user-space instructions per request (repeatable:
#                                             does not depend on the machine's load)
#   bench/profile.sh perf [PATH] [LUA]        perf record (cpu-clock, call graphs) under wrk
#
# Builds pacer with symbols and frame pointers into target/prof, serves
# bench/workers/hello.php with 2 PHP workers, drives PATH (default /hello) with wrk and
# writes the reports to bench/out/profile-*. On this VM perf has no hardware counters
# (`perf stat -e instructions true` says <not supported>), so perf samples cpu-clock;
# callgrind counts instructions exactly, but only pacer's own (not the kernel's).
#
# PROFILE_OTEL=1 profiles with tracing on (bench/conf/pacer-otel.yaml): every request is
# traced and exported to the test collector of e2e/otelcol, started here.
# PROFILE_BASE=COMMIT profiles that commit's pacer instead (built the same way once, from a
# detached worktree, into $PACER_CACHE/bench/prof-COMMIT): before/after counts of one path.
# PROFILE_PACER=PATH profiles that binary without building. PROFILE_CONNS (default 8) sets wrk's connections: with 1, every request takes the same
# path through the event loop (no batching of ready connections, which varies with the
# machine's load), so counts of two binaries compare to within a few tenths of a percent.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$ROOT/bench/out
TOOL=${1:-callgrind}
URL_PATH=${2:-/hello}
LUA=${3:-}
PROF_DIR=${PACER_PROF_DIR:-$ROOT/target/prof}
PACER=$PROF_DIR/release/pacer
mkdir -p "$OUT"

prof_build() { # DIR TARGET_DIR
    (cd "$1" && CARGO_TARGET_DIR=$2 CARGO_PROFILE_RELEASE_STRIP=none \
        CARGO_PROFILE_RELEASE_DEBUG=line-tables-only RUSTFLAGS="-C force-frame-pointers=yes" \
        cargo build -q --release --locked -p pacer --bin pacer)
}

if [[ -n ${PROFILE_BASE:-} ]]; then
    base=$(git -C "$ROOT" rev-parse --short "$PROFILE_BASE")
    cache=${PACER_CACHE:-/var/cache/pacer}/bench
    PACER=$cache/prof-$base
    if [[ ! -x $PACER ]]; then
        mkdir -p "$cache"
        wt=$(mktemp -d /tmp/pacer-prof-base.XXXXXX)
        git -C "$ROOT" worktree add -q --detach "$wt/src" "$base"
        prof_build "$wt/src" "$cache/prof-target"
        cp "$cache/prof-target/release/pacer" "$PACER.tmp" && mv "$PACER.tmp" "$PACER"
        git -C "$ROOT" worktree remove --force "$wt/src" && rm -rf "$wt"
    fi
elif [[ -n ${PROFILE_PACER:-} ]]; then
    PACER=$PROFILE_PACER # a binary built as above, profiled as it is
else
    prof_build "$ROOT" "$PROF_DIR"
fi

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PID=""
cleanup() {
    [[ -n $PID ]] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    [[ -n ${COLLECTOR:-} ]] && kill -TERM "$COLLECTOR" 2>/dev/null && wait "$COLLECTOR" 2>/dev/null
    true
}
trap cleanup EXIT

export BENCH_PORT=$PORT BENCH_WORKERS=2 BENCH_WORKER=$ROOT/bench/workers/hello.php
CONFIG=$ROOT/bench/conf/pacer.yaml
COLLECTOR=""
if [[ ${PROFILE_OTEL:-0} == 1 ]]; then
    CONFIG=$ROOT/bench/conf/pacer-otel.yaml
    collector_bin=$("$ROOT/e2e/otelcol/build.sh" | tail -1)
    "$collector_bin" -out /dev/null >"$OUT/profile-otelcol.addr" &
    COLLECTOR=$!
    for _ in $(seq 1 100); do [[ -s $OUT/profile-otelcol.addr ]] && break; sleep 0.1; done
    BENCH_OTEL_ENDPOINT=$(awk '{ sub("http=", "", $1); print $1 }' "$OUT/profile-otelcol.addr")
    export BENCH_OTEL_ENDPOINT
fi
wrk_args=(-t 1 -c "${PROFILE_CONNS:-8}")
[[ -n $LUA ]] && wrk_args+=(-s "$ROOT/$LUA")
url="http://127.0.0.1:$PORT$URL_PATH"

wait_up() {
    for _ in $(seq 1 300); do
        curl -s -o /dev/null --max-time 2 "$url" && return 0
        sleep 0.2
    done
    return 1
}

case $TOOL in
callgrind)
    collect=()
    # PROFILE_COLLECT=FN counts only inside FN (callgrind's --toggle-collect pattern), e.g.
    # the request handler: no event loop, no timers, so no time-dependent work.
    [[ -n ${PROFILE_COLLECT:-} ]] && collect=(--toggle-collect="$PROFILE_COLLECT")
    valgrind --tool=callgrind "${collect[@]}" --callgrind-out-file="$OUT/profile-callgrind.out" \
        "$PACER" serve -c "$CONFIG" -w "$ROOT" 2>"$OUT/profile-valgrind.log" &
    PID=$!
    wait_up
    wrk "${wrk_args[@]}" -d 3s "$url" >/dev/null
    callgrind_control -z "$PID" >/dev/null
    wrk "${wrk_args[@]}" -d 10s "$url" >"$OUT/profile-wrk.txt"
    callgrind_control -d "$PID" >/dev/null
    sleep 1
    requests=$(awk '/requests in/ { print $1 }' "$OUT/profile-wrk.txt")
    dump=$(ls -t "$OUT"/profile-callgrind.out.* | head -1 || true)
    callgrind_annotate --inclusive=no "$dump" 2>/dev/null | head -60 >"$OUT/profile-callgrind.txt"
    # (awk reads to the end: an early exit would SIGPIPE callgrind_annotate under pipefail)
    total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ && !t { gsub(",", "", $1); t = $1 } END { print t }')
    echo "requests: $requests; instructions: $total; per request: $((total / requests))" | tee -a "$OUT/profile-callgrind.txt"
    ;;
perf)
    "$PACER" serve -c "$CONFIG" -w "$ROOT" 2>/dev/null &
    PID=$!
    wait_up
    wrk "${wrk_args[@]}" -c 64 -d 2s "$url" >/dev/null
    wrk "${wrk_args[@]}" -c 64 -d 8s "$url" >"$OUT/profile-wrk.txt" &
    sleep 1
    perf record -q -e cpu-clock -F 4000 -g -p "$PID" -o "$OUT/profile-perf.data" -- sleep 5
    wait
    perf report -i "$OUT/profile-perf.data" --no-children --sort dso,sym -g none 2>/dev/null \
        | grep -v '^#' | grep -v '^$' | head -60 >"$OUT/profile-perf.txt"
    head -30 "$OUT/profile-perf.txt"
    ;;
*)
    echo "usage: $0 callgrind|perf [PATH] [LUA]" >&2
    exit 64
    ;;
esac
