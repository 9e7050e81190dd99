#!/usr/bin/env bash
# test_cluster.sh: a 3-node RabbitMQ cluster with quorum queues: kill -9 of the node the clients use, then of the queue's leader, while an application emits; nothing lost, everything applied, failover time measured.
#
# Run by tests/run.sh with the private services up (DS_TEST_* set). Starts
# a cluster of three private nodes (tests/lib/services.sh cluster, under
# the run directory) next to the runner's node, and uses the runner's
# MariaDB. Server c1 runs a host application (tests/chaos/chaos_producer:
# writes its database, then emits through libdatasync); c1 and c2 run
# datasync-consumer. Every program lists the three nodes in amqp.url.
# At the end c2's rows must equal c1's, and no dead letter may exist.
set -euo pipefail

TEST=test_cluster
# shellcheck source=../lib/testlib.sh
source "$(dirname "$0")/../lib/testlib.sh"

say() { echo "$(date -u '+%H:%M:%S.%3N') test_cluster: $*"; }

require_env DS_TEST_RUNDIR DS_TEST_BUILD DS_TEST_ROOT DS_TEST_SERVICES DS_TEST_MYSQL_SOCKET DS_TEST_MYSQL_PORT

work=$(mktemp -d "$DS_TEST_RUNDIR/cluster.XXXXXX")
ds=$DS_TEST_BUILD/datasync
sql() { timeout 60 "$DS_TEST_SERVICES" maria sql "$@"; }
cluster() { timeout 240 "$DS_TEST_SERVICES" cluster "$@"; }
declare -A consumer=()
app=""
probe=""

