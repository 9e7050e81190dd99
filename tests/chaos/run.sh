#!/usr/bin/env bash
# run.sh: the chaos run (issues 6, 10 and 16): three servers, three producers (one an application that writes SQL only, emitted by datasync-capture), random faults for a bounded time, a fourth server bootstrapped mid-run, then a checker that counts every change as accounted for, lost or wrongly applied on all four.
#
#   BUILD=build tests/chaos/run.sh [--duration SECONDS] [--seed N] [--rate N] [--keep] [--cluster]
#
#   --duration  how long faults are injected (default 120; 240 with
#               --cluster, whose member faults take longer)
#   --seed      the seed of every random choice (default: a random one,
#               printed); the same seed replays the same sequence of faults
#   --rate      changes per second of each producer (default 80)
#   --keep      keep the run folder even when the run passes (DS_TEST_KEEP=1
#               does the same)
#   --cluster   a 3-node RabbitMQ cluster with quorum queues instead of one
#               broker node (make chaos CLUSTER=1), see tests/chaos/cluster.sh
#
# What runs, all on 127.0.0.1: three databases chaos_a/b/c on the private
# MariaDB (tests/chaos/schema.sql), three datasync-consumer processes
# (nodes chaos-a/b/c, exchange "chaos"), one of them (chosen by the seed)
# connected to RabbitMQ through chaos_proxy, two chaos_producer processes
# (origins chaos-a and chaos-b, each writing its own database first, then
# emitting through libdatasync, see tests/chaos/chaos_producer.c), and on
# chaos-c an application that cannot call ds_emit: chaos_producer
# --sql-only writes creates, updates and deletes to chaos_c in
# transactions of 1-4 changes, one in ten rolled back on purpose, and logs
# them; datasync-capture (node chaos-c, its consumer's configuration plus
# [producer] and [capture], through the proxy when that consumer is)
# reads the MariaDB's binlog and emits them. The binlog holds every
# database's writes: the capture takes only chaos_c's tables, and of
# those not the ones chaos-c's consumer applies (loop prevention). So the
# MariaDB always runs with the binlog on (DS_SVC_MARIA_BINLOG=1, for every
# start by services.sh; shared services started without it are restarted
# once with it). The checker reads the capture's events back from the
# broker, from a tap (chaos-tap: a node in `datasync setup` that has no
# consumer, so its queue gets what the node queues get) and from the
# archive stream chaos.archive, and matches each committed SQL change to
# one of them (tests/chaos/lib/captured.h); a rolled-back change must
# never appear.
#
# The late node: chaos-d (database chaos_d, the same schema, no producer)
# is not in `datasync setup --nodes`. At a seeded moment between 1/4 and
# 1/2 of the fault period, and from a peer the seed chooses among chaos-a/b/c,
# it joins with `datasync bootstrap --from <peer's consumer config> --to
# <chaos-d's>` while the producers emit and the faults go on. A fault may
# make it fail (broker down, MariaDB stopped, the peer not keeping up): it
# is run again after the fault, as a careful operator would, each attempt
# in faults.log and bootstrap-chaos-d.log. Once it succeeded, chaos-d's
# consumer starts and is supervised and killed like the others. When it has
# not joined by the end of the fault period (a slow broker restart can take
# half of a 30 s run), the faults go on until it has, for at most 60 s more
# (the summary says by how much: "fault period extended"). The run fails when no attempt succeeded
# (one still running when the faults stop may finish); the checker counts
# chaos-d like every node and names when and from which peer it joined.
#
# The fault loop takes the fault kinds in a seeded random order, each once
# per round:
#   consumer_kill   kill -9 of a consumer (chaos-d too once joined),
#                   restarted 0.2-3 s later
#   producer_kill   kill -9 of a producer (the SQL writer too), restarted
#                   0.2-2 s later with the same spool and outbox
#   capture_kill    kill -9 of datasync-capture, restarted 0.2-3 s later:
#                   it resumes from its state file (what it emitted after
#                   its last save comes again, with the same ids and
#                   versions: a change emitted again under a new id fails
#                   the run)
#   broker_restart  services.sh rabbit restart
#   broker_kill     services.sh rabbit kill, started again 1-4 s later; half
#                   the time a producer is also killed -9 and restarted
#                   meanwhile (its spool must survive and drain later)
#   maria_stop      services.sh maria stop, started again 2-6 s later; half
#                   the time a consumer is also killed -9 meanwhile (it
#                   fails to start until the database is back)
# During broker_kill and maria_stop (and the cluster's member faults) a
# third of the time datasync-capture is killed -9 too and started at once:
# it spools while the broker is away, and waits for the database with
# backoff. It must never exit on its own through any fault (it reconnects
# to both): one that does is restarted, as systemd's Restart=on-failure
# would, and fails the run.
#   blackhole       the proxy stops forwarding without closing for 3-15 s,
#                   then forwards again or closes the connections
# In cluster mode (--cluster) the broker is a 3-node cluster
# (services.sh cluster), every client lists its three members in amqp.url,
# queue_type = quorum, the proxy forwards to member 1 (the proxied
# consumer lists the proxy, then members 2 and 3), and broker_restart and
# broker_kill give way to the member faults of tests/chaos/cluster.sh:
# node_kill_connected, node_kill_leader, node_restart and partition.
# Then faults stop, everything is brought up, the producers stop (each
# empties its outbox and waits for its spool to drain), datasync-capture
# stops once its saved position reached the binlog's after the SQL writer's
# last transaction and its spool is empty, the queues drain (no message
# ready or unacked, datasync_versions unchanged for a second), the
# consumers stop, and tests/chaos/chaos_check prints the summary.
#
# Services: with DS_TEST_RUNDIR set (tests/run.sh), the running private
# services of tests/lib/services.sh are used and left running; without it,
# private ones are started in a fresh run dir and taken down at the end.
#
# Logs: everything is under the run folder it names (producer, consumer,
# proxy logs, emitted logs, faults.log, the checker's details, a copy of
# the service logs). It is removed when the run passes, unless --keep or
# DS_TEST_KEEP=1. Exit 0 when the checker passes and no process died on its
# own; 1 otherwise; 2 on bad usage or missing programs.
#
# Bounded: a watchdog ends the run after duration + 480 s. Every process it
# starts carries DS_CHAOS_RUN=<run folder> in its environment; at the end
# none may be left (they are killed, and the run fails, if one is).

