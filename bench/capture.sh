#!/usr/bin/env bash
# capture.sh: datasync-capture's rate from a binlog backlog to changes confirmed in a queue, in rounds (run by bench/run.sh, beside bench_producer's library rate).
#
# Needs what bench/run.sh exports: DS_TEST_RUNDIR, DS_TEST_AMQP_URL,
# DS_TEST_BUILD, DS_TEST_ROOT. Starts a MariaDB of its own with the binlog
# datasync-capture needs, under $DS_TEST_RUNDIR/capture, and stops it.
#
# Each round: the position is saved, ROWS row changes are committed (single
# rows, then 20-row transactions: an application's inserts and updates of
# table users, the rows bench_producer emits), then datasync-capture starts
# on that backlog; the rate is the changes over the time from its "reading
# the binlog" line to the moment the queue holds them all (the broker
# confirmed them: the queue is durable and the messages persistent). It
# prints BENCH_CAPTURE_EV_PER_S=<median> last.
set -euo pipefail

for v in DS_TEST_RUNDIR DS_TEST_AMQP_URL DS_TEST_BUILD DS_TEST_ROOT; do
    [[ -n "${!v:-}" ]] || {
        echo "capture.sh: $v is not set: run me through bench/run.sh" >&2
        exit 1
    }
done
rows=${BENCH_CAPTURE_ROWS:-40000}
rounds=${BENCH_CAPTURE_ROUNDS:-3}
ds=$DS_TEST_BUILD/datasync
work=$DS_TEST_RUNDIR/capture
mkdir -p "$work"
# Its own ports, not the run's (services.sh takes exported ones as given).
services() { env -u DS_TEST_MYSQL_PORT -u DS_TEST_AMQP_PORT DS_TEST_RUNDIR="$work" DS_SVC_MARIA_BINLOG=1 "$DS_TEST_ROOT/tests/lib/services.sh" "$@"; }
sql() { services maria sql "$@"; }
capture_pid=""
cleanup() {
    [[ -n "$capture_pid" ]] && kill -KILL "$capture_pid" 2>/dev/null
    services maria stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

services maria start >/dev/null
sock=$(services env | sed -n 's/^export DS_TEST_MYSQL_SOCKET=//p')
sql -e "DROP DATABASE IF EXISTS capbench; CREATE DATABASE capbench CHARACTER SET utf8mb4;
  CREATE TABLE capbench.users (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL,
    email VARCHAR(200) NOT NULL, balance DECIMAL(12,2) NOT NULL)"
cat >"$work/cap.conf" <<EOF
[node]
id = capbench
clock_file =
[amqp]
url = $DS_TEST_AMQP_URL
exchange = ds_capbench
[mysql]
socket = $sock
user = root
database = capbench
[apply]
tables = users
[producer]
spool_dir = $work/spool
[log]
level = info
[archive]
enabled = false
[capture]
server_id = 77
state_file = $work/cap.state
EOF
"$ds" -c "$work/cap.conf" setup --nodes sink >/dev/null

# The backlog: half single-row transactions, half 20-row ones; creates,
# then updates of the same rows.
backlog() {
    local half=$((rows / 2)) i
    {
        echo "SET autocommit = 1;"
        for ((i = 1; i <= half; i++)); do
            echo "REPLACE INTO users VALUES ($i, 'user $i', 'u$i@example.com', 12.50);"
        done
        for ((i = 1; i <= half; i += 20)); do
            echo "BEGIN; UPDATE users SET balance = balance + 1, name = CONCAT(name, '+') WHERE id BETWEEN $i AND $((i + 19)); COMMIT;"
        done
    } | sql capbench
}

# The baseline, the same changes emitted by libdatasync (async, through
# datasync publish, which also reads and checks them first): a create and
# an update per row, as the capture emits them.
half=$((rows / 2))
python3 - "$half" >"$work/events.jsonl" <<'EOF'
import json, sys
n = int(sys.argv[1])
for op in ("create", "update"):
    for i in range(1, n + 1):
        name = f"user {i}" + ("+" if op == "update" else "")
        print(json.dumps({"op": op, "table": "users", "key": {"id": i},
                          "data": {"id": i, "name": name, "email": f"u{i}@example.com",
                                   "balance": "13.50" if op == "update" else "12.50"}}))
EOF

# The changes in the queue (status exits 8: the queue has no consumer).
# Read with sed: a python start-up per look (over 100 ms) would add most of
# a look's time to the capture's.
ready() {
    { "$ds" -c "$work/cap.conf" status --nodes sink --json 2>/dev/null || true; } |
        sed -n 's/^ *"ready":\([0-9][0-9]*\),*$/\1/p'
}

rates=() bases=() ratios=()
for ((r = 1; r <= rounds; r++)); do
    sql -e "PURGE BINARY LOGS BEFORE NOW()" >/dev/null 2>&1 || true
    sql capbench -e "DELETE FROM users"
    # The queue empty, the position saved where the backlog starts.
    "$DS_TEST_ROOT/tests/lib/services.sh" rabbit ctl purge_queue datasync.sink >/dev/null
    sql -N -e "SELECT @@gtid_binlog_pos" >"$work/cap.state"
    backlog
    n=$(sql -N capbench -e "SELECT COUNT(*) FROM users")
    want=$((n + n)) # a create and an update per row
    : >"$work/capture-$r.log"
    "$DS_TEST_BUILD/datasync-capture" -c "$work/cap.conf" >"$work/capture-$r.log" 2>&1 &
    capture_pid=$!
    got=0
    end=$((SECONDS + 60))
    while ((SECONDS < end)); do
        got=$(ready)
        ((${got:-0} >= want)) && break
        sleep 0.01
    done
    t1=$(date +%s.%N)
    kill -TERM "$capture_pid"
    wait "$capture_pid" || true
    capture_pid=""
    ((${got:-0} >= want)) || {
        echo "capture.sh: round $r: the queue holds $got of $want changes after 60 s" >&2
        tail -5 "$work/capture-$r.log" >&2
        exit 1
    }
    stamp=$(sed -n 's/^\([0-9T:.-]*\)Z .*reading the binlog.*/\1/p' "$work/capture-$r.log" | head -n 1)
    t0=$(date -u -d "${stamp/T/ }" +%s.%N)
    rate=$(awk -v n="$want" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
    echo "round $r: $want changes in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s: $rate ev/s" >&2
    rates+=("$rate")

    "$DS_TEST_ROOT/tests/lib/services.sh" rabbit ctl purge_queue datasync.sink >/dev/null
    t0=$(date +%s.%N)
    "$ds" -c "$work/cap.conf" publish "$work/events.jsonl" >"$work/publish-$r.log" 2>&1 || {
        echo "capture.sh: round $r: datasync publish failed: $(tail -3 "$work/publish-$r.log")" >&2
        exit 1
    }
    t1=$(date +%s.%N)
    base=$(awk -v n="$want" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
    echo "round $r: libdatasync async (datasync publish) $base ev/s; capture / library $(awk -v a="$rate" -v b="$base" 'BEGIN { printf "%.2f", a / b }') x" >&2
    ratios+=("$(awk -v a="$rate" -v b="$base" 'BEGIN { printf "%.3f", a / b }')")
    bases+=("$base")
done
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
printf '| measure (median of %d rounds, %d changes each)        | value          |\n' "$rounds" "$want"
printf '|--------------------------------------------------------|----------------|\n'
printf '| datasync-capture: binlog backlog to confirmed in queue | %8s ev/s  |\n' "$(median "${rates[@]}")"
printf '| libdatasync async, same changes (datasync publish)     | %8s ev/s  |\n' "$(median "${bases[@]}")"
printf '| capture / library, per round (target >= 0.90)          | %8s x     |\n' "$(median "${ratios[@]}")"
echo "BENCH_CAPTURE_EV_PER_S=$(median "${rates[@]}")"
