#!/usr/bin/env bash
# test_ops.sh: what an operator does to a running datasync-consumer: JSON log lines to a file, SIGHUP reloads (log level, batch size) while changes flow with none lost or applied twice, a broken file on reload, a logrotate-style rename, SIGTERM; then datasync status --json and its lag.
#
# Run by tests/run.sh with the private services up (DS_TEST_* set). Own
# exchange, node and database names.
set -euo pipefail

TEST=test_ops
# shellcheck source=../lib/testlib.sh
source "$(dirname "$0")/../lib/testlib.sh"


require_env DS_TEST_RUNDIR DS_TEST_BUILD DS_TEST_SERVICES DS_TEST_AMQP_URL DS_TEST_MYSQL_SOCKET
command -v python3 >/dev/null || fail "python3 is needed to parse the JSON lines"
work=$(mktemp -d "$DS_TEST_RUNDIR/ops.XXXXXX")
consumer=$DS_TEST_BUILD/datasync-consumer
ds=$DS_TEST_BUILD/datasync
sql() { timeout 60 "$DS_TEST_SERVICES" maria sql "$@"; }
log=$work/consumer.log
pids=()

cleanup() {
    local rc=$?
    trap - EXIT
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    if ((rc != 0)); then
        show_logs 20 "$work"/consumer.log* "$work"/*.out
    fi
    exit "$rc"
}
trap cleanup EXIT

sql -e "DROP DATABASE IF EXISTS opstest; CREATE DATABASE opstest CHARACTER SET utf8mb4;
  CREATE TABLE opstest.kv (k INT PRIMARY KEY, v VARCHAR(32) NOT NULL)"

# conf LEVEL BATCH_MAX PREFETCH [METRICS]: the consumer's configuration,
# rewritten in place as an operator edits it before a SIGHUP.
conf() {
    cat >"$work/c.conf.new" <<EOF
[node]
id = ops-a
clock_file =
[amqp]
url = $DS_TEST_AMQP_URL
exchange = datasync-ops
prefetch = $3
[mysql]
socket = $DS_TEST_MYSQL_SOCKET
user = root
database = opstest
[apply]
tables = kv
batch_max = $2
batch_wait_ms = 20
[producer]
spool_dir = $work/spool-a
[log]
level = $1
format = json
file = $log
[metrics]
listen = ${4:-}
EOF
    mv "$work/c.conf.new" "$work/c.conf"
}
conf info 20 500
cat >"$work/x.conf" <<EOF
[node]
id = ops-x
[amqp]
url = $DS_TEST_AMQP_URL
exchange = datasync-ops
[producer]
spool_dir = $work/spool-x
EOF
timeout 60 "$ds" -c "$work/c.conf" setup --nodes ops-a >/dev/null || fail "setup"
timeout 60 "$DS_TEST_SERVICES" rabbit ctl purge_queue datasync.ops-a >/dev/null || fail "purge_queue"

publish() { # FIRST LAST
    local i
    for ((i = $1; i <= $2; i++)); do
        printf '{"op":"update","table":"kv","key":{"k":%d},"data":{"k":%d,"v":"v%d"}}\n' "$i" "$i" "$i"
    done | timeout 60 "$ds" -c "$work/x.conf" publish - >/dev/null || fail "publish $1..$2"
}
rows() { sql -N opstest -e "SELECT COUNT(*) FROM kv"; }
wait_rows() { # AT_LEAST SECONDS
    for _ in $(seq 1 $(($2 * 10))); do
        (($(rows) >= $1)) && return 0
        sleep 0.1
    done
    fail "kv holds $(rows) rows after $2 s, want $1"
}

# ------------------------------------------- the consumer, logging JSON
"$consumer" -c "$work/c.conf" >"$work/consumer.out" 2>&1 &
cpid=$!
pids+=("$cpid")
wait_log "$log" 30 '"msg":"datasync-consumer '

# Changes flow the whole time the settings change: 12 rounds of 250.
total=3000
(
    for ((r = 0; r < 12; r++)); do
        publish $((r * 250 + 1)) $((r * 250 + 250))
        sleep 0.3
    done
) >"$work/publisher.out" 2>&1 &
publisher=$!
pids+=("$publisher")
wait_rows 250 60

# 1. log level and batch size, while changes flow
conf debug 50 500
kill -HUP "$cpid"
wait_log "$log" 20 "applied: apply.batch_max, log.level"
say "SIGHUP: log.level debug and apply.batch_max 50 taken"

# 2. logrotate: the file is moved away, SIGHUP reopens the path
wait_log "$log" 20 '"event":"batch"'
mv "$log" "$log.1"
kill -HUP "$cpid"
wait_log "$log" 20 "applied: nothing changed"
say "SIGHUP after a rename: a new $log"

# 3. a broken file: said at ERROR, the running settings stay
cp "$work/c.conf" "$work/c.conf.good"
printf '[apply]\nbatch_max = lots\n' >>"$work/c.conf"
kill -HUP "$cpid"
wait_log "$log" 20 "nothing changed, the running settings stay"
kill -0 "$cpid" 2>/dev/null || fail "a broken configuration on SIGHUP ended the consumer"

# 4. a key that needs a restart: named, kept
conf debug 50 100
kill -HUP "$cpid"
wait_log "$log" 20 "reload: amqp.prefetch changed; restart to apply"

# 5. metrics.listen: the endpoint starts on SIGHUP, and stops on the next
scrape() { # PORT: /metrics, or "refused"
    /usr/bin/python3 - "$1" <<'PY'
import sys, urllib.request
try:
    print(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode())
except OSError:
    print("refused")
PY
}
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
conf debug 50 100 "127.0.0.1:$port"
kill -HUP "$cpid"
wait_log "$log" 20 "applied: metrics.listen"
scrape "$port" | grep '^datasync_consumer_changes_applied_total [0-9]' >/dev/null ||
    fail "no metrics on 127.0.0.1:$port after the reload: $(scrape "$port" | head -3)"
conf debug 50 100 ""
kill -HUP "$cpid"
for _ in $(seq 1 100); do
    (($(grep -c "applied: metrics.listen" "$log") >= 2)) && break
    sleep 0.1
done
[[ "$(scrape "$port")" == refused ]] || fail "the endpoint still answers after metrics.listen was emptied"
say "SIGHUP: metrics.listen started the endpoint, then stopped it"

wait "$publisher" || fail "the publisher failed: $(cat "$work/publisher.out")"
wait_rows $total 120

# 6. SIGTERM: the batch in hand finished, acked, exit 0
kill -TERM "$cpid"
rc=0
timeout 15 tail --pid="$cpid" -f /dev/null || fail "datasync-consumer still runs 15 s after SIGTERM"
wait "$cpid" || rc=$?
((rc == 0)) || fail "datasync-consumer exited $rc after SIGTERM, expected 0"
[[ ! -s "$work/consumer.out" ]] || fail "lines went to stderr with log.file set: $(head -3 "$work/consumer.out")"

python3 - "$log.1" "$log" "$total" <<'PY' || fail "the log lines (see above)"
import json, re, sys

rotated, current, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
lines = []
for path in (rotated, current):
    with open(path, encoding="utf-8") as f:
        for n, text in enumerate(f, 1):
            try:
                o = json.loads(text)
            except ValueError as e:
                sys.exit(f"{path}:{n}: not JSON ({e}): {text!r}")
            for k in ("time", "level", "program", "node", "msg"):
                if not isinstance(o.get(k), str):
                    sys.exit(f"{path}:{n}: no string field {k}: {text!r}")
            if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", o["time"]):
                sys.exit(f"{path}:{n}: time {o['time']!r}")
            if o["level"] not in ("debug", "info", "warn", "error"):
                sys.exit(f"{path}:{n}: level {o['level']!r}")
            if o["program"] != "datasync-consumer" or o["node"] != "ops-a":
                sys.exit(f"{path}:{n}: program/node {o['program']!r}/{o['node']!r}")
            lines.append((path, n, o))

def first(pred, what):
    for i, (_, _, o) in enumerate(lines):
        if pred(o):
            return i
    sys.exit(f"no line {what}")

reload_i = first(lambda o: "applied: apply.batch_max, log.level" in o["msg"], "of the first reload")
debug = [i for i, (_, _, o) in enumerate(lines) if o["level"] == "debug"]
if not debug or min(debug) < reload_i:
    sys.exit(f"debug lines {debug[:3]}... must all come after the reload (line {reload_i})")
batches = [o for _, _, o in lines if o.get("event") == "batch"]
sizes = [o["messages"] for o in batches]
if not sizes or max(sizes) > 50:
    sys.exit(f"batch sizes after the reload: max {max(sizes or [0])}, want 1..50")
first(lambda o: o["level"] == "error" and "batch_max" in o["msg"] and "nothing changed" in o["msg"],
      "at error level for the broken file")
first(lambda o: o["level"] == "warn" and o["msg"] == "reload: amqp.prefetch changed; restart to apply",
      "at warn level for amqp.prefetch")
if not any(o["msg"].startswith("datasync-consumer ") for p, _, o in lines if p == rotated):
    sys.exit("the start line is not in the rotated file")
stop = [o for p, _, o in lines if o.get("event") == "stopping" and p == current]
if len(stop) != 1:
    sys.exit(f"{len(stop)} stopping lines with counters in {current}")
s = stop[0]
if (s["applied"], s["superseded"], s["dead_lettered"]) != (total, 0, 0):
    sys.exit(f"stopping: applied {s['applied']}, superseded {s['superseded']}, "
             f"dead-lettered {s['dead_lettered']}; want {total}, 0, 0")
print(f"test_ops: {len(lines)} JSON lines; {len(batches)} batches after the reload, "
      f"largest {max(sizes)}; applied {s['applied']} once each")
PY
[[ "$(sql -N opstest -e "SELECT COUNT(*) FROM kv WHERE v = CONCAT('v', k)")" == "$total" ]] ||
    fail "kv does not hold the $total rows as published"
say "SIGHUP x4 while $total changes flowed: none lost, none applied twice; SIGTERM exit 0"

# ------------------------------------------------- status --json: lag
# No consumer, changes waiting: the lag is the age of the last change the
# node applied, read from its database.
cp "$work/c.conf.good" "$work/c.conf"
sleep 2
publish 3001 3005
status() {
    rc=0
    timeout 60 "$ds" -c "$work/c.conf" status --json >"$work/status.out" 2>"$work/status.err" || rc=$?
    [[ $rc == "$1" ]] || fail "status --json: exit $rc, want $1: $(cat "$work/status.err")"
}
check_status() { # PYTHON-CONDITION on n (the node's object)
    python3 -c '
import json, sys
doc = json.load(open(sys.argv[1]))
n = doc["nodes"][0]
if not ('"$1"'):
    sys.exit("status --json: " + json.dumps(n))
print("test_ops: status --json:", json.dumps({k: n[k] for k in ("node", "ready", "consumers", "lag_seconds", "lag_source")}))
' "$work/status.out" || fail "status --json does not hold: $1"
}
for _ in $(seq 1 50); do
    status 8
    python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["nodes"][0]["ready"] != 5)' \
        "$work/status.out" && break
    sleep 0.1
done
check_status 'n["node"] == "ops-a" and n["ready"] == 5 and n["consumers"] == 0 and n["lag_source"] == "database" and isinstance(n["lag_seconds"], float) and 2.0 <= n["lag_seconds"] < 600'

# Its consumer back and caught up: 0, from the queue.
"$consumer" -c "$work/c.conf" >"$work/consumer2.out" 2>&1 &
cpid=$!
pids+=("$cpid")
wait_rows 3005 60
status 0
check_status 'n["ready"] == 0 and n["consumers"] == 1 and n["lag_source"] == "queue" and n["lag_seconds"] == 0'
kill -TERM "$cpid"
wait "$cpid" || fail "the second consumer did not exit 0 on SIGTERM"

# Another node's database is not this server's: unknown, and said why.
sed 's/^id = ops-a$/id = ops-other/' "$work/c.conf.good" >"$work/other.conf"
publish 3006 3006
rc=0
timeout 60 "$ds" -c "$work/other.conf" status --json --nodes ops-a >"$work/status.out" 2>/dev/null || rc=$?
[[ $rc == 8 ]] || fail "status --json of another node: exit $rc, want 8"
check_status 'n["lag_seconds"] is None and n["lag_source"] is None and "not this server" in n["lag_note"]'
timeout 60 "$DS_TEST_SERVICES" rabbit ctl delete_queue datasync.ops-a >/dev/null 2>&1 || true
say "ok"