cleanup() {
    local rc=$?
    trap - EXIT
    stop_pid "$app" 120
    stop_pid "$probe" 120
    for n in "${!consumer[@]}"; do stop_pid "${consumer[$n]}" 120; done
    cluster down >/dev/null 2>&1 || true
    if ((rc != 0)); then
        show_logs 15 "$work"/*.log
    fi
    exit "$rc"
}
trap cleanup EXIT

# ------------------------------------------------------------ the cluster
cluster start >"$work/cluster.log" 2>&1 || fail "the cluster did not start: $(tail -n 20 "$work/cluster.log")"
eval "$(cluster env)"
read -r -a ports <<<"$DS_TEST_CLUSTER_PORTS"
read -r -a nodes <<<"$DS_TEST_CLUSTER_NODES"
((${#ports[@]} == 3)) || fail "cluster env: ports '$DS_TEST_CLUSTER_PORTS'"
say "cluster up: ${nodes[*]} (amqp ${ports[*]})"

member_of_node() { # ERLANG-NODE -> 1..3
    local i
    for i in 0 1 2; do
        [[ "${nodes[$i]}" == "$1" ]] && echo $((i + 1)) && return 0
    done
    return 1
}
# rabbitmqctl on a member that is up (any other than $1).
ctl_on_live() { # DEAD-MEMBER ARGS...
    local m
    for m in 1 2 3; do
        [[ "$m" == "$1" ]] && continue
        cluster ctl "$m" "${@:2}" 2>/dev/null && return 0
    done
    return 1
}

write_conf() { # NODE
    cat >"$work/$1.conf" <<EOF
[node]
id = $1
clock_file = $work/$1.clock
[amqp]
url = $DS_TEST_CLUSTER_URLS
exchange = datasync-cl
queue_type = quorum
heartbeat = 5
[mysql]
socket = $DS_TEST_MYSQL_SOCKET
user = root
database = cl_$1
[apply]
tables = items accounts tags
batch_wait_ms = 5
[producer]
spool_dir = $work/spool-$1
confirm_timeout_ms = 5000
# With the archive stream, as by default: on RabbitMQ 3.10 a channel that
# published to a stream or quorum queue whose leader's node was killed
# keeps nacking; the producer opens a new connection after repeated nacks.
EOF
}

for n in c1 c2; do
    write_conf "$n"
    sql -e "DROP DATABASE IF EXISTS cl_$n; CREATE DATABASE cl_$n CHARACTER SET utf8mb4"
    sql "cl_$n" <"$DS_TEST_ROOT/tests/chaos/schema.sql"
done
timeout 120 "$ds" -c "$work/c1.conf" setup --nodes c1,c2 >"$work/setup.log" 2>&1 ||
    fail "setup: $(cat "$work/setup.log")"

# Quorum queues over the three nodes, dead-letter queues too.
cluster ctl 1 list_queues name type members arguments >"$work/queues.txt" 2>&1 ||
    fail "list_queues: $(cat "$work/queues.txt")"
for q in datasync.c2 datasync.c2.dead datasync.c1 datasync.c1.dead; do
    line=$(grep -P "^\Q$q\E\t" "$work/queues.txt") || fail "no queue $q: $(cat "$work/queues.txt")"
    [[ "$line" == *$'\tquorum\t'* ]] || fail "$q is not a quorum queue: $line"
    for node in "${nodes[@]}"; do
        [[ "$line" == *"$node"* ]] || fail "$q has no replica on $node: $line"
    done
    [[ "$line" == *'{"x-quorum-initial-group-size",3}'* ]] || fail "$q was not declared with 3 replicas: $line"
done
say "setup: quorum queues and dead-letter queues with 3 replicas"

# The failover probe: datasync publish of one change, again and again, to
# an exchange of its own whose one queue (quorum, no archive) nobody
# consumes; probe.txt gets "EPOCHREALTIME ok|failed" per attempt.
cat >"$work/probe.conf" <<EOF
[node]
id = probe
clock_file =
[amqp]
url = $DS_TEST_CLUSTER_URLS
exchange = datasync-probe
queue_type = quorum
[producer]
spool_dir = $work/spool-probe
confirm_timeout_ms = 2000
[archive]
enabled = false
EOF
timeout 120 "$ds" -c "$work/probe.conf" setup >"$work/probe-setup.log" 2>&1 ||
    fail "setup of the probe: $(cat "$work/probe-setup.log")"
(
    while [[ ! -e "$work/probe.stop" ]]; do
        if timeout 30 "$ds" -c "$work/probe.conf" publish --op create --table probe --key '{"id":1}' \
            --data '{"id":1}' >>"$work/probe.log" 2>&1; then
            echo "$EPOCHREALTIME ok"
        else
            echo "$EPOCHREALTIME failed"
        fi >>"$work/probe.txt"
        sleep 0.05
    done
) &
probe=$!

start_consumer() { # NODE
    "$DS_TEST_BUILD/datasync-consumer" -c "$work/$1.conf" >>"$work/consumer-$1.log" 2>&1 &
    consumer[$1]=$!
}
start_consumer c1
start_consumer c2
"$DS_TEST_BUILD/tools/chaos_producer" -c "$work/c1.conf" --node c1 --db cl_c1 \
    --host 127.0.0.1 --port "$DS_TEST_MYSQL_PORT" --emitted "$work/emitted-c1.txt" \
    --spool "$work/spool-c1" --seed 11 --rate 150 >>"$work/app-c1.log" 2>&1 &
app=$!

emitted() { cat "$work/emitted-c1.txt" 2>/dev/null | wc -l; }

# Waits until the application emitted $1 more changes (up to 120 s).
wait_emitted() { # COUNT WHY
    local want=$(($(emitted) + $1))
    for _ in $(seq 1 1200); do
        (($(emitted) >= want)) && return 0
        kill -0 "$app" 2>/dev/null || fail "the application exited (${2})"
        sleep 0.1
    done
    fail "the application emitted fewer than $1 changes in 120 s ($2)"
}

# The port of the last "connected" line of a log written after a moment.
connected_port() { # LOG PATTERN
    grep -a "$2" "$1" | tail -n 1 | sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p'
}

# The epoch time of the first line of log $1 after line $2 matching $3, by
# the line's own UTC timestamp (both log formats).
stamp_of() { # LOG FROM-LINE PATTERN
    local line stamp
    # Not tail | grep -m1: under pipefail tail's SIGPIPE would fail it.
    line=$(grep -a -m1 "$3" < <(tail -n +"$(($2 + 1))" "$1")) || return 1
    stamp=$(grep -oE '^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9:]{8}\.[0-9]{3}' <<<"$line") || return 1
    date -u -d "${stamp/T/ } UTC" +%s.%N
}
since() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

wait_emitted 200 "before the first kill"
p=$(connected_port "$work/app-c1.log" "connected to broker")
[[ "$p" == "${ports[0]}" ]] || fail "the producer is on port '$p', expected the first URL's ${ports[0]}"
# The consumer says where it is at start, and again at every reconnection.
cons_pat='connected to\|) on 127\.0\.0\.1:'
[[ "$(connected_port "$work/consumer-c2.log" "$cons_pat")" == "${ports[0]}" ]] ||
    fail "consumer c2 is not on the first URL's node"

# --------------------- 1. kill -9 of the node the clients are connected to
app_lines=$(wc -l <"$work/app-c1.log")
cons_lines=$(wc -l <"$work/consumer-c2.log")
t0=$EPOCHREALTIME
cluster kill 1 >>"$work/cluster.log" 2>&1 || fail "kill of member 1"
say "killed -9 member 1 (${nodes[0]}), the node every client was connected to"
wait_emitted 200 "after killing member 1"
p=$(connected_port "$work/app-c1.log" "connected to broker")
[[ -n "$p" && "$p" != "${ports[0]}" ]] || fail "the producer did not move to another node (port '$p')"
# Failover, from the moment the producer saw its connection die (a kill -9
# on loopback resets it at once): to its reconnection, to the first change
# a fresh client got confirmed (the probe); the producer's spool drained
# (everything it held back confirmed) is reported at the end.
lost=$(stamp_of "$work/app-c1.log" "$app_lines" "socket error\|connection closed\|unreachable") ||
    fail "the producer did not notice the kill"
t=$(stamp_of "$work/app-c1.log" "$app_lines" "connected to broker") && fo_conn=$(since "$lost" "$t") || fo_conn="?"
t=$(stamp_of "$work/consumer-c2.log" "$cons_lines" "$cons_pat") && fo_cons=$(since "$lost" "$t") || fo_cons="?"
t=$(awk -v l="$lost" '$2 == "ok" && $1 > l { print $1; exit }' "$work/probe.txt") && [[ -n "$t" ]] &&
    fo_probe=$(since "$lost" "$t") || fo_probe="?"
first_lines=$app_lines
say "failover after kill -9 of the connected node: producer reconnected to port $p in $fo_conn s, consumer c2 in $fo_cons s; first confirmed publish (probe) after $fo_probe s"

cluster start 1 >>"$work/cluster.log" 2>&1 || fail "member 1 did not start again"
say "member 1 back"
wait_emitted 100 "after member 1 came back"

# ----------------------------------- 2. kill -9 of datasync.c2's leader
leader=$(ctl_on_live 0 list_queues name leader | awk -F'\t' '$1 == "datasync.c2" { print $2 }')
m=$(member_of_node "$leader") || fail "datasync.c2's leader '$leader' is not a cluster member"
app_lines=$(wc -l <"$work/app-c1.log")
t0=$EPOCHREALTIME
cluster kill "$m" >>"$work/cluster.log" 2>&1 || fail "kill of member $m"
say "killed -9 member $m ($leader), the leader of datasync.c2"
wait_emitted 200 "after killing the leader"
newleader=$(ctl_on_live "$m" list_queues name leader | awk -F'\t' '$1 == "datasync.c2" { print $2 }')
[[ -n "$newleader" && "$newleader" != "$leader" ]] || fail "datasync.c2 has no new leader ('$newleader')"
say "datasync.c2's new leader: $newleader"
cluster start "$m" >>"$work/cluster.log" 2>&1 || fail "member $m did not start again"
say "member $m back"
wait_emitted 100 "after member $m came back"

# ------------------------------------------------------------ the outcome
touch "$work/probe.stop"
stop_pid "$probe" 120
probe=""
# SIGTERM: it empties its outbox and the spool, or exits 3.
kill -TERM "$app"
rc=0
timeout 150 tail --pid="$app" -f /dev/null || true
wait "$app" || rc=$?
app=""
((rc == 0)) || fail "the application could not hand over every change (exit $rc)"
total=$(emitted)
t=$(stamp_of "$work/app-c1.log" "$first_lines" "drained") && fo_drain=$(since "$lost" "$t") || fo_drain="?"
say "the producer's spool, filled by nacks after the first kill, drained $fo_drain s after it"

state() { # NODE
    sql -N "cl_$1" -e "SELECT * FROM items ORDER BY id; SELECT * FROM accounts ORDER BY id;
        SELECT * FROM tags ORDER BY k1, k2"
}
for _ in $(seq 1 180); do
    [[ "$(state c1 | md5sum)" == "$(state c2 | md5sum)" ]] && break
    sleep 0.5
done
if [[ "$(state c1 | md5sum)" != "$(state c2 | md5sum)" ]]; then
    state c1 >"$work/state-c1.txt"
    state c2 >"$work/state-c2.txt"
    diff "$work/state-c1.txt" "$work/state-c2.txt" | head -n 10 >&2 || true
    fail "c2's rows differ from c1's 90 s after the application stopped ($total changes emitted)"
fi
rows=$(state c1 | wc -l)
((rows > 0)) || fail "no rows at all"
ctl_on_live 0 list_queues name messages >"$work/depth.txt" || fail "list_queues at the end"
for q in datasync.c1.dead datasync.c2.dead; do
    d=$(awk -F'\t' -v q="$q" '$1 == q { print $2 }' "$work/depth.txt")
    [[ "$d" == 0 ]] || fail "$q holds '$d' dead letters"
done
say "$total changes emitted through two kill -9s; c2's $rows rows equal c1's; no dead letters"
say "PASS"
