#!/usr/bin/env bash
# history.sh: bootstrap copy speed on a 1,000,000-row table, and the archive's read speed in replay --dry-run against a raw no-op stream consume, in one run (bench/run.sh).
#
# Needs the private services of bench/run.sh (DS_TEST_* set) and the build.
# Prints a table; the ratio is what counts, absolute rates drift with the
# machine's load.
set -euo pipefail

for v in DS_TEST_RUNDIR DS_TEST_BUILD DS_TEST_SERVICES DS_TEST_AMQP_URL DS_TEST_AMQP_PORT DS_TEST_MYSQL_SOCKET; do
    [[ -n "${!v:-}" ]] || {
        echo "history.sh: $v is not set: run me through bench/run.sh" >&2
        exit 2
    }
done
ROWS=${BENCH_BOOTSTRAP_ROWS:-1000000}
EVENTS=${BENCH_ARCHIVE_EVENTS:-100000}
work=$(mktemp -d "$DS_TEST_RUNDIR/history.XXXXXX")
ds=$DS_TEST_BUILD/datasync
sql() { "$DS_TEST_SERVICES" maria sql "$@"; }
consumer_pid=""
trap '[[ -n "$consumer_pid" ]] && kill "$consumer_pid" 2>/dev/null; wait 2>/dev/null || true' EXIT

for n in peer new; do
    cat >"$work/$n.conf" <<EOF
[node]
id = bench-$n
clock_file =
[amqp]
url = $DS_TEST_AMQP_URL
exchange = bench-history
[mysql]
socket = $DS_TEST_MYSQL_SOCKET
user = root
database = bench_$n
[apply]
tables = wide
[producer]
spool_dir = $work/spool
mode = async
EOF
    sql -e "DROP DATABASE IF EXISTS bench_$n; CREATE DATABASE bench_$n;
        CREATE TABLE bench_$n.wide (id INT PRIMARY KEY, name VARCHAR(32) NOT NULL,
          qty INT NOT NULL, price DECIMAL(12,2) NOT NULL, made DATETIME NOT NULL) ENGINE=InnoDB"
done

# ------------------------------------------------------------ bootstrap
sql bench_peer -e "INSERT INTO wide SELECT seq, CONCAT('name ', seq), seq % 1000,
    seq / 7, '2026-01-01 00:00:00' + INTERVAL seq SECOND FROM seq_1_to_$ROWS"
"$ds" -c "$work/peer.conf" setup --nodes bench-peer >/dev/null
"$DS_TEST_BUILD/datasync-consumer" -c "$work/peer.conf" 2>"$work/consumer.log" &
consumer_pid=$!
sleep 1
"$ds" bootstrap --from "$work/peer.conf" --to "$work/new.conf" >"$work/bootstrap.log"
copy_rate=$(sed -n 's/.*table wide: .* (\([0-9]*\) rows\/s).*/\1/p' "$work/bootstrap.log")
copied=$(sql -N bench_new -e "SELECT COUNT(*) FROM wide")
[[ "$copied" == "$ROWS" ]] || {
    echo "history.sh: bootstrap copied $copied rows of $ROWS" >&2
    exit 1
}
kill "$consumer_pid"
wait "$consumer_pid" 2>/dev/null || true
consumer_pid=""

# ------------------------------------------------------------ archive read
since=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
awk -v n="$EVENTS" 'BEGIN { for (i = 1; i <= n; i++)
    printf "{\"op\":\"update\",\"table\":\"wide\",\"key\":{\"id\":%d},\"data\":{\"id\":%d,\"name\":\"n%d\",\"qty\":%d,\"price\":\"%d.50\",\"made\":\"2026-01-02 00:00:00\"}}\n", i, i, i, i % 1000, i }' >"$work/events.jsonl"
"$ds" -c "$work/peer.conf" publish "$work/events.jsonl" >/dev/null
stream=bench-history.archive
raw_rate=$("$DS_TEST_BUILD/bench/stream_drain" 127.0.0.1 "$DS_TEST_AMQP_PORT" "$stream" "$EVENTS")
t0=$(date +%s%N)
"$ds" -c "$work/peer.conf" replay --since "$since" --dry-run >"$work/dry.log"
t1=$(date +%s%N)
with_commas=$(printf '%s' "$EVENTS" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta')
grep -q " $with_commas in the window" "$work/dry.log" || {
    echo "history.sh: replay --dry-run: $(cat "$work/dry.log")" >&2
    exit 1
}
dry_rate=$((EVENTS * 1000000000 / (t1 - t0)))

printf '\nhistory benchmark (bootstrap of %d rows x 5 columns; archive of %d events)\n' "$ROWS" "$EVENTS"
printf '| %-46s | %-14s |\n' "measure" "value"
printf '|%s|%s|\n' "------------------------------------------------" "----------------"
printf '| %-46s | %8s rows/s |\n' "bootstrap copy (snapshot -> multi-row INSERT)" "$copy_rate"
printf '| %-46s | %10s ev/s |\n' "replay --dry-run (read, parse, filter, count)" "$dry_rate"
printf '| %-46s | %10s ev/s |\n' "raw no-op stream consume (rabbitmq-c)" "$raw_rate"
printf '| %-46s | %12s x |\n' "replay --dry-run / raw consume" "$(awk -v a="$dry_rate" -v b="$raw_rate" 'BEGIN { printf "%.2f", a / b }')"
echo "BENCH_BOOTSTRAP_ROWS_PER_S=$copy_rate"
