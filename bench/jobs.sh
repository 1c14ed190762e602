#!/usr/bin/env bash
# The jobs benchmark, side by side in one run on one RabbitMQ (Debian's, started here on
# loopback with its own data dir and epmd), with equal PHP processes (BENCH_JOBS_WORKERS,
# default 2):
#
#   pacer amqp    pacer's jobs pool consuming the queue (Pacer\Jobs\Consumer)
#   pacer memory  pacer's jobs pool on the in-process memory driver
#   php-amqp      plain PHP processes on php-amqp's AMQPQueue::consume() (a Laravel-style
#                 queue worker loop), acking each message
#
# Two measures each: jobs/s draining a preloaded backlog (BENCH_JOBS_N, default 20000),
# and the p99 queue wait (push to delivery) at a steady rate below capacity
# (BENCH_JOBS_RATE per s for BENCH_JOBS_SECONDS), and the CPU each side spends per job
# while draining (utime+stime of pacer, of the PHP processes and of RabbitMQ's beam.smp,
# ÷ jobs: on 2 cores shared by all three, jobs/s is bounded by the total). PACER_BASE=BINARY
# adds "pacer amqp (before)": that binary on the same broker, for before/after. Writes bench/out/jobs.json, appends one
# `{"scenario":"jobs",...}` line per consumer to bench/out/results.jsonl (report.py's
# "Jobs" table) and prints a table. Called by bench/run.sh (BENCH_ONLY contains "jobs"),
# or alone:
#
#   CARGO_TARGET_DIR=... bench/jobs.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
OUT=$BENCH/out
N=${BENCH_JOBS_N:-20000}
P=${BENCH_JOBS_WORKERS:-2}
RATE=${BENCH_JOBS_RATE:-400}
SECONDS_STEADY=${BENCH_JOBS_SECONDS:-10}
PREFETCH=${BENCH_JOBS_PREFETCH:-50}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PACER=${PACER:-$CARGO_TARGET_DIR/release/pacer}
# shellcheck source=bench/jobs-common.sh
source "$BENCH/jobs-common.sh"
jobs_setup pacer-bench-jobs
log() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }
for p in rabbitmq-server php-amqp; do
    dpkg -s "$p" >/dev/null 2>&1 || PACER_DEPS_EXTRA="rabbitmq-server php-amqp" "$ROOT/scripts/deps.sh"
done
[[ -x $PACER ]] || (cd "$ROOT" && cargo build -q --release -p pacer --bin pacer)

# --------------------------------------------------------------------------- RabbitMQ
log "starting RabbitMQ"
start_rabbitmq pacer-bench

# Declares (and empties) a durable queue bound nowhere: publishers use the default exchange.
declare_queue() {
    php -r '$p=parse_url($argv[1]); $c=new AMQPConnection(["host"=>$p["host"],"port"=>$p["port"]]); $c->connect(); $ch=new AMQPChannel($c);
        $q=new AMQPQueue($ch); $q->setName($argv[2]); $q->setFlags(AMQP_DURABLE); $q->declareQueue(); $q->purge();' "$URL" "$1"
}
publish() { php "$BENCH/workers/amqp-publish.php" "$URL" "$@"; }
# p99 (and p50) of every wait in files $1.*, in ms.
percentiles() {
    cat "$1".* 2>/dev/null | python3 -c 'import sys
w = sorted(float(x) for x in sys.stdin if x.strip())
if not w: print("null null 0"); sys.exit()
q = lambda p: w[min(len(w) - 1, int(p * len(w)))] * 1000
print(f"{q(0.5):.2f} {q(0.99):.2f} {len(w)}")'
}
now() { date +%s.%N; }
# CPU time (utime+stime, clock ticks) of the processes in session $1: of the session's
# leader (pacer) and of all of them: "lead=T all=T".
session_cpu() {
    local p
    for p in $(ps -o pid= -s "$1"); do
        awk -v lead="$1" '{ print ($1 == lead ? "lead" : "other"), $14 + $15 }' "/proc/$p/stat" 2>/dev/null || true
    done | awk '{ t[$1] += $2; t["all"] += $2 } END { for (c in t) printf "%s=%d ", c, t[c] }'
}
cpu_of() { # $1 "name=T ..." $2 name → T (0 when absent)
    local kv
    for kv in $1; do [[ ${kv%%=*} == "$2" ]] && { echo "${kv#*=}"; return; }; done
    echo 0
}
TICK_US=$((1000000 / $(getconf CLK_TCK)))
# µs of CPU per job from a tick delta over N jobs.
per_job() { python3 -c "print(round($1 * $TICK_US / $N, 1))"; }