# The fault_* functions are called as "fault_$kind"; the watchdog's script
# is single-quoted on purpose (it expands its own arguments).
# shellcheck disable=SC2317,SC2016
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${BUILD:-build}
[[ "$build" == /* ]] || build=$root/$build
services=$root/tests/lib/services.sh
# Its process helpers: ds_svc_alive, ds_svc_pids_with_env.
# shellcheck source=SCRIPTDIR/../lib/services.sh disable=SC1091
source "$services"
# The cluster mode's helpers and faults.
# shellcheck source=SCRIPTDIR/cluster.sh disable=SC1091
source "$root/tests/chaos/cluster.sh"

duration=""
seed=""
rate=80
keep=${DS_TEST_KEEP:-0}
cluster=0
while (($#)); do
    case "$1" in
    --duration) duration=${2:?--duration needs a value}; shift 2 ;;
    --seed) seed=${2:?--seed needs a value}; shift 2 ;;
    --rate) rate=${2:?--rate needs a value}; shift 2 ;;
    --keep) keep=1; shift ;;
    --cluster) cluster=1; shift ;;
    -h | --help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
done
[[ -n "$duration" ]] || duration=$( ((cluster)) && echo 240 || echo 120)
[[ "$duration" =~ ^[0-9]+$ && "$rate" =~ ^[0-9]+$ ]] || { echo "run.sh: --duration and --rate take whole numbers" >&2; exit 2; }
[[ -z "$seed" ]] && seed=$(( (RANDOM << 15 | RANDOM) % 1000000 ))
[[ "$seed" =~ ^[0-9]+$ ]] || { echo "run.sh: --seed takes a whole number" >&2; exit 2; }

consumer_bin=$build/datasync-consumer
capture_bin=$build/datasync-capture
cli_bin=$build/datasync
producer_bin=$build/tools/chaos_producer
proxy_bin=$build/tools/chaos_proxy
check_bin=$build/tools/chaos_check
for b in "$consumer_bin" "$capture_bin" "$cli_bin" "$producer_bin" "$proxy_bin" "$check_bin"; do
    if [[ ! -x "$b" ]]; then
        echo "run.sh: $b is missing: make BUILD=${BUILD:-build} all build-tests" >&2
        exit 2
    fi
done

nodes=(chaos-a chaos-b chaos-c chaos-d)
dbs=(chaos_a chaos_b chaos_c chaos_d)
producers=(0 1 2) # the producers run on nodes 0, 1 and 2, as their origin
sql_node=2        # chaos-c's application writes SQL only: datasync-capture emits
late=3          # chaos-d: not set up at the start, bootstrapped mid-run
RANDOM=$seed

t_start=${EPOCHREALTIME/[.,]/}
elapsed() {
    local us=$((${EPOCHREALTIME/[.,]/} - t_start))
    printf '%d.%d' $((us / 1000000)) $((us / 100000 % 10))
}

# ----------------------------------------------------------------- state

own_services=0
cdir=""
proxy_pid=""
watchdog_pid=""
declare -a cons_pid=("" "" "" "") prod_pid=("" "" "")
capture_pid=""
capture_log_start=0
capture_runs=0 # how many times datasync-capture was started
declare -a cons_log_start=(0 0 0 0)
active=3 # consumers supervised: nodes 0..active-1 (4 once chaos-d joined)
boot_pid=""
boot_attempts=0
boot_retry=0 # no attempt before this time (us), a second after a failure
join_grace=60 # s the faults may go on after the period, until chaos-d joined
joined=0 # when chaos-d joined (us), 0 until then
faulting=0 # 1 while the fault loop runs: bootstrap attempts start only then
join_text="" # when, from which peer, how many attempts: for the summary
infos_join=() # the checker's line on a fault period that went on for the join
unexpected=() # processes that died on their own
finished=0
status=1

note() {
    local line
    line="$(date -u '+%F %T') T+$(elapsed)s $*"
    echo "chaos: $line"
    [[ -n "$cdir" ]] && echo "$line" >>"$cdir/faults.log"
}

fault() {
    local line
    line="$(date -u '+%F %T') T+$(elapsed)s FAULT $*"
    echo "chaos: $line"
    echo "$line" >>"$cdir/faults.log"
}

# rnd N: a number in [0, N) into R (no subshell: RANDOM stays seeded).
rnd() { R=$((RANDOM % $1)); }

# nap TENTHS: sleeps that many tenths of a second.
nap() { sleep "$(($1 / 10)).$(($1 % 10))"; }

# Our processes still around: every live pid whose environment carries our mark.
owned_pids() {
    local pid
    [[ -n "$cdir" ]] || return 0
    for pid in $(ds_svc_pids_with_env "DS_CHAOS_RUN=$cdir"); do
        ds_svc_alive "$pid" && echo "$pid"
    done
    return 0
}

# stop_pid PID SECONDS: SIGTERM, then SIGKILL after the grace; reaps it.
# Prints nothing; returns the exit status (137 when it had to be killed).
stop_pid() {
    local pid=$1 grace=$2 i rc=0
    [[ -n "$pid" ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        ds_svc_alive "$pid" || break
        sleep 0.1
    done
    if ds_svc_alive "$pid"; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || rc=$?
    return $rc
}

cleanup() {
    local rc=$? pids p
    trap - EXIT INT TERM HUP
    if ((!finished)); then
        echo "chaos: interrupted (exit $rc): stopping every process of the run" >&2
    fi
    [[ -n "$watchdog_pid" ]] && kill -KILL -- "-$watchdog_pid" 2>/dev/null
    for p in "${prod_pid[@]}" "$capture_pid" "${cons_pid[@]}" "$proxy_pid" "$boot_pid"; do
        [[ -n "$p" ]] && kill -KILL "$p" 2>/dev/null
    done
    read -r -a pids <<<"$(owned_pids | tr '\n' ' ')"
    if ((${#pids[@]})); then
        kill -KILL "${pids[@]}" 2>/dev/null
    fi
    wait 2>/dev/null
    if ((!finished)) && [[ -n "${DS_TEST_RUNDIR:-}" ]]; then
        # Leave the shared services running, as we found them.
        if ((own_services)); then
            timeout 120 "$services" down >/dev/null 2>&1
        else
            ((cluster_started)) && timeout 120 "$services" cluster down >/dev/null 2>&1
            ((cluster)) || timeout 120 "$services" rabbit start >/dev/null 2>&1
            timeout 120 "$services" maria start >/dev/null 2>&1
        fi
    fi
    if ((!finished)) && [[ -n "$cdir" ]]; then
        echo "chaos: run folder kept: $cdir" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ------------------------------------------------------------- services

# datasync-capture reads the MariaDB's binlog: every start of it by
# services.sh (here, in the faults, at the end) must turn it on.
export DS_SVC_MARIA_BINLOG=1
if [[ -z "${DS_TEST_RUNDIR:-}" ]]; then
    own_services=1
    DS_TEST_RUNDIR=$(mktemp -d "${TMPDIR:-/tmp}/ds-chaos.XXXXXX")
    export DS_TEST_RUNDIR
    echo "chaos: starting private services in $DS_TEST_RUNDIR"
    "$services" watch $$
    # In cluster mode the single broker node is not needed.
    if ! { if ((cluster)); then "$services" maria start; else "$services" up; fi; }; then
        echo "chaos: the services did not start (logs under $DS_TEST_RUNDIR)" >&2
        exit 1
    fi
fi
eval "$("$services" env)"
if [[ "$("$services" maria sql -N -e 'SELECT @@log_bin' 2>/dev/null)" != 1 ]]; then
    # Shared services (tests/run.sh) started without it: once more with it.
    echo "chaos: restarting the private MariaDB with its binlog on (datasync-capture reads it)"
    if ! "$services" maria restart; then
        echo "chaos: MariaDB did not start again with the binlog" >&2
        exit 1
    fi
fi
if ((cluster)); then
    echo "chaos: starting a 3-node RabbitMQ cluster"
    cluster_up || exit 1
fi

cdir=$DS_TEST_RUNDIR/chaos-$(date -u +%Y%m%d-%H%M%S)-seed$seed
mkdir -p "$cdir"
: >"$cdir/faults.log"

hard_timeout=$((duration + 480))
# The watchdog has a session of its own (setsid), so the cleanup can kill
# it and its sleep together.
setsid bash -c 'end=$((SECONDS + $1)); while kill -0 "$2" 2>/dev/null; do
    ((SECONDS < end)) || { echo "chaos: hard timeout after $1 s" >&2; kill -TERM "$2"; exit 0; }
    sleep 1; done' _ "$hard_timeout" "$$" </dev/null >>"$cdir/faults.log" 2>&1 &
watchdog_pid=$!
disown "$watchdog_pid" # no job report when the cleanup kills it

rnd 3
proxied=$R
# The late node's join: its peer, and when (tenths of a second into the
# fault period, between 1/4 and 1/2 of it).
rnd 3
join_peer=$R
rnd $((duration * 10 / 4 + 1))
join_at=$((duration * 10 / 4 + R))
note "seed $seed, faults for $duration s, $rate changes/s per producer, consumer ${nodes[proxied]}$( ((proxied == sql_node)) && echo ' and its datasync-capture') through the proxy, run folder $cdir"
note "${nodes[late]} joins at fault period +$((join_at / 10)).$((join_at % 10)) s, bootstrapped from ${nodes[join_peer]}"
((cluster)) && note "broker: a 3-node cluster (${DS_TEST_CLUSTER_NODES}), quorum queues"
note "reproduce: BUILD=${BUILD:-build} tests/chaos/run.sh --duration $duration --seed $seed --rate $rate$( ((cluster)) && echo ' --cluster')"

# ----------------------------------------------------------------- setup

msql() { "$services" maria sql "$@"; }

for i in "${!dbs[@]}"; do
    if ! msql -e "DROP DATABASE IF EXISTS ${dbs[i]}; CREATE DATABASE ${dbs[i]} CHARACTER SET utf8mb4" ||
        ! msql "${dbs[i]}" <"$root/tests/chaos/schema.sql"; then
        echo "chaos: cannot create database ${dbs[i]}" >&2
        exit 1
    fi
done

# Queues of an earlier run on these services go first, and the tap and
# the archive stream: the checker reads chaos-c's captured changes there.
tap=chaos-tap # a node in setup, with no consumer: its queue gets every change
existing=$(broker_ctl list_queues -q --no-table-headers name)
run_queues=(chaos.archive "datasync.$tap" "datasync.$tap.dead")
for n in "${nodes[@]}"; do
    run_queues+=("datasync.$n" "datasync.$n.dead")
done
for q in "${run_queues[@]}"; do
    if grep -qx "$q" <<<"$existing"; then
        broker_ctl delete_queue "$q" >/dev/null || true
    fi
done

"$proxy_bin" --target-port "${member_port[0]:-$DS_TEST_AMQP_PORT}" --port-file "$cdir/proxy.port" \
    >>"$cdir/proxy.log" 2>&1 &
proxy_pid=$!
for _ in {1..50}; do
    [[ -s "$cdir/proxy.port" ]] && break
    sleep 0.1
done
proxy_port=$(cat "$cdir/proxy.port" 2>/dev/null)
[[ -n "$proxy_port" ]] || { echo "chaos: the proxy did not start (see $cdir/proxy.log)" >&2; exit 1; }

amqp_direct="amqp://guest:guest@127.0.0.1:$DS_TEST_AMQP_PORT/%2f"
queue_type=classic
if ((cluster)); then
    amqp_direct=$DS_TEST_CLUSTER_URLS
    queue_type=quorum
fi
for i in "${!nodes[@]}"; do
    url=$amqp_direct
    if ((i == proxied)); then
        url="amqp://guest:guest@127.0.0.1:$proxy_port/%2f"
        # In a cluster: the proxy (to member 1), then the other members.
        ((cluster)) && url+=" ${DS_TEST_CLUSTER_URLS#* }"
    fi
    cat >"$cdir/consumer-${nodes[i]}.conf" <<EOF
# The chaos run's consumer of node ${nodes[i]} (tests/chaos/run.sh).
[node]
id = ${nodes[i]}
clock_file = $cdir/clock-${nodes[i]}
[amqp]
url = $url
exchange = chaos
queue_type = $queue_type
prefetch = 200
heartbeat = 5
[mysql]
host = 127.0.0.1
port = $DS_TEST_MYSQL_PORT
user = root
database = ${dbs[i]}
[apply]
tables = items accounts tags
batch_max = 50
batch_wait_ms = 20
[log]
level = info
EOF
done
for i in "${producers[@]}"; do
    ((i == sql_node)) && continue # no libdatasync: its capture's below
    cat >"$cdir/producer-${nodes[i]}.conf" <<EOF
# The chaos run's producer of node ${nodes[i]} (tests/chaos/run.sh).
# chaos_producer stamps its own versions (ds_emit_event), observing the
# row's stored version under lock; clock_file is the server's all the same.
[node]
id = ${nodes[i]}
clock_file = $cdir/clock-${nodes[i]}
[amqp]
url = $amqp_direct
exchange = chaos
queue_type = $queue_type
heartbeat = 5
[producer]
mode = sync
spool_dir = $cdir/spool-${nodes[i]}
confirm_timeout_ms = 2000
[log]
level = info
EOF
done

# datasync-capture of the SQL-only node reads its consumer's configuration,
# as datasync-capture@.service reads datasync-consumer@'s (node, clock
# file, broker, through the proxy when that consumer is proxied, database,
# tables), plus its own sections. The binlog is the one MariaDB's, where
# every node's database is: only chaos_c's tables are its (mysql.database),
# and of the changes there, those chaos-c's consumer applies are not
# captured again (loop prevention).
{
    cat "$cdir/consumer-${nodes[sql_node]}.conf"
    cat <<EOF
[producer]
spool_dir = $cdir/spool-${nodes[sql_node]}
confirm_timeout_ms = 2000
[capture]
server_id = 4201
state_file = $cdir/capture-${nodes[sql_node]}.state
EOF
} >"$cdir/capture-${nodes[sql_node]}.conf"

if ! "$cli_bin" -c "$cdir/consumer-${nodes[0]}.conf" setup --nodes "$(IFS=,; echo "${nodes[*]:0:active},$tap")" \
    >>"$cdir/setup.log" 2>&1; then
    echo "chaos: datasync setup failed (see $cdir/setup.log)" >&2
    exit 1
fi

# ------------------------------------------------------------- processes

# start_consumer I: starts node I's consumer; waits (up to 20 s) until it
# consumes. Returns 1 if it exited at start-up (the broker or the database
# is down: reconcile starts it again later, as a supervisor would).
start_consumer() {
    local i=$1 log=$cdir/consumer-${nodes[$1]}.log k
    cons_log_start[i]=$(stat -c %s "$log" 2>/dev/null || echo 0)
    env DS_CHAOS_RUN="$cdir" "$consumer_bin" -c "$cdir/consumer-${nodes[i]}.conf" >>"$log" 2>&1 &
    cons_pid[i]=$!
    for ((k = 0; k < 200; k++)); do
        if tail -c +$((cons_log_start[i] + 1)) "$log" 2>/dev/null | grep 'datasync-consumer [0-9]' >/dev/null; then
            return 0
        fi
        ds_svc_alive "${cons_pid[i]}" || break
        sleep 0.1
    done
    ds_svc_alive "${cons_pid[i]}" && return 0
    local rc=0
    wait "${cons_pid[i]}" 2>/dev/null || rc=$?
    note "consumer ${nodes[i]} exited at start-up (exit $rc); started again later"
    cons_pid[i]=""
    return 1
}

prod_incarnation=(0 0 0)
# start_producer P: producer P (an index into producers): chaos_producer
# emitting through libdatasync, or on the SQL-only node writing SQL alone.
start_producer() {
    local p=$1 i=${producers[$1]} args
    prod_incarnation[p]=$((prod_incarnation[p] + 1))
    if ((i == sql_node)); then
        args=(--sql-only "$cdir/sql-${nodes[i]}.log")
    else
        args=(-c "$cdir/producer-${nodes[i]}.conf" --emitted "$cdir/emitted-${nodes[i]}.log"
            --spool "$cdir/spool-${nodes[i]}" --drain-timeout 90)
    fi
    env DS_CHAOS_RUN="$cdir" "$producer_bin" "${args[@]}" --node "${nodes[i]}" --db "${dbs[i]}" \
        --port "$DS_TEST_MYSQL_PORT" --seed $((seed * 1000 + p * 100 + prod_incarnation[p])) \
        --rate "$rate" >>"$cdir/producer-${nodes[i]}.log" 2>&1 &
    prod_pid[p]=$!
}

# start_capture: starts the SQL-only node's datasync-capture and waits (up
# to 20 s) until it reads the binlog or, the database being down, says it
# waits for it. It waits out database and broker outages by itself; should
# it exit all the same, reconcile starts it again, as systemd's
# Restart=on-failure would, and the run fails (it died on its own).
start_capture() {
    local log=$cdir/capture-${nodes[sql_node]}.log k
    capture_log_start=$(stat -c %s "$log" 2>/dev/null || echo 0)
    capture_runs=$((capture_runs + 1))
    env DS_CHAOS_RUN="$cdir" "$capture_bin" -c "$cdir/capture-${nodes[sql_node]}.conf" >>"$log" 2>&1 &
    capture_pid=$!
    for ((k = 0; k < 200; k++)); do
        tail -c +$((capture_log_start + 1)) "$log" 2>/dev/null |
            grep -qE 'reading the binlog after|; again in [0-9]+ s' && return 0
        ds_svc_alive "$capture_pid" || break
        sleep 0.1
    done
    return 0 # keep_capture looks after it
}

# Starts the capture if it is not running; one that exited on its own is
# recorded (a bug: it waits out outages).
keep_capture() {
    local rc=0
    if [[ -n "$capture_pid" ]] && ! ds_svc_alive "$capture_pid"; then
        wait "$capture_pid" 2>/dev/null || rc=$?
        unexpected+=("datasync-capture exit $rc")
        note "UNEXPECTED: datasync-capture (pid $capture_pid) exited on its own with status $rc: $(tail -c +$((capture_log_start + 1)) "$cdir/capture-${nodes[sql_node]}.log" | grep -E ' (error|ERROR)' | tail -1)"
        capture_pid=""
    fi
    [[ -n "$capture_pid" ]] || start_capture
}

# spool_backlog DIR: the bytes waiting in a libdatasync spool (spool.log
# past the offset spool.head holds; tests/lib/support.c ts_spool_backlog).
spool_backlog() {
    local size head
    [[ -f "$1/spool.log" ]] || { echo 0; return; }
    size=$(stat -c %s "$1/spool.log")
    head=$(od -An -t u8 -N 8 "$1/spool.head" 2>/dev/null | tr -d ' ')
    echo $((size > ${head:-0} ? size - ${head:-0} : 0))
}

# Starts whatever should run and does not: a consumer that exited at
# start-up, or a process that died on its own (recorded: that is a bug).
keep_consumers() {
    local i rc log
    for ((i = 0; i < active; i++)); do
        if [[ -n "${cons_pid[i]}" ]] && ! ds_svc_alive "${cons_pid[i]}"; then
            rc=0
            wait "${cons_pid[i]}" 2>/dev/null || rc=$?
            log=$cdir/consumer-${nodes[i]}.log
            if tail -c +$((cons_log_start[i] + 1)) "$log" | grep 'datasync-consumer [0-9]' >/dev/null; then
                unexpected+=("consumer ${nodes[i]} exit $rc")
                note "UNEXPECTED: consumer ${nodes[i]} (pid ${cons_pid[i]}) exited on its own with status $rc"
            else
                note "consumer ${nodes[i]} exited at start-up (exit $rc)"
            fi
            cons_pid[i]=""
        fi
        [[ -n "${cons_pid[i]}" ]] || start_consumer "$i"
    done
}

reconcile() {
    local p rc
    keep_consumers
    keep_capture
    join_step
    for p in "${!producers[@]}"; do
        if [[ -n "${prod_pid[p]}" ]] && ! ds_svc_alive "${prod_pid[p]}"; then
            rc=0
            wait "${prod_pid[p]}" 2>/dev/null || rc=$?
            unexpected+=("producer ${nodes[producers[p]]} exit $rc")
            note "UNEXPECTED: producer ${nodes[producers[p]]} (pid ${prod_pid[p]}) exited on its own with status $rc"
            prod_pid[p]=""
        fi
        [[ -n "${prod_pid[p]}" ]] || start_producer "$p"
    done
}

# The emitted changes so far (lines of the emitted logs; a re-emitted
# change counts twice; the SQL writer's logged changes, committed or not):
# how much the late node got by the copy.
emitted_so_far() {
    cat "$cdir"/emitted-*.log "$cdir"/sql-*.log 2>/dev/null | wc -l
}

# consuming I: whether node I's consumer runs and, as its log says, is
# connected to the broker (started, or reconnected since its last trouble).
consuming() {
    local log=$cdir/consumer-${nodes[$1]}.log
    [[ -n "${cons_pid[$1]}" ]] && ds_svc_alive "${cons_pid[$1]}" || return 1
    tail -c +$((cons_log_start[$1] + 1)) "$log" 2>/dev/null |
        grep -E 'datasync-consumer [0-9]|broker: ' | tail -1 |
        grep -qE 'datasync-consumer [0-9]|, consuming datasync\.'
}

# The late node's join, one step per call (reconcile calls it after each
# fault, pause_joining during the pauses between faults, so a fault is over
# when it runs): collects a finished bootstrap attempt (on success
# chaos-d's consumer starts and is supervised from then on), and while the
# fault loop runs, from the seeded moment on, starts an attempt when none
# runs, a second after the last one failed. The peer is the seed's, or
# when its consumer is not consuming, the next one that is; none is: later.
join_step() {
    local rc=0 peer why now=${EPOCHREALTIME/[.,]/}
    ((joined)) && return 0
    if [[ -n "$boot_pid" ]]; then
        ds_svc_alive "$boot_pid" && return 0
        wait "$boot_pid" 2>/dev/null || rc=$?
        boot_pid=""
        if ((rc == 0)); then
            joined=$now
            active=$((late + 1))
            local t=$(((${EPOCHREALTIME/[.,]/} - fault_start) / 100000))
            join_text="at T+$(elapsed) s (fault period +$((t / 10)).$((t % 10)) s) from ${nodes[boot_peer]}, attempt $boot_attempts; $boot_emitted changes emitted before it began"
            note "JOIN ${nodes[late]}: bootstrap attempt $boot_attempts from ${nodes[boot_peer]} succeeded ($(grep -o 'done: [^.]*' "$cdir/bootstrap-${nodes[late]}.log" | tail -1)); starting its consumer"
            start_consumer "$late" || true # else keep_consumers starts it
            return 0
        fi
        why=$(tail -n 3 "$cdir/bootstrap-${nodes[late]}.log" | grep -v '^bootstrap: ' | tail -1)
        note "JOIN ${nodes[late]}: bootstrap attempt $boot_attempts from ${nodes[boot_peer]} failed (exit $rc: ${why:-see the log}); run again after the fault"
        boot_retry=$((now + 1000000))
    fi
    ((faulting && now >= join_due && now >= boot_retry)) || return 0
    for ((peer = join_peer; peer < join_peer + late; peer++)); do
        consuming $((peer % late)) && break
    done
    ((peer < join_peer + late)) || return 0
    boot_peer=$((peer % late))
    boot_attempts=$((boot_attempts + 1))
    boot_emitted=$(emitted_so_far)
    note "JOIN ${nodes[late]}: bootstrap attempt $boot_attempts from ${nodes[boot_peer]} ($boot_emitted changes emitted so far)"
    echo "=== attempt $boot_attempts, T+$(elapsed) s, from ${nodes[boot_peer]}" >>"$cdir/bootstrap-${nodes[late]}.log"
    env DS_CHAOS_RUN="$cdir" "$cli_bin" bootstrap --from "$cdir/consumer-${nodes[boot_peer]}.conf" \
        --to "$cdir/consumer-${nodes[late]}.conf" --peer-wait 120 \
        >>"$cdir/bootstrap-${nodes[late]}.log" 2>&1 &
    boot_pid=$!
}

# pause_joining TENTHS: a pause between faults, with the join going on.
pause_joining() {
    local k
    for ((k = 0; k < $1; k++)); do
        sleep 0.1
        join_step
    done
}

# kill -9 and reap.
kill9() {
    kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}

# ---------------------------------------------------------------- faults

# pick_consumer: a supervised consumer's index into I, with one draw
# whether chaos-d joined or not (12: uniform over 3 and over 4).
pick_consumer() {
    rnd 12
    I=$((R % active))
}

fault_consumer_kill() {
    local i
    pick_consumer; i=$I
    [[ -n "${cons_pid[i]}" ]] || start_consumer "$i" || return 0
    rnd 28; local down=$((R + 2))
    fault "consumer_kill ${nodes[i]} pid ${cons_pid[i]} (kill -9), down $((down / 10)).$((down % 10)) s"
    kill9 "${cons_pid[i]}"
    cons_pid[i]=""
    nap "$down"
    start_consumer "$i"
}

fault_producer_kill() {
    local p
    rnd ${#producers[@]}; p=$R
    rnd 18; local down=$((R + 2))
    fault "producer_kill ${nodes[producers[p]]} pid ${prod_pid[p]} (kill -9), down $((down / 10)).$((down % 10)) s"
    kill9 "${prod_pid[p]}"
    prod_pid[p]=""
    nap "$down"
    start_producer "$p"
}

fault_capture_kill() {
    rnd 28; local down=$((R + 2))
    fault "capture_kill ${nodes[sql_node]}'s datasync-capture pid $capture_pid (kill -9), down $((down / 10)).$((down % 10)) s"
    kill9 "$capture_pid"
    capture_pid=""
    nap "$down"
    start_capture
}

fault_broker_restart() {
    fault "broker_restart (services.sh rabbit restart)"
    "$services" rabbit restart >>"$cdir/services.log" 2>&1 ||
        note "rabbit restart failed (see $cdir/services.log)"
    note "broker back"
}

# outage SERVICE ACTION TENTHS WHAT MEANWHILE: takes SERVICE (rabbit,
# maria, member:N) down with svc_do SERVICE ACTION, half the time runs the
# function MEANWHILE while it is down, a third of the time kills the
# capture too, and starts it again TENTHS tenths of a second later.
outage() {
    local svc=$1 action=$2 down=$3 what=$4 meanwhile=$5
    svc_do "$svc" "$action" >>"$cdir/services.log" 2>&1 || note "$svc $action failed"
    rnd 2
    ((R == 0)) && "$meanwhile"
    rnd 3
    ((R == 0)) && kill_capture_meanwhile "$svc"
    nap "$down"
    svc_do "$svc" start >>"$cdir/services.log" 2>&1 || note "$svc start failed (see $cdir/services.log)"
    note "$what back"
}

# The producer's spool holds what it emitted since: it must survive.
kill_producer_meanwhile() {
    local p
    sleep 0.5
    rnd ${#producers[@]}; p=$R
    fault "producer_kill ${nodes[producers[p]]} pid ${prod_pid[p]} (kill -9) while the broker is down; restarted at once"
    kill9 "${prod_pid[p]}"
    prod_pid[p]=""
    start_producer "$p"
}

# Its batch in hand is rolled back, unacked: it must come again.
kill_consumer_meanwhile() {
    local i
    pick_consumer; i=$I
    [[ -n "${cons_pid[i]}" ]] || return 0
    fault "consumer_kill ${nodes[i]} pid ${cons_pid[i]} (kill -9) while the database is down; restarted at once"
    kill9 "${cons_pid[i]}"
    cons_pid[i]=""
    start_consumer "$i" # exits at start-up: started again later
}

# Broker down: what it emitted since is in its spool; database down: it
# starts again without it. Either way it resumes from its state file.
kill_capture_meanwhile() { # SERVICE
    sleep 0.3
    [[ -n "$capture_pid" ]] || return 0
    fault "capture_kill ${nodes[sql_node]}'s datasync-capture pid $capture_pid (kill -9) while $1 is down; restarted at once"
    kill9 "$capture_pid"
    capture_pid=""
    start_capture
}

fault_broker_kill() {
    rnd 30; local down=$((R + 10))
    fault "broker_kill (services.sh rabbit kill), down $((down / 10)).$((down % 10)) s before start"
    outage rabbit kill "$down" broker kill_producer_meanwhile
}

fault_maria_stop() {
    rnd 40; local down=$((R + 20))
    fault "maria_stop (services.sh maria stop), down $((down / 10)).$((down % 10)) s"
    outage maria stop "$down" database kill_consumer_meanwhile
}

fault_blackhole() {
    rnd 120; local hold=$((R + 30)) how
    rnd 2
    how=$([[ $R == 0 ]] && echo resume || echo close)
    fault "blackhole ${nodes[proxied]}'s broker connection for $((hold / 10)).$((hold % 10)) s, then $how"
    kill -USR1 "$proxy_pid"
    nap "$hold"
    if [[ $how == resume ]]; then
        kill -USR2 "$proxy_pid"
    else
        kill -HUP "$proxy_pid"
    fi
}

kinds=(consumer_kill producer_kill capture_kill broker_restart broker_kill maria_stop blackhole)
((cluster)) && kinds=(consumer_kill producer_kill capture_kill node_kill_connected node_kill_leader
    node_restart partition maria_stop blackhole)

# ------------------------------------------------------------------- run

for ((i = 0; i < active; i++)); do
    start_consumer "$i" || { echo "chaos: consumer ${nodes[i]} does not start (see $cdir/consumer-${nodes[i]}.log)" >&2; exit 1; }
done
# The capture first: a first start begins at the binlog's current position.
start_capture
for ((k = 0; k < 100; k++)); do
    [[ -s "$cdir/capture-${nodes[sql_node]}.state" ]] && break
    sleep 0.1
done
[[ -s "$cdir/capture-${nodes[sql_node]}.state" ]] ||
    { echo "chaos: datasync-capture did not start (see $cdir/capture-${nodes[sql_node]}.log)" >&2; exit 1; }
for p in "${!producers[@]}"; do
    start_producer "$p"
done
note "3 consumers, 2 producers, 1 SQL writer with datasync-capture running; faults start in 3 s"
sleep 3

fault_end=$((${EPOCHREALTIME/[.,]/} + duration * 1000000))
fault_start=$((fault_end - duration * 1000000))
join_due=$((fault_start + join_at * 100000))
round=()
faulting=1
# The period, or longer while chaos-d has not joined (bounded).
while ((${EPOCHREALTIME/[.,]/} < fault_end ||
    (!joined && ${EPOCHREALTIME/[.,]/} < fault_end + join_grace * 1000000))); do
    if ((${#round[@]} == 0)); then
        # A new round: every kind once, in a seeded random order.
        round=("${kinds[@]}")
        for ((k = ${#round[@]} - 1; k > 0; k--)); do
            rnd $((k + 1))
            tmp=${round[k]}; round[k]=${round[R]}; round[R]=$tmp
        done
    fi
    kind=${round[0]}
    round=("${round[@]:1}")
    "fault_$kind"
    reconcile
    rnd 30
    pause_joining $((R + 10))
    reconcile
done

# ------------------------------------------------------------------- end

faulting=0
# The last fault may overrun the period; only a join after it extends it.
extended=$((((joined ? joined : ${EPOCHREALTIME/[.,]/}) - fault_end) / 100000))
if ((extended > 0)); then
    extended="$((extended / 10)).$((extended % 10))"
    note "fault period extended by $extended s while ${nodes[late]} had not joined"
else
    extended=""
fi
note "faults stop; bringing everything up"
kill -USR2 "$proxy_pid" 2>/dev/null
if ((cluster)); then
    cluster_all_up
else
    "$services" rabbit start >>"$cdir/services.log" 2>&1 || note "rabbit start failed"
fi
"$services" maria start >>"$cdir/services.log" 2>&1 || note "maria start failed"
reconcile
if [[ -n "$boot_pid" ]]; then
    # Begun during the faults: it may finish (its peer must keep running).
    note "waiting for the bootstrap attempt in progress"
    k=0
    while [[ -n "$boot_pid" ]] && ((k++ < 1500)); do
        ((k % 20 == 0)) && keep_consumers
        join_step
        sleep 0.1
    done
    if [[ -n "$boot_pid" ]]; then
        note "bootstrap attempt $boot_attempts still running after 150 s: stopped"
        stop_pid "$boot_pid" 5
        boot_pid=""
    fi
fi
((joined)) || note "FAIL: ${nodes[late]} never joined: no bootstrap attempt succeeded during the faults ($boot_attempts attempts)"
[[ -n "$extended" ]] && infos_join=(--info "$(printf 'fault period extended\tby %s s, while %s had not joined' "$extended" "${nodes[late]}")")

note "stopping the producers (each empties its outbox and waits for its spool)"
prod_status=()
for p in "${!producers[@]}"; do
    kill -TERM "${prod_pid[p]}" 2>/dev/null
done
for p in "${!producers[@]}"; do
    # Their drain timeout is 90 s; consumers must keep running meanwhile.
    for ((k = 0; k < 1000; k++)); do
        ds_svc_alive "${prod_pid[p]}" || break
        ((k % 20 == 0)) && keep_consumers
        sleep 0.1
    done
    rc=0
    stop_pid "${prod_pid[p]}" 1 || rc=$?
    prod_status+=("${nodes[producers[p]]}: exit $rc;")
    note "producer ${nodes[producers[p]]} stopped: exit $rc ($(grep -o 'final: .*' "$cdir/producer-${nodes[producers[p]]}.log" | tail -1))"
    prod_pid[p]=""
done

# The SQL writer's last transaction is before the binlog's position now:
# the capture is done once its saved position (saved only when all it
# emitted before is confirmed or spooled) reaches it and its spool is
# empty. Then it stops (SIGTERM: flush, save, exit 0).
binlog_end=$(msql -N -e 'SELECT @@gtid_binlog_pos' 2>/dev/null)
note "waiting for datasync-capture to reach the binlog position $binlog_end and empty its spool"
capture_state=$cdir/capture-${nodes[sql_node]}.state
capture_spool=$cdir/spool-${nodes[sql_node]}
caught_up=0
for ((k = 0; k < 1200; k++)); do
    saved=$(head -n 1 "$capture_state" 2>/dev/null) # the position; then its clock
    if [[ "$saved" =~ -([0-9]+)$ && "$binlog_end" =~ -([0-9]+)$ ]] &&
        ((${saved##*-} >= ${binlog_end##*-})) && (($(spool_backlog "$capture_spool") == 0)); then
        caught_up=1
        break
    fi
    ((k % 20 == 0)) && { keep_consumers; keep_capture; }
    sleep 0.1
done
((caught_up)) || note "datasync-capture did NOT reach $binlog_end in 120 s (saved: ${saved:-none}; spool $(spool_backlog "$capture_spool") bytes)"
rc=0
stop_pid "$capture_pid" 30 || rc=$?
capture_pid=""
capture_status="exit $rc after $capture_runs starts; $(grep -o 'stopped at .*' "$cdir/capture-${nodes[sql_node]}.log" | tail -1)"
note "datasync-capture stopped: $capture_status"
((rc == 0)) || unexpected+=("datasync-capture stop: exit $rc")

note "waiting for the queues to drain"
sig_sql=""
for db in "${dbs[@]:0:active}"; do
    sig_sql+="${sig_sql:+ UNION ALL }SELECT COUNT(*), SUM(hlc), SUM(deleted) FROM $db.datasync_versions"
done
drain_start=${EPOCHREALTIME/[.,]/}
drained=0
last_sig=""
while (((${EPOCHREALTIME/[.,]/} - drain_start) < 120 * 1000000)); do
    keep_consumers
    queues=$(broker_ctl list_queues -q --no-table-headers name messages messages_unacknowledged consumers)
    busy=0
    for n in "${nodes[@]:0:active}"; do
        line=$(awk -v q="datasync.$n" '$1 == q' <<<"$queues")
        read -r _ msgs unacked ncons <<<"$line"
        if [[ -z "$line" || "${msgs:-1}" != 0 || "${unacked:-1}" != 0 || "${ncons:-0}" == 0 ]]; then
            busy=1
        fi
    done
    sig=$(msql -N -e "$sig_sql" 2>/dev/null | tr '\n\t' '  ')
    if ((!busy)) && [[ -n "$sig" && "$sig" == "$last_sig" ]]; then
        drained=1
        break
    fi
    last_sig=$sig
    sleep 1
done
drain_s=$(((${EPOCHREALTIME/[.,]/} - drain_start) / 1000000))
if ((drained)); then
    note "queues drained in $drain_s s"
else
    note "queues NOT drained after $drain_s s: $(tr '\n' ';' <<<"$queues")"
fi

note "stopping the consumers"
for ((i = 0; i < active; i++)); do
    rc=0
    stop_pid "${cons_pid[i]}" 10 || rc=$?
    ((rc == 0)) || note "consumer ${nodes[i]} stopped with status $rc"
    cons_pid[i]=""
done
stop_pid "$proxy_pid" 5
proxy_pid=""

# Reconnections of a producer or the capture that found the broker not yet
# running the archive stream again (libdatasync waits: RabbitMQ would have
# confirmed their changes for the node queues alone, producer/io.c).
archive_waits=$(cat "$cdir"/producer-*.log "$cdir"/capture-*.log 2>/dev/null |
    grep -c 'is starting: archive stream' || true)
infos=(
    "${infos_join[@]}"
    --info "$(printf 'archive waits\t%s' "$archive_waits reconnections found the broker starting the archive stream and waited")"
    --info "$(printf 'proxied consumer\t%s (through chaos_proxy)%s' "${nodes[proxied]}" "$( ((proxied == sql_node)) && echo ', its datasync-capture too')")"
    --info "$(printf 'broker\t%s' "$( ((cluster)) && echo "3-node cluster, quorum queues" || echo "one node, classic queues")")"
    --info "$(printf 'producers\t%s' "${prod_status[*]}")"
    --info "$(printf 'capture (%s)\t%s' "${nodes[sql_node]}" "$capture_status")"
    --info "$(printf 'queues drained\t%s' "$( ((drained)) && echo "yes, in $drain_s s after the producers stopped" || echo "NO, gave up after $drain_s s")")"
    --info "$(printf 'run folder\t%s' "$cdir")"
)
node_args=()
for i in "${!nodes[@]}"; do
    node_args+=(--node "${nodes[i]}=${dbs[i]}")
done
check_rc=0
"$check_bin" --port "$DS_TEST_MYSQL_PORT" --amqp "$amqp_direct" \
    "${node_args[@]}" --joined "${nodes[late]}=$join_text" \
    --emitted "$cdir/emitted-chaos-a.log" --emitted "$cdir/emitted-chaos-b.log" \
    --captured "${nodes[sql_node]}=$cdir/sql-${nodes[sql_node]}.log" \
    --tap "datasync.$tap" --archive chaos.archive \
    --spool "$cdir/spool-chaos-a" --spool "$cdir/spool-chaos-b" --spool "$capture_spool" \
    --faults "$cdir/faults.log" --seed "$seed" --duration "$duration" \
    --details "$cdir/check-details.log" "${infos[@]}" \
    --died "${#unexpected[@]}${unexpected[*]:+ (${unexpected[*]})}" >"$cdir/summary.txt" 2>&1 || check_rc=$?
cat "$cdir/summary.txt"

# A copy of the service logs, so the folder tells the whole story.
mkdir -p "$cdir/services"
cp -r "$DS_TEST_RUNDIR/rabbit/log" "$cdir/services/rabbit" 2>/dev/null
for m in 1 2 3; do
    ((cluster)) && cp -r "$DS_TEST_RUNDIR/cluster/n$m/rabbit/log" "$cdir/services/rabbit-member$m" 2>/dev/null
done
cp "$DS_TEST_RUNDIR/maria/error.log" "$cdir/services/maria-error.log" 2>/dev/null

kill -KILL -- "-$watchdog_pid" 2>/dev/null
watchdog_pid=""

read -r -a left <<<"$(owned_pids | tr '\n' ' ')"
if ((${#left[@]})); then
    echo "chaos: FAIL: processes left behind: ${left[*]}: killing them" >&2
    kill -KILL "${left[@]}" 2>/dev/null
    check_rc=1
fi

if ((own_services)); then
    timeout 120 "$services" down >/dev/null 2>&1
elif ((cluster_started)); then
    timeout 120 "$services" cluster down >/dev/null 2>&1
fi

if ((check_rc == 0 && ${#unexpected[@]} == 0)); then
    status=0
    if [[ "$keep" == 1 ]]; then
        echo "chaos: PASS; run folder kept: $cdir"
    else
        echo "chaos: PASS (run folder removed; --keep or DS_TEST_KEEP=1 keeps it)"
        rm -rf "$cdir"
        ((own_services)) && rm -rf "$DS_TEST_RUNDIR"
    fi
else
    status=1
    ((${#unexpected[@]})) && echo "chaos: FAIL: processes died on their own: ${unexpected[*]}"
    if ((own_services)); then
        echo "chaos: FAIL; logs kept: $cdir (service logs under $DS_TEST_RUNDIR)"
    else
        echo "chaos: FAIL; logs kept: $cdir"
    fi
fi
finished=1
exit "$status"
