#!/usr/bin/env bash
# demo.sh: three servers on 127.0.0.1 end to end: private RabbitMQ and MariaDB, setup, a consumer per node, an app emitting changes (make demo), or writing SQL only with datasync-capture emitting them (make demo CAPTURE=1).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$root/$BUILD ;; esac
nodes=(a b c)
# CAPTURE=1: server a's application only writes SQL; datasync-capture reads
# the binlog and emits the changes.
capture=${CAPTURE:-}
[[ "$capture" == 0 ]] && capture=

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

for bin in datasync datasync-consumer examples/demo_app ${capture:+datasync-capture}; do
    if [ ! -x "$BUILD/$bin" ]; then
        echo "demo: $BUILD/$bin is not built yet; run make first" >&2
        exit 1
    fi
done

export DS_TEST_RUNDIR DS_SVC_MARIA_BINLOG=$capture
DS_TEST_RUNDIR=$(mktemp -d /tmp/datasync-demo.XXXXXX)
consumer_pids=()
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    for pid in "${consumer_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${consumer_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    "$root/tests/lib/services.sh" down >/dev/null 2>&1 || true
    if [ "$status" -ne 0 ]; then
        echo "demo: failed; logs kept in $DS_TEST_RUNDIR" >&2
    else
        rm -rf "$DS_TEST_RUNDIR"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "Starting private RabbitMQ and MariaDB (127.0.0.1 only, data in $DS_TEST_RUNDIR)"
"$root/tests/lib/services.sh" up
eval "$("$root/tests/lib/services.sh" env)"
sql() { "$root/tests/lib/services.sh" maria sql "$@"; }

say "Creating one database per server: demo_a, demo_b, demo_c"
server_id=100
for n in "${nodes[@]}"; do
    server_id=$((server_id + 1))
    sql -e "DROP DATABASE IF EXISTS demo_$n; CREATE DATABASE demo_$n CHARACTER SET utf8mb4;
      CREATE TABLE demo_$n.users (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL,
        email VARCHAR(200) NOT NULL UNIQUE, balance DECIMAL(12,2) NOT NULL);"
    cat >"$DS_TEST_RUNDIR/node-$n.conf" <<EOF
; datasync.conf of demo server $n (see datasync.conf.example for every key)
[node]
id = $n
clock_file = $DS_TEST_RUNDIR/clock-$n
[amqp]
url = $DS_TEST_AMQP_URL
[mysql]
socket = $DS_TEST_MYSQL_SOCKET
user = root
database = demo_$n
[apply]
tables = users
[producer]
spool_dir = $DS_TEST_RUNDIR/spool-$n
EOF
    if [[ -n "$capture" ]]; then
        cat >>"$DS_TEST_RUNDIR/node-$n.conf" <<EOF
[capture]
server_id = $server_id
state_file = $DS_TEST_RUNDIR/capture-$n.state
EOF
    fi
done

say "datasync setup: exchanges, and a queue and dead-letter queue per node"
"$BUILD/datasync" -c "$DS_TEST_RUNDIR/node-a.conf" setup --nodes a,b,c

say "Starting one datasync-consumer per node (logs in $DS_TEST_RUNDIR/consumer-*.log)"
for n in "${nodes[@]}"; do
    "$BUILD/datasync-consumer" -c "$DS_TEST_RUNDIR/node-$n.conf" \
        >"$DS_TEST_RUNDIR/consumer-$n.log" 2>&1 &
    consumer_pids+=($!)
done

if [[ -n "$capture" ]]; then
    say "Starting datasync-capture on server a (log in $DS_TEST_RUNDIR/capture-a.log): it reads the binlog"
    "$BUILD/datasync-capture" -c "$DS_TEST_RUNDIR/node-a.conf" \
        >"$DS_TEST_RUNDIR/capture-a.log" 2>&1 &
    consumer_pids+=($!)
    # It starts at the binlog's current position, saved at once.
    for _ in $(seq 1 100); do
        [[ -s "$DS_TEST_RUNDIR/capture-a.state" ]] && break
        sleep 0.1
    done
    say "The application on server a writes rows, SQL only: datasync-capture emits the changes"
    "$BUILD/examples/demo_app" --sql-only --socket "$DS_TEST_MYSQL_SOCKET" --database demo_a
else
    say "The application on server a writes rows and emits every change"
    "$BUILD/examples/demo_app" -c "$DS_TEST_RUNDIR/node-a.conf" \
        --socket "$DS_TEST_MYSQL_SOCKET" --database demo_a
fi

# One line per row, "id name email balance", so three servers fit side by side.
table_of() { sql -N -e "SELECT CONCAT_WS(' ', id, name, email, balance) FROM demo_$1.users ORDER BY id"; }

say "Waiting for the three databases to converge"
match=no
for _ in $(seq 1 100); do
    if [ "$(table_of a)" = "$(table_of b)" ] && [ "$(table_of a)" = "$(table_of c)" ] &&
        [ -n "$(table_of b)" ]; then
        match=yes
        break
    fi
    sleep 0.2
done

say "Table users on each server"
paste <(echo "server a"; table_of a) <(echo "server b"; table_of b) <(echo "server c"; table_of c) |
    column -t -s $'\t' 2>/dev/null || paste <(table_of a) <(table_of b) <(table_of c)
echo
"$BUILD/datasync" -c "$DS_TEST_RUNDIR/node-a.conf" status --nodes a,b,c || true

if [ "$match" = yes ]; then
    say "The three servers hold identical rows."
else
    say "The servers differ: see $DS_TEST_RUNDIR/consumer-*.log"
    exit 1
fi
cat <<'EOF'

What to try next:
  - Read examples/demo_app.c: the whole host side is ds_options_load, ds_producer_new, ds_emit.
  - make demo CAPTURE=1: the application writes SQL only; datasync-capture reads the binlog and emits.
  - make test runs every test, including broker and database kills and restarts.
  - datasync --help, man docs/datasync.1: publish, replay, dead letters, status.
  - datasync.conf.example documents every configuration key.
  - With Docker: docker compose up -d --build runs these three servers in containers (compose.yaml).
  - From PHP: examples/php/example.php emits changes through libdatasync (PHP's FFI).
EOF