# --------------------------------------------------------------------------- pacer
pacer_yaml() { # $1 driver, $2 queue, $3 waits file, $4 consume (true/false)
    local pipe
    if [[ $1 == amqp ]]; then
        pipe="{driver: amqp, config: {queue: $2, exchange: '', routing_key: $2, durable: true, prefetch: $PREFETCH}}"
    else
        pipe="{driver: memory, config: {prefetch: $PREFETCH}}"
    fi
    cat <<EOF
version: "3"
server:
  command: "php $BENCH/workers/hello.php"
  env: {BENCH_WAITS: "$3"}
http: {address: 127.0.0.1:$(free_port), pool: {num_workers: 1}}
rpc: {listen: "tcp://127.0.0.1:$RPC_PORT"}
metrics: {address: "127.0.0.1:$METRICS_PORT"}
logs: {level: warn}
amqp: {addr: "$URL"}
jobs:
  pool: {num_workers: $P, command: "php $BENCH/workers/jobs-consumer.php"}
  consume: [$([[ $4 == true ]] && echo "$2")]
  pipelines:
    $2: $pipe
pacer: {shutdown: {delay: 0s, grace_period: 10s}}
EOF
}
acked() { curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | awk -v p="pacer_pipeline_jobs_total{pipeline=\"$1\",event=\"acked\"}" '$1 == p { print $2 }'; }
wait_acked() { # $1 pipeline, $2 count
    local a
    for _ in $(seq 1 6000); do
        a=$(acked "$1"); [[ -n $a && ${a%.*} -ge $2 ]] && return 0
        sleep 0.05
    done
    echo "pacer: $1 did not reach $2 acked jobs" >&2; return 1
}
start_pacer() { # $1 yaml file; echoes the pid
    local pid
    pid=$(spawn "$PACER" serve -c "$1")
    for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" >/dev/null && break; sleep 0.1; done
    sleep 1 # the workers boot
    echo "$pid"
}
# pacer and its PHP workers: all gone before the next run starts. pacer stops its workers
# itself, so that each writes the waits it still holds (a SIGTERM of their own would kill
# them first: PHP has no handler for it).
stop_pacer() { STOP_GRACE=30 stop_leader "$1"; }
push_memory() { # $1 pipeline $2 n $3 rate
    php -r 'require $argv[1] . "/php/autoload.php"; $j = Pacer\Jobs\Jobs::fromEnvironment($argv[2]);
        $n = (int) $argv[4]; $rate = (float) $argv[5]; $start = microtime(true); $batch = [];
        for ($i = 0; $i < $n; $i++) {
            if ($rate > 0) { $due = $start + $i / $rate; if (($s = $due - microtime(true)) > 0) usleep((int) ($s * 1e6)); $j->push($argv[3], "Bench\\Job", json_encode(["t" => microtime(true)])); continue; }
            $batch[] = ["pipeline" => $argv[3], "name" => "Bench\\Job", "payload" => json_encode(["t" => microtime(true)])];
            if (count($batch) === 500) { $j->pushBatch($batch); $batch = []; }
        }
        if ($batch) $j->pushBatch($batch);' "$ROOT" "tcp://127.0.0.1:$RPC_PORT" "$1" "$2" "$3"
}

results=()
record() { # name, throughput jobs/s, p50, p99, samples; CPU µs per job: server, php, broker
    local cpu="{\"server\":$6,\"php\":$7,\"broker\":$8}"
    results+=("{\"consumer\":\"$1\",\"workers\":$P,\"jobs_per_s\":$2,\"wait_p50_ms\":$3,\"wait_p99_ms\":$4,\"wait_samples\":$5,\"cpu_us_per_job\":$cpu}")
    mkdir -p "$OUT"
    printf '{"scenario":"jobs","consumer":"%s","workers":%s,"jobs":%s,"rate":%s,"steady_s":%s,"prefetch":%s,"jobs_per_s":%s,"wait_p50_ms":%s,"wait_p99_ms":%s,"wait_samples":%s,"cpu_us_per_job":%s,"loadavg":"%s"}\n' \
        "$1" "$P" "$N" "$RATE" "$SECONDS_STEADY" "$PREFETCH" "$2" "$3" "$4" "$5" "$cpu" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/results.jsonl"
    printf '%-14s %10s jobs/s   queue wait p50 %8s ms  p99 %8s ms  (%s jobs)   CPU µs/job: server %s  PHP %s  RabbitMQ %s\n' "$1" "$2" "$3" "$4" "$5" "$6" "$7" "$8" >&2
}

