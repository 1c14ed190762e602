#!/usr/bin/env bash
# The benchmarks, side by side in one run: pacer vs nginx + php-fpm (hello world, 4 KiB
# JSON echo, a Slim 3 app, overload), relay round trips vs a bare PHP loop, memory, and
# the criterion micro-benchmarks, and the Laravel and Symfony example apps (a page with a
# route, a controller, a template and one DB read). Writes bench/RESULTS.md; raw outputs go
# to bench/out/ (a partial run, BENCH_ONLY, writes its RESULTS.md there too).
#
#   bench/run.sh            (or `make bench`)
#
# Knobs (environment): BENCH_DURATION (s per wrk run, default 10), BENCH_MAX_LOAD (wait
# until the 1-minute load average is below this, default 1.0), BENCH_QUIET_WAIT (how long
# to wait for that, s, default 300; the load is reported either way), BENCH_IDLE_WAIT (before
# each block, wait up to this many s for no other runnable task, default 120), BENCH_ONLY (a subset of
# "relay hello runtime floor slim frameworks tracing memory overload jobs criterion"; jobs is
# bench/jobs.sh; floor is bench/floor beside pacer and nginx alone), BENCH_BASE (the commit whose pacer is measured as "before" beside the
# current one; default: main before issue 15, built once into $PACER_CACHE/bench and
# reused), BENCH_OTEL_BASE (the commit before OpenTelemetry landed, measured beside
# tracing off and on; built the same way, or BENCH_PRE_OTEL_BIN: that commit's binary
# built elsewhere, e.g. with the same flags as bench/profile.sh when this run builds that
# way too).
# All load goes to 127.0.0.1. nginx and php-fpm run in the foreground from configs
# generated into a temp dir; every process started here is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
OUT=$BENCH/out
DURATION=${BENCH_DURATION:-10}
WARMUP=2
MAX_LOAD=${BENCH_MAX_LOAD:-1.0}
QUIET_WAIT=${BENCH_QUIET_WAIT:-300}
IDLE_WAIT=${BENCH_IDLE_WAIT:-120}
# Free loopback ports, picked once (other programs may share this machine).
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PACER_PORT=$(free_port)
NGINX_PORT=$(free_port)
WRK_THREADS=1
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PACER=$CARGO_TARGET_DIR/release/pacer
# The "before" pacer: main as it was before the request path was rebuilt (issue 15).
BASE=${BENCH_BASE:-0f719f1}
BASE_DIR=${PACER_CACHE:-/var/cache/pacer}/bench
PACER_BEFORE=$BASE_DIR/pacer-$BASE
# The pacer without OpenTelemetry: main before the otel branch landed (issue 16).
OTEL_BASE=${BENCH_OTEL_BASE:-79921dc}
PACER_PRE_OTEL=${BENCH_PRE_OTEL_BIN:-$BASE_DIR/pacer-$OTEL_BASE}
RELAY_BENCH=$CARGO_TARGET_DIR/release/examples/relay_bench
FLOOR=$CARGO_TARGET_DIR/release/pacer-floor
HZ=$(getconf CLK_TCK)

TMP=$(mktemp -d /tmp/pacer-bench.XXXXXX)
STARTED=() # pids of the servers this script started

cleanup() {
    local pid
    for pid in "${STARTED[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${STARTED[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
    git -C "$ROOT" worktree prune 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }

# ---------------------------------------------------------------------------- set-up

