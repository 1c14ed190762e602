# Sourced by bench/jobs.sh and bench/profile-jobs.sh: a scratch directory, processes in
# sessions of their own that are certainly gone when the script ends, and a RabbitMQ
# (Debian's) on loopback with its own data dir and epmd.
#
#   jobs_setup PREFIX      scratch dir $TMP (/tmp/PREFIX.XXXXXX) and the clean-up trap
#   spawn CMD...           runs CMD as the leader of a new session; echoes its pid (when
#                          called in $(...), add the pid to SESSIONS yourself)
#   stop_session PID       SIGTERM to the session's processes, waits until none is left
#                          (SIGKILL after STOP_GRACE seconds, default 10)
#   stop_leader PID        SIGTERM to the session's leader only (a server stopping its own
#                          workers, which finish and run their shutdown code), waits up to
#                          STOP_GRACE seconds for the session to empty, then stop_session
#   start_rabbitmq NAME    starts RabbitMQ, sets URL (amqp://…) and RMQ_SID, waits for it
#
# Only processes of the sessions spawn started are signalled, found by their session id
# each time (never a stale process group: a pid that is gone is not reused by us).

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

SESSIONS=()
# The pids of the processes in session $1 (a process that left it by setsid of its own is
# not ours to find: none of the programs run here does).
session_members() { ps -o pid= -s "$1" 2>/dev/null | tr -d ' ' || true; }

stop_leader() {
    local sid=$1 grace=${STOP_GRACE:-10} i
    kill -TERM "$sid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        [[ -z $(session_members "$sid") ]] && return 0
        sleep 0.1
    done
    STOP_GRACE=5 stop_session "$sid"
}
stop_session() {
    local sid=$1 grace=${STOP_GRACE:-10} p i members
    members=$(session_members "$sid")
    [[ -z $members ]] && return 0
    for p in $members; do kill -TERM "$p" 2>/dev/null || true; done
    for ((i = 0; i < grace * 10; i++)); do
        [[ -z $(session_members "$sid") ]] && return 0
        sleep 0.1
    done
    # Still there after the grace period (a member that ignores SIGTERM, or forked
    # meanwhile): SIGKILL whatever is in the session now, until nothing is.
    for ((i = 0; i < 100; i++)); do
        members=$(session_members "$sid")
        [[ -z $members ]] && return 0
        for p in $members; do kill -KILL "$p" 2>/dev/null || true; done
        sleep 0.1
    done
    echo "bench: session $sid still has processes: $(session_members "$sid" | tr '\n' ' ')" >&2
    return 1
}

jobs_cleanup() {
    local s
    for s in "${SESSIONS[@]}"; do stop_session "$s" || true; done
    [[ -n ${TMP:-} ]] && rm -rf "$TMP"
}

jobs_setup() {
    TMP=$(mktemp -d "/tmp/$1.XXXXXX")
    trap jobs_cleanup EXIT
    trap 'exit 130' INT TERM
}

# setsid(2) in the child itself, then exec: $! is the session's leader and id (setsid(1)
# would fork when called by a process group leader, and $! would miss the session).
spawn() {
    python3 -c 'import os, sys; os.setsid(); os.execvp(sys.argv[1], sys.argv[1:])' "$@" </dev/null >>"$TMP/spawned.log" 2>&1 &
    SESSIONS+=($!)
    echo $!
}

start_rabbitmq() {
    local amqp_port epmd_port dist_port
    amqp_port=$(free_port); epmd_port=$(free_port); dist_port=$(free_port)
    URL="amqp://guest:guest@127.0.0.1:$amqp_port/"
    RMQ=$TMP/rabbit
    mkdir -p "$RMQ"
    echo "[]." >"$RMQ/enabled_plugins"
    printf 'listeners.tcp.default = 127.0.0.1:%s\nloopback_users = none\nlog.console = true\nlog.console.level = warning\nlog.file = false\n' "$amqp_port" >"$RMQ/rabbitmq.conf"
    spawn /usr/bin/epmd -port "$epmd_port" -address 127.0.0.1 >/dev/null
    # Its schedulers do not busy-wait (+sbwt none, RabbitMQ's advice for shared CPUs): the
    # cores are shared with the consumers, and its CPU per job counts work, not spinning.
    spawn env HOME="$RMQ" RABBITMQ_BASE="$RMQ" RABBITMQ_MNESIA_BASE="$RMQ/mnesia" RABBITMQ_LOG_BASE="$RMQ/log" \
        RABBITMQ_NODENAME="$1-$$@localhost" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$amqp_port" \
        RABBITMQ_DIST_PORT="$dist_port" ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT="$epmd_port" \
        RABBITMQ_CONFIG_FILE="$RMQ/rabbitmq" RABBITMQ_ENABLED_PLUGINS_FILE="$RMQ/enabled_plugins" \
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1} +sbwt none +sbwtdcpu none +sbwtdio none" \
        /usr/lib/rabbitmq/bin/rabbitmq-server >/dev/null
    RMQ_SID=${SESSIONS[-1]} # its session: the script, beam.smp and helpers
    local _
    for _ in $(seq 1 900); do
        php -r '$p=parse_url($argv[1]); try { (new AMQPConnection(["host"=>$p["host"],"port"=>$p["port"]]))->connect(); exit(0); } catch (Throwable) { exit(1); }' "$URL" 2>/dev/null && return 0
        sleep 0.2
    done
    echo "bench: RabbitMQ did not accept connections at $URL; its log: $TMP/spawned.log" >&2
    return 1
}