# --- pacer, amqp
bench_pacer() { # $1 driver, $2 label suffix (with PACER set to the binary)
    local q="bench_$1" y="$TMP/pacer-$1.yaml" pid t0 t1 rate stats w="$TMP/pacer-$1${2:+-before}"
    RPC_PORT=$(free_port); METRICS_PORT=$(free_port)
    [[ $1 == amqp ]] && declare_queue "$q"
    # Throughput: the backlog is in place before consuming starts.
    pacer_yaml "$1" "$q" "$w-backlog" false >"$y"
    pid=$(start_pacer "$y"); SESSIONS+=("$pid")
    if [[ $1 == amqp ]]; then publish "$q" "$N" 0 0; else push_memory "$q" "$N" 0; fi
    local c0 c1 b0 b1
    c0=$(session_cpu "$pid"); b0=$(session_cpu "$RMQ_SID")
    t0=$(now)
    php -r 'require $argv[1] . "/php/autoload.php"; Pacer\Jobs\Jobs::fromEnvironment($argv[2])->resume($argv[3]);' "$ROOT" "tcp://127.0.0.1:$RPC_PORT" "$q"
    wait_acked "$q" "$N"
    t1=$(now)
    c1=$(session_cpu "$pid"); b1=$(session_cpu "$RMQ_SID")
    rate=$(python3 -c "print(round($N / ($t1 - $t0)))")
    local cpu_server cpu_php cpu_broker
    cpu_server=$(per_job $(($(cpu_of "$c1" lead) - $(cpu_of "$c0" lead))))
    # Everything else in pacer's session is its PHP workers.
    cpu_php=$(per_job $(($(cpu_of "$c1" other) - $(cpu_of "$c0" other))))
    cpu_broker=$(per_job $(($(cpu_of "$b1" all) - $(cpu_of "$b0" all))))
    stop_pacer "$pid"
    # Queue wait at a steady rate.
    pacer_yaml "$1" "$q" "$w-steady" true >"$y"
    pid=$(start_pacer "$y"); SESSIONS+=("$pid")
    local steady=$((RATE * SECONDS_STEADY))
    if [[ $1 == amqp ]]; then publish "$q" "$steady" "$RATE" 0; else push_memory "$q" "$steady" "$RATE"; fi
    wait_acked "$q" "$steady"
    stop_pacer "$pid"
    stats=$(percentiles "$w-steady")
    record "pacer $1${2:-}" "$rate" $stats "$cpu_server" "$cpu_php" "$cpu_broker"
}

bench_plain() {
    local q=bench_plain t0 t1 rate pids=() stats i
    declare_queue "$q"
    publish "$q" "$N" 0 "$P"
    local b0 b1 cpu_php cpu_broker
    b0=$(session_cpu "$RMQ_SID")
    t0=$(now)
    for i in $(seq 1 "$P"); do php "$BENCH/workers/amqp-consume.php" "$URL" "$q" "$PREFETCH" "$TMP/plain-backlog" "$TMP/plain-rusage" & pids+=($!); done
    wait "${pids[@]}"
    t1=$(now)
    b1=$(session_cpu "$RMQ_SID")
    rate=$(python3 -c "print(round($N / ($t1 - $t0)))")
    # The consumers report their own CPU (getrusage) as they exit, in µs.
    cpu_php=$(cat "$TMP/plain-rusage".* | python3 -c "import sys; print(round(sum(float(x) for x in sys.stdin if x.strip()) / $N, 1))")
    cpu_broker=$(per_job $(($(cpu_of "$b1" all) - $(cpu_of "$b0" all))))
    pids=()
    for i in $(seq 1 "$P"); do php "$BENCH/workers/amqp-consume.php" "$URL" "$q" "$PREFETCH" "$TMP/plain-steady" & pids+=($!); done
    sleep 1
    publish "$q" "$((RATE * SECONDS_STEADY))" "$RATE" "$P"
    wait "${pids[@]}"
    stats=$(percentiles "$TMP/plain-steady")
    record "php-amqp" "$rate" $stats 0 "$cpu_php" "$cpu_broker"
}

log "jobs: $N jobs backlog, $P PHP processes each, steady $RATE/s for ${SECONDS_STEADY}s, prefetch $PREFETCH"
bench_plain
if [[ -n ${PACER_BASE:-} ]]; then PACER=$PACER_BASE bench_pacer amqp " (before)"; fi
bench_pacer amqp
bench_pacer memory
mkdir -p "$OUT"
printf '[%s]\n' "$(IFS=,; echo "${results[*]}")" >"$OUT/jobs.json"
log "wrote bench/out/jobs.json"