install_deps() {
    local missing=() p
    for p in nginx php8.2-cli php8.2-fpm php8.2-opcache wrk php-slim php-nyholm-psr7 \
        php-psr-http-message php-psr-http-factory curl; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

wait_for_quiet() {
    local waited=0 load
    while :; do
        load=$(cut -d' ' -f1 /proc/loadavg)
        if awk -v l="$load" -v m="$MAX_LOAD" 'BEGIN { exit !(l < m) }'; then
            break
        fi
        if ((waited >= QUIET_WAIT)); then
            log "load $load is still >= $MAX_LOAD after ${waited}s; measuring anyway (reported)"
            break
        fi
        log "load average $load >= $MAX_LOAD; waiting (${waited}s so far)"
        sleep 20
        waited=$((waited + 20))
    done
    echo "$load"
}

# Other runnable tasks right now (/proc/stat procs_running, minus this shell, read with
# builtins so that no forked reader counts itself), averaged over 2 s: unlike the load
# average, this sees a neighbour start at once and does not remember this script's own
# previous runs.
others_running() {
    local sum=0 i k v rest
    for i in 1 2 3 4 5 6 7 8 9 10; do
        while read -r k v rest; do
            if [[ $k == procs_running ]]; then
                sum=$((sum + v - 1))
                break
            fi
        done </proc/stat
        sleep 0.2
    done
    awk -v s="$sum" 'BEGIN { printf "%.1f", s / 10 }'
}

# Before each block of measurements: wait (at most BENCH_IDLE_WAIT s) until nothing else
# runs on the machine, and record what was running, for RESULTS.md.
wait_idle() {
    local block=$1 waited=0 r
    while :; do
        r=$(others_running)
        if awk -v r="$r" 'BEGIN { exit !(r < 0.5) }' || ((waited >= IDLE_WAIT)); then
            break
        fi
        sleep 3
        waited=$((waited + 5))
    done
    printf '{"scenario":"idle","block":"%s","others_running":%s,"waited_s":%s,"loadavg":"%s"}\n' \
        "$block" "$r" "$waited" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/results.jsonl"
}

# ------------------------------------------------------------------ process accounting

# A process and its direct children (pacer → PHP workers; nginx/fpm master → workers).
tree() {
    local p
    for p in "$@"; do
        echo "$p"
        ps -o pid= --ppid "$p" 2>/dev/null | tr -d ' ' || true
    done
}

# utime + stime (clock ticks) summed over the pids.
cpu_ticks() {
    local sum=0 p f
    for p in "$@"; do
        if f=$(cat "/proc/$p/stat" 2>/dev/null); then
            f=${f##*) }
            # After the comm field: state is field 3; utime/stime are fields 14/15.
            sum=$((sum + $(awk '{ print $12 + $13 }' <<<"$f")))
        fi
    done
    echo "$sum"
}

# Sum of a /proc/<pid>/status field in KiB (VmRSS, VmHWM).
status_kb() {
    local field=$1 sum=0 p v
    shift
    for p in "$@"; do
        v=$(awk -v f="$field:" '$1 == f { print $2 }' "/proc/$p/status" 2>/dev/null || true)
        sum=$((sum + ${v:-0}))
    done
    echo "$sum"
}

# Sum of Pss over the pids, KiB (shared pages split between their users).
pss_kb() {
    local sum=0 p v
    for p in "$@"; do
        v=$(awk '$1 == "Pss:" { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null || true)
        sum=$((sum + ${v:-0}))
    done
    echo "$sum"
}

# Context switches (voluntary + involuntary) summed over every thread of the pids: a
# multi-thread process counts per thread (/proc/PID/status alone is the main thread's).
ctx_switches() {
    local sum=0 p f v
    for p in "$@"; do
        for f in /proc/"$p"/task/*/status; do
            v=$(awk '/^(voluntary|nonvoluntary)_ctxt_switches:/ { s += $2 } END { print s + 0 }' "$f" 2>/dev/null || echo 0)
            sum=$((sum + v))
        done
    done
    echo "$sum"
}

# ------------------------------------------------------------------------- servers

SERVER_KIND=""  # pacer (also the floor: one process, PHP children) | fpm | nginx (alone)
SERVER_LABEL="" # pacer | pacer-before | fpm: the "server" of the results
SERVER_PIDS=()  # the top-level pids: pacer; or nginx master + fpm master
PACER_BIN=""    # set per start: $PACER or $PACER_BEFORE

wait_http() { # url expected-status-prefix
    local i code
    for i in $(seq 1 200); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true)
        [[ $code == 2* || $code == 404 ]] && return 0
        sleep 0.1
    done
    echo "server at $1 did not come up" >&2
    return 1
}

wait_children() { # pid count
    local i
    for i in $(seq 1 200); do
        (($(ps -o pid= --ppid "$1" | wc -l) >= $2)) && return 0
        sleep 0.1
    done
    return 1
}

# start_pacer WORKERS WORKER_SCRIPT READY_PATH [VAR=VALUE...]: the current pacer.
start_pacer() {
    PACER_BIN=$PACER
    SERVER_LABEL=pacer
    start_pacer_bin "$@"
}

# start_pacer_before: the same with the "before" binary.
start_pacer_before() {
    PACER_BIN=$PACER_BEFORE
    SERVER_LABEL=pacer-before
    start_pacer_bin "$@"
}

start_pacer_bin() {
    local workers=$1 script=$2 ready=$3
    shift 3
    env BENCH_PORT=$PACER_PORT BENCH_WORKERS="$workers" BENCH_WORKER="$script" "$@" \
        "$PACER_BIN" serve -c "$BENCH/conf/${PACER_CONF:-pacer.yaml}" -w "$ROOT" >>"$OUT/pacer.log" 2>&1 &
    local pid=$!
    STARTED+=("$pid")
    SERVER_KIND=pacer
    SERVER_PIDS=("$pid")
    wait_http "http://127.0.0.1:$PACER_PORT$ready" || { tail -5 "$OUT/pacer.log" >&2; exit 1; }
    wait_children "$pid" "$workers" || { echo "pacer did not start $workers workers" >&2; exit 1; }
}

# start_fpm WORKERS APP_DIR READY_PATH
start_fpm() {
    local workers=$1 app=$2 ready=$3 dir=$TMP/fpm
    rm -rf "$dir" && mkdir -p "$dir"
    sed -e "s|@TMP@|$dir|g" -e "s|@WORKERS@|$workers|g" "$BENCH/conf/php-fpm.conf" >"$dir/php-fpm.conf"
    sed -e "s|@TMP@|$dir|g" -e "s|@PORT@|$NGINX_PORT|g" -e "s|@ROOT@|$app|g" \
        "$BENCH/conf/nginx.conf" >"$dir/nginx.conf"
    php-fpm8.2 -F -R -y "$dir/php-fpm.conf" >>"$OUT/php-fpm.log" 2>&1 &
    local fpm=$!
    STARTED+=("$fpm")
    for _ in $(seq 1 100); do [[ -S $dir/php-fpm.sock ]] && break; sleep 0.1; done
    nginx -e "$dir/nginx-error.log" -p "$dir" -c "$dir/nginx.conf" >>"$OUT/nginx.log" 2>&1 &
    local ngx=$!
    STARTED+=("$ngx")
    SERVER_KIND=fpm
    SERVER_LABEL=fpm
    SERVER_PIDS=("$ngx" "$fpm")
    wait_http "http://127.0.0.1:$NGINX_PORT$ready" || { tail -5 "$OUT/nginx.log" "$OUT/php-fpm.log" "$dir"/*.log >&2; exit 1; }
    wait_children "$fpm" "$workers" || { echo "php-fpm did not start $workers workers" >&2; exit 1; }
}

# start_floor WORKERS: bench/floor relaying to bench/workers/hello.php (pacer's port).
start_floor() {
    local workers=$1
    "$FLOOR" "127.0.0.1:$PACER_PORT" "$workers" -- php -d opcache.enable_cli=1 "$ROOT/bench/workers/hello.php" \
        >>"$OUT/floor.log" 2>&1 &
    local pid=$!
    STARTED+=("$pid")
    SERVER_KIND=pacer
    SERVER_LABEL=floor
    SERVER_PIDS=("$pid")
    wait_http "http://127.0.0.1:$PACER_PORT/hello" || { tail -5 "$OUT/floor.log" >&2; exit 1; }
    wait_children "$pid" "$workers" || { echo "the floor did not start $workers workers" >&2; exit 1; }
}

# start_nginx_static WORKERS: nginx alone, `return 200` (bench/conf/nginx-static.conf).
start_nginx_static() {
    local workers=$1 dir=$TMP/nginx-static
    rm -rf "$dir" && mkdir -p "$dir"
    sed -e "s|@TMP@|$dir|g" -e "s|@PORT@|$NGINX_PORT|g" -e "s|@WORKERS@|$workers|g" \
        "$BENCH/conf/nginx-static.conf" >"$dir/nginx.conf"
    nginx -e "$dir/nginx-error.log" -p "$dir" -c "$dir/nginx.conf" >>"$OUT/nginx.log" 2>&1 &
    local ngx=$!
    STARTED+=("$ngx")
    SERVER_KIND=nginx
    SERVER_LABEL=nginx-static
    SERVER_PIDS=("$ngx")
    wait_http "http://127.0.0.1:$NGINX_PORT/hello" || { tail -5 "$OUT/nginx.log" "$dir"/*.log >&2; exit 1; }
    wait_children "$ngx" "$workers" || { echo "nginx did not start $workers workers" >&2; exit 1; }
}

stop_server() {
    local pid
    for pid in "${SERVER_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${SERVER_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    SERVER_PIDS=()
    sleep 0.5
}

server_port() { [[ $SERVER_KIND == pacer ]] && echo $PACER_PORT || echo $NGINX_PORT; }

# The server's own process(es) and its PHP processes, separately.
front_pids() { echo "${SERVER_PIDS[0]}"; [[ $SERVER_KIND != pacer ]] && ps -o pid= --ppid "${SERVER_PIDS[0]}" | tr -d ' '; true; }
php_pids() {
    if [[ $SERVER_KIND == pacer ]]; then
        ps -o pid= --ppid "${SERVER_PIDS[0]}" | tr -d ' '
    elif [[ $SERVER_KIND == nginx ]]; then
        true
    else
        echo "${SERVER_PIDS[1]}"
        ps -o pid= --ppid "${SERVER_PIDS[1]}" | tr -d ' '
    fi
}
all_pids() {
    tree "${SERVER_PIDS[@]}"
}

# ----------------------------------------------------------------------------- wrk

# to_ms "1.23ms" → 1.23
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000
        printf "%.3f", n }'
}

# bench_wrk SCENARIO PROCS CONNS PATH [LUA]: one measured wrk run against the running
# server; appends one JSON line to $OUT/results.jsonl.
bench_wrk() {
    local scenario=$1 procs=$2 conns=$3 path=$4 lua=${5:-}
    local url="http://127.0.0.1:$(server_port)$path" args=(-t "$WRK_THREADS" -c "$conns" --latency)
    [[ -n $lua ]] && args+=(-s "$lua")
    local name="$scenario-$SERVER_LABEL-p$procs-c$conns"
    wrk "${args[@]}" -d "${WARMUP}s" "$url" >"$OUT/$name.warmup.txt"
    local warmup_requests
    warmup_requests=$(awk '/requests in/ { print $1 }' "$OUT/$name.warmup.txt")
    local pids
    mapfile -t pids < <(all_pids)
    local before fronts_before
    before=$(cpu_ticks "${pids[@]}")
    local -a fronts
    mapfile -t fronts < <(front_pids)
    fronts_before=$(cpu_ticks "${fronts[@]}")
    local cs_before front_cs_before
    cs_before=$(ctx_switches "${pids[@]}")
    front_cs_before=$(ctx_switches "${fronts[@]}")
    echo "wrk ${args[*]} -d ${DURATION}s $url" >"$OUT/$name.txt"
    wrk "${args[@]}" -d "${DURATION}s" "$url" >>"$OUT/$name.txt"
    local after fronts_after
    after=$(cpu_ticks "${pids[@]}")
    fronts_after=$(cpu_ticks "${fronts[@]}")
    local cs_after front_cs_after
    cs_after=$(ctx_switches "${pids[@]}")
    front_cs_after=$(ctx_switches "${fronts[@]}")
    local f=$OUT/$name.txt
    local rps requests p50 p99 non2xx errors
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$f")
    requests=$(awk '/requests in/ { print $1 }' "$f")
    p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$f")")
    p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$f")")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$f")
    errors=$(awk -F'[ ,]+' '/Socket errors:/ { print $4 + $6 + $8 + $10 }' "$f")
    local front_rss php_rss front_hwm
    front_hwm=$(status_kb VmHWM "${fronts[@]}")
    front_rss=$(status_kb VmRSS "${fronts[@]}")
    mapfile -t phps < <(php_pids)
    php_rss=$(status_kb VmHWM "${phps[@]}")
    printf '{"scenario":"%s","server":"%s","procs":%s,"conns":%s,"rps":%s,"requests":%s,"warmup_requests":%s,"p50_ms":%s,"p99_ms":%s,"non2xx":%s,"socket_errors":%s,"cpu_us_per_req":%s,"front_cpu_us_per_req":%s,"front_hwm_kb":%s,"front_rss_kb":%s,"php_hwm_kb":%s,"cs_per_req":%s,"front_cs_per_req":%s,"loadavg":"%s","cmd":"%s"}\n' \
        "$scenario" "$SERVER_LABEL" "$procs" "$conns" "$rps" "$requests" "${warmup_requests:-0}" "$p50" "$p99" "${non2xx:-0}" "${errors:-0}" \
        "$(awk -v a="$after" -v b="$before" -v n="$requests" -v hz="$HZ" 'BEGIN { printf "%.1f", (a - b) / hz / n * 1e6 }')" \
        "$(awk -v a="$fronts_after" -v b="$fronts_before" -v n="$requests" -v hz="$HZ" 'BEGIN { printf "%.1f", (a - b) / hz / n * 1e6 }')" \
        "$front_hwm" "$front_rss" "$php_rss" \
        "$(awk -v a="$cs_after" -v b="$cs_before" -v n="$requests" 'BEGIN { printf "%.2f", (a - b) / n }')" \
        "$(awk -v a="$front_cs_after" -v b="$front_cs_before" -v n="$requests" 'BEGIN { printf "%.2f", (a - b) / n }')" \
        "$(cut -d' ' -f1-3 /proc/loadavg)" "wrk ${args[*]} -d ${DURATION}s $url" >>"$OUT/results.jsonl"
    log "$name: $rps req/s, p50 ${p50} ms, p99 ${p99} ms"
}

# ------------------------------------------------------------------------ scenarios

# Hello world and 4 KiB JSON echo at 1, 2, 4 PHP processes, 8 and 64 connections.
scenario_hello_echo() {
    local procs conns
    for procs in 1 2 4; do
        wait_idle "hello/echo, $procs PHP processes"
        start_pacer_before "$procs" "$ROOT"/bench/workers/hello.php /hello
        for conns in 8 64; do bench_wrk hello "$procs" "$conns" /hello; done
        for conns in 8 64; do bench_wrk echo "$procs" "$conns" /echo "$BENCH/wrk/echo.lua"; done
        stop_server
        start_pacer "$procs" "$ROOT"/bench/workers/hello.php /hello
        for conns in 8 64; do bench_wrk hello "$procs" "$conns" /hello; done
        for conns in 8 64; do bench_wrk echo "$procs" "$conns" /echo "$BENCH/wrk/echo.lua"; done
        stop_server
        start_fpm "$procs" "$BENCH/apps/plain" /hello
        for conns in 8 64; do bench_wrk hello "$procs" "$conns" /hello; done
        for conns in 8 64; do bench_wrk echo "$procs" "$conns" /echo "$BENCH/wrk/echo.lua"; done
        stop_server
    done
}

# The runtime flavour: the default current-thread runtime vs a multi-thread one
# (`pacer.runtime.threads`), hello world at 2 PHP processes, 64 connections.
scenario_runtime() {
    local threads
    wait_idle "runtime flavour"
    for threads in 1 2; do
        start_pacer 2 "$ROOT"/bench/workers/hello.php /hello BENCH_THREADS=$threads BENCH_SHARDS=1
        bench_wrk "hello-threads$threads" 2 64 /hello
        stop_server
    done
    # One runtime, no shards (the current-thread runtime of before, on today's code), at
    # each worker count of the hello block: beside its *after* rows (`shards: 0`) this
    # is the data behind the `pacer.runtime.shards` default.
    local procs
    for procs in 1 2 4; do
        start_pacer "$procs" "$ROOT"/bench/workers/hello.php /hello BENCH_SHARDS=1
        bench_wrk "hello-shards1" "$procs" 64 /hello
        stop_server
    done
}

# The floor (issue 15): bench/floor, the least work a pipe-relay server can do per
# request (one thread, mio, a fixed HTTP/1.1 parse, Goridge frames to the same PHP hello
# worker), beside pacer with one runtime (`shards: 1`) and with a shard per CPU
# (`shards: 0`), and nginx alone answering from its config (`return 200`, as many
# nginx workers as PHP processes), GET /hello at 1 and 2 PHP processes, 8 and 64
# connections: what pacer's own CPU per request could be with pipes to PHP here.
scenario_floor() {
    local procs conns kind
    for procs in 1 2; do
        wait_idle "floor, $procs PHP processes"
        for kind in floor pacer-shards1 pacer-shards0 nginx-static; do
            case $kind in
            floor) start_floor "$procs" ;;
            pacer-shards1) start_pacer "$procs" "$ROOT"/bench/workers/hello.php /hello BENCH_SHARDS=1 ;;
            pacer-shards0) start_pacer "$procs" "$ROOT"/bench/workers/hello.php /hello BENCH_SHARDS=0 ;;
            nginx-static) start_nginx_static "$procs" ;;
            esac
            SERVER_LABEL=$kind
            for conns in 8 64; do bench_wrk floor "$procs" "$conns" /hello; done
            stop_server
        done
    done
}

scenario_slim() {
    local procs=2 conns
    wait_idle "Slim"
    start_pacer_before "$procs" "$ROOT"/bench/apps/slim/worker.php /api/status
    for conns in 8 64; do bench_wrk slim "$procs" "$conns" / "$BENCH/wrk/slim.lua"; done
    stop_server
    start_pacer "$procs" "$ROOT"/bench/apps/slim/worker.php /api/status
    for conns in 8 64; do bench_wrk slim "$procs" "$conns" / "$BENCH/wrk/slim.lua"; done
    stop_server
    start_fpm "$procs" "$BENCH/apps/slim" /api/status
    for conns in 8 64; do bench_wrk slim "$procs" "$conns" / "$BENCH/wrk/slim.lua"; done
    stop_server
}

# The framework example apps (examples/laravel, examples/symfony: Debian's Laravel 8.83 and
# Symfony 5.4, SQLite), GET /posts/N — a route, a controller, a Blade/Twig view, one DB
# read — at 2 PHP processes. pacer boots each app once per worker (php/bin/laravel-worker.php;
# Symfony's own public/index.php under APP_RUNTIME=Pacer\Symfony\Runtime); php-fpm runs the
# same public/index.php per request. Both use the production setup: Laravel's config cache,
# Symfony's prod container cache, opcache.
prepare_frameworks() {
    local laravel=$ROOT/examples/laravel symfony=$ROOT/examples/symfony
    touch "$laravel/database/database.sqlite"
    (cd "$laravel" && php artisan migrate:fresh --seed --force && php artisan config:cache && php artisan view:cache) \
        >>"$OUT/frameworks-setup.log" 2>&1
    (cd "$symfony" && APP_ENV=prod php bin/console cache:clear && php bin/console app:database) \
        >>"$OUT/frameworks-setup.log" 2>&1
}

scenario_frameworks() {
    local procs=2 conns app
    prepare_frameworks
    for app in laravel symfony; do
        wait_idle "$app"
        if [[ $app == laravel ]]; then
            start_pacer "$procs" "$ROOT/php/bin/laravel-worker.php" /posts/1 APP_BASE_PATH="$ROOT/examples/laravel"
        else
            start_pacer "$procs" "$ROOT/examples/symfony/public/index.php" /posts/1 'APP_RUNTIME=Pacer\Symfony\Runtime'
        fi
        for conns in 8 64; do bench_wrk "$app" "$procs" "$conns" / "$BENCH/wrk/posts.lua"; done
        stop_server
        start_fpm "$procs" "$ROOT/examples/$app/public" /posts/1
        for conns in 8 64; do bench_wrk "$app" "$procs" "$conns" / "$BENCH/wrk/posts.lua"; done
        stop_server
    done
    # Leave the Laravel example as the repository has it (no cached config).
    (cd "$ROOT/examples/laravel" && php artisan config:clear && php artisan view:clear) >>"$OUT/frameworks-setup.log" 2>&1
}

# OpenTelemetry's cost: GET /hello at 2 PHP processes with the pacer from before otel
# landed, this pacer with tracing off (no otel section), and tracing on, every request
# traced and exported over OTLP/HTTP and over OTLP/gRPC to the real collector of
# e2e/otelcol (built once, cached under $PACER_CACHE/otelcol; -out /dev/null, it counts
# the spans it received). Each hello request makes 3 spans (GET, pacer.queue, php).
scenario_tracing() {
    local procs=2 conns kind collector_bin
    collector_bin=$("$ROOT/e2e/otelcol/build.sh" | tail -1)
    wait_idle "tracing"
    for kind in pre-otel off otel-http otel-grpc; do
        local col="" addr=$TMP/otelcol.out
        case $kind in
        pre-otel)
            PACER_BIN=$PACER_PRE_OTEL SERVER_LABEL=pacer-pre-otel
            start_pacer_bin "$procs" "$ROOT"/bench/workers/hello.php /hello
            ;;
        off)
            PACER_BIN=$PACER SERVER_LABEL=pacer-otel-off
            start_pacer_bin "$procs" "$ROOT"/bench/workers/hello.php /hello
            ;;
        otel-*)
            : >"$addr"
            "$collector_bin" -out /dev/null >"$addr" &
            col=$!
            STARTED+=("$col")
            for _ in $(seq 1 300); do [[ -s $addr ]] && break; sleep 0.1; done
            local field=${kind#otel-} endpoint
            endpoint=$(tr ' ' '\n' <"$addr" | awk -F= -v f="$field" '$1 == f { print $2 }')
            [[ -n $endpoint ]] || { echo "the collector did not start: $(cat "$addr")" >&2; exit 1; }
            PACER_BIN=$PACER SERVER_LABEL=pacer-$kind
            PACER_CONF=pacer-otel.yaml start_pacer_bin \
                "$procs" "$ROOT"/bench/workers/hello.php /hello BENCH_OTEL_ENDPOINT="$endpoint" BENCH_OTEL_CLIENT="$field"
            ;;
        esac
        for conns in 8 64; do bench_wrk tracing "$procs" "$conns" /hello; done
        stop_server # pacer flushes its spans on the way out
        if [[ -n $col ]]; then
            kill -TERM "$col" && wait "$col" 2>/dev/null || true
            local spans
            spans=$(awk -F'[ =]' '$1 == "received" { print $3 }' "$addr")
            printf '{"scenario":"tracing-spans","server":"pacer-%s","spans":%s}\n' "$kind" "${spans:-0}" >>"$OUT/results.jsonl"
            log "tracing $kind: the collector received ${spans:-0} spans"
        fi
    done
}

# RSS: idle, then the peak while 64 and then 256 connections hammer /hello.
scenario_memory() {
    local procs=2 kind
    wait_idle "memory"
    for kind in pacer-before pacer fpm; do
        case $kind in
        pacer) start_pacer "$procs" "$ROOT"/bench/workers/hello.php /hello ;;
        pacer-before) start_pacer_before "$procs" "$ROOT"/bench/workers/hello.php /hello ;;
        fpm) start_fpm "$procs" "$BENCH/apps/plain" /hello ;;
        esac
        local fronts phps
        mapfile -t fronts < <(front_pids)
        mapfile -t phps < <(php_pids)
        local idle idle_php idle_php_pss
        idle=$(status_kb VmRSS "${fronts[@]}")
        idle_php=$(status_kb VmRSS "${phps[@]}")
        idle_php_pss=$(pss_kb "${phps[@]}")
        wrk -t "$WRK_THREADS" -c 64 -d 5s "http://127.0.0.1:$(server_port)/hello" >"$OUT/memory-$kind-c64.txt"
        local hwm64 php64 pss64
        hwm64=$(status_kb VmHWM "${fronts[@]}")
        php64=$(status_kb VmRSS "${phps[@]}")
        pss64=$(pss_kb "${phps[@]}")
        wrk -t "$WRK_THREADS" -c 256 -d 5s "http://127.0.0.1:$(server_port)/hello" >"$OUT/memory-$kind-c256.txt"
        local hwm256 after256
        hwm256=$(status_kb VmHWM "${fronts[@]}")
        after256=$(status_kb VmRSS "${fronts[@]}")
        printf '{"scenario":"memory","server":"%s","procs":%s,"idle_kb":%s,"peak64_kb":%s,"peak256_kb":%s,"after256_kb":%s,"php_idle_kb":%s,"php_idle_pss_kb":%s,"php_busy_kb":%s,"php_busy_pss_kb":%s}\n' \
            "$kind" "$procs" "$idle" "$hwm64" "$hwm256" "$after256" "$idle_php" "$idle_php_pss" "$php64" "$pss64" >>"$OUT/results.jsonl"
        log "memory $kind: idle $idle KiB, peak@64 $hwm64 KiB, peak@256 $hwm256 KiB"
        stop_server
    done
}

# Offered load 2x the pool's capacity: 2 PHP processes, /work?ms=20 (100 req/s capacity),
# 200 req/s open loop. pacer sheds with a short queue and allocate_timeout.
scenario_overload() {
    local procs=2 rate=200 kind
    wait_idle "overload"
    for kind in pacer fpm; do
        if [[ $kind == pacer ]]; then
            # One runtime: allocate_timeout (100 ms here) also bounds a worker's boot, and
            # a PHP process pinned to a busy CPU can take longer than that to start.
            start_pacer "$procs" "$ROOT"/bench/workers/hello.php /hello BENCH_QUEUE=2 BENCH_ALLOCATE=100ms BENCH_SHARDS=1
        else
            start_fpm "$procs" "$BENCH/apps/plain" /hello
        fi
        local cmd="python3 bench/openloop.py http://127.0.0.1:$(server_port)/work?ms=20 $rate $DURATION 30"
        local json
        json=$(cd "$ROOT" && $cmd)
        echo "$json" >"$OUT/overload-$kind.json"
        printf '{"scenario":"overload","server":"%s","procs":%s,"cmd":"%s","result":%s}\n' \
            "$kind" "$procs" "$cmd" "$json" >>"$OUT/results.jsonl"
        log "overload $kind: $json"
        stop_server
    done
}

# Relay round trips: pacer's pool vs a bare blocking driver, both runtime flavours.
scenario_relay() {
    local n line
    n=$(nproc)
    wait_idle "relay"
    for args in "bare 1 1 20000" "pacer 1 1 20000 current" "pacer 1 1 20000 multi" "pacer 1 1 20000 sharded" \
        "bare $n $n 40000" "pacer $n $n 40000 current" "pacer $n $n 40000 multi" "pacer $n $n 40000 sharded"; do
        # shellcheck disable=SC2086
        line=$(cd "$ROOT" && "$RELAY_BENCH" $args)
        echo "relay_bench $args -> $line" >>"$OUT/relay.txt"
        read -r mode flavor workers conc rate p50 p99 <<<"$line"
        printf '{"scenario":"relay","mode":"%s","flavor":"%s","workers":%s,"conc":%s,"msgs_per_s":%s,"p50_us":%s,"p99_us":%s,"cmd":"relay_bench %s"}\n' \
            "$mode" "$flavor" "$workers" "$conc" "$rate" "$p50" "$p99" "$args" >>"$OUT/results.jsonl"
        log "relay $line"
    done
}

scenario_criterion() {
    local b
    wait_idle "criterion"
    for b in frame_codec convert jobs pool; do
        # The pool bench drives in-memory echo workers (feature fake-workers).
        local features=()
        [[ $b == pool ]] && features=(--features fake-workers)
        (cd "$ROOT" && cargo bench -q -p pacer "${features[@]}" --bench "$b" -- --warm-up-time 1 --measurement-time 3 --noplot) \
            >"$OUT/criterion-$b.txt" 2>&1
    done
}

# ----------------------------------------------------------------------------- main

# An older pacer (COMMIT BINARY), built once per commit from a detached worktree into
# $PACER_CACHE/bench (about as long as a release build the first time, then free).
build_at() {
    local commit=$1 bin=$2
    if [[ -x $bin ]]; then
        return 0
    fi
    log "building pacer at $commit (once; cached in $BASE_DIR)"
    mkdir -p "$BASE_DIR"
    local wt=$TMP/before-$commit
    git -C "$ROOT" worktree add -q --detach "$wt" "$commit"
    (cd "$wt" && CARGO_TARGET_DIR=$BASE_DIR/target cargo build -q --release --locked -p pacer --bin pacer)
    cp "$BASE_DIR/target/release/pacer" "$bin.tmp" && mv "$bin.tmp" "$bin"
    git -C "$ROOT" worktree remove --force "$wt"
}

main() {
    mkdir -p "$OUT"
    rm -f "$OUT"/*.txt "$OUT"/*.json "$OUT"/results.jsonl "$OUT"/*.log
    install_deps
    log "building pacer (release)"
    (cd "$ROOT" && cargo build -q --release -p pacer --bin pacer --example relay_bench)
    (cd "$ROOT" && cargo build -q --release -p pacer-floor)
    local only=${BENCH_ONLY:-relay hello runtime floor slim frameworks tracing memory overload jobs criterion}
    build_at "$BASE" "$PACER_BEFORE"
    [[ " $only " == *" tracing "* ]] && build_at "$OTEL_BASE" "$PACER_PRE_OTEL"
    if [[ " ${BENCH_ONLY:-criterion} " == *" criterion "* ]]; then
        log "building the criterion benches"
        (cd "$ROOT" && cargo bench -q -p pacer --bench frame_codec --bench convert --bench jobs --no-run 2>/dev/null)
        (cd "$ROOT" && cargo bench -q -p pacer --features fake-workers --bench pool --no-run 2>/dev/null)
    fi
    local load_before started
    load_before=$(wait_for_quiet)
    started=$(date +%s)
    {
        printf '{"scenario":"machine","nproc":%s,"cpu":"%s","kernel":"%s","pacer":"%s","php":"%s","nginx":"%s","wrk":"%s","load_before":"%s","date":"%s","commit":"%s","base":"%s","otel_base":"%s","duration":%s,"wrk_threads":%s}\n' \
            "$(nproc)" "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" "$(uname -r)" \
            "$("$PACER" version)" "$(php -r 'echo PHP_VERSION;')" "$(nginx -v 2>&1 | sed 's|.*/||')" \
            "$(wrk -v 2>&1 | head -1 | awk '{ print $2 }')" "$(cat /proc/loadavg)" "$(date -u +%FT%TZ)" \
            "$(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- sidecar || echo +dirty)" \
            "$BASE" "$OTEL_BASE" "$DURATION" "$WRK_THREADS"
    } >>"$OUT/results.jsonl"
    [[ " $only " == *" relay "* ]] && { log "relay round trips"; scenario_relay; }
    [[ " $only " == *" hello "* ]] && { log "hello world / JSON echo"; scenario_hello_echo; }
    [[ " $only " == *" runtime "* ]] && { log "runtime flavour"; scenario_runtime; }
    [[ " $only " == *" floor "* ]] && { log "floor: bench/floor vs pacer vs nginx alone"; scenario_floor; }
    [[ " $only " == *" slim "* ]] && { log "Slim"; scenario_slim; }
    [[ " $only " == *" frameworks "* ]] && { log "Laravel and Symfony"; scenario_frameworks; }
    [[ " $only " == *" tracing "* ]] && { log "tracing (OpenTelemetry)"; scenario_tracing; }
    [[ " $only " == *" memory "* ]] && { log "memory"; scenario_memory; }
    [[ " $only " == *" overload "* ]] && { log "overload"; scenario_overload; }
    [[ " $only " == *" jobs "* ]] && { log "jobs (RabbitMQ, memory, php-amqp)"; PACER=$PACER "$BENCH/jobs.sh"; }
    echo "{\"scenario\":\"load_after\",\"loadavg\":\"$(cat /proc/loadavg)\",\"seconds\":$(($(date +%s) - started))}" >>"$OUT/results.jsonl"
    [[ " $only " == *" criterion "* ]] && { log "criterion"; scenario_criterion; }
    # A partial run (BENCH_ONLY) must not replace the full run's tables.
    local results=$BENCH/RESULTS.md
    [[ -n ${BENCH_ONLY:-} ]] && results=$OUT/RESULTS.md
    python3 "$BENCH/report.py" "$OUT" "$BENCH/notes.md" >"$results"
    log "wrote ${results#"$ROOT"/}"
}

main "$@"
