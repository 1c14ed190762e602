#!/usr/bin/env bash
# A/B of two pacer binaries (e.g. before/after a change), interleaved so that a busy
# machine hurts both alike: ROUNDS × (A, B), each a fresh pacer with WORKERS PHP workers
# under `wrk -c CONNS` for SECS seconds on PATH. Prints req/s and pacer's own CPU per
# request (utime+stime of the pacer process ÷ requests, the less noisy of the two).
#
#   bench/ab.sh BIN_A BIN_B [PATH] [WORKERS] [CONNS] [ROUNDS] [SECS] [VAR=VALUE...]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
A=$1 B=$2
URL_PATH=${3:-/hello}
WORKERS=${4:-2}
CONNS=${5:-64}
ROUNDS=${6:-4}
SECS=${7:-5}
shift $(($# < 7 ? $# : 7))
HZ=$(getconf CLK_TCK)
PID=""
cleanup() { [[ -n $PID ]] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; true; }
trap cleanup EXIT

one() { # BIN -> "rps cpu_us_per_req"
    local port
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    env BENCH_PORT="$port" BENCH_WORKERS="$WORKERS" BENCH_WORKER="$ROOT/bench/workers/hello.php" "$@" \
        "$BIN" serve -c "$ROOT/bench/conf/pacer.yaml" -w "$ROOT" 2>/dev/null &
    PID=$!
    for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port$URL_PATH" && break; sleep 0.1; done
    wrk -t 1 -c "$CONNS" -d 2s "http://127.0.0.1:$port$URL_PATH" >/dev/null
    local before after out
    before=$(awk '{ print $14 + $15 }' "/proc/$PID/stat")
    out=$(wrk -t 1 -c "$CONNS" -d "${SECS}s" "http://127.0.0.1:$port$URL_PATH")
    after=$(awk '{ print $14 + $15 }' "/proc/$PID/stat")
    kill -TERM "$PID"
    wait "$PID" 2>/dev/null || true
    PID=""
    awk -v a="$after" -v b="$before" -v hz="$HZ" '
        /requests in/ { n = $1 } /^Requests\/sec:/ { r = $2 }
        END { printf "%.0f %.2f\n", r, (a - b) / hz / n * 1e6 }' <<<"$out"
}

for round in $(seq 1 "$ROUNDS"); do
    for side in A B; do
        BIN=${!side}
        echo "$side $round $(one "$@")"
    done
done | awk '
    { print; rps[$1] += $3; cpu[$1] += $4; n[$1]++ }
    END {
        for (s in n) printf "%s: mean %.0f req/s, %.2f us pacer CPU per request\n", s, rps[s] / n[s], cpu[s] / n[s]
    }'
