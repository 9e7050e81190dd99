#!/usr/bin/env bash
# test_operator.sh: what operators run into with datasync-consumer: a database that comes up after it, a second consumer for the node, SIGHUP, bad command lines and configurations, a database user with only the documented grants.
#
# Run by tests/run.sh with the private services up (DS_TEST_* set). Own
# exchange, node and database names. MariaDB is stopped and started again
# once (the harness's own restart), and is up when this test ends.
set -euo pipefail

TEST=test_operator
# shellcheck source=../lib/testlib.sh
source "$(dirname "$0")/../lib/testlib.sh"


require_env DS_TEST_RUNDIR DS_TEST_BUILD DS_TEST_SERVICES DS_TEST_AMQP_URL DS_TEST_MYSQL_SOCKET
work=$(mktemp -d "$DS_TEST_RUNDIR/operator.XXXXXX")
consumer=$DS_TEST_BUILD/datasync-consumer
ds=$DS_TEST_BUILD/datasync
sql() { timeout 60 "$DS_TEST_SERVICES" maria sql "$@"; }
pids=()

cleanup() {
    local rc=$?
    trap - EXIT
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    "$DS_TEST_SERVICES" maria start >/dev/null 2>&1 || true
    if ((rc != 0)); then
        show_logs 20 "$work"/*.log
    fi
    exit "$rc"
}
trap cleanup EXIT

# ------------------------------------------------------- the database
sql -e "DROP DATABASE IF EXISTS optest; CREATE DATABASE optest CHARACTER SET utf8mb4;
  CREATE TABLE optest.kv (k INT PRIMARY KEY, v VARCHAR(32) NOT NULL);
  DROP USER IF EXISTS 'ds_consumer'@'localhost';
  CREATE USER 'ds_consumer'@'localhost' IDENTIFIED BY 'pw';
  GRANT SELECT, INSERT, UPDATE, DELETE ON optest.* TO 'ds_consumer'@'localhost'"
# The grants of datasync-consumer(8): a DBA creates the metadata tables.
sql optest <"$DS_TEST_ROOT/schemas/datasync-meta.sql"

conf() { # NAME NODE [EXTRA]
    cat >"$work/$1.conf" <<EOF
[node]
id = $2
clock_file =
[amqp]
url = $DS_TEST_AMQP_URL
exchange = datasync-op
[mysql]
socket = $DS_TEST_MYSQL_SOCKET
user = ds_consumer
password = pw
database = optest
[apply]
tables = kv
[producer]
spool_dir = $work/spool-$1
confirm_timeout_ms = 2000
${3:-}
EOF
}
conf op op-a
conf hx op-x
timeout 60 "$ds" -c "$work/op.conf" setup --nodes op-a >/dev/null || fail "setup"

publish() { # FIRST LAST VALUE
    local i
    for ((i = $1; i <= $2; i++)); do
        printf '{"op":"update","table":"kv","key":{"k":%d},"data":{"k":%d,"v":"%s"}}\n' "$i" "$i" "$3"
    done | timeout 60 "$ds" -c "$work/hx.conf" publish - >/dev/null || fail "publish $1..$2"
}
rows_with() { sql -N optest -e "SELECT COUNT(*) FROM kv WHERE v = '$1'"; }
wait_rows() { # VALUE COUNT
    for _ in $(seq 1 300); do
        [[ "$(rows_with "$1")" == "$2" ]] && return 0
        sleep 0.1
    done
    fail "kv holds $(rows_with "$1") rows '$1', want $2"
}

# ------------------------------------- 1. the database comes up after it
"$DS_TEST_SERVICES" maria stop >/dev/null || fail "maria stop"
"$consumer" -c "$work/op.conf" >"$work/first.log" 2>&1 &
first=$!
pids+=("$first")
wait_log "$work/first.log" 10 "start-up:"
# Stopped while it waits (systemctl stop before the database is up): a
# clean stop, exit 0, not a failed start.
"$consumer" -c "$work/op.conf" >"$work/stopped.log" 2>&1 &
stopped=$!
pids+=("$stopped")
wait_log "$work/stopped.log" 10 "start-up:"
kill -TERM "$stopped"
rc=0
wait "$stopped" || rc=$?
((rc == 0)) || fail "stopped while waiting for its database: exit $rc, want 0"
grep -q "stopped during start-up" "$work/stopped.log" || fail "the stop during start-up is not logged"
sleep 3
kill -0 "$first" 2>/dev/null || fail "the consumer gave up while the database was down"
"$DS_TEST_SERVICES" maria start >/dev/null || fail "maria start"
wait_log "$work/first.log" 30 ": datasync-consumer "
publish 1 50 one
wait_rows one 50
say "started before its database: waited, then applied 50 changes (grants: SELECT, INSERT, UPDATE, DELETE)"

# ------------------------------------- 2. a second consumer for the node
# The node queue has a single active consumer: a second one waits on it,
# is seen by status, applies nothing, and takes over when the first stops.
"$consumer" -c "$work/op.conf" >"$work/second.log" 2>&1 &
second=$!
pids+=("$second")
wait_log "$work/second.log" 20 "this one stands by and takes over when it leaves"
st=0
timeout 60 "$ds" -c "$work/op.conf" status --nodes op-a >"$work/status.txt" 2>&1 || st=$?
grep -qF "op-a: 1 consumer active, 1 standing by" "$work/status.txt" ||
    fail "status does not show the standby (exit $st): $(cat "$work/status.txt")"
publish 51 100 two
wait_rows two 50
grep -qF "is active now" "$work/second.log" && fail "the standby took deliveries while the first consumer ran"
kill -TERM "$first"
wait "$first" || fail "the first consumer did not exit 0 on SIGTERM"
publish 101 150 three
wait_rows three 50
wait_log "$work/second.log" 30 "the other consumer left; this one is active now"
say "a second consumer stood by (shown by status), then took over when the first stopped"

# The same with a quorum queue, which ignores exclusive consumers: the
# standby applies nothing while the active one runs.
conf oq op-q "[amqp]
queue_type = quorum"
conf hq op-y
sed -i 's/^exchange = datasync-op$/exchange = datasync-oq/' "$work/oq.conf" "$work/hq.conf"
timeout 60 "$ds" -c "$work/oq.conf" setup --nodes op-q >/dev/null || fail "setup (quorum)"
"$consumer" -c "$work/oq.conf" >"$work/quorum1.log" 2>&1 &
q1=$!
pids+=("$q1")
wait_log "$work/quorum1.log" 30 ": datasync-consumer "
"$consumer" -c "$work/oq.conf" >"$work/quorum2.log" 2>&1 &
q2=$!
pids+=("$q2")
wait_log "$work/quorum2.log" 30 "this one stands by and takes over when it leaves"
for ((i = 1; i <= 40; i++)); do
    printf '{"op":"update","table":"kv","key":{"k":%d},"data":{"k":%d,"v":"quorum"}}\n' $((1000 + i)) $((1000 + i))
done | timeout 60 "$ds" -c "$work/hq.conf" publish - >/dev/null || fail "publish (quorum)"
wait_rows quorum 40
kill -TERM "$q2"
wait "$q2" || fail "the quorum standby did not exit 0 on SIGTERM"
grep -qF "stopping: applied 0," "$work/quorum2.log" ||
    fail "the quorum standby applied changes: $(grep -F stopping: "$work/quorum2.log")"
kill -TERM "$q1"
wait "$q1" || fail "the quorum consumer did not exit 0 on SIGTERM"
sql optest -e "DELETE FROM kv WHERE k > 1000"
say "quorum queue: the second consumer stood by and applied none of 40 changes"

# ------------------------------------------------------------ 3. SIGHUP
kill -HUP "$second"
wait_log "$work/second.log" 10 "read; applied: nothing changed"
publish 151 200 four
wait_rows four 50
kill -0 "$second" 2>/dev/null || fail "SIGHUP ended the consumer"
kill -TERM "$second"
wait "$second" || fail "the consumer did not exit 0 on SIGTERM after SIGHUP"
[[ "$(sql -N optest -e 'SELECT COUNT(*) FROM kv')" == 200 ]] || fail "kv does not hold the 200 rows"
say "SIGHUP reloaded an unchanged file; 200 changes applied once each"

# ------------------------------- 4. broker users with the documented rights
rabbitctl() { timeout 60 "$DS_TEST_SERVICES" rabbit ctl "$@" >/dev/null; }
# datasync(1), PERMISSIONS: the application writes to the exchange only;
# the consumer of node N declares and reads its queues, and writes its dead
# letters; setup (an operator) configures everything.
rabbitctl delete_user op_app 2>/dev/null || true
rabbitctl delete_user op_consumer 2>/dev/null || true
rabbitctl add_user op_app app-pw
rabbitctl set_permissions -p / op_app "" '^datasync-op$' ""
rabbitctl add_user op_consumer consumer-pw
rabbitctl set_permissions -p / op_consumer \
    '^(datasync-op|datasync-op\.dead|datasync\.op-a|datasync\.op-a\.dead)$' \
    '^(datasync-op\.dead|datasync\.op-a|datasync\.op-a\.dead)$' \
    '^(datasync-op|datasync-op\.dead|datasync\.op-a)$'
amqp_as() { # USER PASSWORD: the harness's URL with other credentials
    echo "$DS_TEST_AMQP_URL" | sed "s|amqp://[^@]*@|amqp://$1:$2@|"
}
sed "s|^url = .*|url = $(amqp_as op_consumer consumer-pw)|" "$work/op.conf" >"$work/least.conf"
"$consumer" -c "$work/least.conf" >"$work/least.log" 2>&1 &
least=$!
pids+=("$least")
wait_log "$work/least.log" 30 ": datasync-consumer "
sed "s|^url = .*|url = $(amqp_as op_app app-pw)|" "$work/hx.conf" >"$work/app.conf"
out=$(printf '{"op":"update","table":"kv","key":{"k":1},"data":{"k":1,"v":"five"}}\n' |
    timeout 60 "$ds" -c "$work/app.conf" publish - 2>&1) || fail "publish with write permission only: $out"
[[ "$out" == *"published 1, spooled 0"* ]] || fail "publish with write permission only: $out"
wait_rows five 1
kill -TERM "$least"
wait "$least" || fail "the consumer with the documented rights did not exit 0"

# A wrong password is not an outage: said at error level, change kept.
sed "s|^url = .*|url = $(amqp_as op_app wrong)|" "$work/app.conf" >"$work/wrong.conf"
rc=0
out=$(timeout 60 "$ds" -c "$work/wrong.conf" publish --op delete --table kv --key '{"k":1}' 2>&1) || rc=$?
[[ $rc == 6 && "$out" == *"broker refused this producer"* && "$out" == *"spooled 1"* ]] ||
    fail "a wrong password: exit $rc: $out"
say "least privilege: the application writes only, the consumer has its documented rights; a wrong password is an error, the change spooled"

# --------------------------------------- 5. command lines and configurations
expect_exit() { # CODE PART ARGS...
    local want=$1 part=$2 rc=0 out
    shift 2
    out=$(timeout 30 "$consumer" "$@" 2>&1) || rc=$?
    [[ $rc == "$want" ]] || fail "datasync-consumer $*: exit $rc, want $want: $out"
    [[ "$out" == *"$part"* ]] || fail "datasync-consumer $*: says '$out', not '$part'"
}
expect_exit 2 "-c needs a value" -c
expect_exit 2 "unknown option" --frobnicate
grep -v '^tables' "$work/op.conf" >"$work/empty.conf"
expect_exit 78 "apply.tables is empty" -c "$work/empty.conf"
printf '[amqp]\nprefetch = lots\n' >"$work/bad.conf"
expect_exit 78 "bad.conf:2: amqp.prefetch" -c "$work/bad.conf"
say "bad usage exits 2, a bad configuration 78"
say "ok"
