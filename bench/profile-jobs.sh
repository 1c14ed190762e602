#!/usr/bin/env bash
# Where pacer spends its instructions per job draining a queue (callgrind: counts pacer's
# own user-space instructions exactly, whatever the machine's load):
#
#   bench/profile-jobs.sh [amqp|memory]
#
# Serves 2 jobs workers (bench/workers/jobs-consumer.php) under valgrind, fills the
# pipeline with PROFILE_JOBS_WARM jobs (default 1000) and drains them (warm-up), zeroes
# the counters, fills it with PROFILE_JOBS_N (default 5000) and drains those: the dump
# covers exactly that drain, broker round trips included (pacer's side of them). amqp
# runs against a RabbitMQ started here on loopback (its own epmd and data dir), memory
# needs none. Writes bench/out/profile-jobs-DRIVER.txt (the top functions, self cost) and
# prints "instructions per job". PROFILE_PACER=PATH profiles that binary (build it as
# bench/profile.sh does: release, line tables, frame pointers); by default it is built
# into $CARGO_TARGET_DIR/prof.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
OUT=$BENCH/out
DRIVER=${1:-amqp}
N=${PROFILE_JOBS_N:-5000}
WARM=${PROFILE_JOBS_WARM:-1000}
PREFETCH=${PROFILE_JOBS_PREFETCH:-50}
mkdir -p "$OUT"
# shellcheck source=bench/jobs-common.sh
source "$BENCH/jobs-common.sh"

PACER=${PROFILE_PACER:-}
if [[ -z $PACER ]]; then
    target=${CARGO_TARGET_DIR:-$ROOT/target}/prof
    (cd "$ROOT" && CARGO_TARGET_DIR=$target CARGO_PROFILE_RELEASE_STRIP=none \
        CARGO_PROFILE_RELEASE_DEBUG=line-tables-only RUSTFLAGS="-C force-frame-pointers=yes" \
        cargo build -q --release --locked -p pacer --bin pacer)
    PACER=$target/release/pacer
fi

jobs_setup pacer-profile-jobs

URL=""
if [[ $DRIVER == amqp ]]; then
    start_rabbitmq pacer-profile
    pipe="{driver: amqp, config: {queue: profile, exchange: '', routing_key: profile, durable: true, prefetch: $PREFETCH}}"
else
    pipe="{driver: memory, config: {prefetch: $PREFETCH}}"
fi

RPC_PORT=$(free_port); METRICS_PORT=$(free_port)
AMQP_SECTION=""
[[ -n $URL ]] && AMQP_SECTION="amqp: {addr: \"$URL\"}"
cat >"$TMP/pacer.yaml" <<EOF
version: "3"
server:
  command: "php $BENCH/workers/jobs-consumer.php"
rpc: {listen: "tcp://127.0.0.1:$RPC_PORT"}
metrics: {address: "127.0.0.1:$METRICS_PORT"}
logs: {level: warn}
$AMQP_SECTION
jobs:
  pool: {num_workers: 2, allocate_timeout: 120s}
  consume: []
  pipelines:
    profile: $pipe
pacer: {shutdown: {delay: 0s, grace_period: 10s}}
EOF

acked() { curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | awk '$1 == "pacer_pipeline_jobs_total{pipeline=\"profile\",event=\"acked\"}" { print $2 }'; }
# Polls every 0.5 s: each scrape of /metrics is counted too (~130k instructions).
wait_acked() {
    local a
    for _ in $(seq 1 1200); do
        a=$(acked); [[ -n $a && ${a%.*} -ge $1 ]] && return 0
        sleep 0.5
    done
    echo "pacer did not reach $1 acked jobs" >&2; return 1
}
rpc() { # $1 method: resume / pause
    php -r 'require $argv[1] . "/php/autoload.php"; Pacer\Jobs\Jobs::fromEnvironment($argv[2])->{$argv[4]}($argv[3]);' "$ROOT" "tcp://127.0.0.1:$RPC_PORT" profile "$1"
}
fill() { # $1 jobs
    if [[ $DRIVER == amqp ]]; then
        # Declared here too: pacer may not have connected yet, and the default exchange
        # drops messages for a queue that does not exist.
        php -r '$p=parse_url($argv[1]); $c=new AMQPConnection(["host"=>$p["host"],"port"=>$p["port"]]); $c->connect();
            $q=new AMQPQueue(new AMQPChannel($c)); $q->setName("profile"); $q->setFlags(AMQP_DURABLE); $q->declareQueue();' "$URL"
        php "$BENCH/workers/amqp-publish.php" "$URL" profile "$1" 0 0
    else
        php -r 'require $argv[1] . "/php/autoload.php"; $j = Pacer\Jobs\Jobs::fromEnvironment($argv[2]); $batch = [];
            for ($i = 0; $i < (int) $argv[3]; $i++) { $batch[] = ["pipeline" => "profile", "name" => "Bench\\Job", "payload" => json_encode(["t" => microtime(true)])];
                if (count($batch) === 500) { $j->pushBatch($batch); $batch = []; } }
            if ($batch) $j->pushBatch($batch);' "$ROOT" "tcp://127.0.0.1:$RPC_PORT" "$1"
    fi
}

DUMP=$TMP/callgrind.out
spawn valgrind --tool=callgrind --callgrind-out-file="$DUMP" "$PACER" serve -c "$TMP/pacer.yaml" -w "$ROOT" >/dev/null
PID=${SESSIONS[-1]}
for _ in $(seq 1 1200); do curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" >/dev/null && break; sleep 0.1; done
# Pushes (memory) count against the drain unless they happen before the zeroing: fill,
# then zero, then resume.
fill "$WARM"
rpc resume
wait_acked "$WARM"
rpc pause
fill "$N"
sleep 1
callgrind_control -z "$PID" >/dev/null
t0=$(date +%s.%N)
rpc resume
wait_acked $((WARM + N))
t1=$(date +%s.%N)
callgrind_control -d "$PID" >/dev/null
sleep 1
dump=$(ls -t "$DUMP".* | head -1)
# The dump is read; stop pacer (and its workers) before the report, with time for
# valgrind's own exit.
STOP_GRACE=60 stop_session "$PID"
report=$OUT/profile-jobs-$DRIVER.txt
callgrind_annotate --inclusive=no "$dump" 2>/dev/null | head -70 >"$report"
total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ && !t { gsub(",", "", $1); t = $1 } END { print t }')
line="driver: $DRIVER; jobs: $N; instructions: $total; per job: $((total / N)); drain under valgrind: $(python3 -c "print(round($t1 - $t0, 1))") s; load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$line" | tee -a "$report"
cp "$dump" "$OUT/profile-jobs-$DRIVER.callgrind"
